import { assertEquals, assertThrows } from "@std/assert";
import { join } from "@std/path";
import {
  isValidNetworkName,
  listLeaseNetworks,
  parseLeaseContent,
  readNetworkLeases,
} from "./leases.ts";

Deno.test("parseLeaseContent() reads current and legacy lease files", () => {
  assertEquals(parseLeaseContent("abc\r\neth0"), { containerId: "abc", ifname: "eth0" });
  assertEquals(parseLeaseContent("  abc \r\n eth1\n"), { containerId: "abc", ifname: "eth1" });
  assertEquals(parseLeaseContent("legacy-id\n"), { containerId: "legacy-id", ifname: "" });
});

Deno.test("isValidNetworkName() rejects anything that could be a path", () => {
  for (const good of ["nomad", "a.b_c-d", "A1"]) assertEquals(isValidNetworkName(good), true, good);
  for (
    const bad of ["", ".", "..", "../etc", "a/b", ".hidden", "-x", "a b", "a\0b", "x".repeat(256)]
  ) {
    assertEquals(isValidNetworkName(bad), false, bad);
  }
});

Deno.test("readNetworkLeases() reads IP-named regular files only, sorted, never following symlinks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cbx-st-" });
  try {
    const net = join(dir, "n1");
    await Deno.mkdir(net);
    await Deno.writeTextFile(join(net, "10.0.0.10"), "c2\r\neth0");
    await Deno.writeTextFile(join(net, "10.0.0.9"), "c1\r\neth0");
    await Deno.writeTextFile(join(net, "fd00::5"), "c1\r\neth0");
    await Deno.writeTextFile(join(net, "last_reserved_ip.0"), "10.0.0.10");
    await Deno.writeTextFile(join(net, "lock"), "");
    await Deno.writeTextFile(join(dir, "secret"), "top-secret\r\neth9");
    await Deno.symlink(join(dir, "secret"), join(net, "10.0.0.50"));
    await Deno.writeTextFile(join(net, "10.0.0.60"), "x".repeat(10_000)); // not a lease
    await Deno.writeTextFile(join(net, "10.0.0.61"), "y".repeat(4097)); // one byte over the limit
    await Deno.writeTextFile(join(net, "10.0.0.62"), `c3\r\n${"z".repeat(4092)}`); // at the limit
    // A FIFO would block a reader that opened it: it must be skipped, not opened.
    const fifo = await new Deno.Command("mkfifo", { args: [join(net, "10.0.0.70")] }).output();
    assertEquals(fifo.code, 0);
    const leases = await readNetworkLeases(dir, "n1");
    assertEquals(leases.map((l) => [l.ip, l.containerId, l.ifname]), [
      ["10.0.0.9", "c1", "eth0"],
      ["10.0.0.10", "c2", "eth0"],
      ["10.0.0.62", "c3", "z".repeat(4092)],
      ["fd00::5", "c1", "eth0"],
    ]);
    assertEquals(await readNetworkLeases(dir, "missing"), []);
    assertThrows(() => readNetworkLeases(dir, ".."), RangeError, "invalid network name");
    assertEquals(await listLeaseNetworks(dir), ["n1"]);
    assertEquals(await listLeaseNetworks(join(dir, "nope")), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

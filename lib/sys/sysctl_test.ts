import { assertEquals, assertThrows } from "@std/assert";
import { createNetns, mustSh, ROOT } from "../testing/netns.ts";
import { OsError } from "./libc.ts";
import { readSysctl, sysctlPath, writeSysctl } from "./sysctl.ts";

Deno.test("sysctlPath() maps dotted and slashed keys like sysctl(8)", () => {
  assertEquals(sysctlPath("net.ipv4.ip_forward"), "/proc/sys/net/ipv4/ip_forward");
  assertEquals(sysctlPath("net/ipv4/ip_forward"), "/proc/sys/net/ipv4/ip_forward");
  assertEquals(
    sysctlPath("/net/ipv6/conf/eth0/accept_dad"),
    "/proc/sys/net/ipv6/conf/eth0/accept_dad",
  );
  // Slash form keeps dots (VLAN interface "eth0.100"); dotted form swaps "/" for ".".
  assertEquals(
    sysctlPath("net/ipv4/conf/eth0.100/rp_filter"),
    "/proc/sys/net/ipv4/conf/eth0.100/rp_filter",
  );
  assertEquals(
    sysctlPath("net.ipv4.conf.eth0/100.rp_filter"),
    "/proc/sys/net/ipv4/conf/eth0.100/rp_filter",
  );
});

Deno.test("sysctlPath() rejects empty and relative components", () => {
  for (const key of ["", "/", "net//ipv4", "net/../../etc/passwd", "net/./x", "net..ipv4"]) {
    assertThrows(() => sysctlPath(key), RangeError, `"${key}"`);
  }
});

Deno.test("readSysctl() reads the host value without the trailing newline", async () => {
  const expected = (await Deno.readTextFile("/proc/sys/net/ipv4/ip_forward")).trim();
  assertEquals(readSysctl("net.ipv4.ip_forward"), expected);
  assertThrows(() => readSysctl("net/ipv4/cbx_nl_no_such_key"), OsError, "ENOENT");
});

Deno.test({
  name: "writeSysctl() in a netns changes that namespace only",
  ignore: !ROOT,
  async fn() {
    await using a = await createNetns("cbx-nl");
    await using b = await createNetns("cbx-nl");
    const host = readSysctl("net/ipv4/ip_forward");
    const before = readSysctl("net/ipv4/ip_forward", { netns: b.path });
    const target = before === "1" ? "0" : "1";
    writeSysctl("net.ipv4.ip_forward", target, { netns: a.path });
    assertEquals(readSysctl("net/ipv4/ip_forward", { netns: a.path }), target);
    assertEquals((await a.exec("cat", ["/proc/sys/net/ipv4/ip_forward"])).stdout.trim(), target);
    // A second fresh namespace and the host keep their values.
    assertEquals(readSysctl("net/ipv4/ip_forward", { netns: b.path }), before);
    assertEquals((await b.exec("cat", ["/proc/sys/net/ipv4/ip_forward"])).stdout.trim(), before);
    assertEquals(readSysctl("net/ipv4/ip_forward"), host);
  },
});

Deno.test({
  name: "writeSysctl() reaches an interface whose name has a dot",
  ignore: !ROOT,
  async fn() {
    await using a = await createNetns("cbx-nl");
    await mustSh("ip", ["-n", a.name, "link", "add", "vx.5", "type", "veth", "peer", "name", "vy"]);
    writeSysctl("net.ipv4.conf.vx/5.arp_notify", "1", { netns: a.path });
    assertEquals(readSysctl("net/ipv4/conf/vx.5/arp_notify", { netns: a.path }), "1");
    const out = await a.exec("cat", ["/proc/sys/net/ipv4/conf/vx.5/arp_notify"]);
    assertEquals(out.stdout.trim(), "1");
    // The interface does not exist on the host.
    assertThrows(() => readSysctl("net/ipv4/conf/vx.5/arp_notify"), OsError, "ENOENT");
  },
});

import { assertEquals } from "@std/assert";
import { join } from "@std/path";
import { collectInventory } from "./inventory.ts";
import { statusFixture } from "./_testing.ts";

Deno.test("collectInventory() flags leases without attachment and attachments whose netns is gone", async () => {
  await using fx = await statusFixture();
  const inv = await collectInventory(fx.sources);
  assertEquals(
    inv.leases.map((l) => [l.network, l.ip, l.stale, l.staleReason]),
    [
      ["alpha", "10.22.0.2", false, undefined],
      ["alpha", "10.22.0.3", true, "netns-gone"],
      ["alpha", "10.22.0.9", true, "no-attachment"],
      ["alpha", "10.22.0.10", true, "no-attachment"],
      ["beta", "10.33.0.5", false, undefined],
      ["beta", "10.33.0.6", true, "no-attachment"], // legacy file of a container nobody has
      ["beta", "fd33::2", false, undefined],
      ["nomad", "172.26.64.5", true, "no-attachment"], // from the extra data dir
    ],
  );
  assertEquals(
    inv.attachments.map((a) => [a.containerId, a.stale, a.staleReason]),
    [["c-gone", true, "netns-gone"], ["c-live", false, undefined], ["c-b1", false, undefined]],
  );
  assertEquals(inv.errors, []);
});

Deno.test("collectInventory() counts range usage per host-local range set", async () => {
  await using fx = await statusFixture();
  const inv = await collectInventory(fx.sources);
  const usage = (name: string) =>
    inv.networks.find((n) => n.name === name && !n.shadowedBy)!.hostLocal[0].rangeSets.map((s) =>
      s.ranges.map((r) => [r.subnet, r.used, r.capacity, r.free])
    );
  assertEquals(usage("alpha"), [[["10.22.0.0/24", 4, 253, 249]]]);
  assertEquals(usage("beta"), [[["10.33.0.0/28", 2, 2, 0]], [["fd33::/120", 1, 254, 253]]]);
});

Deno.test("collectInventory() reads a data dir once even when named twice", async () => {
  await using fx = await statusFixture();
  const inv = await collectInventory({ ...fx.sources, dataDirs: [fx.dataDir, fx.dataDir] });
  assertEquals(inv.leases.filter((l) => l.network === "alpha").length, 4);
});

Deno.test("collectInventory() reports unreadable state instead of failing", async () => {
  await using fx = await statusFixture();
  await Deno.remove(join(fx.cacheDir, "results"), { recursive: true });
  await Deno.writeTextFile(join(fx.cacheDir, "results"), "not a directory");
  const inv = await collectInventory(fx.sources);
  assertEquals(inv.attachments, []);
  assertEquals(inv.errors.length, 1);
  assertEquals(inv.leases.every((l) => l.stale), true);
});

Deno.test("collectInventory() with a network filter reads only that network's state", async () => {
  await using fx = await statusFixture();
  const inv = await collectInventory(fx.sources, { network: "beta" });
  assertEquals([...new Set(inv.leases.map((l) => l.network))], ["beta"]);
  assertEquals(inv.attachments.map((a) => a.network), ["beta"]);
});

import { assertEquals } from "@std/assert";
import { ROOT } from "../testing/netns.ts";
import { createNetns } from "../testing/netns.ts";
import { addressesOf, netnsExists, portMappingsOf, readAttachments } from "./attachments.ts";
import { FIXTURE_NOW, fixtureProbe, statusFixture } from "./_testing.ts";

Deno.test("portMappingsOf() accepts Nomad's PascalCase and podman's camelCase keys", () => {
  assertEquals(
    portMappingsOf({
      portMappings: [
        { HostPort: 8080, ContainerPort: 80, Protocol: "TCP", HostIP: "" },
        { hostPort: 53, containerPort: 5353, protocol: "udp", hostIP: "10.0.0.1" },
        { hostPort: "x", containerPort: 1 },
        "junk",
      ],
    }),
    [
      { hostPort: 8080, containerPort: 80, protocol: "tcp" },
      { hostPort: 53, containerPort: 5353, protocol: "udp", hostIP: "10.0.0.1" },
    ],
  );
  assertEquals(portMappingsOf(undefined), []);
  assertEquals(portMappingsOf({ portMappings: "nope" }), []);
});

Deno.test("addressesOf() reads 1.x/0.3.x and 0.1/0.2 results", () => {
  assertEquals(addressesOf({ ips: [{ address: "10.0.0.2/24" }, { bad: 1 }] }), ["10.0.0.2/24"]);
  assertEquals(addressesOf({ ip4: { ip: "10.0.0.3/24" }, ip6: { ip: "fd00::3/64" } }), [
    "10.0.0.3/24",
    "fd00::3/64",
  ]);
  assertEquals(addressesOf(undefined), []);
});

Deno.test("readAttachments() lists cached attachments with netns state, ports and age", async () => {
  await using fx = await statusFixture();
  const list = await readAttachments(fx.cacheDir, { probe: fixtureProbe, now: () => FIXTURE_NOW });
  assertEquals(
    list.map((a) => [a.network, a.containerId, a.ifname, a.netnsExists, a.ips, a.ageSeconds]),
    [
      ["alpha", "c-gone", "eth0", false, ["10.22.0.3/24"], 90],
      ["alpha", "c-live", "eth0", true, ["10.22.0.2/24"], 90],
      ["beta", "c-b1", "eth1", true, ["10.33.0.5/28", "fd33::2/120"], 90],
    ],
  );
  assertEquals(list[1].portMappings.length, 2);
  const beta = await readAttachments(fx.cacheDir, { probe: fixtureProbe, network: "beta" });
  assertEquals(beta.map((a) => a.containerId), ["c-b1"]);
});

Deno.test("netnsExists() tells missing paths and plain files from namespaces", async () => {
  const file = await Deno.makeTempFile({ prefix: "cbx-st-" });
  try {
    assertEquals(await netnsExists("/var/run/netns/cbx-st-does-not-exist"), false);
    assertEquals(await netnsExists(file), false); // left-over file, not a namespace
    assertEquals(await netnsExists("relative/path"), null);
    assertEquals(await netnsExists("/proc/self/ns/net"), true);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test({
  name: "netnsExists() sees a real namespace appear and disappear",
  ignore: !ROOT,
  async fn() {
    const ns = await createNetns("cbx-st");
    assertEquals(await netnsExists(ns.path), true);
    await ns.remove();
    assertEquals(await netnsExists(ns.path), false);
  },
});

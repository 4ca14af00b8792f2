import { assertEquals, assertThrows } from "@std/assert";
import type { Route } from "../lib/cni/types.ts";
import { parseCidr } from "../lib/ip/cidr.ts";
import {
  assignAddresses,
  baseInterfaces,
  buildResult,
  familiesOf,
  familyOf,
  firstHost,
  sameCidr,
  sameIp,
  sameNetwork,
} from "./_bridge_result.ts";

const interfaces = baseInterfaces(
  { name: "cni0", mac: "02:00:00:00:00:01" },
  { name: "veth1234abcd", mac: "02:00:00:00:00:02" },
  { name: "eth0", mac: "02:00:00:00:00:03", sandbox: "/var/run/netns/c1" },
);

Deno.test("baseInterfaces() lists bridge, host veth and the sandboxed container end", () => {
  assertEquals(interfaces, [
    { name: "cni0", mac: "02:00:00:00:00:01" },
    { name: "veth1234abcd", mac: "02:00:00:00:00:02" },
    { name: "eth0", mac: "02:00:00:00:00:03", sandbox: "/var/run/netns/c1" },
  ]);
});

Deno.test("buildResult() points every IP at the container interface (index 2)", () => {
  const { result } = buildResult(interfaces, {
    ipam: { ips: [{ address: "10.1.0.5/24" }, { address: "fd00::5/64" }] },
  });
  assertEquals(result.ips, [
    { address: "10.1.0.5/24", interface: 2 },
    { address: "fd00::5/64", interface: 2 },
  ]);
  // go-cni rejects an index >= len(interfaces): the index must name the sandboxed interface.
  assertEquals(result.interfaces![2].sandbox, "/var/run/netns/c1");
});

Deno.test("buildResult() defaults the gateway to the subnet's first address only with isGateway", () => {
  const ipam = { ips: [{ address: "172.26.64.9/20" }, { address: "fd77::9/64" }] };
  const withGw = buildResult(interfaces, { ipam, isGateway: true });
  assertEquals(withGw.result.ips!.map((ip) => ip.gateway), ["172.26.64.1", "fd77::1"]);
  assertEquals(withGw.gateways, {
    4: [{ address: "172.26.64.1", prefixLength: 20 }],
    6: [{ address: "fd77::1", prefixLength: 64 }],
  });
  const without = buildResult(interfaces, { ipam });
  assertEquals(without.result.ips!.map((ip) => ip.gateway), [undefined, undefined]);
  assertEquals(without.gateways, { 4: [], 6: [] });
  // The input is not mutated (IPAM results may be frozen).
  assertEquals(ipam.ips[0], { address: "172.26.64.9/20" });
});

Deno.test("buildResult() keeps an IPAM gateway and gives the bridge none without isGateway", () => {
  // The LAN case: br0 holds the host's address, host-local hands out addresses with gateway .1.
  const { result, gateways } = buildResult(interfaces, {
    ipam: {
      ips: [{ address: "192.168.1.50/24", gateway: "192.168.1.1" }],
      routes: [{ dst: "0.0.0.0/0" }],
    },
  });
  assertEquals(result.ips, [{ address: "192.168.1.50/24", gateway: "192.168.1.1", interface: 2 }]);
  assertEquals(result.routes, [{ dst: "0.0.0.0/0" }]);
  assertEquals(gateways, { 4: [], 6: [] });
});

Deno.test("buildResult() adds one default route per family with isDefaultGateway", () => {
  const { result } = buildResult(interfaces, {
    ipam: {
      ips: [{ address: "10.1.0.5/24" }, { address: "10.2.0.5/24" }, { address: "fd00::5/64" }],
    },
    isGateway: true,
    isDefaultGateway: true,
  });
  assertEquals(result.routes, [
    { dst: "0.0.0.0/0", gw: "10.1.0.1" },
    { dst: "::/0", gw: "fd00::1" },
  ]);
});

Deno.test("buildResult() keeps an existing default route that has a gateway", () => {
  const routes: Route[] = [{ dst: "0.0.0.0/0", gw: "10.1.0.254" }];
  const { result } = buildResult(interfaces, {
    ipam: { ips: [{ address: "10.1.0.5/24" }], routes },
    isGateway: true,
    isDefaultGateway: true,
  });
  assertEquals(result.routes, [{ dst: "0.0.0.0/0", gw: "10.1.0.254" }]);
});

Deno.test("buildResult() adds a default route when the existing one has no gateway", () => {
  // Nomad's host-local config routes 0.0.0.0/0 without a gw; the reference then appends its own.
  const { result } = buildResult(interfaces, {
    ipam: { ips: [{ address: "10.1.0.5/24" }], routes: [{ dst: "0.0.0.0/0" }] },
    isGateway: true,
    isDefaultGateway: true,
  });
  assertEquals(result.routes, [{ dst: "0.0.0.0/0" }, { dst: "0.0.0.0/0", gw: "10.1.0.1" }]);
});

Deno.test("buildResult() rejects an empty IPAM answer with the reference message", () => {
  const error = assertThrows(() => buildResult(interfaces, { ipam: { ips: [] } }));
  assertEquals(error.message, "IPAM plugin returned missing IP config");
});

Deno.test("buildResult() uses the config dns over IPAM's, and IPAM's otherwise", () => {
  const ipam = { ips: [{ address: "10.1.0.5/24" }], dns: { nameservers: ["10.1.0.53"] } };
  assertEquals(buildResult(interfaces, { ipam }).result.dns, { nameservers: ["10.1.0.53"] });
  assertEquals(
    buildResult(interfaces, { ipam, dns: { search: ["example"] } }).result.dns,
    { search: ["example"] },
  );
});

Deno.test("buildResult() in layer-2 mode has interfaces only", () => {
  const { result } = buildResult(interfaces);
  assertEquals(result, { cniVersion: "1.1.0", interfaces });
});

Deno.test("assignAddresses() rejects an address that is not a CIDR", () => {
  assertThrows(
    () =>
      assignAddresses([{ address: "10.1.0.5" }], [], { isGateway: true, isDefaultGateway: false }),
    Error,
    "Unknown IP object",
  );
});

Deno.test("firstHost() masks host bits before adding one", () => {
  assertEquals(firstHost(parseCidr("10.99.3.77/16")), "10.99.0.1");
  assertEquals(firstHost(parseCidr("3fff:cab0:d13::42/120")), "3fff:cab0:d13::1");
});

Deno.test("familyOf() tells IPv4 from IPv6 for addresses and CIDRs", () => {
  assertEquals([familyOf("10.0.0.1"), familyOf("fd00::/8"), familyOf("nope")], [4, 6, undefined]);
});

Deno.test("sameCidr() and sameNetwork() compare parsed addresses, not text", () => {
  assertEquals(sameCidr("fd00:0::5/64", "fd00::5/64"), true);
  assertEquals(sameCidr("10.0.0.5/24", "10.0.0.5/25"), false);
  assertEquals(sameNetwork("10.1.2.0/24", "10.1.2.77/24"), true);
  assertEquals(sameNetwork("10.1.2.0/24", "10.1.3.77/24"), false);
  assertEquals(sameIp("::ffff:10.0.0.1", "10.0.0.1"), true);
  assertEquals(sameIp("10.0.0.1", "nope"), false);
});

Deno.test("familiesOf() lists the families present, IPv4 first", () => {
  assertEquals(familiesOf(["fd00::5/64", "10.0.0.5/24", "10.0.0.6/24"]), [4, 6]);
  assertEquals(familiesOf(["fe80::1/64"]), [6]);
  assertEquals(familiesOf(["junk"]), []);
});

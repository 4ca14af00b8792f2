import { assertEquals, assertThrows } from "@std/assert";
import { formatIp } from "../ip/cidr.ts";
import { loadIpamConfig, type LoadIpamConfigOptions, parseIpamEnvArgs } from "./config.ts";
import { formatRangeSet } from "./range.ts";

function conf(ipam: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion: "1.0.0", name: "net1", type: "host-local", ipam, ...extra };
}

function sets(c: Record<string, unknown>, options?: LoadIpamConfigOptions): string[] {
  return loadIpamConfig(c, options).ranges.map(formatRangeSet);
}

function fails(c: unknown, message: string, options?: LoadIpamConfigOptions): void {
  const error = assertThrows(() => loadIpamConfig(c, options));
  assertEquals(error.message, message);
}

Deno.test("loadIpamConfig() reads ranges, dataDir, resolvConf and the network name", () => {
  const c = loadIpamConfig(conf({
    type: "host-local",
    ranges: [[{ subnet: "10.1.0.0/24" }], [{ subnet: "fd01::/64" }]],
    dataDir: "/tmp/x",
    resolvConf: "/etc/resolv.conf",
  }));
  assertEquals(c.name, "net1");
  assertEquals(c.cniVersion, "1.0.0");
  assertEquals(c.dataDir, "/tmp/x");
  assertEquals(c.resolvConf, "/etc/resolv.conf");
  assertEquals(c.routes, undefined);
  assertEquals(c.ranges.map(formatRangeSet), [
    "10.1.0.1-10.1.0.254",
    "fd01::1-fd01::ffff:ffff:ffff:ffff",
  ]);
  assertEquals(c.requestedIps, []);
});

Deno.test("loadIpamConfig() puts runtimeConfig.ipRanges first and the legacy range before ranges", () => {
  const c = conf(
    {
      subnet: "10.2.0.0/24",
      rangeStart: "10.2.0.10",
      rangeEnd: "10.2.0.20",
      gateway: "10.2.0.254",
      ranges: [[{ subnet: "10.3.0.0/24" }]],
    },
    { runtimeConfig: { ipRanges: [[{ subnet: "10.1.0.0/24" }]] } },
  );
  assertEquals(sets(c), ["10.1.0.1-10.1.0.254", "10.2.0.10-10.2.0.20", "10.3.0.1-10.3.0.254"]);
  assertEquals(formatIp(loadIpamConfig(c).ranges[1][0].gateway), "10.2.0.254");
});

Deno.test("loadIpamConfig() matches keys case-insensitively like Go", () => {
  assertEquals(sets(conf({ Subnet: "10.0.3.0/24", DATADIR: "/d" })), ["10.0.3.1-10.0.3.254"]);
  assertEquals(loadIpamConfig(conf({ Subnet: "10.0.3.0/24", DATADIR: "/d" })).dataDir, "/d");
});

Deno.test("loadIpamConfig() fails like the reference on structural problems", () => {
  fails({ cniVersion: "1.0.0", name: "n" }, "IPAM config missing 'ipam' key");
  fails(conf(null), "IPAM config missing 'ipam' key");
  fails(conf({ type: "host-local" }), "no IP ranges specified");
  fails(conf({ ranges: [] }), "no IP ranges specified");
  fails(conf({ ranges: [[]] }), "invalid range set 0: empty range set");
  fails(conf({ ranges: [null] }), "invalid range set 0: empty range set");
  fails(conf({ ranges: [[null]] }), "invalid range set 0: IP <nil> not v4 nor v6");
  fails(
    conf({ ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "10.0.0.0/25" }]] }),
    "range set 0 overlaps with 1",
  );
  fails(
    conf({
      ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "10.1.0.0/24" }], [{
        subnet: "10.1.0.0/16",
      }]],
    }),
    "range set 1 overlaps with 2",
  );
  fails(
    conf({ ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "10.9.8.5/24" }]] }),
    "invalid range set 1: Network has host bits set. For a subnet mask of length 24 the network address is 10.9.8.0",
  );
});

Deno.test("loadIpamConfig() allows one address per family below CNI 0.3.0", () => {
  const two = { ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "10.1.0.0/24" }]] };
  fails(
    conf(two, { cniVersion: "0.2.0" }),
    "CNI version 0.2.0 does not support more than 1 address per family",
  );
  fails(conf(two), "CNI version  does not support more than 1 address per family", {
    cniVersion: "",
  });
  assertEquals(sets(conf(two, { cniVersion: "0.3.0" })).length, 2);
  const dual = { ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "fd00::/64" }]] };
  assertEquals(sets(conf(dual, { cniVersion: "0.2.0" })).length, 2);
});

Deno.test("loadIpamConfig() reports Go's JSON kind errors with the struct path", () => {
  fails(
    conf({ subnet: 5 }),
    "json: cannot unmarshal number into Go struct field IPAMConfig.ipam.subnet of type string",
  );
  fails(
    conf({ ranges: [[{ subnet: 5 }]] }),
    "json: cannot unmarshal number into Go struct field Range.ipam.ranges.subnet of type string",
  );
  fails(
    conf({ ranges: [[{ subnet: "10.0.0.0/24", rangeStart: 5 }]] }),
    "json: cannot unmarshal number into Go struct field Range.ipam.ranges.rangeStart of type net.IP",
  );
  fails(
    conf({ ranges: {} }),
    "json: cannot unmarshal object into Go struct field IPAMConfig.ipam.ranges of type []allocator.RangeSet",
  );
  fails(
    conf({ ranges: [5] }),
    "json: cannot unmarshal number into Go struct field IPAMConfig.ipam.ranges of type allocator.RangeSet",
  );
  fails(
    conf({ ranges: [[5]] }),
    "json: cannot unmarshal number into Go struct field IPAMConfig.ipam.ranges of type allocator.Range",
  );
  fails(
    conf({ subnet: "10.0.0.0/24", dataDir: 5 }),
    "json: cannot unmarshal number into Go struct field IPAMConfig.ipam.dataDir of type string",
  );
  fails(
    conf({ subnet: "10.0.0.0/24", Name: 5 }),
    "json: cannot unmarshal number into Go struct field IPAMConfig.ipam.Name of type string",
  );
  fails(
    conf({ subnet: "10.0.0.0/24", resolvConf: true }),
    "json: cannot unmarshal bool into Go struct field IPAMConfig.ipam.resolvConf of type string",
  );
  fails(
    conf(5),
    "json: cannot unmarshal number into Go struct field Net.ipam of type allocator.IPAMConfig",
  );
  fails(
    conf({ subnet: "10.0.0.0/24" }, { args: { cni: 5 } }),
    "json: cannot unmarshal number into Go struct field .args.cni of type allocator.IPAMArgs",
  );
  fails(
    conf({ subnet: "10.0.0.0/24" }, { args: { cni: { ips: "x" } } }),
    "json: cannot unmarshal string into Go struct field IPAMArgs.args.cni.ips of type []*ip.IP",
  );
  fails(
    conf({ subnet: "10.0.0.0/24" }, { runtimeConfig: { ips: [5] } }),
    "json: cannot unmarshal number into Go struct field .runtimeConfig.ips of type *ip.IP",
  );
  fails(
    conf({ subnet: "10.0.0.0/24" }, {
      runtimeConfig: { ipRanges: [[{ subnet: "10.1.0.0/24", gateway: 7 }]] },
    }),
    "json: cannot unmarshal number into Go struct field Range.runtimeConfig.ipRanges.gateway of type net.IP",
  );
  fails(
    conf({ subnet: "10.0.0.0/24" }, { runtimeConfig: [] }),
    'json: cannot unmarshal array into Go struct field Net.runtimeConfig of type struct { IPRanges []allocator.RangeSet "json:\\"ipRanges,omitempty\\""; IPs []*ip.IP "json:\\"ips,omitempty\\"" }',
  );
});

Deno.test("loadIpamConfig() lets an unmarshaler error win over an earlier kind error", () => {
  fails(
    conf({
      subnet: "10.0.0.0/24",
      ranges: [[{ subnet: "10.1.0.0/24", gateway: 7, rangeEnd: "q" }]],
      dataDir: 3,
    }),
    "invalid IP address: q",
  );
  fails(conf({ ranges: [[{ subnet: "10.9.8.0/33" }]] }), "invalid CIDR address: 10.9.8.0/33");
  fails(conf({ ranges: [[{ subnet: null }]] }), "invalid CIDR address: ");
  fails(conf({ subnet: "" }), "invalid CIDR address: ");
  fails(conf({ subnet: "10.0.0.0/24", rangeStart: "foo" }), "invalid IP address: foo");
});

Deno.test("loadIpamConfig() treats null and empty optional addresses as unset", () => {
  assertEquals(
    sets(
      conf({
        ranges: [[{ subnet: "10.0.0.0/24", rangeStart: null, gateway: null, rangeEnd: "" }]],
      }),
    ),
    ["10.0.0.1-10.0.0.254"],
  );
  assertEquals(sets(conf({ ranges: null, subnet: "10.0.2.0/24", routes: null, dataDir: null })), [
    "10.0.2.1-10.0.2.254",
  ]);
});

Deno.test("loadIpamConfig() formats routes as the reference prints them", () => {
  const c = loadIpamConfig(conf({
    subnet: "10.0.0.0/24",
    routes: [
      { dst: "10.1.2.3/8", gw: "10.0.0.1" },
      { dst: "::ffff:10.0.0.0/104" },
      { dst: "0.0.0.0/0", mtu: 1400, advmss: 0, table: 0, scope: 253 },
      null,
      {},
    ],
  }));
  assertEquals(c.routes, [
    { dst: "10.1.2.3/8", gw: "10.0.0.1" },
    { dst: "10.0.0.0/8" },
    { dst: "0.0.0.0/0", mtu: 1400, table: 0, scope: 253 },
    { dst: "<nil>" },
  ]);
  fails(
    conf({ subnet: "10.0.0.0/24", routes: [{ dst: "0.0.0.0/0", gw: 5 }] }),
    "json: cannot unmarshal number into Go struct field IPAMConfig.ipam.routes of type net.IP",
  );
  fails(
    conf({ subnet: "10.0.0.0/24", routes: [5] }),
    "json: cannot unmarshal number into Go struct field IPAMConfig.ipam.routes of type types.route",
  );
  fails(
    conf({ subnet: "10.0.0.0/24", routes: [{ dst: "0.0.0.0/0", mtu: "x" }] }),
    "json: cannot unmarshal string into Go struct field IPAMConfig.ipam.routes of type int",
  );
  fails(conf({ subnet: "10.0.0.0/24", routes: [{ dst: "x" }] }), "invalid CIDR address: x");
});

Deno.test("loadIpamConfig() collects requested IPs from CNI_ARGS, args and runtimeConfig in that order", () => {
  const c = loadIpamConfig(
    conf(
      { subnet: "10.0.0.0/24" },
      {
        args: { cni: { ips: ["10.0.0.7/24"] } },
        runtimeConfig: { ips: ["10.0.0.9/8", "fd00::5"] },
      },
    ),
    { cniArgs: "IgnoreUnknown=1;IP=10.0.0.11/16;K8S_POD_NAME=x" },
  );
  assertEquals(c.requestedIps.map(formatIp), ["10.0.0.11", "10.0.0.7", "10.0.0.9", "fd00::5"]);
});

Deno.test("loadIpamConfig() rejects bad requested IPs with the reference's messages", () => {
  const base = { subnet: "10.0.0.0/24" };
  fails(conf(base, { args: { cni: { ips: ["foo"] } } }), "invalid IP address foo");
  fails(conf(base, { runtimeConfig: { ips: ["bar"] } }), "invalid IP address bar");
  fails(
    conf(base, { runtimeConfig: { ips: [""] } }),
    "cannot understand ip: IP <nil> not v4 nor v6",
  );
  fails(conf(base), 'ARGS: error parsing value of pair "IP=zz": invalid IP address zz', {
    cniArgs: "IP=zz",
  });
  fails(conf(base), 'ARGS: unknown args ["FOO=1"]', { cniArgs: "FOO=1" });
  fails(conf(base), 'ARGS: invalid pair ""', { cniArgs: "IP=10.0.0.5;" });
});

Deno.test("parseIpamEnvArgs() reads IP, ignores an empty IP and honours IgnoreUnknown", () => {
  assertEquals(parseIpamEnvArgs(""), undefined);
  assertEquals(parseIpamEnvArgs("IP="), undefined);
  assertEquals(formatIp(parseIpamEnvArgs("IP=fd00::5/64")!), "fd00::5");
  assertEquals(
    formatIp(parseIpamEnvArgs("K8S_POD_NAME=a;IgnoreUnknown=true;IP=10.1.1.1")!),
    "10.1.1.1",
  );
  assertThrows(() => parseIpamEnvArgs("ip=10.1.1.1"), Error, 'ARGS: unknown args ["ip=10.1.1.1"]');
});

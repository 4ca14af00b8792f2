import { assert, assertEquals, assertNotEquals, assertThrows } from "@std/assert";
import { convertResult, encodeResult, parseResult, toCurrentResult } from "./result.ts";
import type { Result } from "./types.ts";

const DIR = new URL("../../testdata/cni/results/", import.meta.url);
const fixture = (name: string) => Deno.readTextFileSync(new URL(name, DIR));
const input = (name: string) => JSON.parse(fixture(name));

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("expected a throw");
}

// Fixture sets: input file, output prefix, versions with an expected output.
// host_local.*, prev_*.as_{0.1,0.2,0.3.1,0.4}.out were printed by the Debian
// reference binaries (struct order is the same in HEAD); the 1.x outputs
// follow HEAD's sorted-map marshalling.
const SETS: [string, string, string[]][] = [
  ["host_local_1.1.0.json", "host_local", [
    "0.1.0",
    "0.2.0",
    "0.3.0",
    "0.3.1",
    "0.4.0",
    "1.0.0",
    "1.1.0",
  ]],
  ["prev_0.4.0.json", "prev_0.4.0", ["0.4.0", "0.3.1", "1.0.0", "0.2.0"]],
  ["prev_0.2.0.json", "prev_0.2.0", ["0.2.0", "0.1.0", "0.4.0", "1.1.0"]],
  ["full_1.1.0.json", "full", ["1.1.0", "1.0.0", "0.4.0", "0.2.0"]],
];

for (const [file, prefix, versions] of SETS) {
  for (const version of versions) {
    Deno.test(`[${version}] encodeResult() prints ${file} byte for byte`, () => {
      const result = parseResult(input(file));
      assertEquals(encodeResult(result, version), fixture(`${prefix}.as_${version}.out`));
    });
  }
}

const LOOPBACK: Result = {
  cniVersion: "0.3.1",
  interfaces: [{ name: "lo", mac: "00:00:00:00:00:00", sandbox: "/var/run/netns/c1" }],
  ips: [{ interface: 0, address: "127.0.0.1/8" }, { interface: 0, address: "::1/128" }],
};

Deno.test("encodeResult() prints a 1.x result labelled with the target version unchanged", () => {
  // loopback's quirk: a 1.x object labelled 0.3.1 keeps its 1.x shape.
  assertEquals(encodeResult(LOOPBACK, "0.3.1"), fixture("loopback.as_0.3.1.out"));
});

Deno.test("encodeResult() converts an unlabelled result from the current version", () => {
  // loopback without cniVersion in the config prints a genuine 0.1.0 result.
  const unlabelled = { ...LOOPBACK, cniVersion: "" };
  assertEquals(encodeResult(unlabelled, ""), fixture("loopback.as_0.1.0.out"));
  assertEquals(encodeResult(unlabelled, "0.1.0"), fixture("loopback.as_0.1.0.out"));
});

Deno.test("encodeResult() has no trailing newline and uses 4-space indent", () => {
  const text = encodeResult({ cniVersion: "1.1.0" }, "1.1.0");
  assertEquals(text, '{\n    "cniVersion": "1.1.0"\n}');
});

Deno.test("encodeResult() keeps dns in old shapes and drops an empty one in 1.x", () => {
  const r: Result = { cniVersion: "1.1.0", ips: [{ address: "10.0.0.2/24" }], dns: {} };
  assert(!encodeResult(r, "1.0.0").includes('"dns"'));
  assert(encodeResult(r, "0.4.0").includes('"dns": {}'));
  assert(encodeResult(r, "0.2.0").includes('"dns": {}'));
});

Deno.test("encodeResult() escapes <, > and & like Go", () => {
  const r: Result = { cniVersion: "1.1.0", interfaces: [{ name: "a<b>&c" }] };
  assert(encodeResult(r, "1.1.0").includes('"name": "a\\u003cb\\u003e\\u0026c"'));
});

Deno.test("encodeResult() canonicalises addresses like Go's net.IPNet", () => {
  const r: Result = {
    cniVersion: "1.1.0",
    ips: [{ address: "2001:DB8:0:0:0:0:0:1/64", gateway: "2001:0db8::0001" }],
  };
  const out = JSON.parse(encodeResult(r, "1.1.0"));
  assertEquals(out.ips, [{ address: "2001:db8::1/64", gateway: "2001:db8::1" }]);
});

Deno.test("convertResult() to 0.2.0 needs an address", () => {
  assertEquals(
    message(() => convertResult({ cniVersion: "1.1.0", interfaces: [{ name: "x" }] }, "0.2.0")),
    "cannot convert: no valid IP addresses",
  );
});

Deno.test("convertResult() keeps only the first address of each family for 0.2.0", () => {
  const out = convertResult({
    cniVersion: "1.0.0",
    ips: [
      { address: "10.0.0.2/24" },
      { address: "10.0.0.3/24" },
      { address: "fd00::2/64" },
    ],
    routes: [{ dst: "fd01::/64", gw: "fd00::1", mtu: 1400 }],
  }, "0.2.0");
  assertEquals(out, {
    cniVersion: "0.2.0",
    ip4: { ip: "10.0.0.2/24" },
    ip6: { ip: "fd00::2/64", routes: [{ dst: "fd01::/64", gw: "fd00::1" }] },
    dns: {},
  });
});

Deno.test("convertResult() drops routes whose family has no address in 0.2.0", () => {
  const out = convertResult({
    cniVersion: "1.1.0",
    ips: [{ address: "10.0.0.2/24" }],
    routes: [{ dst: "::/0" }, { dst: "0.0.0.0/0" }],
  }, "0.1.0");
  assertEquals(out.ip4, { ip: "10.0.0.2/24", routes: [{ dst: "0.0.0.0/0" }] });
  assertEquals(out.ip6, undefined);
});

Deno.test("convertResult() computes 0.4.0 versions from the address family", () => {
  const out = convertResult({
    cniVersion: "1.1.0",
    ips: [{ address: "::ffff:10.1.1.1/120" }, { address: "fd00::1/64" }],
  }, "0.3.0");
  assertEquals(out.ips, [
    { version: "4", address: "10.1.1.1/24" },
    { version: "6", address: "fd00::1/64" },
  ]);
});

Deno.test("convertResult() rejects unknown versions like Go's converter registry", () => {
  assertEquals(
    message(() => convertResult({ cniVersion: "1.1.0" }, "2.0.0")),
    "no converter for CNI result version 1.1.0 to 2.0.0",
  );
  assertEquals(
    message(() => convertResult({ cniVersion: "0.5.0" }, "1.0.0")),
    "no converter for CNI result version 0.5.0 to 1.0.0",
  );
  // ...but a result already labelled with the target needs no converter.
  assertEquals(convertResult({ cniVersion: "9.9.9" }, "9.9.9"), { cniVersion: "9.9.9" });
});

Deno.test("convertResult() relabels 1.0.0 and 1.1.0 both ways with all fields", () => {
  const full = parseResult(input("full_1.1.0.json"));
  const down = convertResult(full, "1.0.0");
  assertEquals(down.cniVersion, "1.0.0");
  const up = convertResult(parseResult(down), "1.1.0");
  assertEquals(up, convertResult(full, "1.1.0"));
});

Deno.test("convertResult() goes up and back down through every version", () => {
  const start = parseResult(input("host_local_1.1.0.json"));
  for (const v of ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]) {
    const there = parseResult(convertResult(start, v));
    assertEquals(there.cniVersion, v);
    assertEquals(encodeResult(there, "0.4.0"), fixture("host_local.as_0.4.0.out"));
  }
});

Deno.test("parseResult() decodes each shape into the 1.x form", () => {
  const r020 = parseResult(input("prev_0.2.0.json"));
  assertEquals(r020.ips, [
    { address: "10.1.2.3/24", gateway: "10.1.2.1" },
    { address: "2001:db8::5/64" },
  ]);
  assertEquals(r020.routes, [{ dst: "0.0.0.0/0" }, { dst: "10.0.0.0/8", gw: "10.1.2.254" }]);
  assertEquals(r020.dns, { nameservers: ["1.1.1.1"] });

  const r040 = parseResult(input("prev_0.4.0.json"));
  assertEquals(r040.cniVersion, "0.4.0");
  assertEquals(r040.interfaces, [
    { name: "cni0", mac: "AA:BB:CC:DD:EE:FF" },
    { name: "eth0", sandbox: "/var/run/netns/x" }, // 0.4.0 has no interface mtu
  ]);
  assertEquals(r040.ips?.[1], { interface: 1, address: "2001:db8::5/64", gateway: "2001:db8::1" });

  const r100 = parseResult(input("full_1.1.0.json"));
  assertEquals(r100.interfaces?.[1].socketPath, "/run/vhost.sock");
  assertEquals(r100.routes?.[0], {
    dst: "0.0.0.0/0",
    gw: "10.1.0.1",
    mtu: 1400,
    advmss: 1360,
    priority: 100,
    table: 0,
    scope: 0,
  });
});

Deno.test("parseResult() picks the result type from the version argument", () => {
  // A 1.x document read as 0.4.0 keeps 0.4.0's rules.
  assertEquals(
    message(() => parseResult({ cniVersion: "1.0.0" }, "0.4.0")),
    'result type supports [0.3.0 0.3.1 0.4.0] but unmarshalled CNIVersion is "1.0.0"',
  );
  assertEquals(
    message(() => parseResult({ cniVersion: "0.4.0" }, "1.1.0")),
    'result type supports [1.0.0 1.1.0] but unmarshalled CNIVersion is "0.4.0"',
  );
  assertEquals(
    message(() => parseResult({ cniVersion: "0.4.0" }, "0.2.0")),
    'result type supports [ 0.1.0 0.2.0] but unmarshalled CNIVersion is "0.4.0"',
  );
  assertEquals(
    message(() => parseResult({}, "0.9.0")),
    'unsupported CNI result version "0.9.0"',
  );
  // No version: the document's own, 0.1.0 when it has none.
  assertEquals(parseResult({ ip4: { ip: "10.0.0.1/8" } }).cniVersion, "");
});

Deno.test("parseResult() reports bad addresses with Go's net messages", () => {
  assertEquals(
    message(() => parseResult({ cniVersion: "1.0.0", ips: [{ address: "10.0.0.300/24" }] })),
    "invalid CIDR address: 10.0.0.300/24",
  );
  assertEquals(
    message(() => parseResult({ cniVersion: "1.0.0", ips: [{ address: "10.0.0.3" }] })),
    "invalid CIDR address: 10.0.0.3",
  );
  assertEquals(
    message(() => parseResult({ cniVersion: "1.0.0", ips: [{ address: null }] })),
    "invalid CIDR address: ",
  );
  assertEquals(
    message(() =>
      parseResult({ cniVersion: "1.0.0", ips: [{ address: "10.0.0.3/8", gateway: "10.0.0.01" }] })
    ),
    "invalid IP address: 10.0.0.01",
  );
  assertEquals(
    message(() => parseResult({ cniVersion: "0.2.0", ip4: { ip: "::1/129" } })),
    "invalid CIDR address: ::1/129",
  );
});

Deno.test("parseResult() reports wrong JSON types like encoding/json", () => {
  assertEquals(
    message(() => parseResult([], "1.0.0")),
    "json: cannot unmarshal array into Go value of type types100.Result",
  );
  assertEquals(
    message(() => parseResult({ cniVersion: 1 }, "1.0.0")),
    "json: cannot unmarshal number into Go struct field Result.cniVersion of type string",
  );
  assertEquals(
    message(() => parseResult({ cniVersion: "1.0.0", ips: {} })),
    "json: cannot unmarshal object into Go struct field Result.ips of type []*types100.IPConfig",
  );
  assertEquals(
    message(() => parseResult({ cniVersion: "1.0.0", routes: [{ dst: "::/0", mtu: 1.5 }] })),
    "json: cannot unmarshal number 1.5 into Go struct field route.mtu of type int",
  );
  assertThrows(() => parseResult({ cniVersion: 5 }), TypeError, "decoding version");
});

Deno.test("parseResult() matches keys case-insensitively like Go", () => {
  const r = parseResult({ CNIVersion: "1.0.0", IPs: [{ Address: "10.0.0.2/24" }] });
  assertEquals(r, { cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24" }] });
});

Deno.test("parseResult() prints a missing address as Go's <nil>", () => {
  const r = parseResult({ cniVersion: "1.1.0", ips: [{ gateway: "10.0.0.1" }] });
  assert(encodeResult(r, "1.1.0").includes('"address": "\\u003cnil\\u003e"'));
});

Deno.test("parseResult() freezes results parsed from old shapes only", () => {
  const old = parseResult(input("prev_0.4.0.json"));
  assert(Object.isFrozen(old) && Object.isFrozen(old.ips![0]));
  assertThrows(() => old.ips!.push({ address: "10.9.0.1/24" }), TypeError);
  const current = parseResult(input("full_1.1.0.json"));
  assert(!Object.isFrozen(current));
});

Deno.test("toCurrentResult() converts to a mutable result labelled 1.1.0", () => {
  const old = parseResult(input("prev_0.2.0.json"));
  const current = toCurrentResult(old);
  assertEquals(current.cniVersion, "1.1.0");
  assert(!Object.isFrozen(current));
  current.ips!.push({ address: "10.9.0.1/24" });
  assertNotEquals(current.ips!.length, old.ips!.length);
  // Printing the copy in 0.2.0 goes through the converters, not the old shape.
  assertEquals(
    encodeResult(toCurrentResult(parseResult(input("prev_0.4.0.json"))), "0.4.0"),
    fixture("prev_0.4.0.as_0.4.0.out"),
  );
  const same: Result = { cniVersion: "1.1.0" };
  assert(toCurrentResult(same) === same);
  assertEquals(toCurrentResult({ cniVersion: "1.0.0", ips: [] }).cniVersion, "1.1.0");
});

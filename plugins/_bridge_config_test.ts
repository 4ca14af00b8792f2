import { assertEquals, assertThrows } from "@std/assert";
import { CniError, ErrorCode } from "../lib/cni/error.ts";
import type { NetConf } from "../lib/cni/types.ts";
import {
  collectVlanTrunk,
  interfaceNameProblem,
  parseBridgeConf,
  parseMac,
  validateForAdd,
} from "./_bridge_config.ts";

function conf(extra: Record<string, unknown>): NetConf {
  return { cniVersion: "1.0.0", name: "mynet", type: "bridge", ...extra };
}

function addError(extra: Record<string, unknown>): Error {
  return assertThrows(() => validateForAdd(parseBridgeConf(conf(extra))));
}

Deno.test("parseBridgeConf() applies the reference defaults", () => {
  const parsed = parseBridgeConf(conf({}));
  assertEquals(parsed.bridge, "cni0");
  assertEquals(parsed.isGateway, false);
  assertEquals(parsed.mtu, 0);
  assertEquals(parsed.vlan, 0);
  assertEquals(parsed.vlans, undefined);
  assertEquals(parsed.vlanTrunkSet, false);
  assertEquals(parsed.preserveDefaultVlan, false);
  assertEquals(parsed.ipamType, "");
  assertEquals(parsed.mac, undefined);
  assertEquals(parsed.dns, undefined);
});

Deno.test("parseBridgeConf() reads Nomad's bridge plugin entry", () => {
  const parsed = parseBridgeConf(conf({
    bridge: "nomad",
    ipMasq: true,
    isGateway: true,
    forceAddress: true,
    hairpinMode: false,
    ipam: { type: "host-local", ranges: [[{ subnet: "172.26.64.0/20" }]] },
  }));
  assertEquals(
    [parsed.bridge, parsed.ipMasq, parsed.isGateway, parsed.forceAddress, parsed.ipamType],
    ["nomad", true, true, true, "host-local"],
  );
});

Deno.test("parseBridgeConf() lets isDefaultGateway imply isGateway", () => {
  const parsed = parseBridgeConf(conf({ isDefaultGateway: true }));
  assertEquals([parsed.isGateway, parsed.isDefaultGateway], [true, true]);
});

Deno.test("parseBridgeConf() matches keys case-insensitively like Go, exact key first", () => {
  assertEquals(parseBridgeConf(conf({ ISGATEWAY: true })).isGateway, true);
  assertEquals(parseBridgeConf(conf({ Bridge: "x", bridge: "y" })).bridge, "y");
  assertEquals(parseBridgeConf(conf({ bridge: "y", BRIDGE: "x" })).bridge, "x");
  assertEquals(parseBridgeConf(conf({ mtu: null })).mtu, 0);
});

Deno.test("parseBridgeConf() reports mistyped fields with Go's messages", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ mtu: "x" }, "json: cannot unmarshal string into Go struct field NetConf.mtu of type int"],
    [
      { mtu: 1.5 },
      "json: cannot unmarshal number 1.5 into Go struct field NetConf.mtu of type int",
    ],
    [
      { IsGateway: "x" },
      "json: cannot unmarshal string into Go struct field NetConf.isGateway of type bool",
    ],
    [
      { ipam: 5 },
      "json: cannot unmarshal number into Go struct field NetConf.ipam of type types.IPAM",
    ],
    [
      { ipam: { type: 5 } },
      "json: cannot unmarshal number into Go struct field IPAM.ipam.type of type string",
    ],
    [
      { args: { cni: 5 } },
      "json: cannot unmarshal number into Go struct field .args.cni of type main.BridgeArgs",
    ],
    [
      { args: { cni: { mac: 5 } } },
      "json: cannot unmarshal number into Go struct field BridgeArgs.args.cni.mac of type string",
    ],
    [
      { runtimeConfig: { mac: true } },
      "json: cannot unmarshal bool into Go struct field .runtimeConfig.mac of type string",
    ],
    [
      { dns: { nameservers: [5] } },
      "json: cannot unmarshal number into Go struct field DNS.dns.nameservers of type string",
    ],
    [
      { args: 5 },
      'json: cannot unmarshal number into Go struct field NetConf.args of type struct { Cni main.BridgeArgs "json:\\"cni,omitempty\\"" }',
    ],
  ];
  for (const [extra, message] of cases) {
    const error = assertThrows(() => parseBridgeConf(conf(extra)));
    assertEquals(error.message, `failed to load netconf: ${message}`);
  }
});

Deno.test("parseBridgeConf() rejects a VLAN id outside 0..4094", () => {
  for (const vlan of [-1, 4095, 5000]) {
    const error = assertThrows(() => parseBridgeConf(conf({ vlan })));
    assertEquals(error.message, `invalid VLAN ID ${vlan} (must be between 0 and 4094)`);
  }
  assertEquals(parseBridgeConf(conf({ vlan: 4094 })).vlan, 4094);
});

Deno.test("parseBridgeConf() rejects vlan together with a non-empty vlanTrunk", () => {
  const error = assertThrows(() => parseBridgeConf(conf({ vlan: 5, vlanTrunk: [{ id: 6 }] })));
  assertEquals(error.message, "cannot set vlan and vlanTrunk at the same time");
  // An empty trunk list yields no ids, so it does not conflict but still counts as "set".
  const parsed = parseBridgeConf(conf({ vlan: 5, vlanTrunk: [] }));
  assertEquals([parsed.vlans, parsed.vlanTrunkSet], [undefined, true]);
});

Deno.test("collectVlanTrunk() expands, de-duplicates and sorts", () => {
  assertEquals(
    collectVlanTrunk([{ id: 9 }, { minID: 3, maxID: 5 }, { id: 4 }, { minID: 1, maxID: 1, id: 7 }]),
    [1, 3, 4, 5, 7, 9],
  );
  assertEquals(collectVlanTrunk([]), undefined);
});

Deno.test("collectVlanTrunk() rejects bad entries with the reference messages", () => {
  const cases: [Record<string, number>, string][] = [
    [{ minID: 0, maxID: 5 }, "incorrect trunk minID parameter"],
    [{ minID: 4095, maxID: 5 }, "incorrect trunk minID parameter"],
    [{ minID: 1, maxID: 4095 }, "incorrect trunk maxID parameter"],
    [{ minID: 9, maxID: 5 }, "minID is greater than maxID in trunk parameter"],
    [{ maxID: 5 }, "minID and maxID should be configured simultaneously, minID is missing"],
    [{ minID: 5 }, "minID and maxID should be configured simultaneously, maxID is missing"],
    [{ id: 0 }, "incorrect trunk id parameter"],
    [{ id: 4095 }, "incorrect trunk id parameter"],
  ];
  for (const [entry, message] of cases) {
    assertEquals(assertThrows(() => collectVlanTrunk([entry])).message, message);
  }
});

Deno.test("parseBridgeConf() takes the MAC from runtimeConfig, then args.cni, then CNI_ARGS", () => {
  const all = conf({
    runtimeConfig: { mac: "02:00:00:00:00:01" },
    args: { cni: { mac: "02:00:00:00:00:02" } },
  });
  assertEquals(parseBridgeConf(all, { cniArgs: "MAC=02:00:00:00:00:03" }).mac, "02:00:00:00:00:01");
  const noRuntime = conf({
    runtimeConfig: { mac: "" },
    args: { cni: { mac: "02:00:00:00:00:02" } },
  });
  assertEquals(
    parseBridgeConf(noRuntime, { cniArgs: "MAC=02:00:00:00:00:03" }).mac,
    "02:00:00:00:00:02",
  );
  assertEquals(
    parseBridgeConf(conf({}), { cniArgs: "MAC=02:00:00:00:00:03" }).mac,
    "02:00:00:00:00:03",
  );
});

Deno.test("parseBridgeConf() applies the reference's CNI_ARGS rules", () => {
  const error = assertThrows(() => parseBridgeConf(conf({}), { cniArgs: "FOO=1" }));
  assertEquals(error.message, 'ARGS: unknown args ["FOO=1"]');
  const nomad = "IgnoreUnknown=true;NOMAD_ALLOC_ID=x;MAC=02:00:00:00:00:04";
  assertEquals(parseBridgeConf(conf({}), { cniArgs: nomad }).mac, "02:00:00:00:00:04");
  assertEquals(parseBridgeConf(conf({}), { cniArgs: "" }).mac, undefined);
});

Deno.test("parseBridgeConf() keeps the config dns only when a field is set", () => {
  assertEquals(parseBridgeConf(conf({ dns: {} })).dns, undefined);
  assertEquals(parseBridgeConf(conf({ dns: { domain: "" } })).dns, undefined);
  assertEquals(parseBridgeConf(conf({ dns: { nameservers: [] } })).dns, { nameservers: [] });
  assertEquals(parseBridgeConf(conf({ dns: { domain: "x" } })).dns, { domain: "x" });
});

Deno.test("validateForAdd() rejects hairpin and promiscuous mode together", () => {
  const error = addError({ hairpinMode: true, promiscMode: true });
  assertEquals(error.message, "cannot set hairpin mode and promiscuous mode at the same time");
  assertEquals(error instanceof CniError, false); // code 999, as the reference
});

Deno.test("validateForAdd() rejects IPAM with disableContainerInterface", () => {
  const error = addError({ disableContainerInterface: true, ipam: { type: "host-local" } });
  assertEquals(error.message, "cannot use IPAM when DisableContainerInterface flag is set");
});

Deno.test("validateForAdd() rejects an unknown ipMasqBackend only when masquerading", () => {
  const error = addError({ ipMasq: true, ipMasqBackend: "pf", ipam: { type: "host-local" } });
  assertEquals(error.message, 'unknown ipmasq backend "pf"');
  validateForAdd(parseBridgeConf(conf({ ipMasqBackend: "pf" })));
  validateForAdd(
    parseBridgeConf(conf({ ipMasq: true, ipMasqBackend: "nftables", ipam: { type: "x" } })),
  );
});

Deno.test("validateForAdd() rejects bridge names Linux cannot use, with code 7", () => {
  for (const bridge of ["averyveryverylongname", "a/b", "a:b", "a b", "", ".", ".."]) {
    const error = addError({ bridge });
    assertEquals(error instanceof CniError && error.code, ErrorCode.InvalidNetworkConfig, bridge);
    assertEquals(error.message.startsWith(`invalid bridge name ${JSON.stringify(bridge)}: `), true);
  }
  validateForAdd(parseBridgeConf(conf({ bridge: "exactly15bytes_" })));
});

Deno.test("a negative MTU means the kernel's default, as in the reference (which sets only a positive one)", () => {
  const parsed = parseBridgeConf(conf({ mtu: -5 }));
  assertEquals(parsed.mtu, 0);
  validateForAdd(parsed);
});

Deno.test("validateForAdd() rejects a malformed MAC with the reference message", () => {
  const error = addError({ runtimeConfig: { mac: "zz" } });
  assertEquals(error.message, "failed to make veth pair: address zz: invalid MAC address");
});

Deno.test("interfaceNameProblem() counts bytes, not characters", () => {
  assertEquals(interfaceNameProblem("ééééééé"), undefined); // 14 bytes
  assertEquals(interfaceNameProblem("éééééééé"), "is longer than 15 bytes"); // 16 bytes
  assertEquals(interfaceNameProblem("tab\tname"), "contains / or : or whitespace characters");
});

Deno.test("parseMac() accepts Go's 6-byte notations", () => {
  const bytes = [0x02, 0xab, 0xcd, 0xef, 0x01, 0x23];
  for (const text of ["02:ab:cd:ef:01:23", "02-AB-CD-EF-01-23", "02ab.cdef.0123"]) {
    assertEquals([...parseMac(text)!], bytes, text);
  }
  for (const text of ["02:ab:cd:ef:01", "02:ab:cd:ef:01:2g", "02:ab-cd:ef:01:23", ""]) {
    assertEquals(parseMac(text), undefined, text);
  }
});

import { assert, assertEquals, assertThrows } from "@std/assert";
import { decodeNlMessages } from "./codec.ts";
import { IFA_F_NOPREFIXROUTE } from "./consts.ts";
import {
  decodeLinkMessage,
  decodeRtnl,
  encodeAddrMessage,
  encodeLinkMessage,
  encodeRouteMessage,
  encodeRtnl,
  type RtnlMessage,
} from "./messages.ts";
import {
  bridgeAddMessage,
  bridgePortMessage,
  bridgeVlanMessage,
  linkFromMessage,
  vethAddMessage,
} from "./_link.ts";
import { addressFromMessage, addressMessage } from "./_addr.ts";
import { routeFromMessage, routeMessage } from "./_route.ts";

/** Reads a testdata/netlink/*.hex fixture: hex byte pairs, `#` starts a comment. */
function readHex(name: string): Uint8Array {
  const text = Deno.readTextFileSync(new URL(`../../testdata/netlink/${name}`, import.meta.url));
  const hex = text.split("\n").map((line) => line.replace(/#.*/, "")).join("").replace(/\s+/g, "");
  assert(/^([0-9a-f]{2})*$/.test(hex), `${name} holds something other than hex byte pairs`);
  return new Uint8Array(hex.match(/../g)!.map((pair) => parseInt(pair, 16)));
}

/** The payload after the nlmsghdr of a one-message fixture. */
function payloadOf(raw: Uint8Array): Uint8Array {
  const messages = decodeNlMessages(raw);
  assertEquals(messages.length, 1);
  return messages[0].payload;
}

function roundTrip(name: string, expected: RtnlMessage): Uint8Array {
  const raw = readHex(name);
  assertEquals(decodeRtnl(raw), expected);
  assertEquals(encodeRtnl(expected), raw);
  return raw;
}

const ZERO_IFINFO = { family: 0, type: 0, index: 0, flags: 0, change: 0 };

Deno.test("RTM_NEWLINK veth request with peer netns fd round-trips", () => {
  const raw = roundTrip("link_newlink_veth_request.hex", {
    type: 16,
    flags: 0x605,
    seq: 1795327152,
    pid: 0,
    body: {
      kind: "link",
      message: {
        header: ZERO_IFINFO,
        attrs: [
          { kind: "ifname", value: "veth0" },
          {
            kind: "linkinfo",
            value: [
              { kind: "kind", value: "veth" },
              {
                kind: "vethData",
                value: [{
                  kind: "peer",
                  value: {
                    header: ZERO_IFINFO,
                    attrs: [{ kind: "ifname", value: "eth0" }, { kind: "netnsFd", value: 4 }],
                  },
                }],
              },
            ],
          },
        ],
      },
    },
  });
  const built = vethAddMessage({ name: "veth0", peerName: "eth0", peerNetns: 4 });
  assertEquals(encodeLinkMessage(built), payloadOf(raw));
});

Deno.test("RTM_NEWLINK bridge request round-trips", () => {
  const raw = roundTrip("link_newlink_bridge_request.hex", {
    type: 16,
    flags: 0x605,
    seq: 1,
    pid: 0,
    body: {
      kind: "link",
      message: {
        header: ZERO_IFINFO,
        attrs: [
          { kind: "ifname", value: "br0" },
          { kind: "mtu", value: 1400 },
          { kind: "address", value: "02:00:00:00:00:01" },
          {
            kind: "linkinfo",
            value: [
              { kind: "kind", value: "bridge" },
              {
                kind: "bridgeData",
                value: [{ kind: "vlanFiltering", value: 1 }, { kind: "vlanDefaultPvid", value: 1 }],
              },
            ],
          },
        ],
      },
    },
  });
  const built = bridgeAddMessage({
    name: "br0",
    mtu: 1400,
    mac: "02:00:00:00:00:01",
    vlanFiltering: true,
    vlanDefaultPvid: 1,
  });
  assertEquals(encodeLinkMessage(built), payloadOf(raw));
});

const BRIDGE_PORT_HEADER = { family: 7, type: 0, index: 3, flags: 0, change: 0 };

Deno.test("AF_BRIDGE hairpin request equals iproute2's bytes", () => {
  const raw = roundTrip("link_setlink_hairpin_request.hex", {
    type: 19,
    flags: 5,
    seq: 1795327153,
    pid: 0,
    body: {
      kind: "link",
      message: {
        header: BRIDGE_PORT_HEADER,
        attrs: [{ kind: "protinfo", value: [{ kind: "mode", value: 1 }] }],
      },
    },
  });
  assertEquals(
    encodeLinkMessage(bridgePortMessage(3, [{ kind: "mode", value: 1 }])),
    payloadOf(raw),
  );
});

Deno.test("AF_BRIDGE isolated request equals iproute2's bytes", () => {
  const raw = roundTrip("link_setlink_isolated_request.hex", {
    type: 19,
    flags: 5,
    seq: 1795327153,
    pid: 0,
    body: {
      kind: "link",
      message: {
        header: BRIDGE_PORT_HEADER,
        attrs: [{ kind: "protinfo", value: [{ kind: "isolated", value: 1 }] }],
      },
    },
  });
  assertEquals(
    encodeLinkMessage(bridgePortMessage(3, [{ kind: "isolated", value: 1 }])),
    payloadOf(raw),
  );
});

Deno.test("AF_BRIDGE VLAN add request equals iproute2's bytes", () => {
  const raw = roundTrip("link_setlink_vlan_request.hex", {
    type: 19,
    flags: 5,
    seq: 1795327153,
    pid: 0,
    body: {
      kind: "link",
      message: {
        header: BRIDGE_PORT_HEADER,
        attrs: [{
          kind: "bridgeAfSpec",
          value: [{ kind: "vlanInfo", value: { flags: 6, vid: 10 } }],
        }],
      },
    },
  });
  assertEquals(
    encodeLinkMessage(bridgeVlanMessage(3, 10, { pvid: true, untagged: true })),
    payloadOf(raw),
  );
});

Deno.test("bridgeVlanMessage() adds IFLA_BRIDGE_FLAGS for self/master and checks the id", () => {
  const message = bridgeVlanMessage(5, 4094, { self: true, master: true });
  assertEquals(message.attrs, [{
    kind: "bridgeAfSpec",
    value: [{ kind: "flags", value: 3 }, { kind: "vlanInfo", value: { flags: 0, vid: 4094 } }],
  }]);
  assertEquals(
    encodeLinkMessage(message).subarray(16),
    new Uint8Array([
      ...[20, 0, 26, 0], // len 20, IFLA_AF_SPEC
      ...[6, 0, 0, 0, 3, 0, 0, 0], // IFLA_BRIDGE_FLAGS u16 SELF|MASTER + padding
      ...[8, 0, 2, 0, 0, 0, 0xfe, 0x0f], // IFLA_BRIDGE_VLAN_INFO flags 0, vid 4094
    ]),
  );
  assertThrows(() => bridgeVlanMessage(5, 0), RangeError, "VLAN id 0");
  assertThrows(() => bridgeVlanMessage(5, 4095), RangeError, "VLAN id 4095");
});

Deno.test("RTM_NEWADDR request equals iproute2's bytes without broadcast", () => {
  const raw = roundTrip("addr_newaddr_request.hex", {
    type: 20,
    flags: 0x605,
    seq: 1795327152,
    pid: 0,
    body: {
      kind: "addr",
      message: {
        header: { family: 2, prefixLength: 24, flags: 0, scope: 0, index: 3 },
        attrs: [{ kind: "local", value: "10.1.2.3" }, { kind: "address", value: "10.1.2.3" }],
      },
    },
  });
  const built = addressMessage(3, { address: "10.1.2.3", prefixLength: 24, broadcast: false });
  assertEquals(encodeAddrMessage(built), payloadOf(raw));
});

Deno.test("RTM_NEWADDR request adds broadcast and IFA_FLAGS like Go netlink", () => {
  const raw = roundTrip("addr_newaddr_go_request.hex", {
    type: 20,
    flags: 0x605,
    seq: 7,
    pid: 0,
    body: {
      kind: "addr",
      message: {
        header: { family: 2, prefixLength: 24, flags: 0, scope: 0, index: 3 },
        attrs: [
          { kind: "local", value: "10.1.2.3" },
          { kind: "address", value: "10.1.2.3" },
          { kind: "broadcast", value: "10.1.2.255" },
          { kind: "flags", value: 0x200 },
        ],
      },
    },
  });
  const built = addressMessage(3, {
    address: "10.1.2.3",
    prefixLength: 24,
    flags: IFA_F_NOPREFIXROUTE,
  });
  assertEquals(encodeAddrMessage(built), payloadOf(raw));
});

Deno.test("addressMessage() skips broadcast for /31, /32 and IPv6 and validates input", () => {
  assertEquals(
    addressMessage(1, { address: "10.0.0.1", prefixLength: 31 }).attrs.map((a) => a.kind),
    ["local", "address"],
  );
  const v6 = addressMessage(1, { address: "fd00::1", prefixLength: 64, flags: 2, scope: 0 });
  assertEquals(v6.header, { family: 10, prefixLength: 64, flags: 2, scope: 0, index: 1 });
  assertEquals(v6.attrs, [{ kind: "local", value: "fd00::1" }, {
    kind: "address",
    value: "fd00::1",
  }]);
  assertThrows(
    () => addressMessage(1, { address: "10.0.0.1", prefixLength: 33 }),
    RangeError,
    "prefix length 33",
  );
  assertThrows(
    () => addressMessage(1, { address: "10.0.0.300", prefixLength: 8 }),
    SyntaxError,
    "10.0.0.300",
  );
});

Deno.test("RTM_NEWROUTE request equals iproute2's bytes", () => {
  const raw = roundTrip("route_newroute_request.hex", {
    type: 24,
    flags: 0x605,
    seq: 1795327152,
    pid: 0,
    body: {
      kind: "route",
      message: {
        header: {
          family: 2,
          dstLength: 16,
          srcLength: 0,
          tos: 0,
          table: 254,
          protocol: 3,
          scope: 0,
          type: 1,
          flags: 0,
        },
        attrs: [
          { kind: "dst", value: "10.5.0.0" },
          { kind: "gateway", value: "10.1.2.1" },
          { kind: "priority", value: 100 },
          { kind: "oif", value: 3 },
        ],
      },
    },
  });
  const built = routeMessage(
    { dst: { address: "10.5.0.0", prefixLength: 16 }, gw: "10.1.2.1", priority: 100 },
    { oif: 3 },
  );
  assertEquals(encodeRouteMessage(built), payloadOf(raw));
});

Deno.test("routeMessage() defaults, big tables, metrics and family checks", () => {
  const v6 = routeMessage({ gw: "fd00::1", table: 1000, mtu: 1400, advmss: 1340 });
  assertEquals(v6.header, {
    family: 10,
    dstLength: 0,
    srcLength: 0,
    tos: 0,
    table: 0,
    protocol: 3,
    scope: 0,
    type: 1,
    flags: 0,
  });
  assertEquals(v6.attrs, [
    { kind: "gateway", value: "fd00::1" },
    { kind: "table", value: 1000 },
    { kind: "metrics", value: [{ kind: "mtu", value: 1400 }, { kind: "advmss", value: 1340 }] },
  ]);
  const del = routeMessage({ family: 2 }, { deleting: true }).header;
  assertEquals([del.scope, del.protocol, del.type, del.table], [255, 0, 0, 254]);
  assertThrows(() => routeMessage({}), TypeError, "no dst, gw, src or family");
  assertThrows(
    () => routeMessage({ dst: { address: "10.0.0.0", prefixLength: 8 }, gw: "fd00::1" }),
    TypeError,
    "not the same address family",
  );
});

Deno.test("kernel RTM_NEWADDR IPv4 reply decodes and round-trips", () => {
  const raw = roundTrip("addr_newaddr_ipv4_reply.hex", {
    type: 20,
    flags: 2,
    seq: 1872923700,
    pid: 27766,
    body: {
      kind: "addr",
      message: {
        header: { family: 2, prefixLength: 24, flags: 0x80, scope: 0, index: 3 },
        attrs: [
          { kind: "address", value: "10.1.2.3" },
          { kind: "local", value: "10.1.2.3" },
          { kind: "label", value: "veth0" },
          { kind: "flags", value: 0x80 },
          {
            kind: "cacheinfo",
            value: { preferred: 0xffffffff, valid: 0xffffffff, created: 144293, updated: 144293 },
          },
        ],
      },
    },
  });
  const decoded = decodeRtnl(raw).body;
  assert(decoded.kind === "addr");
  const address = addressFromMessage(decoded.message);
  assertEquals(
    { ...address, message: undefined },
    {
      index: 3,
      family: 2,
      address: "10.1.2.3",
      prefixLength: 24,
      scope: 0,
      flags: 0x80,
      label: "veth0",
      broadcast: undefined,
      peer: undefined,
      validLifetime: 0xffffffff,
      preferredLifetime: 0xffffffff,
      message: undefined,
    },
  );
});

Deno.test("kernel RTM_NEWADDR IPv6 reply decodes and round-trips", () => {
  roundTrip("addr_newaddr_ipv6_reply.hex", {
    type: 20,
    flags: 2,
    seq: 256021321,
    pid: 27772,
    body: {
      kind: "addr",
      message: {
        header: { family: 10, prefixLength: 64, flags: 0x82, scope: 0, index: 2 },
        attrs: [
          { kind: "address", value: "fd00::2" },
          {
            kind: "cacheinfo",
            value: { preferred: 0xffffffff, valid: 0xffffffff, created: 146894, updated: 146894 },
          },
          { kind: "flags", value: 0x82 },
        ],
      },
    },
  });
});

Deno.test("kernel RTM_NEWROUTE reply with metrics decodes and round-trips", () => {
  const raw = roundTrip("route_newroute_reply.hex", {
    type: 24,
    flags: 2,
    seq: 1865063167,
    pid: 27778,
    body: {
      kind: "route",
      message: {
        header: {
          family: 2,
          dstLength: 16,
          srcLength: 0,
          tos: 0,
          table: 254,
          protocol: 3,
          scope: 0,
          type: 1,
          flags: 0x10,
        },
        attrs: [
          { kind: "table", value: 254 },
          { kind: "dst", value: "10.6.0.0" },
          {
            kind: "metrics",
            value: [{ kind: "mtu", value: 1300 }, { kind: "advmss", value: 1200 }],
          },
          { kind: "gateway", value: "10.1.2.1" },
          { kind: "oif", value: 3 },
        ],
      },
    },
  });
  const body = decodeRtnl(raw).body;
  assert(body.kind === "route");
  const route = routeFromMessage(body.message);
  assertEquals(
    { ...route, message: undefined },
    {
      family: 2,
      dst: { address: "10.6.0.0", prefixLength: 16 },
      srcPrefix: undefined,
      gw: "10.1.2.1",
      oif: 3,
      src: undefined,
      scope: 0,
      table: 254,
      protocol: 3,
      type: 1,
      priority: undefined,
      mtu: 1300,
      advmss: 1200,
      tos: 0,
      flags: 0x10,
      message: undefined,
    },
  );
});

function linkFixture(name: string) {
  const raw = readHex(name);
  const [{ header, payload }] = decodeNlMessages(raw);
  assertEquals(header.type, 16);
  const message = decodeLinkMessage(payload);
  // Everything, known or not, encodes back to the kernel's bytes.
  assertEquals(encodeLinkMessage(message), payload);
  return message;
}

Deno.test("kernel RTM_NEWLINK reply for a veth bridge port decodes and round-trips", () => {
  const message = linkFixture("link_newlink_veth_port_reply.hex");
  const { message: _, ...link } = linkFromMessage(message);
  assertEquals(link, {
    index: 3,
    name: "veth0",
    hardwareType: 1,
    flags: 0x1003,
    up: true,
    promisc: false,
    promiscuity: 1,
    mtu: 1500,
    mac: "2e:ff:f8:42:22:b9",
    operState: "down",
    masterIndex: 2,
    kind: "veth",
    slaveKind: "bridge",
    linkIndex: 2,
    linkNetnsId: 0,
    vlanFiltering: undefined,
    vlanDefaultPvid: undefined,
    bridgePort: { hairpin: true, isolated: true, state: 0 },
  });
  const info = message.attrs.find((a) => a.kind === "linkinfo");
  assert(info?.kind === "linkinfo");
  assertEquals(info.value.map((a) => a.kind), ["kind", "slaveKind", "bridgePortData"]);
});

Deno.test("kernel RTM_NEWLINK reply for a bridge decodes and round-trips", () => {
  const message = linkFixture("link_newlink_bridge_reply.hex");
  const link = linkFromMessage(message);
  assertEquals(
    [link.index, link.name, link.kind, link.vlanFiltering, link.mtu, link.operState, link.up],
    [2, "br0", "bridge", false, 1500, "down", false],
  );
  assertEquals(link.bridgePort, undefined);
  assertEquals(link.masterIndex, undefined);
});

Deno.test("encodeRtnl() refuses a body that does not fit the type", () => {
  assertThrows(
    () =>
      encodeRtnl({
        type: 24,
        flags: 0,
        seq: 0,
        pid: 0,
        body: { kind: "link", message: { header: ZERO_IFINFO, attrs: [] } },
      }),
    TypeError,
    `"link" body`,
  );
});

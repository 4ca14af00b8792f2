/**
 * rtnetlink message bodies: `ifinfomsg` (links), `ifaddrmsg` (addresses) and
 * `rtmsg` (routes), each followed by a typed attribute list. Encoders produce
 * the payload after the `nlmsghdr`; {@linkcode encodeRtnl} and
 * {@linkcode decodeRtnl} handle whole messages.
 *
 * @module
 */
import {
  AF_BRIDGE,
  IFA_ADDRESS,
  IFA_ANYCAST,
  IFA_BROADCAST,
  IFA_CACHEINFO,
  IFA_FLAGS,
  IFA_LABEL,
  IFA_LOCAL,
  IFA_PROTO,
  IFA_RT_PRIORITY,
  IFLA_ADDRESS,
  IFLA_AF_SPEC,
  IFLA_BR_AGEING_TIME,
  IFLA_BR_FORWARD_DELAY,
  IFLA_BR_HELLO_TIME,
  IFLA_BR_MAX_AGE,
  IFLA_BR_PRIORITY,
  IFLA_BR_STP_STATE,
  IFLA_BR_VLAN_DEFAULT_PVID,
  IFLA_BR_VLAN_FILTERING,
  IFLA_BR_VLAN_PROTOCOL,
  IFLA_BRIDGE_FLAGS,
  IFLA_BRIDGE_MODE,
  IFLA_BRIDGE_VLAN_INFO,
  IFLA_BROADCAST,
  IFLA_BRPORT_COST,
  IFLA_BRPORT_FAST_LEAVE,
  IFLA_BRPORT_GUARD,
  IFLA_BRPORT_ISOLATED,
  IFLA_BRPORT_LEARNING,
  IFLA_BRPORT_MODE,
  IFLA_BRPORT_PRIORITY,
  IFLA_BRPORT_PROTECT,
  IFLA_BRPORT_STATE,
  IFLA_BRPORT_UNICAST_FLOOD,
  IFLA_CARRIER,
  IFLA_EXT_MASK,
  IFLA_GROUP,
  IFLA_IFALIAS,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_INFO_SLAVE_DATA,
  IFLA_INFO_SLAVE_KIND,
  IFLA_LINK,
  IFLA_LINK_NETNSID,
  IFLA_LINKINFO,
  IFLA_LINKMODE,
  IFLA_MASTER,
  IFLA_MAX_MTU,
  IFLA_MIN_MTU,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  IFLA_NET_NS_PID,
  IFLA_NUM_RX_QUEUES,
  IFLA_NUM_TX_QUEUES,
  IFLA_OPERSTATE,
  IFLA_PROMISCUITY,
  IFLA_PROTINFO,
  IFLA_QDISC,
  IFLA_TXQLEN,
  RTA_DST,
  RTA_EXPIRES,
  RTA_GATEWAY,
  RTA_IIF,
  RTA_MARK,
  RTA_METRICS,
  RTA_OIF,
  RTA_PREF,
  RTA_PREFSRC,
  RTA_PRIORITY,
  RTA_SRC,
  RTA_TABLE,
  RTAX_ADVMSS,
  RTAX_HOPLIMIT,
  RTAX_LOCK,
  RTAX_MTU,
  RTAX_WINDOW,
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_DELROUTE,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_GETROUTE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  RTM_SETLINK,
  VETH_INFO_PEER,
} from "./consts.ts";
import {
  type AttrTable,
  be16,
  decodeAttrs,
  decodeNlMessages,
  decodeRawAttrs,
  encodeAttrs,
  encodeNlMessage,
  i32,
  ip,
  LE,
  mac,
  nested,
  type NlMsgHeader,
  strz,
  u16,
  u32,
  u8,
  type UnknownAttr,
  type ValueCodec,
} from "./codec.ts";

// ---------------------------------------------------------------- links ----

/** `struct ifinfomsg` (16 bytes). */
export interface IfInfoMsg {
  /** `ifi_family`: AF_UNSPEC, or AF_BRIDGE for bridge-port requests. */
  family: number;
  /** `ifi_type`: ARPHRD_* (1 = ether, 772 = loopback). */
  type: number;
  /** `ifi_index` */
  index: number;
  /** `ifi_flags`: IFF_* */
  flags: number;
  /** `ifi_change`: which IFF_* bits to change */
  change: number;
}

/** `IFLA_BRPORT_*` inside `IFLA_PROTINFO` (AF_BRIDGE) or `IFLA_INFO_SLAVE_DATA`. */
export type BridgePortAttr =
  | { kind: "state"; value: number }
  | { kind: "priority"; value: number }
  | { kind: "cost"; value: number }
  | { kind: "mode"; value: number }
  | { kind: "guard"; value: number }
  | { kind: "protect"; value: number }
  | { kind: "fastLeave"; value: number }
  | { kind: "learning"; value: number }
  | { kind: "unicastFlood"; value: number }
  | { kind: "isolated"; value: number };

/** `IFLA_BR_*` inside `IFLA_INFO_DATA` of a bridge. */
export type BridgeAttr =
  | { kind: "forwardDelay"; value: number }
  | { kind: "helloTime"; value: number }
  | { kind: "maxAge"; value: number }
  | { kind: "ageingTime"; value: number }
  | { kind: "stpState"; value: number }
  | { kind: "priority"; value: number }
  | { kind: "vlanFiltering"; value: number }
  | { kind: "vlanProtocol"; value: number }
  | { kind: "vlanDefaultPvid"; value: number };

/** `struct bridge_vlan_info`. */
export interface BridgeVlanInfo {
  /** BRIDGE_VLAN_INFO_* */
  flags: number;
  vid: number;
}

/** `IFLA_BRIDGE_*` inside `IFLA_AF_SPEC` of an AF_BRIDGE message. */
export type BridgeAfSpecAttr =
  | { kind: "flags"; value: number }
  | { kind: "mode"; value: number }
  | { kind: "vlanInfo"; value: BridgeVlanInfo };

/** `VETH_INFO_*` inside `IFLA_INFO_DATA` of a veth (the peer is a whole ifinfomsg). */
export type VethAttr = { kind: "peer"; value: LinkMessage };

/**
 * `IFLA_INFO_*` inside `IFLA_LINKINFO`. `IFLA_INFO_DATA` decodes by the
 * `IFLA_INFO_KIND` before it (bridge, veth; others stay unknown), and
 * `IFLA_INFO_SLAVE_DATA` by `IFLA_INFO_SLAVE_KIND` (bridge).
 */
export type LinkInfoAttr =
  | { kind: "kind"; value: string }
  | { kind: "bridgeData"; value: (BridgeAttr | UnknownAttr)[] }
  | { kind: "vethData"; value: (VethAttr | UnknownAttr)[] }
  | { kind: "slaveKind"; value: string }
  | { kind: "bridgePortData"; value: (BridgePortAttr | UnknownAttr)[] };

/** `IFLA_*` attributes of a link message. */
export type LinkAttr =
  | { kind: "address"; value: string }
  | { kind: "broadcast"; value: string }
  | { kind: "ifname"; value: string }
  | { kind: "mtu"; value: number }
  | { kind: "link"; value: number }
  | { kind: "qdisc"; value: string }
  | { kind: "master"; value: number }
  | { kind: "txqlen"; value: number }
  | { kind: "operstate"; value: number }
  | { kind: "linkmode"; value: number }
  | { kind: "linkinfo"; value: (LinkInfoAttr | UnknownAttr)[] }
  | { kind: "netnsPid"; value: number }
  | { kind: "ifalias"; value: string }
  | { kind: "group"; value: number }
  | { kind: "netnsFd"; value: number }
  | { kind: "extMask"; value: number }
  | { kind: "promiscuity"; value: number }
  | { kind: "numTxQueues"; value: number }
  | { kind: "numRxQueues"; value: number }
  | { kind: "carrier"; value: number }
  | { kind: "linkNetnsId"; value: number }
  | { kind: "minMtu"; value: number }
  | { kind: "maxMtu"; value: number }
  | { kind: "protinfo"; value: (BridgePortAttr | UnknownAttr)[] }
  | { kind: "bridgeAfSpec"; value: (BridgeAfSpecAttr | UnknownAttr)[] };

/** A link message: `ifinfomsg` plus attributes. */
export interface LinkMessage {
  header: IfInfoMsg;
  attrs: (LinkAttr | UnknownAttr)[];
}

const BRIDGE_PORT_ATTRS: AttrTable<BridgePortAttr> = {
  state: { type: IFLA_BRPORT_STATE, codec: u8 },
  priority: { type: IFLA_BRPORT_PRIORITY, codec: u16 },
  cost: { type: IFLA_BRPORT_COST, codec: u32 },
  mode: { type: IFLA_BRPORT_MODE, codec: u8 },
  guard: { type: IFLA_BRPORT_GUARD, codec: u8 },
  protect: { type: IFLA_BRPORT_PROTECT, codec: u8 },
  fastLeave: { type: IFLA_BRPORT_FAST_LEAVE, codec: u8 },
  learning: { type: IFLA_BRPORT_LEARNING, codec: u8 },
  unicastFlood: { type: IFLA_BRPORT_UNICAST_FLOOD, codec: u8 },
  isolated: { type: IFLA_BRPORT_ISOLATED, codec: u8 },
};

const BRIDGE_ATTRS: AttrTable<BridgeAttr> = {
  forwardDelay: { type: IFLA_BR_FORWARD_DELAY, codec: u32 },
  helloTime: { type: IFLA_BR_HELLO_TIME, codec: u32 },
  maxAge: { type: IFLA_BR_MAX_AGE, codec: u32 },
  ageingTime: { type: IFLA_BR_AGEING_TIME, codec: u32 },
  stpState: { type: IFLA_BR_STP_STATE, codec: u32 },
  priority: { type: IFLA_BR_PRIORITY, codec: u16 },
  vlanFiltering: { type: IFLA_BR_VLAN_FILTERING, codec: u8 },
  vlanProtocol: { type: IFLA_BR_VLAN_PROTOCOL, codec: be16 },
  vlanDefaultPvid: { type: IFLA_BR_VLAN_DEFAULT_PVID, codec: u16 },
};

const bridgeVlanInfo: ValueCodec<BridgeVlanInfo> = {
  encode: (v) => {
    const out = new Uint8Array(4);
    const view = new DataView(out.buffer);
    view.setUint16(0, v.flags, LE);
    view.setUint16(2, v.vid, LE);
    return out;
  },
  decode: (b) => {
    if (b.length !== 4) throw new RangeError(`bridge_vlan_info is ${b.length} bytes, expected 4`);
    const view = new DataView(b.buffer, b.byteOffset, 4);
    return { flags: view.getUint16(0, LE), vid: view.getUint16(2, LE) };
  },
};

const BRIDGE_AF_SPEC_ATTRS: AttrTable<BridgeAfSpecAttr> = {
  flags: { type: IFLA_BRIDGE_FLAGS, codec: u16 },
  mode: { type: IFLA_BRIDGE_MODE, codec: u16 },
  vlanInfo: { type: IFLA_BRIDGE_VLAN_INFO, codec: bridgeVlanInfo },
};

// The veth peer is a full link message; the codec refers to it lazily.
const linkMessageCodec: ValueCodec<LinkMessage> = {
  encode: (m) => encodeLinkMessage(m),
  decode: (b) => decodeLinkMessage(b),
};

const VETH_ATTRS: AttrTable<VethAttr> = {
  peer: { type: VETH_INFO_PEER, codec: linkMessageCodec },
};

// Encoding accepts every kind; decoding picks the data tables by kind (below).
const LINK_INFO_ENCODE: AttrTable<LinkInfoAttr> = {
  kind: { type: IFLA_INFO_KIND, codec: strz },
  bridgeData: { type: IFLA_INFO_DATA, codec: nested(BRIDGE_ATTRS) },
  vethData: { type: IFLA_INFO_DATA, codec: nested(VETH_ATTRS) },
  slaveKind: { type: IFLA_INFO_SLAVE_KIND, codec: strz },
  bridgePortData: { type: IFLA_INFO_SLAVE_DATA, codec: nested(BRIDGE_PORT_ATTRS) },
};

const LINK_INFO_DECODE = new Map<string, AttrTable<LinkInfoAttr>>();

function linkInfoDecodeTable(kind: string, slaveKind: string): AttrTable<LinkInfoAttr> {
  const key = `${kind}/${slaveKind}`;
  let table = LINK_INFO_DECODE.get(key);
  if (table === undefined) {
    table = { kind: LINK_INFO_ENCODE.kind, slaveKind: LINK_INFO_ENCODE.slaveKind };
    if (kind === "bridge") table = { ...table, bridgeData: LINK_INFO_ENCODE.bridgeData };
    if (kind === "veth") table = { ...table, vethData: LINK_INFO_ENCODE.vethData };
    if (slaveKind === "bridge") {
      table = { ...table, bridgePortData: LINK_INFO_ENCODE.bridgePortData };
    }
    LINK_INFO_DECODE.set(key, table);
  }
  return table;
}

const linkInfo: ValueCodec<(LinkInfoAttr | UnknownAttr)[]> = {
  encode: (attrs) => encodeAttrs(LINK_INFO_ENCODE, attrs),
  decode: (data) => {
    let kind = "";
    let slaveKind = "";
    for (const raw of decodeRawAttrs(data)) {
      if (raw.type === IFLA_INFO_KIND) kind = strz.decode(raw.data);
      if (raw.type === IFLA_INFO_SLAVE_KIND) slaveKind = strz.decode(raw.data);
    }
    return decodeAttrs(linkInfoDecodeTable(kind, slaveKind), data);
  },
};

const LINK_ATTRS: AttrTable<LinkAttr> = {
  address: { type: IFLA_ADDRESS, codec: mac },
  broadcast: { type: IFLA_BROADCAST, codec: mac },
  ifname: { type: IFLA_IFNAME, codec: strz },
  mtu: { type: IFLA_MTU, codec: u32 },
  link: { type: IFLA_LINK, codec: u32 },
  qdisc: { type: IFLA_QDISC, codec: strz },
  master: { type: IFLA_MASTER, codec: u32 },
  txqlen: { type: IFLA_TXQLEN, codec: u32 },
  operstate: { type: IFLA_OPERSTATE, codec: u8 },
  linkmode: { type: IFLA_LINKMODE, codec: u8 },
  linkinfo: { type: IFLA_LINKINFO, codec: linkInfo },
  netnsPid: { type: IFLA_NET_NS_PID, codec: u32 },
  ifalias: { type: IFLA_IFALIAS, codec: strz },
  group: { type: IFLA_GROUP, codec: u32 },
  netnsFd: { type: IFLA_NET_NS_FD, codec: u32 },
  extMask: { type: IFLA_EXT_MASK, codec: u32 },
  promiscuity: { type: IFLA_PROMISCUITY, codec: u32 },
  numTxQueues: { type: IFLA_NUM_TX_QUEUES, codec: u32 },
  numRxQueues: { type: IFLA_NUM_RX_QUEUES, codec: u32 },
  carrier: { type: IFLA_CARRIER, codec: u8 },
  linkNetnsId: { type: IFLA_LINK_NETNSID, codec: i32 },
  minMtu: { type: IFLA_MIN_MTU, codec: u32 },
  maxMtu: { type: IFLA_MAX_MTU, codec: u32 },
};

// AF_BRIDGE messages: IFLA_PROTINFO holds IFLA_BRPORT_* (the kernel requires
// NLA_F_NESTED on it, otherwise it reads a legacy u8 port state) and
// IFLA_AF_SPEC holds IFLA_BRIDGE_*. In AF_UNSPEC dumps both mean other things
// (per-family data), so they stay unknown there.
const BRIDGE_LINK_ATTRS: AttrTable<LinkAttr> = {
  ...LINK_ATTRS,
  protinfo: { type: IFLA_PROTINFO, codec: nested(BRIDGE_PORT_ATTRS), nestedFlag: true },
  bridgeAfSpec: { type: IFLA_AF_SPEC, codec: nested(BRIDGE_AF_SPEC_ATTRS) },
};

function writeIfInfo(view: DataView, h: IfInfoMsg): void {
  view.setUint8(0, h.family);
  view.setUint8(1, 0); // __ifi_pad
  view.setUint16(2, h.type, LE);
  view.setInt32(4, h.index, LE);
  view.setUint32(8, h.flags, LE);
  view.setUint32(12, h.change, LE);
}

function concat(head: Uint8Array, tail: Uint8Array): Uint8Array {
  const out = new Uint8Array(head.length + tail.length);
  out.set(head);
  out.set(tail, head.length);
  return out;
}

function struct(size: number, data: Uint8Array, what: string): DataView {
  if (data.length < size) {
    throw new SyntaxError(`Cannot decode ${what}: ${data.length} bytes, expected at least ${size}`);
  }
  return new DataView(data.buffer, data.byteOffset, size);
}

/** Encodes an `ifinfomsg` and its attributes (AF_BRIDGE uses the bridge tables). */
export function encodeLinkMessage(message: LinkMessage): Uint8Array {
  const head = new Uint8Array(16);
  writeIfInfo(new DataView(head.buffer), message.header);
  const table = message.header.family === AF_BRIDGE ? BRIDGE_LINK_ATTRS : LINK_ATTRS;
  return concat(head, encodeAttrs(table, message.attrs));
}

/** Decodes an `ifinfomsg` and its attributes. */
export function decodeLinkMessage(data: Uint8Array): LinkMessage {
  const view = struct(16, data, "ifinfomsg");
  const header: IfInfoMsg = {
    family: view.getUint8(0),
    type: view.getUint16(2, LE),
    index: view.getInt32(4, LE),
    flags: view.getUint32(8, LE),
    change: view.getUint32(12, LE),
  };
  const table = header.family === AF_BRIDGE ? BRIDGE_LINK_ATTRS : LINK_ATTRS;
  return { header, attrs: decodeAttrs(table, data.subarray(16)) };
}

// ------------------------------------------------------------ addresses ----

/** `struct ifaddrmsg` (8 bytes). */
export interface IfAddrMsg {
  /** `ifa_family` */
  family: number;
  /** `ifa_prefixlen` */
  prefixLength: number;
  /** `ifa_flags`: low 8 bits of IFA_F_*; the full set travels in `IFA_FLAGS`. */
  flags: number;
  /** `ifa_scope`: RT_SCOPE_* */
  scope: number;
  /** `ifa_index` */
  index: number;
}

/** `struct ifa_cacheinfo` (lifetimes in seconds, stamps in 1/100 s). */
export interface IfaCacheInfo {
  preferred: number;
  valid: number;
  created: number;
  updated: number;
}

/** `IFA_*` attributes. Addresses are strings. */
export type AddrAttr =
  | { kind: "address"; value: string }
  | { kind: "local"; value: string }
  | { kind: "label"; value: string }
  | { kind: "broadcast"; value: string }
  | { kind: "anycast"; value: string }
  | { kind: "cacheinfo"; value: IfaCacheInfo }
  | { kind: "flags"; value: number }
  | { kind: "rtPriority"; value: number }
  | { kind: "proto"; value: number };

/** An address message: `ifaddrmsg` plus attributes. */
export interface AddrMessage {
  header: IfAddrMsg;
  attrs: (AddrAttr | UnknownAttr)[];
}

const cacheInfo: ValueCodec<IfaCacheInfo> = {
  encode: (v) => {
    const out = new Uint8Array(16);
    const view = new DataView(out.buffer);
    view.setUint32(0, v.preferred, LE);
    view.setUint32(4, v.valid, LE);
    view.setUint32(8, v.created, LE);
    view.setUint32(12, v.updated, LE);
    return out;
  },
  decode: (b) => {
    if (b.length !== 16) throw new RangeError(`ifa_cacheinfo is ${b.length} bytes, expected 16`);
    const view = new DataView(b.buffer, b.byteOffset, 16);
    return {
      preferred: view.getUint32(0, LE),
      valid: view.getUint32(4, LE),
      created: view.getUint32(8, LE),
      updated: view.getUint32(12, LE),
    };
  },
};

const ADDR_ATTRS: AttrTable<AddrAttr> = {
  address: { type: IFA_ADDRESS, codec: ip },
  local: { type: IFA_LOCAL, codec: ip },
  label: { type: IFA_LABEL, codec: strz },
  broadcast: { type: IFA_BROADCAST, codec: ip },
  anycast: { type: IFA_ANYCAST, codec: ip },
  cacheinfo: { type: IFA_CACHEINFO, codec: cacheInfo },
  flags: { type: IFA_FLAGS, codec: u32 },
  rtPriority: { type: IFA_RT_PRIORITY, codec: u32 },
  proto: { type: IFA_PROTO, codec: u8 },
};

/** Encodes an `ifaddrmsg` and its attributes. */
export function encodeAddrMessage(message: AddrMessage): Uint8Array {
  const head = new Uint8Array(8);
  const view = new DataView(head.buffer);
  const h = message.header;
  view.setUint8(0, h.family);
  view.setUint8(1, h.prefixLength);
  view.setUint8(2, h.flags);
  view.setUint8(3, h.scope);
  view.setUint32(4, h.index, LE);
  return concat(head, encodeAttrs(ADDR_ATTRS, message.attrs));
}

/** Decodes an `ifaddrmsg` and its attributes. */
export function decodeAddrMessage(data: Uint8Array): AddrMessage {
  const view = struct(8, data, "ifaddrmsg");
  return {
    header: {
      family: view.getUint8(0),
      prefixLength: view.getUint8(1),
      flags: view.getUint8(2),
      scope: view.getUint8(3),
      index: view.getUint32(4, LE),
    },
    attrs: decodeAttrs(ADDR_ATTRS, data.subarray(8)),
  };
}

// --------------------------------------------------------------- routes ----

/** `struct rtmsg` (12 bytes). */
export interface RtMsg {
  /** `rtm_family` */
  family: number;
  /** `rtm_dst_len` */
  dstLength: number;
  /** `rtm_src_len` */
  srcLength: number;
  /** `rtm_tos` */
  tos: number;
  /** `rtm_table`: RT_TABLE_*; tables >= 256 travel in `RTA_TABLE` with this 0 */
  table: number;
  /** `rtm_protocol`: RTPROT_* */
  protocol: number;
  /** `rtm_scope`: RT_SCOPE_* */
  scope: number;
  /** `rtm_type`: RTN_* */
  type: number;
  /** `rtm_flags`: RTM_F_* and RTNH_F_* */
  flags: number;
}

/** `RTAX_*` inside `RTA_METRICS`. */
export type RouteMetricAttr =
  | { kind: "lock"; value: number }
  | { kind: "mtu"; value: number }
  | { kind: "window"; value: number }
  | { kind: "advmss"; value: number }
  | { kind: "hoplimit"; value: number };

/** `RTA_*` attributes. Addresses are strings. */
export type RouteAttr =
  | { kind: "dst"; value: string }
  | { kind: "src"; value: string }
  | { kind: "iif"; value: number }
  | { kind: "oif"; value: number }
  | { kind: "gateway"; value: string }
  | { kind: "priority"; value: number }
  | { kind: "prefsrc"; value: string }
  | { kind: "metrics"; value: (RouteMetricAttr | UnknownAttr)[] }
  | { kind: "table"; value: number }
  | { kind: "mark"; value: number }
  | { kind: "pref"; value: number }
  | { kind: "expires"; value: number };

/** A route message: `rtmsg` plus attributes. */
export interface RouteMessage {
  header: RtMsg;
  attrs: (RouteAttr | UnknownAttr)[];
}

const ROUTE_METRIC_ATTRS: AttrTable<RouteMetricAttr> = {
  lock: { type: RTAX_LOCK, codec: u32 },
  mtu: { type: RTAX_MTU, codec: u32 },
  window: { type: RTAX_WINDOW, codec: u32 },
  advmss: { type: RTAX_ADVMSS, codec: u32 },
  hoplimit: { type: RTAX_HOPLIMIT, codec: u32 },
};

const ROUTE_ATTRS: AttrTable<RouteAttr> = {
  dst: { type: RTA_DST, codec: ip },
  src: { type: RTA_SRC, codec: ip },
  iif: { type: RTA_IIF, codec: u32 },
  oif: { type: RTA_OIF, codec: u32 },
  gateway: { type: RTA_GATEWAY, codec: ip },
  priority: { type: RTA_PRIORITY, codec: u32 },
  prefsrc: { type: RTA_PREFSRC, codec: ip },
  metrics: { type: RTA_METRICS, codec: nested(ROUTE_METRIC_ATTRS) },
  table: { type: RTA_TABLE, codec: u32 },
  mark: { type: RTA_MARK, codec: u32 },
  pref: { type: RTA_PREF, codec: u8 },
  expires: { type: RTA_EXPIRES, codec: u32 },
};

/** Encodes an `rtmsg` and its attributes. */
export function encodeRouteMessage(message: RouteMessage): Uint8Array {
  const head = new Uint8Array(12);
  const view = new DataView(head.buffer);
  const h = message.header;
  [h.family, h.dstLength, h.srcLength, h.tos, h.table, h.protocol, h.scope, h.type].forEach(
    (value, i) => view.setUint8(i, value),
  );
  view.setUint32(8, h.flags, LE);
  return concat(head, encodeAttrs(ROUTE_ATTRS, message.attrs));
}

/** Decodes an `rtmsg` and its attributes. */
export function decodeRouteMessage(data: Uint8Array): RouteMessage {
  const view = struct(12, data, "rtmsg");
  return {
    header: {
      family: view.getUint8(0),
      dstLength: view.getUint8(1),
      srcLength: view.getUint8(2),
      tos: view.getUint8(3),
      table: view.getUint8(4),
      protocol: view.getUint8(5),
      scope: view.getUint8(6),
      type: view.getUint8(7),
      flags: view.getUint32(8, LE),
    },
    attrs: decodeAttrs(ROUTE_ATTRS, data.subarray(12)),
  };
}

// ------------------------------------------------------ whole messages ----

/** The body of an rtnetlink message, tagged by object class. */
export type RtnlBody =
  | { kind: "link"; message: LinkMessage }
  | { kind: "addr"; message: AddrMessage }
  | { kind: "route"; message: RouteMessage };

/** A whole rtnetlink message: `nlmsghdr` fields (without `len`) and a typed body. */
export interface RtnlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  body: RtnlBody;
}

const LINK_TYPES = [RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK];
const ADDR_TYPES = [RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR];
const ROUTE_TYPES = [RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE];

/** Returns the body decoder's class for an `RTM_*` type, or undefined for others. */
export function rtnlKind(type: number): RtnlBody["kind"] | undefined {
  if (LINK_TYPES.includes(type)) return "link";
  if (ADDR_TYPES.includes(type)) return "addr";
  if (ROUTE_TYPES.includes(type)) return "route";
  return undefined;
}

/** Decodes the body of a framed message by its `nlmsg_type`. */
export function decodeRtnlBody(header: NlMsgHeader, payload: Uint8Array): RtnlBody {
  switch (rtnlKind(header.type)) {
    case "link":
      return { kind: "link", message: decodeLinkMessage(payload) };
    case "addr":
      return { kind: "addr", message: decodeAddrMessage(payload) };
    case "route":
      return { kind: "route", message: decodeRouteMessage(payload) };
    default:
      throw new TypeError(`Cannot decode netlink message type ${header.type}: not rtnetlink`);
  }
}

/** Encodes a whole rtnetlink message (header and body). */
export function encodeRtnl(message: RtnlMessage): Uint8Array {
  const { body } = message;
  if (rtnlKind(message.type) !== body.kind) {
    throw new TypeError(`Cannot encode message type ${message.type} with a "${body.kind}" body`);
  }
  const payload = body.kind === "link"
    ? encodeLinkMessage(body.message)
    : body.kind === "addr"
    ? encodeAddrMessage(body.message)
    : encodeRouteMessage(body.message);
  return encodeNlMessage(message, payload);
}

/** Decodes one whole rtnetlink message; throws `SyntaxError` unless `raw` is exactly one. */
export function decodeRtnl(raw: Uint8Array): RtnlMessage {
  const messages = decodeNlMessages(raw);
  if (messages.length !== 1) {
    throw new SyntaxError(`Cannot decode rtnetlink message: found ${messages.length} messages`);
  }
  const [{ header, payload }] = messages;
  return {
    type: header.type,
    flags: header.flags,
    seq: header.seq,
    pid: header.pid,
    body: decodeRtnlBody(header, payload),
  };
}

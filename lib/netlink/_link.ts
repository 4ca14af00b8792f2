/**
 * Link operations over a {@linkcode NetlinkSocket}: list and look up links,
 * create bridges, veth pairs (peer directly in another namespace) and dummies,
 * change state, master, MTU, MAC, promiscuity, namespace and name, and set
 * bridge-port options and VLANs. `NetlinkHandle` exposes these as methods.
 *
 * Private: the public surface is `NetlinkHandle` (plus the types and pure
 * message builders `mod.ts` re-exports). Every change requires CAP_NET_ADMIN
 * in the socket's network namespace.
 *
 * @module
 */
import {
  AF_BRIDGE,
  AF_UNSPEC,
  BRIDGE_FLAGS_MASTER,
  BRIDGE_FLAGS_SELF,
  BRIDGE_MODE_HAIRPIN,
  BRIDGE_MODE_VEB,
  BRIDGE_VLAN_INFO_PVID,
  BRIDGE_VLAN_INFO_UNTAGGED,
  IF_OPER_DORMANT,
  IF_OPER_DOWN,
  IF_OPER_LOWERLAYERDOWN,
  IF_OPER_NOTPRESENT,
  IF_OPER_TESTING,
  IF_OPER_UP,
  IFF_PROMISC,
  IFF_UP,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  RTEXT_FILTER_BRVLAN,
  RTEXT_FILTER_SKIP_STATS,
  RTM_DELLINK,
  RTM_GETLINK,
  RTM_NEWLINK,
  RTM_SETLINK,
} from "./consts.ts";
import { attrValue, type UnknownAttr } from "./codec.ts";
import { isNotFound, LinkNotFoundError } from "./error.ts";
import {
  type BridgeAttr,
  type BridgePortAttr,
  type BridgeVlanInfo,
  decodeLinkMessage,
  encodeLinkMessage,
  type IfInfoMsg,
  type LinkAttr,
  type LinkInfoAttr,
  type LinkMessage,
} from "./messages.ts";
import type { NetlinkSocket } from "./socket.ts";
import type { NetnsFd } from "../sys/netns.ts";

/** A link by index (number) or by name (string). */
export type LinkRef = number | string;

/** Operational state, spelled as the Go netlink library prints it. */
export type OperState =
  | "unknown"
  | "not-present"
  | "down"
  | "lower-layer-down"
  | "testing"
  | "dormant"
  | "up";

const OPER_STATES: Record<number, OperState> = {
  [IF_OPER_NOTPRESENT]: "not-present",
  [IF_OPER_DOWN]: "down",
  [IF_OPER_LOWERLAYERDOWN]: "lower-layer-down",
  [IF_OPER_TESTING]: "testing",
  [IF_OPER_DORMANT]: "dormant",
  [IF_OPER_UP]: "up",
};

/** Bridge-port settings of a link enslaved to a bridge. */
export interface BridgePortInfo {
  /** Hairpin mode (`IFLA_BRPORT_MODE` = hairpin). */
  hairpin: boolean;
  /** Port isolation (`IFLA_BRPORT_ISOLATED`). */
  isolated: boolean;
  /** STP port state (`IFLA_BRPORT_STATE`, BR_STATE_*), if reported. */
  state: number | undefined;
}

/** A link as read from the kernel. */
export interface Link {
  index: number;
  name: string;
  /** ARPHRD_* (`ifi_type`). */
  hardwareType: number;
  /** IFF_* flags. */
  flags: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** IFF_PROMISC set by a user (bridge ports count in `promiscuity` only). */
  promisc: boolean;
  /** Promiscuity counter (`IFLA_PROMISCUITY`). */
  promiscuity: number | undefined;
  mtu: number;
  /** Hardware address, lowercase "aa:bb:...". */
  mac: string | undefined;
  operState: OperState;
  /** Index of the master (bridge) link, if enslaved. */
  masterIndex: number | undefined;
  /** `IFLA_INFO_KIND`: "bridge", "veth", "dummy", ... (undefined for physical links and lo). */
  kind: string | undefined;
  /** `IFLA_INFO_SLAVE_KIND`: "bridge" for bridge ports. */
  slaveKind: string | undefined;
  /** `IFLA_LINK`: for a veth the peer's index (in the peer's namespace). */
  linkIndex: number | undefined;
  /** `IFLA_LINK_NETNSID`: the peer's namespace id, when the peer lives elsewhere. */
  linkNetnsId: number | undefined;
  /** Bridges: `IFLA_BR_VLAN_FILTERING`. */
  vlanFiltering: boolean | undefined;
  /** Bridges: `IFLA_BR_VLAN_DEFAULT_PVID`. */
  vlanDefaultPvid: number | undefined;
  /** Bridge ports: hairpin, isolation and STP state. */
  bridgePort: BridgePortInfo | undefined;
  /** The decoded message, for attributes without a field here. */
  message: LinkMessage;
}

/** Converts a decoded `RTM_NEWLINK` into a {@linkcode Link}. */
export function linkFromMessage(message: LinkMessage): Link {
  const { header, attrs } = message;
  const info = attrValue(attrs, "linkinfo") ?? [];
  const bridgeData = attrValue<LinkInfoAttr, "bridgeData">(info, "bridgeData");
  const portData = attrValue<LinkInfoAttr, "bridgePortData">(info, "bridgePortData");
  const vlanFiltering = bridgeData && attrValue<BridgeAttr, "vlanFiltering">(
    bridgeData,
    "vlanFiltering",
  );
  return {
    index: header.index,
    name: attrValue(attrs, "ifname") ?? "",
    hardwareType: header.type,
    flags: header.flags,
    up: (header.flags & IFF_UP) !== 0,
    promisc: (header.flags & IFF_PROMISC) !== 0,
    promiscuity: attrValue(attrs, "promiscuity"),
    mtu: attrValue(attrs, "mtu") ?? 0,
    mac: attrValue(attrs, "address"),
    operState: OPER_STATES[attrValue(attrs, "operstate") ?? 0] ?? "unknown",
    masterIndex: attrValue(attrs, "master") || undefined,
    kind: attrValue<LinkInfoAttr, "kind">(info, "kind"),
    slaveKind: attrValue<LinkInfoAttr, "slaveKind">(info, "slaveKind"),
    linkIndex: attrValue(attrs, "link"),
    linkNetnsId: attrValue(attrs, "linkNetnsId"),
    vlanFiltering: vlanFiltering === undefined ? undefined : vlanFiltering !== 0,
    vlanDefaultPvid: bridgeData &&
      attrValue<BridgeAttr, "vlanDefaultPvid">(bridgeData, "vlanDefaultPvid"),
    bridgePort: portData && {
      hairpin: attrValue<BridgePortAttr, "mode">(portData, "mode") === BRIDGE_MODE_HAIRPIN,
      isolated: attrValue<BridgePortAttr, "isolated">(portData, "isolated") === 1,
      state: attrValue<BridgePortAttr, "state">(portData, "state"),
    },
    message,
  };
}

function ifinfo(family: number, index = 0, flags = 0, change = 0): IfInfoMsg {
  return { family, type: 0, index, flags, change };
}

function send(
  socket: NetlinkSocket,
  type: number,
  flags: number,
  message: LinkMessage,
  op: string,
): LinkMessage[] {
  return socket.request({ type, flags, payload: encodeLinkMessage(message), op }).map((m) =>
    decodeLinkMessage(m.payload)
  );
}

// Statistics are large and unused; skip them where the kernel supports it (4.20+).
const EXT_MASK: LinkAttr = { kind: "extMask", value: RTEXT_FILTER_SKIP_STATS };

/** Lists all links. Equivalent to: `ip link show`. */
export function linkList(socket: NetlinkSocket): Link[] {
  return send(
    socket,
    RTM_GETLINK,
    NLM_F_DUMP,
    { header: ifinfo(AF_UNSPEC), attrs: [EXT_MASK] },
    "list links",
  ).map(linkFromMessage);
}

function getLink(socket: NetlinkSocket, ref: LinkRef): Link {
  const message: LinkMessage = typeof ref === "number"
    ? { header: ifinfo(AF_UNSPEC, ref), attrs: [EXT_MASK] }
    : { header: ifinfo(AF_UNSPEC), attrs: [{ kind: "ifname", value: ref }, EXT_MASK] };
  if (typeof ref === "number" && !(Number.isInteger(ref) && ref > 0)) {
    throw new RangeError(`Cannot find link ${ref}: index must be a positive integer`);
  }
  let replies: LinkMessage[];
  try {
    replies = send(socket, RTM_GETLINK, 0, message, `find link ${JSON.stringify(ref)}`);
  } catch (error) {
    if (isNotFound(error)) throw new LinkNotFoundError(ref, { cause: error });
    throw error;
  }
  if (replies.length !== 1) throw new LinkNotFoundError(ref);
  return linkFromMessage(replies[0]);
}

/** Finds a link by name; throws {@linkcode LinkNotFoundError}. Equivalent to: `ip link show eth0`. */
export function linkByName(socket: NetlinkSocket, name: string): Link {
  return getLink(socket, name);
}

/** Finds a link by index; throws {@linkcode LinkNotFoundError}. */
export function linkByIndex(socket: NetlinkSocket, index: number): Link {
  return getLink(socket, index);
}

/** Resolves a {@linkcode LinkRef} to an index (a name costs one lookup). */
export function linkIndex(socket: NetlinkSocket, ref: LinkRef): number {
  return typeof ref === "number" ? ref : getLink(socket, ref).index;
}

function checkName(name: string): void {
  // IFNAMSIZ is 16 including the NUL.
  if (name === "" || new TextEncoder().encode(name).length > 15 || /[\s/:]/.test(name)) {
    throw new RangeError(
      `Cannot use interface name "${name}": 1-15 bytes without "/", ":" or spaces`,
    );
  }
}

function checkMtu(mtu: number | undefined): void {
  if (mtu !== undefined && !(Number.isInteger(mtu) && mtu > 0 && mtu <= 0xffffffff)) {
    throw new RangeError(`Cannot use MTU ${mtu}: must be a positive integer`);
  }
}

/** Options for {@linkcode linkAddBridge}. */
export interface BridgeSpec {
  name: string;
  /** @default {undefined} (kernel default) */
  mtu?: number;
  /** @default {undefined} (random) */
  mac?: string;
  /** Sets `vlan_filtering`. @default {undefined} (kernel default, off) */
  vlanFiltering?: boolean;
  /** Sets `vlan_default_pvid`. @default {undefined} (kernel default, 1) */
  vlanDefaultPvid?: number;
}

/** Builds the RTM_NEWLINK body that creates a bridge (exported for byte tests). */
export function bridgeAddMessage(spec: BridgeSpec): LinkMessage {
  checkName(spec.name);
  checkMtu(spec.mtu);
  const attrs: LinkAttr[] = [{ kind: "ifname", value: spec.name }];
  if (spec.mtu !== undefined) attrs.push({ kind: "mtu", value: spec.mtu });
  if (spec.mac !== undefined) attrs.push({ kind: "address", value: spec.mac });
  const data: BridgeAttr[] = [];
  if (spec.vlanFiltering !== undefined) {
    data.push({ kind: "vlanFiltering", value: spec.vlanFiltering ? 1 : 0 });
  }
  if (spec.vlanDefaultPvid !== undefined) {
    data.push({ kind: "vlanDefaultPvid", value: spec.vlanDefaultPvid });
  }
  const info: LinkInfoAttr[] = [{ kind: "kind", value: "bridge" }];
  if (data.length) info.push({ kind: "bridgeData", value: data });
  attrs.push({ kind: "linkinfo", value: info });
  return { header: ifinfo(AF_UNSPEC), attrs };
}

/** Creates a bridge and returns it. Equivalent to: `ip link add br0 type bridge`. */
export function linkAddBridge(socket: NetlinkSocket, spec: BridgeSpec): Link {
  send(
    socket,
    RTM_NEWLINK,
    NLM_F_CREATE | NLM_F_EXCL,
    bridgeAddMessage(spec),
    `add bridge "${spec.name}"`,
  );
  return getLink(socket, spec.name);
}

/** Options for {@linkcode linkAddVeth}. */
export interface VethSpec {
  /** Name of the end created in the socket's namespace. */
  name: string;
  /** Name of the peer end. */
  peerName: string;
  /** MTU of both ends (unless `peerMtu` is given). @default {undefined} */
  mtu?: number;
  /** @default {mtu} */
  peerMtu?: number;
  /** @default {undefined} (random) */
  mac?: string;
  /** @default {undefined} (random) */
  peerMac?: string;
  /**
   * Namespace for the peer end (`IFLA_NET_NS_FD`); it is created there
   * directly, in the same request. @default {undefined} (same namespace)
   */
  peerNetns?: NetnsFd | number;
}

function fdOf(netns: NetnsFd | number): number {
  return typeof netns === "number" ? netns : netns.fd;
}

/** Builds the RTM_NEWLINK body that creates a veth pair (exported for byte tests). */
export function vethAddMessage(spec: VethSpec): LinkMessage {
  checkName(spec.name);
  checkName(spec.peerName);
  checkMtu(spec.mtu);
  checkMtu(spec.peerMtu);
  const attrs: LinkAttr[] = [{ kind: "ifname", value: spec.name }];
  if (spec.mtu !== undefined) attrs.push({ kind: "mtu", value: spec.mtu });
  if (spec.mac !== undefined) attrs.push({ kind: "address", value: spec.mac });
  const peer: LinkAttr[] = [{ kind: "ifname", value: spec.peerName }];
  const peerMtu = spec.peerMtu ?? spec.mtu;
  if (peerMtu !== undefined) peer.push({ kind: "mtu", value: peerMtu });
  if (spec.peerMac !== undefined) peer.push({ kind: "address", value: spec.peerMac });
  if (spec.peerNetns !== undefined) peer.push({ kind: "netnsFd", value: fdOf(spec.peerNetns) });
  attrs.push({
    kind: "linkinfo",
    value: [
      { kind: "kind", value: "veth" },
      {
        kind: "vethData",
        value: [{ kind: "peer", value: { header: ifinfo(AF_UNSPEC), attrs: peer } }],
      },
    ],
  });
  return { header: ifinfo(AF_UNSPEC), attrs };
}

/**
 * Creates a veth pair in one request, the peer possibly in another namespace,
 * and returns the local end. Equivalent to:
 * `ip link add veth0 type veth peer name eth0 netns NS`.
 */
export function linkAddVeth(socket: NetlinkSocket, spec: VethSpec): Link {
  send(
    socket,
    RTM_NEWLINK,
    NLM_F_CREATE | NLM_F_EXCL,
    vethAddMessage(spec),
    `add veth "${spec.name}" with peer "${spec.peerName}"`,
  );
  return getLink(socket, spec.name);
}

/** Options for {@linkcode linkAddDummy}. */
export interface DummySpec {
  name: string;
  /** @default {undefined} */
  mtu?: number;
  /** @default {undefined} (random) */
  mac?: string;
}

/** Creates a dummy link. Equivalent to: `ip link add d0 type dummy` (needs CONFIG_DUMMY). */
export function linkAddDummy(socket: NetlinkSocket, spec: DummySpec): Link {
  checkName(spec.name);
  checkMtu(spec.mtu);
  const attrs: LinkAttr[] = [{ kind: "ifname", value: spec.name }];
  if (spec.mtu !== undefined) attrs.push({ kind: "mtu", value: spec.mtu });
  if (spec.mac !== undefined) attrs.push({ kind: "address", value: spec.mac });
  attrs.push({ kind: "linkinfo", value: [{ kind: "kind", value: "dummy" }] });
  send(
    socket,
    RTM_NEWLINK,
    NLM_F_CREATE | NLM_F_EXCL,
    { header: ifinfo(AF_UNSPEC), attrs },
    `add dummy "${spec.name}"`,
  );
  return getLink(socket, spec.name);
}

/** Deletes a link (a veth takes its peer with it). Equivalent to: `ip link del eth0`. */
export function linkDel(socket: NetlinkSocket, ref: LinkRef): void {
  const index = linkIndex(socket, ref);
  send(
    socket,
    RTM_DELLINK,
    0,
    { header: ifinfo(AF_UNSPEC, index), attrs: [] },
    `delete link ${JSON.stringify(ref)}`,
  );
}

function setLink(
  socket: NetlinkSocket,
  ref: LinkRef,
  change: { flags?: number; mask?: number; attrs?: (LinkAttr | UnknownAttr)[] },
  what: string,
): void {
  const index = linkIndex(socket, ref);
  send(
    socket,
    RTM_SETLINK,
    0,
    {
      header: ifinfo(AF_UNSPEC, index, change.flags ?? 0, change.mask ?? 0),
      attrs: change.attrs ?? [],
    },
    `set ${what} of link ${JSON.stringify(ref)}`,
  );
}

/** Sets a link up. Equivalent to: `ip link set eth0 up`. */
export function linkSetUp(socket: NetlinkSocket, ref: LinkRef): void {
  setLink(socket, ref, { flags: IFF_UP, mask: IFF_UP }, "state up");
}

/** Sets a link down. Equivalent to: `ip link set eth0 down`. */
export function linkSetDown(socket: NetlinkSocket, ref: LinkRef): void {
  setLink(socket, ref, { flags: 0, mask: IFF_UP }, "state down");
}

/**
 * Enslaves a link to a master (bridge), or releases it with `null`.
 * Equivalent to: `ip link set veth0 master br0` / `ip link set veth0 nomaster`.
 */
export function linkSetMaster(
  socket: NetlinkSocket,
  ref: LinkRef,
  master: LinkRef | null,
): void {
  const masterIndex = master === null ? 0 : linkIndex(socket, master);
  setLink(
    socket,
    ref,
    { attrs: [{ kind: "master", value: masterIndex }] },
    master === null ? "no master" : `master ${JSON.stringify(master)}`,
  );
}

/** Sets the MTU. Equivalent to: `ip link set eth0 mtu 1400`. */
export function linkSetMtu(socket: NetlinkSocket, ref: LinkRef, mtu: number): void {
  checkMtu(mtu);
  setLink(socket, ref, { attrs: [{ kind: "mtu", value: mtu }] }, `MTU ${mtu}`);
}

/** Sets the hardware address. Equivalent to: `ip link set eth0 address 02:00:00:00:00:01`. */
export function linkSetMac(socket: NetlinkSocket, ref: LinkRef, mac: string): void {
  setLink(socket, ref, { attrs: [{ kind: "address", value: mac }] }, `address ${mac}`);
}

/** Sets or clears IFF_PROMISC. Equivalent to: `ip link set eth0 promisc on|off`. */
export function linkSetPromisc(socket: NetlinkSocket, ref: LinkRef, on: boolean): void {
  setLink(
    socket,
    ref,
    { flags: on ? IFF_PROMISC : 0, mask: IFF_PROMISC },
    `promisc ${on ? "on" : "off"}`,
  );
}

/** Moves a link into the namespace of an open netns fd. Equivalent to: `ip link set eth0 netns NS`. */
export function linkSetNsFd(socket: NetlinkSocket, ref: LinkRef, netns: NetnsFd | number): void {
  setLink(socket, ref, { attrs: [{ kind: "netnsFd", value: fdOf(netns) }] }, "namespace");
}

/** Renames a link (it must be down). Equivalent to: `ip link set eth0 name eth1`. */
export function linkSetName(socket: NetlinkSocket, ref: LinkRef, name: string): void {
  checkName(name);
  setLink(socket, ref, { attrs: [{ kind: "ifname", value: name }] }, `name "${name}"`);
}

/** Builds the AF_BRIDGE RTM_SETLINK body that sets bridge-port options (exported for byte tests). */
export function bridgePortMessage(index: number, attrs: BridgePortAttr[]): LinkMessage {
  return { header: ifinfo(AF_BRIDGE, index), attrs: [{ kind: "protinfo", value: attrs }] };
}

function setBridgePort(
  socket: NetlinkSocket,
  ref: LinkRef,
  attr: BridgePortAttr,
  what: string,
): void {
  const index = linkIndex(socket, ref);
  send(
    socket,
    RTM_SETLINK,
    0,
    bridgePortMessage(index, [attr]),
    `set ${what} on bridge port ${JSON.stringify(ref)}`,
  );
}

/** Sets hairpin mode on a bridge port. Equivalent to: `bridge link set dev veth0 hairpin on`. */
export function linkSetHairpin(socket: NetlinkSocket, ref: LinkRef, on: boolean): void {
  setBridgePort(
    socket,
    ref,
    { kind: "mode", value: on ? BRIDGE_MODE_HAIRPIN : BRIDGE_MODE_VEB },
    `hairpin ${on ? "on" : "off"}`,
  );
}

/** Sets port isolation on a bridge port. Equivalent to: `bridge link set dev veth0 isolated on`. */
export function linkSetIsolated(socket: NetlinkSocket, ref: LinkRef, on: boolean): void {
  setBridgePort(
    socket,
    ref,
    { kind: "isolated", value: on ? 1 : 0 },
    `isolated ${on ? "on" : "off"}`,
  );
}

/** Options for {@linkcode bridgeVlanAdd} and {@linkcode bridgeVlanDel}. */
export interface BridgeVlanOptions {
  /** Ingress untagged frames get this VLAN. @default {false} */
  pvid?: boolean;
  /** Egress frames leave untagged. @default {false} */
  untagged?: boolean;
  /** Apply to the bridge device itself (`self`). @default {false} */
  self?: boolean;
  /** Apply through the master (`master`). @default {false} */
  master?: boolean;
}

/** Builds the AF_BRIDGE body that adds or removes a port VLAN (exported for byte tests). */
export function bridgeVlanMessage(
  index: number,
  vid: number,
  options: BridgeVlanOptions = {},
): LinkMessage {
  if (!(Number.isInteger(vid) && vid >= 1 && vid <= 4094)) {
    throw new RangeError(`Cannot use VLAN id ${vid}: must be between 1 and 4094`);
  }
  const spec: { kind: "flags"; value: number }[] = [];
  const bridgeFlags = (options.self ? BRIDGE_FLAGS_SELF : 0) |
    (options.master ? BRIDGE_FLAGS_MASTER : 0);
  if (bridgeFlags) spec.push({ kind: "flags", value: bridgeFlags });
  const flags = (options.pvid ? BRIDGE_VLAN_INFO_PVID : 0) |
    (options.untagged ? BRIDGE_VLAN_INFO_UNTAGGED : 0);
  return {
    header: ifinfo(AF_BRIDGE, index),
    attrs: [{
      kind: "bridgeAfSpec",
      value: [...spec, { kind: "vlanInfo", value: { flags, vid } }],
    }],
  };
}

/**
 * Adds a VLAN to a bridge port (needs a VLAN-filtering kernel). Equivalent to:
 * `bridge vlan add dev veth0 vid 10 pvid untagged`.
 */
export function bridgeVlanAdd(
  socket: NetlinkSocket,
  ref: LinkRef,
  vid: number,
  options: BridgeVlanOptions = {},
): void {
  const index = linkIndex(socket, ref);
  send(
    socket,
    RTM_SETLINK,
    0,
    bridgeVlanMessage(index, vid, options),
    `add VLAN ${vid} to bridge port ${JSON.stringify(ref)}`,
  );
}

/** Removes a VLAN from a bridge port. Equivalent to: `bridge vlan del dev veth0 vid 10`. */
export function bridgeVlanDel(
  socket: NetlinkSocket,
  ref: LinkRef,
  vid: number,
  options: BridgeVlanOptions = {},
): void {
  const index = linkIndex(socket, ref);
  send(
    socket,
    RTM_DELLINK,
    0,
    bridgeVlanMessage(index, vid, options),
    `delete VLAN ${vid} from bridge port ${JSON.stringify(ref)}`,
  );
}

/**
 * Lists the VLANs of every bridge port and bridge, keyed by link index.
 * Equivalent to: `bridge vlan show`.
 */
export function bridgeVlanList(socket: NetlinkSocket): Map<number, BridgeVlanInfo[]> {
  const replies = send(
    socket,
    RTM_GETLINK,
    NLM_F_DUMP,
    { header: ifinfo(AF_BRIDGE), attrs: [{ kind: "extMask", value: RTEXT_FILTER_BRVLAN }] },
    "list bridge VLANs",
  );
  const out = new Map<number, BridgeVlanInfo[]>();
  for (const reply of replies) {
    const spec = attrValue(reply.attrs, "bridgeAfSpec") ?? [];
    const vlans: BridgeVlanInfo[] = [];
    for (const attr of spec) if (attr.kind === "vlanInfo") vlans.push(attr.value);
    out.set(reply.header.index, vlans);
  }
  return out;
}

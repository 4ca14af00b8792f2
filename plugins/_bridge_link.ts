/**
 * The bridge plugin's kernel steps over in-process netlink: ensure the
 * bridge, create the veth pair (container end created directly in the
 * container namespace), attach the host end, VLANs, the container's
 * addresses and routes, gateway addresses on the bridge, forwarding and the
 * wait for the port to come up. Messages follow the reference plugin.
 *
 * Every function here is synchronous except the waits; none switches
 * namespaces across an `await` (container work goes through a handle whose
 * socket was opened inside the container namespace, and sysctls through
 * `withNetns`, which only takes synchronous callbacks).
 *
 * @module
 */
import {
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  attrValue,
  BRIDGE_MODE_HAIRPIN,
  BRIDGE_MODE_VEB,
  bridgeAddMessage,
  bridgePortMessage,
  type BridgeSpec,
  bridgeVlanMessage,
  encodeLinkMessage,
  IFA_F_DADFAILED,
  IFA_F_TENTATIVE,
  IFF_UP,
  isExist,
  isNotFound,
  type Link,
  type LinkMessage,
  LinkNotFoundError,
  NetlinkError,
  type NetlinkHandle,
  type NetnsFd,
  NLM_F_CREATE,
  NLM_F_EXCL,
  RTM_DELLINK,
  RTM_NEWLINK,
  RTM_SETLINK,
  withNetns,
} from "../lib/netlink/mod.ts";
import { OsError } from "../lib/sys/libc.ts";
import { errnoDescription } from "../lib/sys/errno.ts";
import { readSysctl, writeSysctl } from "../lib/sys/sysctl.ts";
import type { Result, Route } from "../lib/cni/types.ts";
import { type Cidr, cidrContains, formatIp, parseIp, tryParseCidr } from "../lib/ip/cidr.ts";
import type { BridgeConf } from "./_bridge_config.ts";
import { ADDED_DEFAULT_ROUTES, type GatewayAddress, goIpNet } from "./_bridge_result.ts";

/**
 * An error's text as the Go plugins print it: kernel errors as Go's lowercase
 * errno strings ("file exists"), anything else by its message.
 */
export function goErrorText(error: unknown): string {
  if (error instanceof NetlinkError || error instanceof OsError) {
    const text = errnoDescription(error.errno);
    return text.charAt(0).toLowerCase() + text.slice(1);
  }
  return error instanceof Error ? error.message : String(error);
}

/** A link by name, or undefined when there is none. */
export function findLink(handle: NetlinkHandle, name: string): Link | undefined {
  try {
    return handle.linkByName(name);
  } catch (error) {
    if (error instanceof LinkNotFoundError) return undefined;
    throw error;
  }
}

function ignoreErrors(fn: () => void): void {
  try {
    fn();
  } catch {
    // Best effort, as the reference plugin (`_, _ = sysctl.Sysctl(...)`).
  }
}

/** Throws the reference's error when `link` (named `name`) exists but is not a bridge. */
export function checkBridgeKind(link: Link | undefined, name: string): void {
  if (link !== undefined && link.kind !== "bridge") {
    throw new Error(
      `failed to create bridge "${name}": "${name}" already exists but is not a bridge`,
    );
  }
}

/** How the bridge is created when missing (pure, for byte tests). */
export function bridgeSpecFor(conf: BridgeConf): BridgeSpec {
  const spec: BridgeSpec = { name: conf.bridge };
  if (conf.mtu > 0) spec.mtu = conf.mtu;
  if (conf.vlan !== 0 || conf.vlanTrunkSet) spec.vlanFiltering = true;
  return spec;
}

/**
 * Creates the bridge unless it exists, sets promiscuous mode if configured,
 * `accept_ra=0` and up. An existing link of another kind is refused before
 * anything about it changes (the reference sets promisc on it first).
 * Equivalent to: `ip link add cni0 type bridge; ip link set cni0 up`.
 */
export function ensureBridge(host: NetlinkHandle, conf: BridgeConf): Link {
  const name = conf.bridge;
  const fail = (why: string) => new Error(`failed to create bridge "${name}": ${why}`);
  let link = findLink(host, name);
  if (link === undefined) {
    try {
      host.socket.request({
        type: RTM_NEWLINK,
        flags: NLM_F_CREATE | NLM_F_EXCL,
        payload: encodeLinkMessage(bridgeAddMessage(bridgeSpecFor(conf))),
        op: `add bridge "${name}"`,
      });
    } catch (error) {
      // Another ADD may have created it meanwhile; that is fine.
      if (!isExist(error)) throw fail(`could not add "${name}": ${goErrorText(error)}`);
    }
    link = findLink(host, name);
    if (link === undefined) throw fail(`could not lookup "${name}": Link not found`);
  }
  checkBridgeKind(link, name);
  if (conf.promiscMode && !link.promisc) {
    try {
      host.linkSetPromisc(link.index, true);
    } catch (error) {
      throw fail(`could not set promiscuous mode on "${name}": ${goErrorText(error)}`);
    }
  }
  ignoreErrors(() => writeSysctl(`net/ipv6/conf/${name}/accept_ra`, "0"));
  if (!link.up) {
    try {
      host.linkSetUp(link.index);
    } catch (error) {
      throw fail(goErrorText(error));
    }
  }
  // Read again: the MAC read here is the one a gateway address pins.
  return host.linkByIndex(link.index);
}

/** A random host-side veth name: `veth` + 8 lowercase hex digits. */
export function randomVethName(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return "veth" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Options for {@linkcode createVeth}. */
export interface CreateVethOptions {
  /** Namespace of the peer (created there directly). @default {undefined} (the handle's own) */
  netns?: NetnsFd;
  /** Handle in the peer's namespace (to read the new interface). */
  container: NetlinkHandle;
  /** 0 for the kernel default. */
  mtu: number;
  /** Container MAC. @default {undefined} (random) */
  mac?: string;
  /** Host-side name generator. @default {randomVethName} */
  hostName?: () => string;
}

/** The two ends of a new veth pair. */
export interface VethPair {
  host: Link;
  container: Link;
}

/**
 * Creates a veth pair in one request: the host end (random `vethXXXXXXXX`
 * name, retried on a name clash up to 10 times) in the handle's namespace
 * and the container end `ifName` directly in the container namespace.
 * Equivalent to: `ip link add vethXXXX type veth peer name eth0 netns NS`.
 */
export function createVeth(
  host: NetlinkHandle,
  ifName: string,
  options: CreateVethOptions,
): VethPair {
  const nextName = options.hostName ?? randomVethName;
  for (let attempt = 0; attempt < 10; attempt++) {
    const hostName = nextName();
    try {
      const hostLink = host.linkAddVeth({
        name: hostName,
        peerName: ifName,
        peerNetns: options.netns,
        mtu: options.mtu > 0 ? options.mtu : undefined,
        peerMac: options.mac,
      });
      return { host: hostLink, container: options.container.linkByName(ifName) };
    } catch (error) {
      if (!isExist(error)) throw new Error(`failed to make veth pair: ${goErrorText(error)}`);
      // EEXIST names either end: retry only when the random host name was taken.
      if (
        findLink(host, hostName) !== undefined && findLink(options.container, ifName) === undefined
      ) {
        continue;
      }
      throw new Error(
        `container veth name ("${ifName}") peer provided ("${hostName}") already exists`,
      );
    }
  }
  throw new Error("failed to find a unique veth name");
}

/** Options for {@linkcode attachHostVeth}. */
export interface AttachOptions {
  hairpin: boolean;
  isolated: boolean;
}

/**
 * Sets the host end up with `accept_ra=0`, enslaves it to the bridge and sets
 * hairpin and port isolation. Equivalent to: `ip link set vethX master br up;
 * bridge link set dev vethX hairpin on|off isolated on|off`.
 */
export function attachHostVeth(
  host: NetlinkHandle,
  veth: Link,
  bridge: Link,
  options: AttachOptions,
): void {
  ignoreErrors(() => writeSysctl(`net/ipv6/conf/${veth.name}/accept_ra`, "0"));
  // Up and master in one request (the reference sends two).
  const upAndMaster: LinkMessage = {
    header: { family: AF_UNSPEC, type: 0, index: veth.index, flags: IFF_UP, change: IFF_UP },
    attrs: [{ kind: "master", value: bridge.index }],
  };
  try {
    host.socket.request({
      type: RTM_SETLINK,
      payload: encodeLinkMessage(upAndMaster),
      op: `connect "${veth.name}" to bridge "${bridge.name}"`,
    });
  } catch (error) {
    throw new Error(
      `failed to connect "${veth.name}" to bridge ${bridge.name}: ${goErrorText(error)}`,
    );
  }
  const port = bridgePortMessage(veth.index, [
    { kind: "mode", value: options.hairpin ? BRIDGE_MODE_HAIRPIN : BRIDGE_MODE_VEB },
    { kind: "isolated", value: options.isolated ? 1 : 0 },
  ]);
  try {
    host.socket.request({
      type: RTM_SETLINK,
      payload: encodeLinkMessage(port),
      op: `set bridge port options of "${veth.name}"`,
    });
  } catch (error) {
    throw new Error(`failed to setup hairpin mode for ${veth.name}: ${goErrorText(error)}`);
  }
}

/** One VLAN change on a bridge port. */
export interface PortVlanRequest {
  /** `RTM_SETLINK` adds, `RTM_DELLINK` removes. */
  type: number;
  message: LinkMessage;
  /** Error text prefix, as the reference words it. */
  what: string;
}

/**
 * The VLAN requests for a new bridge port (pure, for byte tests): remove
 * the existing (default) VLANs unless `preserveDefaultVlan`, add `vlan` as
 * PVID untagged, add each trunk id tagged, and with a trunk but no `vlan`
 * keep VLAN 1 as PVID untagged.
 */
export function portVlanRequests(
  conf: BridgeConf,
  port: { index: number; name: string },
  existing: readonly number[],
): PortVlanRequest[] {
  const trunk = conf.vlans ?? [];
  if (conf.vlan === 0 && trunk.length === 0) return [];
  const out: PortVlanRequest[] = [];
  if (!conf.preserveDefaultVlan) {
    for (const vid of existing) {
      out.push({
        type: RTM_DELLINK,
        message: bridgeVlanMessage(port.index, vid, { master: true }),
        what: `failed to remove default vlan on interface "${port.name}"`,
      });
    }
  }
  const what = `failed to setup vlan tag on interface "${port.name}"`;
  if (conf.vlan !== 0) {
    out.push({
      type: RTM_SETLINK,
      message: bridgeVlanMessage(port.index, conf.vlan, {
        pvid: true,
        untagged: true,
        master: true,
      }),
      what,
    });
  } else {
    out.push({
      type: RTM_SETLINK,
      message: bridgeVlanMessage(port.index, 1, { pvid: true, untagged: true, master: true }),
      what,
    });
  }
  for (const vid of trunk) {
    out.push({
      type: RTM_SETLINK,
      message: bridgeVlanMessage(port.index, vid, { master: true }),
      what,
    });
  }
  return out;
}

/** Applies {@linkcode portVlanRequests} for a port (lists its current VLANs first when needed). */
export function setupPortVlans(host: NetlinkHandle, conf: BridgeConf, port: Link): void {
  if (conf.vlan === 0 && (conf.vlans ?? []).length === 0) return;
  const existing = conf.preserveDefaultVlan
    ? []
    : (host.bridgeVlanList().get(port.index) ?? []).map((info) => info.vid);
  for (const request of portVlanRequests(conf, port, existing)) {
    try {
      host.socket.request({
        type: request.type,
        payload: encodeLinkMessage(request.message),
        op: "change bridge port VLAN",
      });
    } catch (error) {
      throw new Error(`${request.what}: ${goErrorText(error)}`);
    }
  }
}

/** Options for {@linkcode configureContainer}. */
export interface ConfigureOptions {
  netns: NetnsFd;
  enableDad: boolean;
  /** Wait this long for IPv6 duplicate address detection. @default {5000} */
  settleTimeoutMs?: number;
}

/**
 * Configures the container interface from the result (the reference's
 * sysctls plus `ipam.ConfigureIface`): DAD and ARP sysctls, IPv6 enabled
 * where needed, every address, link up, IPv6 settling, then each route (a
 * route without `gw` goes via its family's first gateway).
 */
export async function configureContainer(
  container: NetlinkHandle,
  ifName: string,
  result: Result,
  options: ConfigureOptions,
): Promise<void> {
  const ips = result.ips ?? [];
  const hasV6 = ips.some((ip) => tryParseCidr(ip.address)?.address.family === 6);
  withNetns(options.netns, () => {
    if (options.enableDad) {
      ignoreErrors(() => writeSysctl(`net/ipv6/conf/${ifName}/enhanced_dad`, "1"));
      ignoreErrors(() => writeSysctl(`net/ipv6/conf/${ifName}/accept_dad`, "1"));
    } else {
      ignoreErrors(() => writeSysctl(`net/ipv6/conf/${ifName}/accept_dad`, "0"));
    }
    ignoreErrors(() => writeSysctl(`net/ipv4/conf/${ifName}/arp_notify`, "1"));
    if (!hasV6) return;
    for (const iface of ["lo", ifName]) {
      const key = `net/ipv6/conf/${iface}/disable_ipv6`;
      let value: string;
      try {
        value = readSysctl(key);
      } catch {
        continue; // the reference only logs this
      }
      if (value === "0") continue;
      try {
        writeSysctl(key, "0");
      } catch (error) {
        throw new Error(
          `failed to enable IPv6 for interface "${iface}" (${key}=${value}): ${goErrorText(error)}`,
        );
      }
    }
    ignoreErrors(() => writeSysctl(`net/ipv6/conf/${ifName}/keep_addr_on_down`, "1"));
  });

  const link = container.linkByName(ifName);
  const gateways: { 4?: string; 6?: string } = {};
  for (const ip of ips) {
    const cidr = tryParseCidr(ip.address);
    if (cidr === undefined) throw new Error(`failed to add IP addr ${ip.address} to "${ifName}"`);
    try {
      container.addrAdd(link.index, {
        address: formatIp(cidr.address),
        prefixLength: cidr.prefixLength,
      });
    } catch (error) {
      throw new Error(
        `failed to add IP addr ${JSON.stringify(ip)} to "${ifName}": ${goErrorText(error)}`,
      );
    }
    if (ip.gateway !== undefined) {
      const family = parseIp(ip.gateway).family;
      gateways[family] ??= ip.gateway;
    }
  }
  try {
    container.linkSetUp(link.index);
  } catch (error) {
    throw new Error(`failed to set "${ifName}" UP: ${goErrorText(error)}`);
  }
  if (gateways[6] !== undefined) {
    await settleAddresses(container, link, options.settleTimeoutMs ?? 5000);
  }
  for (const route of result.routes ?? []) {
    const dst = tryParseCidr(route.dst);
    if (dst === undefined) {
      throw new Error(`failed to add route '${route.dst}': invalid destination`);
    }
    const gw = route.gw ?? gateways[dst.address.family];
    try {
      container.routeAppend({
        dst: dst.prefixLength === 0
          ? undefined
          : { address: formatIp(dst.address), prefixLength: dst.prefixLength },
        family: dst.address.family === 4 ? AF_INET : AF_INET6,
        gw,
        oif: link.index,
        priority: route.priority,
        table: route.table,
        scope: route.scope,
      });
    } catch (error) {
      throw new Error(
        `failed to add route '${routeText(route, dst, gw, ifName)}': ${goErrorText(error)}`,
      );
    }
  }
}

/** netlink's `Scope.String()`. */
const SCOPE_NAMES: Record<number, string> = {
  0: "universe",
  200: "site",
  253: "link",
  254: "host",
  255: "nowhere",
};
const IPV4_ZERO_BYTES = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0];

/**
 * A route as upstream's `ConfigureIface` names it when the kernel refuses it:
 * `{10.0.0.0 ffffff00} via 10.0.0.1 dev eth0 metric 0 (Scope: universe,
 * Table: 0)` (the destination is Go's %v of a `net.IPNet` value).
 */
function routeText(route: Route, dst: Cidr, gw: string | undefined, ifName: string): string {
  const added = ADDED_DEFAULT_ROUTES.has(route) && dst.address.family === 4;
  const scope = SCOPE_NAMES[route.scope ?? 0] ?? "unknown";
  return `${goIpNet(dst, "%v", added ? IPV4_ZERO_BYTES : undefined)} via ${
    gw === undefined ? "<nil>" : formatIp(parseIp(gw))
  } dev ${ifName} metric ${route.priority ?? 0} (Scope: ${scope}, Table: ${route.table ?? 0})`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until no IPv6 address of the link is tentative; fails on DADFAILED
 * or when the timeout passes (the reference's `ip.SettleAddresses`).
 */
export async function settleAddresses(
  handle: NetlinkHandle,
  link: Link,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let tentative = false;
    for (const addr of handle.addrList({ link: link.index, family: AF_INET6 })) {
      if (addr.flags & IFA_F_DADFAILED) {
        throw new Error(`link ${link.name} has address ${addr.address} in DADFAILED state`);
      }
      if (addr.flags & IFA_F_TENTATIVE) tentative = true;
    }
    if (!tentative) return;
    if (Date.now() > deadline) {
      throw new Error(
        `link ${link.name} still has tentative addresses after ${timeoutMs / 1000} seconds`,
      );
    }
    await sleep(100);
  }
}

/** Options for {@linkcode ensureGatewayAddress}. */
export interface GatewayOptions {
  forceAddress: boolean;
  /** The bridge's MAC as read before this container's port joined: the one to pin. */
  mac?: string;
}

/**
 * Puts a gateway address on the bridge (the reference's `ensureAddr`): done
 * when present; an IPv4 bridge with another address, or an overlapping IPv6
 * one, is an error unless `forceAddress` (then that address is removed).
 * Afterwards pins the bridge MAC so it no longer follows its ports.
 */
export function ensureGatewayAddress(
  host: NetlinkHandle,
  bridge: Link,
  gateway: GatewayAddress,
  options: GatewayOptions,
): void {
  const gw = parseIp(gateway.address);
  const wanted = `${formatIp(gw)}/${gateway.prefixLength}`;
  const family = gw.family === 4 ? AF_INET : AF_INET6;
  const wantedCidr = tryParseCidr(wanted)!;
  for (const addr of host.addrList({ link: bridge.index, family })) {
    const text = `${addr.address}/${addr.prefixLength}`;
    if (text === wanted) return;
    const existing = tryParseCidr(text)!;
    const overlaps = cidrContains(existing, gw) || cidrContains(wantedCidr, existing.address);
    if (family === AF_INET || overlaps) {
      if (!options.forceAddress) {
        throw new Error(`"${bridge.name}" already has an IP address different from ${wanted}`);
      }
      try {
        host.addrDel(bridge.index, { address: addr.address, prefixLength: addr.prefixLength });
      } catch (error) {
        throw new Error(
          `could not remove IP address from "${bridge.name}": ${goErrorText(error)}`,
        );
      }
    }
  }
  try {
    host.addrAdd(bridge.index, { address: formatIp(gw), prefixLength: gateway.prefixLength });
  } catch (error) {
    if (!isExist(error)) {
      throw new Error(`could not add IP address to "${bridge.name}": ${goErrorText(error)}`);
    }
  }
  // Pin the MAC the bridge had before this container's port joined, as the
  // reference does (a new bridge's random one, not the port's). A bridge
  // whose last port left (an earlier ADD that failed and was undone) has
  // none, all zeros, which the kernel refuses: then pin the MAC it has now.
  const zero = "00:00:00:00:00:00";
  const before = options.mac !== zero ? options.mac : undefined;
  const mac = before ?? host.linkByIndex(bridge.index).mac;
  if (mac !== undefined && mac !== zero) {
    try {
      host.linkSetMac(bridge.index, mac);
    } catch (error) {
      throw new Error(`could not set bridge's mac: ${goErrorText(error)}`);
    }
  }
}

/** Turns on IPv4 or IPv6 forwarding unless it is on already. */
export function enableForwarding(family: 4 | 6): void {
  const key = family === 4 ? "net/ipv4/ip_forward" : "net/ipv6/conf/all/forwarding";
  try {
    if (readSysctl(key) === "1") return;
    writeSysctl(key, "1");
  } catch (error) {
    throw new Error(`failed to enable forwarding: ${goErrorText(error)}`);
  }
}

/**
 * Sleeps between checks of the host port's state. The reference checks at
 * 0, 50, 550, 1550 and 2550 ms; a veth usually comes up a few ms after the
 * first check, so the first 50 ms are split into short steps (same checks
 * at 50 ms and later, same deadline, the answer 40 ms sooner).
 */
export const PORT_UP_SLEEPS_MS: readonly number[] = [0, 1, 2, 4, 8, 16, 19, 500, 1000, 1000];

/**
 * Waits until the host veth is operationally up; `bridge port in error
 * state: <state>` after the last try. Returns the link as last read.
 */
export async function waitPortUp(host: NetlinkHandle, name: string): Promise<Link> {
  let link = host.linkByName(name);
  for (let i = 0; i < PORT_UP_SLEEPS_MS.length; i++) {
    if (PORT_UP_SLEEPS_MS[i] > 0) await sleep(PORT_UP_SLEEPS_MS[i]);
    link = host.linkByName(name);
    if (link.operState === "up") return link;
  }
  throw new Error(`bridge port in error state: ${link.operState}`);
}

/** Sets a link's alias (`IFLA_IFALIAS`). Equivalent to: `ip link set veth0 alias TEXT`. */
export function setLinkAlias(handle: NetlinkHandle, index: number, alias: string): void {
  handle.socket.request({
    type: RTM_SETLINK,
    payload: encodeLinkMessage({
      header: { family: AF_UNSPEC, type: 0, index, flags: 0, change: 0 },
      attrs: [{ kind: "ifalias", value: alias }],
    }),
    op: `set alias of link ${index}`,
  });
}

/** A link's alias, if it has one. */
export function linkAlias(link: Link): string | undefined {
  return attrValue(link.message.attrs, "ifalias");
}

/** Deletes a link if it exists (ENODEV is fine). */
export function deleteLinkIfExists(handle: NetlinkHandle, name: string): boolean {
  try {
    handle.linkDel(name);
    return true;
  } catch (error) {
    if (error instanceof LinkNotFoundError || isNotFound(error)) return false;
    throw error;
  }
}

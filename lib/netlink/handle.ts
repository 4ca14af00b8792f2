/**
 * `NetlinkHandle`: an rtnetlink socket bound to one network namespace with
 * link, address and route operations as methods, like Go netlink's `Handle`.
 * `openHandle({ netns })` enters the namespace only to open the socket and
 * leaves at once; the socket keeps working there afterwards.
 *
 * @module
 */
import { NETLINK_ROUTE } from "./consts.ts";
import {
  addrAdd,
  addrDel,
  type Address,
  type AddressSpec,
  addrList,
  type AddrListOptions,
  addrReplace,
} from "./_addr.ts";
import {
  type BridgeSpec,
  bridgeVlanAdd,
  bridgeVlanDel,
  bridgeVlanList,
  type BridgeVlanOptions,
  type DummySpec,
  type Link,
  linkAddBridge,
  linkAddDummy,
  linkAddVeth,
  linkByIndex,
  linkByName,
  linkDel,
  linkIndex,
  linkList,
  type LinkRef,
  linkSetDown,
  linkSetHairpin,
  linkSetIsolated,
  linkSetMac,
  linkSetMaster,
  linkSetMtu,
  linkSetName,
  linkSetNsFd,
  linkSetPromisc,
  linkSetUp,
  type VethSpec,
} from "./_link.ts";
import type { BridgeVlanInfo } from "./messages.ts";
import {
  type Route,
  routeAdd,
  routeAppend,
  routeDel,
  routeList,
  type RouteListOptions,
  routeReplace,
  type RouteSpec,
} from "./_route.ts";
import { NetlinkSocket } from "./socket.ts";
import { type NetnsFd, withNetns } from "../sys/netns.ts";

/** Options for {@linkcode openHandle}. */
export interface OpenHandleOptions {
  /**
   * Network namespace (path or open fd) to operate in.
   * @default {undefined} (the calling thread's namespace)
   */
  netns?: string | NetnsFd;
  /**
   * Give up on a reply after this many milliseconds (0 waits forever).
   * @default {0}
   */
  receiveTimeoutMs?: number;
}

/**
 * Route-netlink operations in one network namespace. Methods are
 * synchronous; names mirror `ip` commands. Close it or use `using`.
 */
export class NetlinkHandle implements Disposable {
  /** The underlying socket (for raw requests). */
  readonly socket: NetlinkSocket;

  constructor(socket: NetlinkSocket) {
    this.socket = socket;
  }

  /** Lists all links. Equivalent to: `ip link show`. */
  linkList(): Link[] {
    return linkList(this.socket);
  }
  /** Finds a link by name; throws `LinkNotFoundError`. */
  linkByName(name: string): Link {
    return linkByName(this.socket, name);
  }
  /** Finds a link by index; throws `LinkNotFoundError`. */
  linkByIndex(index: number): Link {
    return linkByIndex(this.socket, index);
  }
  /** Resolves a name or index to an index; throws `LinkNotFoundError`. */
  linkIndex(ref: LinkRef): number {
    return linkIndex(this.socket, ref);
  }
  /** Creates a bridge. Equivalent to: `ip link add br0 type bridge`. */
  linkAddBridge(spec: BridgeSpec): Link {
    return linkAddBridge(this.socket, spec);
  }
  /** Creates a veth pair, the peer optionally in another namespace, in one request. */
  linkAddVeth(spec: VethSpec): Link {
    return linkAddVeth(this.socket, spec);
  }
  /** Creates a dummy link (needs CONFIG_DUMMY). */
  linkAddDummy(spec: DummySpec): Link {
    return linkAddDummy(this.socket, spec);
  }
  /** Deletes a link. Equivalent to: `ip link del eth0`. */
  linkDel(ref: LinkRef): void {
    linkDel(this.socket, ref);
  }
  /** Equivalent to: `ip link set eth0 up`. */
  linkSetUp(ref: LinkRef): void {
    linkSetUp(this.socket, ref);
  }
  /** Equivalent to: `ip link set eth0 down`. */
  linkSetDown(ref: LinkRef): void {
    linkSetDown(this.socket, ref);
  }
  /** Equivalent to: `ip link set veth0 master br0` (`null`: `nomaster`). */
  linkSetMaster(ref: LinkRef, master: LinkRef | null): void {
    linkSetMaster(this.socket, ref, master);
  }
  /** Equivalent to: `ip link set veth0 nomaster`. */
  linkSetNoMaster(ref: LinkRef): void {
    linkSetMaster(this.socket, ref, null);
  }
  /** Equivalent to: `ip link set eth0 mtu 1400`. */
  linkSetMtu(ref: LinkRef, mtu: number): void {
    linkSetMtu(this.socket, ref, mtu);
  }
  /** Equivalent to: `ip link set eth0 address MAC`. */
  linkSetMac(ref: LinkRef, mac: string): void {
    linkSetMac(this.socket, ref, mac);
  }
  /** Equivalent to: `ip link set eth0 promisc on|off`. */
  linkSetPromisc(ref: LinkRef, on: boolean): void {
    linkSetPromisc(this.socket, ref, on);
  }
  /** Equivalent to: `ip link set eth0 netns NS`. */
  linkSetNsFd(ref: LinkRef, netns: NetnsFd | number): void {
    linkSetNsFd(this.socket, ref, netns);
  }
  /** Equivalent to: `ip link set eth0 name eth1`. */
  linkSetName(ref: LinkRef, name: string): void {
    linkSetName(this.socket, ref, name);
  }
  /** Equivalent to: `bridge link set dev veth0 hairpin on|off`. */
  linkSetHairpin(ref: LinkRef, on: boolean): void {
    linkSetHairpin(this.socket, ref, on);
  }
  /** Equivalent to: `bridge link set dev veth0 isolated on|off`. */
  linkSetIsolated(ref: LinkRef, on: boolean): void {
    linkSetIsolated(this.socket, ref, on);
  }
  /** Equivalent to: `bridge vlan add dev veth0 vid N [pvid] [untagged]`. */
  bridgeVlanAdd(ref: LinkRef, vid: number, options: BridgeVlanOptions = {}): void {
    bridgeVlanAdd(this.socket, ref, vid, options);
  }
  /** Equivalent to: `bridge vlan del dev veth0 vid N`. */
  bridgeVlanDel(ref: LinkRef, vid: number, options: BridgeVlanOptions = {}): void {
    bridgeVlanDel(this.socket, ref, vid, options);
  }
  /** Equivalent to: `bridge vlan show`; keyed by link index. */
  bridgeVlanList(): Map<number, BridgeVlanInfo[]> {
    return bridgeVlanList(this.socket);
  }
  /** Equivalent to: `ip addr show [dev D]`. */
  addrList(options: AddrListOptions = {}): Address[] {
    return addrList(this.socket, options);
  }
  /** Equivalent to: `ip addr add A/N dev D`. */
  addrAdd(ref: LinkRef, spec: AddressSpec): void {
    addrAdd(this.socket, ref, spec);
  }
  /** Equivalent to: `ip addr replace A/N dev D`. */
  addrReplace(ref: LinkRef, spec: AddressSpec): void {
    addrReplace(this.socket, ref, spec);
  }
  /** Equivalent to: `ip addr del A/N dev D`. */
  addrDel(ref: LinkRef, spec: AddressSpec): void {
    addrDel(this.socket, ref, spec);
  }
  /** Equivalent to: `ip route show [table T] [dev D]`. */
  routeList(options: RouteListOptions = {}): Route[] {
    return routeList(this.socket, options);
  }
  /** Equivalent to: `ip route add ...`. */
  routeAdd(spec: RouteSpec): void {
    routeAdd(this.socket, spec);
  }
  /** Equivalent to: `ip route replace ...`. */
  routeReplace(spec: RouteSpec): void {
    routeReplace(this.socket, spec);
  }
  /** Equivalent to: `ip route append ...`. */
  routeAppend(spec: RouteSpec): void {
    routeAppend(this.socket, spec);
  }
  /** Equivalent to: `ip route del ...`. */
  routeDel(spec: RouteSpec): void {
    routeDel(this.socket, spec);
  }

  /** Closes the socket (idempotent). */
  close(): void {
    this.socket.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Opens an rtnetlink handle, inside `netns` when given (the thread enters the
 * namespace only to create the socket). Throws `NetnsNotFoundError` for a bad
 * namespace path. Requires `--allow-ffi`; changes need CAP_NET_ADMIN there.
 *
 * @example Usage
 * ```ts ignore
 * using handle = openHandle({ netns: "/var/run/netns/blue" });
 * handle.addrAdd("eth0", { address: "10.1.0.2", prefixLength: 24 });
 * handle.linkSetUp("eth0");
 * ```
 */
export function openHandle(options: OpenHandleOptions = {}): NetlinkHandle {
  const open = () =>
    NetlinkSocket.open({ protocol: NETLINK_ROUTE, receiveTimeoutMs: options.receiveTimeoutMs });
  const socket = options.netns === undefined ? open() : withNetns(options.netns, open);
  return new NetlinkHandle(socket);
}

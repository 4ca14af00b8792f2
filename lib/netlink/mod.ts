/**
 * In-process rtnetlink over Deno FFI: links (bridge, veth with the peer in
 * another namespace, dummy), addresses and routes, with kernel errors as
 * errno values. IP addresses are strings, prefix lengths numbers.
 *
 * ```ts ignore
 * import { openHandle, openNetnsFd } from "./lib/netlink/mod.ts";
 *
 * using host = openHandle();
 * using ns = openNetnsFd("/var/run/netns/blue");
 * const bridge = host.linkAddBridge({ name: "cni0" });
 * host.linkAddVeth({ name: "veth1234", peerName: "eth0", peerNetns: ns });
 * host.linkSetMaster("veth1234", bridge.index);
 * host.linkSetUp("veth1234");
 *
 * using ctr = openHandle({ netns: "/var/run/netns/blue" });
 * ctr.addrAdd("eth0", { address: "10.22.0.2", prefixLength: 16 });
 * ctr.linkSetUp("eth0");
 * ctr.routeAdd({ gw: "10.22.0.1" });
 * ```
 *
 * Requires `--allow-ffi` and CAP_NET_ADMIN for changes.
 *
 * @module
 */
export * from "./consts.ts";
export * from "./error.ts";
export * from "./socket.ts";
export * from "./messages.ts";
export {
  bridgeAddMessage,
  type BridgePortInfo,
  bridgePortMessage,
  type BridgeSpec,
  bridgeVlanMessage,
  type BridgeVlanOptions,
  type DummySpec,
  type Link,
  linkFromMessage,
  type LinkRef,
  type OperState,
  vethAddMessage,
  type VethSpec,
} from "./_link.ts";
export {
  type Address,
  addressFromMessage,
  addressMessage,
  type AddressSpec,
  type AddrListOptions,
} from "./_addr.ts";
export {
  type Prefix,
  type Route,
  routeFromMessage,
  type RouteListOptions,
  routeMessage,
  type RouteSpec,
} from "./_route.ts";
export * from "./handle.ts";
export {
  type AttrTable,
  attrValue,
  decodeNlMessages,
  decodeRawAttrs,
  encodeNlMessage,
  encodeRawAttrs,
  type NlMessage,
  type NlMsgHeader,
  type RawAttr,
  type UnknownAttr,
} from "./codec.ts";
export {
  isSameNetns,
  netnsExists,
  NetnsFd,
  NetnsNotFoundError,
  NetnsRestoreError,
  openNetnsFd,
  withNetns,
} from "../sys/netns.ts";

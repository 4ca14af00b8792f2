/**
 * Route operations over a {@linkcode NetlinkSocket}: list, add, replace,
 * append and delete IPv4/IPv6 routes. Defaults follow the Go netlink library
 * the reference plugins use: table main, scope universe, protocol boot, type
 * unicast.
 *
 * Private: the public surface is `NetlinkHandle` (plus the types and pure
 * message builders `mod.ts` re-exports). Changes require CAP_NET_ADMIN in
 * the socket's network namespace.
 *
 * @module
 */
import {
  AF_INET,
  AF_UNSPEC,
  NLM_F_APPEND,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  RT_SCOPE_NOWHERE,
  RT_SCOPE_UNIVERSE,
  RT_TABLE_MAIN,
  RT_TABLE_UNSPEC,
  RTM_DELROUTE,
  RTM_F_CLONED,
  RTM_GETROUTE,
  RTM_NEWROUTE,
  RTN_UNICAST,
  RTN_UNSPEC,
  RTPROT_BOOT,
  RTPROT_UNSPEC,
} from "./consts.ts";
import { attrValue } from "./codec.ts";
import { ipFamily } from "./_ip.ts";
import { linkIndex, type LinkRef } from "./_link.ts";
import {
  decodeRouteMessage,
  encodeRouteMessage,
  type RouteAttr,
  type RouteMessage,
  type RouteMetricAttr,
} from "./messages.ts";
import type { NetlinkSocket } from "./socket.ts";

/** An address with a prefix length, e.g. `{ address: "10.0.0.0", prefixLength: 24 }`. */
export interface Prefix {
  address: string;
  prefixLength: number;
}

/** A route to add, replace or delete. */
export interface RouteSpec {
  /** Destination; omit for a default route (then `gw`, `src` or `family` gives the family). */
  dst?: Prefix;
  /** Gateway (`RTA_GATEWAY`). @default {undefined} */
  gw?: string;
  /** Output link (`RTA_OIF`). @default {undefined} */
  oif?: LinkRef;
  /** Preferred source (`RTA_PREFSRC`, `ip route ... src`). @default {undefined} */
  src?: string;
  /** `AF_INET`/`AF_INET6` when no address gives it. @default {undefined} */
  family?: number;
  /** RT_SCOPE_*; `ip` uses link for routes without a gateway, Go leaves universe. @default {0} */
  scope?: number;
  /** Routing table. @default {254} (main) */
  table?: number;
  /** RTPROT_*. @default {3} (boot) */
  protocol?: number;
  /** RTN_*. @default {1} (unicast) */
  type?: number;
  /** Metric (`RTA_PRIORITY`). @default {undefined} (kernel: 0 for IPv4, 1024 for IPv6) */
  priority?: number;
  /** Route MTU (`RTAX_MTU`). @default {undefined} */
  mtu?: number;
  /** Advertised MSS (`RTAX_ADVMSS`). @default {undefined} */
  advmss?: number;
}

/** A route as read from the kernel. */
export interface Route {
  family: number;
  /** Undefined for a default route (prefix length 0). */
  dst: Prefix | undefined;
  /** Source prefix (`RTA_SRC`) of a source-specific route. */
  srcPrefix: Prefix | undefined;
  gw: string | undefined;
  /** Output link index. */
  oif: number | undefined;
  /** Preferred source (`RTA_PREFSRC`). */
  src: string | undefined;
  scope: number;
  table: number;
  protocol: number;
  type: number;
  priority: number | undefined;
  mtu: number | undefined;
  advmss: number | undefined;
  tos: number;
  /** RTM_F_* */
  flags: number;
  /** The decoded message. */
  message: RouteMessage;
}

/** Converts a decoded `RTM_NEWROUTE` into a {@linkcode Route}. */
export function routeFromMessage(message: RouteMessage): Route {
  const { header, attrs } = message;
  const dst = attrValue(attrs, "dst");
  const src = attrValue(attrs, "src");
  const metrics = attrValue(attrs, "metrics") ?? [];
  return {
    family: header.family,
    dst: dst === undefined ? undefined : { address: dst, prefixLength: header.dstLength },
    srcPrefix: src === undefined ? undefined : { address: src, prefixLength: header.srcLength },
    gw: attrValue(attrs, "gateway"),
    oif: attrValue(attrs, "oif"),
    src: attrValue(attrs, "prefsrc"),
    scope: header.scope,
    table: attrValue(attrs, "table") ?? header.table,
    protocol: header.protocol,
    type: header.type,
    priority: attrValue(attrs, "priority"),
    mtu: attrValue<RouteMetricAttr, "mtu">(metrics, "mtu"),
    advmss: attrValue<RouteMetricAttr, "advmss">(metrics, "advmss"),
    tos: header.tos,
    flags: header.flags,
    message,
  };
}

function familyOf(spec: RouteSpec): number {
  const families = [spec.dst?.address, spec.gw, spec.src]
    .filter((a): a is string => a !== undefined)
    .map(ipFamily);
  if (spec.family !== undefined) families.push(spec.family);
  if (families.length === 0) {
    throw new TypeError("Cannot build route: no dst, gw, src or family gives its address family");
  }
  if (families.some((f) => f !== families[0])) {
    throw new TypeError("Cannot build route: dst, gw and src are not the same address family");
  }
  return families[0];
}

/**
 * Builds the `rtmsg` body for a route request with a resolved output index
 * (exported for byte tests). With `deleting`, unset scope, protocol and type
 * are sent as "nowhere"/0/0 so the kernel matches any, as Go's `RouteDel` does.
 */
export function routeMessage(
  spec: RouteSpec,
  options: { oif?: number; deleting?: boolean } = {},
): RouteMessage {
  const family = familyOf(spec);
  const max = family === AF_INET ? 32 : 128;
  const dstLength = spec.dst?.prefixLength ?? 0;
  if (!(Number.isInteger(dstLength) && dstLength >= 0 && dstLength <= max)) {
    throw new RangeError(`Cannot use route prefix length ${dstLength}: must be 0-${max}`);
  }
  const attrs: RouteAttr[] = [];
  // Host bits in dst are sent as given (the kernel rejects them for IPv4), like Go.
  if (spec.dst !== undefined) attrs.push({ kind: "dst", value: spec.dst.address });
  if (spec.src !== undefined) attrs.push({ kind: "prefsrc", value: spec.src });
  if (spec.gw !== undefined) attrs.push({ kind: "gateway", value: spec.gw });
  const table = spec.table ?? RT_TABLE_MAIN;
  if (table >= 256) attrs.push({ kind: "table", value: table });
  if (spec.priority !== undefined) attrs.push({ kind: "priority", value: spec.priority });
  const metrics: RouteMetricAttr[] = [];
  if (spec.mtu !== undefined) metrics.push({ kind: "mtu", value: spec.mtu });
  if (spec.advmss !== undefined) metrics.push({ kind: "advmss", value: spec.advmss });
  if (metrics.length) attrs.push({ kind: "metrics", value: metrics });
  if (options.oif !== undefined) attrs.push({ kind: "oif", value: options.oif });
  return {
    header: {
      family,
      dstLength,
      srcLength: 0,
      tos: 0,
      table: table >= 256 ? RT_TABLE_UNSPEC : table,
      protocol: spec.protocol ?? (options.deleting ? RTPROT_UNSPEC : RTPROT_BOOT),
      scope: spec.scope ?? (options.deleting ? RT_SCOPE_NOWHERE : RT_SCOPE_UNIVERSE),
      type: spec.type ?? (options.deleting ? RTN_UNSPEC : RTN_UNICAST),
      flags: 0,
    },
    attrs,
  };
}

/** Options for {@linkcode routeList}. */
export interface RouteListOptions {
  /** `AF_INET` or `AF_INET6`. @default {AF_UNSPEC} (both) */
  family?: number;
  /** Only this table; 0 lists all tables. @default {254} (main) */
  table?: number;
  /** Only routes out of this link. @default {undefined} */
  oif?: LinkRef;
}

/** Lists routes (cloned cache entries skipped). Equivalent to: `ip route show [table T] [dev D]`. */
export function routeList(socket: NetlinkSocket, options: RouteListOptions = {}): Route[] {
  const family = options.family ?? AF_UNSPEC;
  const table = options.table ?? RT_TABLE_MAIN;
  const oif = options.oif === undefined ? undefined : linkIndex(socket, options.oif);
  const replies = socket.request({
    type: RTM_GETROUTE,
    flags: NLM_F_DUMP,
    payload: encodeRouteMessage({
      header: {
        family,
        dstLength: 0,
        srcLength: 0,
        tos: 0,
        table: 0,
        protocol: 0,
        scope: 0,
        type: 0,
        flags: 0,
      },
      attrs: [],
    }),
    op: "list routes",
  });
  const out: Route[] = [];
  for (const reply of replies) {
    const route = routeFromMessage(decodeRouteMessage(reply.payload));
    if (route.flags & RTM_F_CLONED) continue;
    if (family !== AF_UNSPEC && route.family !== family) continue;
    if (table !== 0 && route.table !== table) continue;
    if (oif !== undefined && route.oif !== oif) continue;
    out.push(route);
  }
  return out;
}

function describe(spec: RouteSpec): string {
  const dst = spec.dst ? `${spec.dst.address}/${spec.dst.prefixLength}` : "default";
  const via = spec.gw ? ` via ${spec.gw}` : "";
  const dev = spec.oif !== undefined ? ` dev ${JSON.stringify(spec.oif)}` : "";
  return `route ${dst}${via}${dev}`;
}

function change(
  socket: NetlinkSocket,
  type: number,
  flags: number,
  spec: RouteSpec,
  verb: string,
): void {
  const oif = spec.oif === undefined ? undefined : linkIndex(socket, spec.oif);
  const message = routeMessage(spec, { oif, deleting: type === RTM_DELROUTE });
  socket.request({
    type,
    flags,
    payload: encodeRouteMessage(message),
    op: `${verb} ${describe(spec)}`,
  });
}

/** Adds a route (EEXIST if present). Equivalent to: `ip route add 10.0.0.0/8 via 10.1.0.1`. */
export function routeAdd(socket: NetlinkSocket, spec: RouteSpec): void {
  change(socket, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, spec, "add");
}

/** Adds or replaces a route. Equivalent to: `ip route replace 10.0.0.0/8 via 10.1.0.1`. */
export function routeReplace(socket: NetlinkSocket, spec: RouteSpec): void {
  change(socket, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, spec, "replace");
}

/** Appends a route (IPv6 ECMP sibling). Equivalent to: `ip route append ...`. */
export function routeAppend(socket: NetlinkSocket, spec: RouteSpec): void {
  change(socket, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_APPEND, spec, "append");
}

/** Deletes a route (ESRCH if absent). Equivalent to: `ip route del 10.0.0.0/8 via 10.1.0.1`. */
export function routeDel(socket: NetlinkSocket, spec: RouteSpec): void {
  change(socket, RTM_DELROUTE, 0, spec, "delete");
}

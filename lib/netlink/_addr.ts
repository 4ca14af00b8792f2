/**
 * Address operations over a {@linkcode NetlinkSocket}: list, add, replace and
 * delete IPv4/IPv6 addresses. Addresses are strings, prefix lengths numbers.
 *
 * Private: the public surface is `NetlinkHandle` (plus the types and pure
 * message builders `mod.ts` re-exports). Changes require CAP_NET_ADMIN in
 * the socket's network namespace.
 *
 * @module
 */
import {
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  RT_SCOPE_UNIVERSE,
  RTM_DELADDR,
  RTM_GETADDR,
  RTM_NEWADDR,
} from "./consts.ts";
import { attrValue } from "./codec.ts";
import { formatIp, ipFamily, parseIp } from "./_ip.ts";
import { linkIndex, type LinkRef } from "./_link.ts";
import {
  type AddrAttr,
  type AddrMessage,
  decodeAddrMessage,
  encodeAddrMessage,
} from "./messages.ts";
import type { NetlinkSocket } from "./socket.ts";

/** An address to add, replace or delete. */
export interface AddressSpec {
  /** "10.1.2.3" or "fd00::1". */
  address: string;
  prefixLength: number;
  /** IFA_F_* flags, e.g. `IFA_F_NODAD | IFA_F_NOPREFIXROUTE`. @default {0} */
  flags?: number;
  /** RT_SCOPE_*. @default {0} (universe) */
  scope?: number;
  /**
   * IPv4 broadcast. By default it is computed for prefixes shorter than /31,
   * as the Go netlink library (and so the reference plugins) does; `false`
   * sends none (like plain `ip addr add`).
   * @default {"auto"}
   */
  broadcast?: string | false;
  /** IPv4 label (`IFA_LABEL`). @default {undefined} */
  label?: string;
  /** Point-to-point peer (`IFA_ADDRESS` when different from the local address). @default {undefined} */
  peer?: string;
  /** Valid lifetime in seconds (with `preferredLifetime`). @default {undefined} (forever) */
  validLifetime?: number;
  /** Preferred lifetime in seconds. @default {undefined} (forever) */
  preferredLifetime?: number;
}

/** An address as read from the kernel. */
export interface Address {
  /** Link index. */
  index: number;
  family: number;
  /** The local address (`IFA_LOCAL`, else `IFA_ADDRESS`). */
  address: string;
  prefixLength: number;
  /** RT_SCOPE_* */
  scope: number;
  /** All IFA_F_* flags (`IFA_FLAGS` when present). */
  flags: number;
  label: string | undefined;
  broadcast: string | undefined;
  /** Point-to-point peer, if it differs from `address`. */
  peer: string | undefined;
  /** Seconds; 0xffffffff means forever. */
  validLifetime: number | undefined;
  preferredLifetime: number | undefined;
  /** The decoded message. */
  message: AddrMessage;
}

/** Converts a decoded `RTM_NEWADDR` into an {@linkcode Address}. */
export function addressFromMessage(message: AddrMessage): Address {
  const { header, attrs } = message;
  const local = attrValue(attrs, "local");
  const address = attrValue(attrs, "address");
  const cache = attrValue(attrs, "cacheinfo");
  return {
    index: header.index,
    family: header.family,
    address: local ?? address ?? "",
    prefixLength: header.prefixLength,
    scope: header.scope,
    flags: attrValue(attrs, "flags") ?? header.flags,
    label: attrValue(attrs, "label"),
    broadcast: attrValue(attrs, "broadcast"),
    peer: local !== undefined && address !== undefined && address !== local ? address : undefined,
    validLifetime: cache?.valid,
    preferredLifetime: cache?.preferred,
    message,
  };
}

function broadcastOf(bytes: Uint8Array, prefixLength: number): string {
  const out = bytes.slice();
  for (let bit = prefixLength; bit < 32; bit++) out[bit >> 3] |= 0x80 >> (bit & 7);
  return formatIp(out);
}

/** Builds the `ifaddrmsg` body for an address request (exported for byte tests). */
export function addressMessage(index: number, spec: AddressSpec): AddrMessage {
  const bytes = parseIp(spec.address);
  const family = bytes.length === 4 ? AF_INET : AF_INET6;
  const max = bytes.length * 8;
  if (
    !(Number.isInteger(spec.prefixLength) && spec.prefixLength >= 0 && spec.prefixLength <= max)
  ) {
    throw new RangeError(
      `Cannot use prefix length ${spec.prefixLength} for "${spec.address}": must be 0-${max}`,
    );
  }
  const flags = spec.flags ?? 0;
  const local = formatIp(bytes);
  const attrs: AddrAttr[] = [
    { kind: "local", value: local },
    { kind: "address", value: spec.peer ?? local },
  ];
  if (spec.peer !== undefined && ipFamily(spec.peer) !== family) {
    throw new TypeError(
      `Cannot use peer "${spec.peer}" with address "${spec.address}": family mismatch`,
    );
  }
  if (family === AF_INET) {
    let broadcast = spec.broadcast;
    if (broadcast === undefined && spec.prefixLength < 31) {
      broadcast = broadcastOf(bytes, spec.prefixLength);
    }
    if (typeof broadcast === "string" && broadcast !== "0.0.0.0") {
      attrs.push({ kind: "broadcast", value: broadcast });
    }
    if (spec.label !== undefined) attrs.push({ kind: "label", value: spec.label });
  }
  if (spec.validLifetime !== undefined || spec.preferredLifetime !== undefined) {
    attrs.push({
      kind: "cacheinfo",
      value: {
        preferred: spec.preferredLifetime ?? 0xffffffff,
        valid: spec.validLifetime ?? 0xffffffff,
        created: 0,
        updated: 0,
      },
    });
  }
  // ifa_flags holds 8 bits; larger flags (IFA_F_NOPREFIXROUTE) need IFA_FLAGS.
  if (flags > 0xff) attrs.push({ kind: "flags", value: flags });
  return {
    header: {
      family,
      prefixLength: spec.prefixLength,
      flags: flags & 0xff,
      scope: spec.scope ?? RT_SCOPE_UNIVERSE,
      index,
    },
    attrs,
  };
}

function describe(spec: AddressSpec, ref: LinkRef): string {
  return `"${spec.address}/${spec.prefixLength}" on link ${JSON.stringify(ref)}`;
}

/** Options for {@linkcode addrList}. */
export interface AddrListOptions {
  /** Only this link. @default {undefined} (all links) */
  link?: LinkRef;
  /** `AF_INET` or `AF_INET6`. @default {AF_UNSPEC} (both) */
  family?: number;
}

/** Lists addresses. Equivalent to: `ip addr show [dev eth0]`. */
export function addrList(socket: NetlinkSocket, options: AddrListOptions = {}): Address[] {
  const index = options.link === undefined ? undefined : linkIndex(socket, options.link);
  const family = options.family ?? AF_UNSPEC;
  const replies = socket.request({
    type: RTM_GETADDR,
    flags: NLM_F_DUMP,
    payload: encodeAddrMessage({
      header: { family, prefixLength: 0, flags: 0, scope: 0, index: 0 },
      attrs: [],
    }),
    op: "list addresses",
  });
  const out: Address[] = [];
  for (const reply of replies) {
    const address = addressFromMessage(decodeAddrMessage(reply.payload));
    if (index !== undefined && address.index !== index) continue;
    if (family !== AF_UNSPEC && address.family !== family) continue;
    out.push(address);
  }
  return out;
}

function change(
  socket: NetlinkSocket,
  type: number,
  flags: number,
  ref: LinkRef,
  spec: AddressSpec,
  verb: string,
): void {
  const index = linkIndex(socket, ref);
  socket.request({
    type,
    flags,
    payload: encodeAddrMessage(addressMessage(index, spec)),
    op: `${verb} address ${describe(spec, ref)}`,
  });
}

/** Adds an address (EEXIST if present). Equivalent to: `ip addr add 10.1.0.2/24 dev eth0`. */
export function addrAdd(socket: NetlinkSocket, ref: LinkRef, spec: AddressSpec): void {
  change(socket, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ref, spec, "add");
}

/** Adds or updates an address. Equivalent to: `ip addr replace 10.1.0.2/24 dev eth0`. */
export function addrReplace(socket: NetlinkSocket, ref: LinkRef, spec: AddressSpec): void {
  change(socket, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, ref, spec, "replace");
}

/** Deletes an address (EADDRNOTAVAIL if absent). Equivalent to: `ip addr del 10.1.0.2/24 dev eth0`. */
export function addrDel(socket: NetlinkSocket, ref: LinkRef, spec: AddressSpec): void {
  change(socket, RTM_DELADDR, 0, ref, spec, "delete");
}

/**
 * Conntrack cleanup over ctnetlink (`NETLINK_NETFILTER`): delete the flows
 * whose original destination port is a newly mapped (or unmapped) host
 * port, so a stale flow cannot keep steering datagrams to the old target
 * (containernetworking/plugins #123).
 *
 * The kernel does the filtering where it can: one `IPCTNL_MSG_CT_DELETE`
 * per port with a `CTA_FILTER` on protocol and original destination port.
 * That walk skips empty hash buckets without locking them and copies
 * nothing to user space (0.1-1 ms against 9-10 ms for a dump of an idle
 * table of 262144 buckets, whose walk locks every bucket, and more per
 * flow on a busy node). Only TCP and UDP go this way: for other protocols
 * the kernel's filter ignores the port and would flush them all. Kernels
 * without filtered flushes (before 6.12) refuse the request, because it
 * also carries a partial original tuple that fails their exact-tuple parse
 * (`EINVAL`) or the filter itself (`EOPNOTSUPP`); they never read it as
 * "flush everything". Then, like the reference (vishvananda netlink's
 * `ConntrackDeleteFilters`), the family's table is dumped, filtered here
 * and each match deleted by its tuple.
 *
 * In process: no `conntrack` binary is run. Requires `--allow-ffi` and
 * CAP_NET_ADMIN in the current network namespace.
 *
 * @module
 */
import { decodeRawAttrs, encodeRawAttrs, type RawAttr } from "../netlink/codec.ts";
import { NETLINK_NETFILTER, NLA_F_NESTED, NLM_F_DUMP } from "../netlink/consts.ts";
import { NetlinkError } from "../netlink/error.ts";
import { NetlinkSocket } from "../netlink/socket.ts";
import { Errno } from "../sys/errno.ts";

// include/uapi/linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h
const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const CTA_TUPLE_ORIG = 1;
const CTA_ZONE = 18;
const CTA_FILTER = 25;
const CTA_FILTER_ORIG_FLAGS = 1;
const CTA_FILTER_REPLY_FLAGS = 2;
// CTA_FILTER_F_*: which fields of the given original tuple must match.
const CTA_FILTER_F_CTA_PROTO_NUM = 1 << 3;
const CTA_FILTER_F_CTA_PROTO_DST_PORT = 1 << 5;
const CTA_TUPLE_PROTO = 2;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_DST_PORT = 3;
const NFNETLINK_V0 = 0;
const AF_INET = 2;
const AF_INET6 = 10;

/** IP protocol numbers conntrack entries can be filtered by. */
export const IPPROTO = { tcp: 6, udp: 17, sctp: 132 } as const;

function nfgenmsg(family: number): Uint8Array {
  return Uint8Array.of(family, NFNETLINK_V0, 0, 0);
}

function attrType(attr: RawAttr): number {
  return attr.type & ~NLA_F_NESTED & 0x7fff;
}

function find(attrs: readonly RawAttr[], type: number): RawAttr | undefined {
  return attrs.find((attr) => attrType(attr) === type);
}

/** The protocol number and original destination port of a dumped entry's original tuple. */
function protoAndDstPort(tuple: Uint8Array): { proto?: number; port?: number } {
  const proto = find(decodeRawAttrs(tuple), CTA_TUPLE_PROTO);
  if (!proto) return {};
  const attrs = decodeRawAttrs(proto.data);
  const num = find(attrs, CTA_PROTO_NUM);
  const port = find(attrs, CTA_PROTO_DST_PORT);
  return {
    proto: num?.data.length === 1 ? num.data[0] : undefined,
    port: port?.data.length === 2 ? (port.data[0] << 8) | port.data[1] : undefined,
  };
}

/** Options for {@linkcode deleteConntrackByDstPort}. */
export interface ConntrackDeleteOptions {
  /** 4 or 6. */
  family: 4 | 6;
  /** IP protocol number. @default {17} (UDP) */
  protocol?: number;
  /**
   * Let the kernel filter (a filtered flush per port) where it can; false
   * always dumps the table and filters here, as kernels before 6.12 require.
   * @default {true}
   */
  kernelFilter?: boolean;
  /**
   * An open `NETLINK_NETFILTER` socket to send the requests on (the caller
   * closes it); by default one is opened and closed here.
   */
  socket?: ConntrackSocket;
}

/** What {@linkcode deleteConntrackByDstPort} needs of a netlink socket. */
export type ConntrackSocket = Pick<NetlinkSocket, "request">;

// The kernel's filter compares ports only for these; for others it would ignore the port.
const KERNEL_PORT_FILTER_PROTOCOLS: ReadonlySet<number> = new Set([IPPROTO.tcp, IPPROTO.udp]);

function u32le(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
}

/**
 * The flush request for one protocol and original destination port. The
 * partial original tuple is what makes older kernels refuse it instead of
 * flushing the family's whole table.
 */
export function filteredFlushAttrs(protocol: number, port: number): Uint8Array {
  const proto = encodeRawAttrs([
    { type: CTA_PROTO_NUM, data: Uint8Array.of(protocol) },
    { type: CTA_PROTO_DST_PORT, data: Uint8Array.of(port >> 8, port & 0xff) },
  ]);
  const tuple = encodeRawAttrs([{ type: CTA_TUPLE_PROTO | NLA_F_NESTED, data: proto }]);
  const filter = encodeRawAttrs([
    {
      type: CTA_FILTER_ORIG_FLAGS,
      data: u32le(CTA_FILTER_F_CTA_PROTO_NUM | CTA_FILTER_F_CTA_PROTO_DST_PORT),
    },
    { type: CTA_FILTER_REPLY_FLAGS, data: u32le(0) },
  ]);
  return encodeRawAttrs([
    { type: CTA_TUPLE_ORIG | NLA_F_NESTED, data: tuple },
    { type: CTA_FILTER | NLA_F_NESTED, data: filter },
  ]);
}

/** How the entries were found: by the kernel's filter, or by a dump filtered here. */
export type ConntrackDeleteMethod = "filtered flush" | "dump";

/**
 * Deletes the conntrack entries of one family whose original destination
 * port is in `ports` (protocol UDP unless given); returns how (undefined
 * for no ports). Entries that vanish in between are not an error. The
 * kernel filters for TCP and UDP only: its filter ignores the port of other
 * protocols, so those are always dumped.
 *
 * @throws {RangeError} for a port outside 0-65535.
 * @example Usage
 * ```ts ignore
 * deleteConntrackByDstPort([5353], { family: 4 });
 * ```
 */
export function deleteConntrackByDstPort(
  ports: readonly number[],
  options: ConntrackDeleteOptions,
): ConntrackDeleteMethod | undefined {
  if (ports.length === 0) return undefined;
  const bad = ports.find((port) => !Number.isInteger(port) || port < 0 || port > 0xffff);
  if (bad !== undefined) throw new RangeError(`Invalid port ${bad}: must be 0-65535`);
  const protocol = options.protocol ?? IPPROTO.udp;
  const family = options.family === 4 ? AF_INET : AF_INET6;
  using owned = options.socket === undefined
    ? NetlinkSocket.open({ protocol: NETLINK_NETFILTER, receiveTimeoutMs: 5000 })
    : undefined;
  const socket = options.socket ?? owned!;
  if (options.kernelFilter !== false && KERNEL_PORT_FILTER_PROTOCOLS.has(protocol)) {
    try {
      for (const port of new Set(ports)) {
        socket.request({
          type: (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
          payload: new Uint8Array([...nfgenmsg(family), ...filteredFlushAttrs(protocol, port)]),
          op: `flush conntrack entries for port ${port}`,
        });
      }
      return "filtered flush";
    } catch (error) {
      const refused = error instanceof NetlinkError &&
        (error.errno === Errno.EINVAL || error.errno === Errno.EOPNOTSUPP);
      if (!refused) throw error;
      // No filtered flush in this kernel: the dump below does every port.
    }
  }
  deleteByDump(socket, new Set(ports), protocol, family);
  return "dump";
}

function deleteByDump(
  socket: ConntrackSocket,
  wanted: ReadonlySet<number>,
  protocol: number,
  family: number,
): void {
  const entries = socket.request({
    type: (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
    flags: NLM_F_DUMP,
    payload: nfgenmsg(family),
    op: "dump conntrack entries",
  });
  for (const entry of entries) {
    const attrs = decodeRawAttrs(entry.payload.subarray(4));
    const orig = find(attrs, CTA_TUPLE_ORIG);
    if (!orig) continue;
    const { proto, port } = protoAndDstPort(orig.data);
    if (proto !== protocol || port === undefined || !wanted.has(port)) continue;
    const request: RawAttr[] = [{ type: CTA_TUPLE_ORIG | NLA_F_NESTED, data: orig.data }];
    const zone = find(attrs, CTA_ZONE);
    if (zone) request.push({ type: CTA_ZONE, data: zone.data });
    try {
      socket.request({
        type: (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
        payload: new Uint8Array([...nfgenmsg(family), ...encodeRawAttrs(request)]),
        op: `delete conntrack entry for port ${port}`,
      });
    } catch (error) {
      if (!(error instanceof NetlinkError && error.errno === Errno.ENOENT)) throw error;
    }
  }
}

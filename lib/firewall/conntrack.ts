/**
 * Conntrack cleanup over ctnetlink (`NETLINK_NETFILTER`): delete the UDP
 * flows whose original destination port is a newly mapped (or unmapped)
 * host port, so a stale flow cannot keep steering datagrams to the old
 * target (containernetworking/plugins #123). Like the reference (vishvananda
 * netlink's `ConntrackDeleteFilters`) it dumps the family's table, filters
 * in user space and deletes each match by its original tuple; it never
 * relies on a kernel-side flush filter, which older kernels would ignore and
 * flush everything.
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

// include/uapi/linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h
const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const CTA_TUPLE_ORIG = 1;
const CTA_ZONE = 18;
const CTA_TUPLE_PROTO = 2;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_DST_PORT = 3;
const NFNETLINK_V0 = 0;
const AF_INET = 2;
const AF_INET6 = 10;
const ENOENT = 2;

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
}

/**
 * Deletes the conntrack entries of one family whose original destination
 * port is in `ports` (protocol UDP unless given). Returns how many went.
 * Entries that vanish in between are not an error.
 *
 * @example Usage
 * ```ts ignore
 * deleteConntrackByDstPort([5353], { family: 4 });
 * ```
 */
export function deleteConntrackByDstPort(
  ports: readonly number[],
  options: ConntrackDeleteOptions,
): number {
  if (ports.length === 0) return 0;
  const wanted = new Set(ports);
  const protocol = options.protocol ?? IPPROTO.udp;
  const family = options.family === 4 ? AF_INET : AF_INET6;
  using socket = NetlinkSocket.open({ protocol: NETLINK_NETFILTER, receiveTimeoutMs: 5000 });
  const entries = socket.request({
    type: (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
    flags: NLM_F_DUMP,
    payload: nfgenmsg(family),
    op: "dump conntrack entries",
  });
  let deleted = 0;
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
      deleted++;
    } catch (error) {
      if (!(error instanceof NetlinkError && error.errno === ENOENT)) throw error;
    }
  }
  return deleted;
}

/**
 * Which link the kernel routes an address through, as `ip route get` asks:
 * one `RTM_GETROUTE` (policy rules, every table, VRFs) and one `RTM_GETLINK`
 * for the name. Reads the two attributes it needs and nothing else, so a
 * plugin that only asks this (portmap) does not carry the rtnetlink message
 * codecs in its bundle (they are most of its size).
 *
 * @module
 */
import { decodeRawAttrs, encodeRawAttrs } from "./codec.ts";
import {
  IFLA_IFNAME,
  NETLINK_ROUTE,
  NLA_TYPE_MASK,
  RTA_DST,
  RTA_OIF,
  RTM_GETLINK,
  RTM_GETROUTE,
} from "./consts.ts";
import { NetlinkError } from "./error.ts";
import { ipFamily, parseIp } from "./_ip.ts";
import { NetlinkSocket } from "./socket.ts";

const RTMSG_BYTES = 12;
const IFINFOMSG_BYTES = 16;

/** The first attribute of `type` after a `headerBytes` fixed header, or undefined. */
function attr(payload: Uint8Array | undefined, headerBytes: number, type: number) {
  if (payload === undefined) return undefined;
  return decodeRawAttrs(payload.subarray(headerBytes))
    .find((a) => (a.type & NLA_TYPE_MASK) === type)?.data;
}

/**
 * The output link index of the route the kernel picks for `dst`; undefined
 * when that route has no output link. Throws `NetlinkError` when nothing
 * routes there (ENETUNREACH, and EINVAL or EACCES for unreachable,
 * blackhole and prohibit routes).
 */
export function routeOutputLink(socket: NetlinkSocket, dst: string): number | undefined {
  const address = parseIp(dst);
  const header = new Uint8Array(RTMSG_BYTES);
  header[0] = ipFamily(dst); // rtm_family
  header[1] = address.length * 8; // rtm_dst_len: a host route
  const [reply] = socket.request({
    type: RTM_GETROUTE,
    payload: Uint8Array.of(...header, ...encodeRawAttrs([{ type: RTA_DST, data: address }])),
    op: `get route to ${dst}`,
  });
  const oif = attr(reply?.payload, RTMSG_BYTES, RTA_OIF);
  return oif?.length === 4
    ? new DataView(oif.buffer, oif.byteOffset, 4).getUint32(0, true)
    : undefined;
}

/** The name of the link with `index` (`IFLA_IFNAME`); undefined when there is none. */
export function linkNameByIndex(socket: NetlinkSocket, index: number): string | undefined {
  const header = new Uint8Array(IFINFOMSG_BYTES);
  new DataView(header.buffer).setInt32(4, index, true); // ifi_index
  let replies;
  try {
    replies = socket.request({ type: RTM_GETLINK, payload: header, op: `get link ${index}` });
  } catch (error) {
    if (error instanceof NetlinkError) return undefined;
    throw error;
  }
  const name = attr(replies[0]?.payload, IFINFOMSG_BYTES, IFLA_IFNAME);
  if (name === undefined) return undefined;
  const end = name.indexOf(0);
  return new TextDecoder().decode(end === -1 ? name : name.subarray(0, end));
}

/**
 * The name of the link the calling thread's namespace routes `dst` through,
 * or undefined when nothing routes there or the route has no link.
 *
 * @example Usage
 * ```ts ignore
 * routingLinkName("10.88.0.3"); // "cni-podman0"
 * ```
 */
export function routingLinkName(dst: string): string | undefined {
  using socket = NetlinkSocket.open({ protocol: NETLINK_ROUTE });
  let oif;
  try {
    oif = routeOutputLink(socket, dst);
  } catch (error) {
    if (error instanceof NetlinkError) return undefined;
    throw error;
  }
  return oif === undefined ? undefined : linkNameByIndex(socket, oif);
}

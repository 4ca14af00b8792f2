/**
 * Private IP and MAC text <-> bytes helpers for the netlink layer. Addresses
 * cross the netlink API as strings; these convert them at the wire boundary
 * with `lib/ip`. Formatting follows glibc `inet_ntop` so strings match
 * `ip -j` output.
 *
 * @module
 */
import { inetNtop, ipFromBytes, ipToBytes, parseIp as parseIpText } from "../ip/cidr.ts";
import { AF_INET, AF_INET6 } from "./consts.ts";

export { formatMac } from "../ip/mac.ts";

/** Kernel addresses are bytes as written: `::ffff:a.b.c.d` stays IPv6 on the wire. */
const WIRE = { keepMapped: true } as const;

/** Parses an IPv4 or IPv6 address into 4 or 16 bytes; throws `SyntaxError` when invalid. */
export function parseIp(text: string): Uint8Array {
  return ipToBytes(parseIpText(text, WIRE));
}

/** The address family (`AF_INET`/`AF_INET6`) of an IP address string. */
export function ipFamily(text: string): number {
  return text.includes(":") ? AF_INET6 : AF_INET;
}

/** Formats 4 or 16 bytes as an IP address string; throws `RangeError` for other lengths. */
export function formatIp(bytes: Uint8Array): string {
  // `ip -j` prints with glibc's inet_ntop.
  return inetNtop(ipFromBytes(bytes, WIRE));
}

/**
 * Parses "aa:bb:cc:dd:ee:ff" with any number of octets, as `ip link set
 * address` takes any link layer's address; throws `SyntaxError`.
 */
export function parseMac(text: string): Uint8Array {
  const parts = text.split(":");
  if (text === "" || parts.some((part) => !/^[0-9a-fA-F]{2}$/.test(part))) {
    throw new SyntaxError(`Cannot parse hardware address "${text}"`);
  }
  return new Uint8Array(parts.map((part) => parseInt(part, 16)));
}

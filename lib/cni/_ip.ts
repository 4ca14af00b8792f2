/**
 * The CNI layer's names for Go's `net` parsing and printing (`net.ParseIP`,
 * `net.ParseCIDR`, `IP.String()`, `IPNet.String()`, `net.ParseMAC`). All the
 * work is `lib/ip`; this only keeps the callers' Go vocabulary.
 *
 * @module
 */

import { type Cidr, type IpAddress, tryParseCidr, tryParseIp } from "../ip/cidr.ts";
import { formatMac, tryParseMac } from "../ip/mac.ts";

export { formatCidr, formatIp } from "../ip/cidr.ts";

/** A parsed CIDR as Go keeps it: `ip` is the written address, host bits included. */
export interface GoCidr extends Cidr {
  readonly ip: IpAddress;
}

/** Go's `net.ParseIP` (IPv4-mapped becomes IPv4), or `undefined` when invalid. */
export function parseIp(text: string): IpAddress | undefined {
  return tryParseIp(text);
}

/** Go's `net.ParseCIDR` keeping the unmasked address (`types.ParseCIDR`), or `undefined`. */
export function parseCidr(text: string): GoCidr | undefined {
  const cidr = tryParseCidr(text);
  return cidr && { ...cidr, ip: cidr.address };
}

/** Go's `IP.To4() != nil`: an IPv4 (or IPv4-mapped, which parsing unwraps) address. */
export function isV4(ip: IpAddress): boolean {
  return ip.family === 4;
}

/** Go's `net.ParseMAC` + `HardwareAddr.String()`; `undefined` when invalid. */
export function parseMacAddress(text: string): string | undefined {
  const bytes = tryParseMac(text);
  return bytes && formatMac(bytes);
}

/**
 * IP addresses and CIDR blocks as Go's `net` package sees them, with the
 * value held as a `bigint` so IPv4 and IPv6 share one arithmetic.
 *
 * Parsing follows Go's `net.ParseIP` / `net.ParseCIDR` (dotted IPv4 without
 * leading zeros, RFC 4291 IPv6 text, no zones) and formatting follows
 * `net.IP.String()` / `net.IPNet.String()` (RFC 5952 compressed lowercase
 * IPv6; IPv4-mapped IPv6 addresses print as dotted IPv4). Addresses are
 * canonicalised the way the CNI plugins do (`To4()` first), so
 * `::ffff:10.0.0.1` parses to the IPv4 address `10.0.0.1`; the
 * `keepMapped` option keeps it IPv6, as `inet_pton` does.
 *
 * {@linkcode inetNtop} prints what glibc's `inet_ntop` prints (and so
 * `iptables-save`, `nft` and `ip`): the same compression, but addresses in
 * `::ffff:0:0/96` and `::w.x.y.z` with a non-zero seventh group keep an
 * embedded dotted IPv4 (`::ffff:1.2.3.4`, `::1.2.3.4`, `::0.1.0.0`) where Go
 * prints `1.2.3.4`, `::102:304` and `::1:0`.
 *
 * @example Usage
 * ```ts
 * import { cidrContains, formatIp, nextIp, parseCidr, parseIp } from "./cidr.ts";
 * const net = parseCidr("10.0.0.0/24");
 * cidrContains(net, parseIp("10.0.0.7")); // true
 * formatIp(nextIp(net.address)!); // "10.0.0.1"
 * ```
 *
 * @module
 */

/** Address family: 4 or 6. */
export type IpFamily = 4 | 6;

/** An IP address: its family and its value as an unsigned integer. */
export interface IpAddress {
  readonly family: IpFamily;
  readonly value: bigint;
}

/**
 * A CIDR block as written: `address` keeps the host bits (Go's
 * `types.ParseCIDR` does too) and `bits` is the mask width of the written
 * form. `bits` differs from the address family only for IPv4-mapped IPv6
 * text such as `::ffff:10.0.0.0/104` (address family 4, `bits` 128), which
 * Go keeps as a 16-byte mask.
 */
export interface Cidr {
  readonly address: IpAddress;
  readonly prefixLength: number;
  readonly bits: 32 | 128;
}

/** Options for the parsing functions. */
export interface ParseIpOptions {
  /**
   * Keep IPv4-mapped IPv6 text (`::ffff:10.0.0.1`) as a family-6 address,
   * as `inet_pton` does, instead of unwrapping it like Go's `To4()`.
   * @default {false}
   */
  keepMapped?: boolean;
}

const V4_MAX = (1n << 32n) - 1n;
const V6_MAX = (1n << 128n) - 1n;
/** `::ffff:0:0/96`, the IPv4-mapped block Go's `To4()` unwraps. */
const V4_MAPPED_PREFIX = 0xffffn << 32n;

/** Number of address bits of a family. */
export function familyBits(family: IpFamily): 32 | 128 {
  return family === 4 ? 32 : 128;
}

function maxValue(family: IpFamily): bigint {
  return family === 4 ? V4_MAX : V6_MAX;
}

/** Makes an address from a family and a value; throws RangeError when it does not fit. */
export function ipAddress(family: IpFamily, value: bigint): IpAddress {
  if (value < 0n || value > maxValue(family)) {
    throw new RangeError(`Cannot make an IPv${family} address from ${value}: out of range`);
  }
  return { family, value };
}

// ---------------------------------------------------------------- parsing

function parseV4Fields(text: string): bigint | undefined {
  const fields = text.split(".");
  if (fields.length !== 4) return undefined;
  let value = 0n;
  for (const field of fields) {
    if (field.length === 0 || field.length > 3 || !/^[0-9]+$/.test(field)) return undefined;
    // Go >= 1.17 rejects octets with leading zeros (ambiguous octal).
    if (field.length > 1 && field[0] === "0") return undefined;
    const octet = Number(field);
    if (octet > 255) return undefined;
    value = (value << 8n) | BigInt(octet);
  }
  return value;
}

/** Mirrors Go's netip.parseIPv6 (which net.ParseIP uses), without zones. */
function parseV6(text: string): bigint | undefined {
  const groups: number[] = [];
  let ellipsis = -1;
  let s = text;
  if (s.startsWith("::")) {
    ellipsis = 0;
    s = s.slice(2);
    if (s.length === 0) return 0n;
  }
  while (groups.length < 8) {
    let off = 0;
    let acc = 0;
    for (; off < s.length; off++) {
      const digit = parseInt(s[off], 16);
      if (Number.isNaN(digit)) break;
      if (off > 3) return undefined; // more than 4 hex digits
      acc = acc * 16 + digit;
    }
    if (off === 0) return undefined;
    if (off < s.length && s[off] === ".") {
      // Embedded IPv4 must take the last two groups.
      if (ellipsis < 0 && groups.length !== 6) return undefined;
      if (groups.length + 2 > 8) return undefined;
      const v4 = parseV4Fields(s);
      if (v4 === undefined) return undefined;
      groups.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      s = "";
      break;
    }
    groups.push(acc);
    s = s.slice(off);
    if (s.length === 0) break;
    if (s[0] !== ":" || s.length === 1) return undefined;
    s = s.slice(1);
    if (s[0] === ":") {
      if (ellipsis >= 0) return undefined; // multiple "::"
      ellipsis = groups.length;
      s = s.slice(1);
      if (s.length === 0) break;
    }
  }
  if (s.length !== 0) return undefined;
  if (groups.length < 8) {
    if (ellipsis < 0) return undefined;
    groups.splice(ellipsis, 0, ...new Array<number>(8 - groups.length).fill(0));
  } else if (ellipsis >= 0) {
    return undefined; // "::" must stand for at least one group
  }
  let value = 0n;
  for (const group of groups) value = (value << 16n) | BigInt(group);
  return value;
}

/** Parses without canonicalising: IPv6 text stays family 6 even when IPv4-mapped. */
function parseRaw(text: string): IpAddress | undefined {
  for (const ch of text) {
    if (ch === ".") {
      const value = parseV4Fields(text);
      return value === undefined ? undefined : { family: 4, value };
    }
    if (ch === ":") {
      const value = parseV6(text);
      return value === undefined ? undefined : { family: 6, value };
    }
    if (ch === "%") return undefined;
  }
  return undefined;
}

/** Go's `To4()`: IPv4-mapped IPv6 becomes IPv4, everything else is unchanged. */
export function canonicalIp(ip: IpAddress): IpAddress {
  if (ip.family === 6 && ip.value >> 32n === 0xffffn) {
    return { family: 4, value: ip.value & V4_MAX };
  }
  return ip;
}

/** Parses an IP address like Go's `net.ParseIP`; returns undefined when invalid. */
export function tryParseIp(text: string, options: ParseIpOptions = {}): IpAddress | undefined {
  const raw = parseRaw(text);
  return raw && (options.keepMapped ? raw : canonicalIp(raw));
}

/**
 * Parses an IP address like Go's `net.ParseIP` (IPv4-mapped IPv6 becomes IPv4
 * unless `keepMapped`).
 * @throws {SyntaxError} when `text` is not an IP address.
 */
export function parseIp(text: string, options: ParseIpOptions = {}): IpAddress {
  const ip = tryParseIp(text, options);
  if (!ip) throw new SyntaxError(`Cannot parse IP address "${text}"`);
  return ip;
}

/** Parses `addr/len` like Go's `net.ParseCIDR`, keeping host bits; undefined when invalid. */
export function tryParseCidr(text: string, options: ParseIpOptions = {}): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const raw = parseRaw(text.slice(0, slash));
  if (!raw) return undefined;
  const prefix = text.slice(slash + 1);
  // Go's dtoi: decimal digits only, any number of leading zeros.
  if (!/^[0-9]+$/.test(prefix)) return undefined;
  const prefixLength = Number(prefix);
  const bits = familyBits(raw.family);
  if (prefixLength > bits) return undefined;
  return { address: options.keepMapped ? raw : canonicalIp(raw), prefixLength, bits };
}

/**
 * Parses `addr/len` like Go's `net.ParseCIDR` (host bits are kept in `address`).
 * @throws {SyntaxError} when `text` is not a CIDR.
 */
export function parseCidr(text: string, options: ParseIpOptions = {}): Cidr {
  const cidr = tryParseCidr(text, options);
  if (!cidr) throw new SyntaxError(`Cannot parse CIDR "${text}"`);
  return cidr;
}

/** Builds a CIDR from an address and prefix length; throws RangeError on a bad length. */
export function cidrOf(address: IpAddress, prefixLength: number): Cidr {
  const bits = familyBits(address.family);
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > bits) {
    throw new RangeError(
      `Cannot use prefix length ${prefixLength} for an IPv${address.family} address`,
    );
  }
  return { address, prefixLength, bits };
}

// ------------------------------------------------------------- formatting

function formatV4(value: bigint): string {
  const n = Number(value);
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function formatV6(value: bigint, ntop: boolean): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the first longest run of at least two zero groups.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  // glibc's inet_ntop keeps the IPv4 tail of ::w.x.y.z and ::ffff:w.x.y.z.
  if (
    ntop && bestStart === 0 && (bestLength === 6 || (bestLength === 5 && groups[5] === 0xffff))
  ) {
    return `::${bestLength === 5 ? "ffff:" : ""}${formatV4(value & V4_MAX)}`;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

/** Formats like Go's `net.IP.String()`: IPv4 dotted, IPv6 RFC 5952, IPv4-mapped as IPv4. */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) return formatV4(ip.value);
  if (ip.value >> 32n === 0xffffn) return formatV4(ip.value & V4_MAX);
  return formatV6(ip.value, false);
}

/**
 * Formats like glibc's `inet_ntop`, the text `iptables-save`, `nft` and `ip`
 * print: {@linkcode formatIp}'s compression, but an IPv4 tail stays dotted in
 * `::ffff:1.2.3.4` (family 6) and in `::1.2.3.4`.
 */
export function inetNtop(ip: IpAddress): string {
  return ip.family === 4 ? formatV4(ip.value) : formatV6(ip.value, true);
}

/**
 * Formats like Go's `net.IPNet.String()`: the address as stored (host bits
 * included) and the prefix length. An IPv4 address under a 16-byte mask
 * prints with the mask's last 32 bits, as Go does.
 */
export function formatCidr(cidr: Cidr): string {
  let prefix = cidr.prefixLength;
  if (cidr.address.family === 4 && cidr.bits === 128) prefix = Math.max(0, prefix - 96);
  return `${formatIp(cidr.address)}/${prefix}`;
}

// ------------------------------------------------------------------ bytes

/** The address as 4 (IPv4) or 16 (IPv6) network-order bytes. */
export function ipToBytes(ip: IpAddress): Uint8Array {
  const out = new Uint8Array(ip.family === 4 ? 4 : 16);
  const view = new DataView(out.buffer);
  if (ip.family === 4) {
    view.setUint32(0, Number(ip.value));
  } else {
    view.setBigUint64(0, ip.value >> 64n);
    view.setBigUint64(8, ip.value & 0xffff_ffff_ffff_ffffn);
  }
  return out;
}

/**
 * Reads 4 or 16 network-order bytes. 16-byte IPv4-mapped input becomes IPv4,
 * as Go's `To4()`, unless `keepMapped`.
 * @throws {RangeError} for any other length.
 */
export function ipFromBytes(bytes: Uint8Array, options: ParseIpOptions = {}): IpAddress {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length === 4) return { family: 4, value: BigInt(view.getUint32(0)) };
  if (bytes.length !== 16) {
    throw new RangeError(`Cannot read an IP address from ${bytes.length} bytes: need 4 or 16`);
  }
  const ip: IpAddress = {
    family: 6,
    value: (view.getBigUint64(0) << 64n) | view.getBigUint64(8),
  };
  return options.keepMapped ? ip : canonicalIp(ip);
}

// ------------------------------------------------------------- arithmetic

/** True when both addresses are the same family and value. */
export function ipsEqual(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.value === b.value;
}

/**
 * Orders two addresses of one family: negative, zero or positive.
 * @throws {TypeError} when the families differ (Go's `ip.Cmp` answers -2 there).
 */
export function compareIps(a: IpAddress, b: IpAddress): number {
  if (a.family !== b.family) {
    throw new TypeError(
      `Cannot compare ${formatIp(a)} with ${formatIp(b)}: address families differ`,
    );
  }
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

/** The next address, or undefined past the family's last address. */
export function nextIp(ip: IpAddress): IpAddress | undefined {
  return ip.value === maxValue(ip.family) ? undefined : { family: ip.family, value: ip.value + 1n };
}

/** The previous address, or undefined before the family's first address. */
export function prevIp(ip: IpAddress): IpAddress | undefined {
  return ip.value === 0n ? undefined : { family: ip.family, value: ip.value - 1n };
}

/** The network mask of a prefix length as an integer of `bits` width. */
export function prefixMask(prefixLength: number, bits: 32 | 128): bigint {
  const width = BigInt(bits);
  const hostBits = width - BigInt(prefixLength);
  return ((1n << width) - 1n) ^ ((1n << hostBits) - 1n);
}

/** Mask applied to the canonical address (an IPv4-mapped mask uses its last 32 bits). */
function familyMask(cidr: Cidr): bigint {
  const mask = prefixMask(cidr.prefixLength, cidr.bits);
  return cidr.address.family === 4 && cidr.bits === 128 ? mask & V4_MAX : mask;
}

/** The network (first) address of the block. */
export function networkAddress(cidr: Cidr): IpAddress {
  return { family: cidr.address.family, value: cidr.address.value & familyMask(cidr) };
}

/** The last address of the block (the IPv4 broadcast address). */
export function lastAddress(cidr: Cidr): IpAddress {
  const f = cidr.address.family;
  return {
    family: f,
    value: (cidr.address.value & familyMask(cidr)) | (maxValue(f) ^ familyMask(cidr)),
  };
}

/** The block with its host bits cleared (`10.1.2.3/8` → `10.0.0.0/8`). */
export function networkOf(cidr: Cidr): Cidr {
  return { ...cidr, address: networkAddress(cidr) };
}

/** True when the address part has bits set beyond the prefix. */
export function hasHostBits(cidr: Cidr): boolean {
  return networkAddress(cidr).value !== cidr.address.value;
}

/** Go's `IPNet.Contains`: same family and equal under the mask. */
export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  if (ip.family !== cidr.address.family) return false;
  const mask = familyMask(cidr);
  return (ip.value & mask) === (cidr.address.value & mask);
}

/** True when two blocks share at least one address. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, networkAddress(b)) || cidrContains(b, networkAddress(a));
}

/** Number of addresses in the block. */
export function cidrSize(cidr: Cidr): bigint {
  return (maxValue(cidr.address.family) ^ familyMask(cidr)) + 1n;
}

/** True for an IPv6 value inside `::ffff:0:0/96` (what Go's `To4()` unwraps). */
export function isIpv4Mapped(ip: IpAddress): boolean {
  return ip.family === 6 && ip.value >> 32n === V4_MAPPED_PREFIX >> 32n;
}

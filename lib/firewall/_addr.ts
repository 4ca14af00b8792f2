/**
 * Minimal IP address handling for rule text: strict parsing and the exact
 * text form `iptables-save` prints (glibc `inet_ntop`), so rules we render
 * compare equal to rules the kernel hands back.
 *
 * Private to lib/firewall; lib/ip/cidr.ts is the project's general CIDR
 * library.
 *
 * @module
 */

/** An IPv4 (4 bytes) or IPv6 (16 bytes) address. */
export interface Addr {
  family: 4 | 6;
  bytes: Uint8Array;
}

const V4_PART = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

function parseV4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((part) => V4_PART.test(part))) return undefined;
  return Uint8Array.from(parts, Number);
}

function parseV6(text: string): Uint8Array | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  let tail: Uint8Array | undefined;
  let body = text;
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".")) {
    tail = parseV4(text.slice(lastColon + 1));
    if (!tail) return undefined;
    body = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = body.split("::");
  if (halves.length > 2) return undefined;
  const words = (half: string) => (half === "" ? [] : half.split(":"));
  const head = words(halves[0]);
  const rest = halves.length === 2 ? words(halves[1]) : [];
  if (![...head, ...rest].every((word) => /^[0-9a-fA-F]{1,4}$/.test(word))) return undefined;
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  const bytes = new Uint8Array(16);
  all.forEach((word, i) => {
    const value = parseInt(word, 16);
    bytes[2 * i] = value >> 8;
    bytes[2 * i + 1] = value & 0xff;
  });
  if (tail) bytes.set(tail, 12);
  return bytes;
}

/** Parses an IP literal strictly (no zone, no brackets, no leading zeros in IPv4). */
export function parseAddr(text: string): Addr | undefined {
  const v4 = parseV4(text);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = text.includes(":") ? parseV6(text) : undefined;
  return v6 ? { family: 6, bytes: v6 } : undefined;
}

/** True for `::ffff:a.b.c.d`, which iptables cannot use in either family. */
export function isV4Mapped(addr: Addr): boolean {
  return addr.family === 6 && addr.bytes.slice(0, 10).every((b) => b === 0) &&
    addr.bytes[10] === 0xff && addr.bytes[11] === 0xff;
}

/** True for 0.0.0.0 and ::. */
export function isUnspecified(addr: Addr): boolean {
  return addr.bytes.every((b) => b === 0);
}

/** Formats like glibc `inet_ntop` (what iptables-save prints). */
export function formatAddr(addr: Addr): string {
  const b = addr.bytes;
  if (addr.family === 4) return Array.from(b).join(".");
  const words = Array.from({ length: 8 }, (_, i) => (b[2 * i] << 8) | b[2 * i + 1]);
  // Longest run of zero words (first one on ties), only if at least two long.
  let best = { base: -1, len: 0 };
  let cur = { base: -1, len: 0 };
  for (let i = 0; i < 8; i++) {
    if (words[i] === 0) {
      cur = cur.base === -1 ? { base: i, len: 1 } : { base: cur.base, len: cur.len + 1 };
      if (cur.len > best.len) best = cur;
    } else {
      cur = { base: -1, len: 0 };
    }
  }
  if (best.len < 2) best = { base: -1, len: 0 };
  let out = "";
  for (let i = 0; i < 8; i++) {
    if (best.base !== -1 && i >= best.base && i < best.base + best.len) {
      if (i === best.base) out += ":";
      continue;
    }
    if (i !== 0) out += ":";
    if (i === 6 && best.base === 0 && (best.len === 6 || (best.len === 5 && words[5] === 0xffff))) {
      out += Array.from(b.slice(12)).join(".");
      break;
    }
    out += words[i].toString(16);
  }
  if (best.base !== -1 && best.base + best.len === 8) out += ":";
  return out;
}

/** An address with a prefix length, as in a CNI result (`10.0.0.2/24`). */
export interface Prefixed {
  addr: Addr;
  prefix: number;
}

/** Parses `ip/len`; returns undefined for anything malformed. */
export function parsePrefixed(text: string): Prefixed | undefined {
  const slash = text.indexOf("/");
  if (slash === -1) return undefined;
  const addr = parseAddr(text.slice(0, slash));
  const len = text.slice(slash + 1);
  if (!addr || !/^(0|[1-9][0-9]{0,2})$/.test(len)) return undefined;
  const prefix = Number(len);
  if (prefix > (addr.family === 4 ? 32 : 128)) return undefined;
  return { addr, prefix };
}

/** The network address of `addr/prefix` (host bits cleared). */
export function networkOf(addr: Addr, prefix: number): Addr {
  const bytes = addr.bytes.slice();
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    bytes[i] &= (0xff << (8 - keep)) & 0xff;
  }
  return { family: addr.family, bytes };
}

/** Host-route length of a family: 32 or 128. */
export function hostBits(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

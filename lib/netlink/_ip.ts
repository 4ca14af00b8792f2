/**
 * Private IP and MAC text <-> bytes helpers for the netlink layer. Addresses
 * cross the netlink API as strings; these convert them at the wire boundary.
 * Formatting follows glibc `inet_ntop` so strings match `ip -j` output.
 *
 * @module
 */
import { AF_INET, AF_INET6 } from "./consts.ts";

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i];
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    out[i] = value;
  }
  return out;
}

function parseGroups(text: string): number[] | undefined {
  if (text === "") return [];
  const groups: number[] = [];
  for (const part of text.split(":")) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(part)) return undefined;
    groups.push(parseInt(part, 16));
  }
  return groups;
}

function parseIpv6(text: string): Uint8Array | undefined {
  let body = text;
  let tail: number[] = [];
  const lastColon = body.lastIndexOf(":");
  if (lastColon !== -1 && body.slice(lastColon + 1).includes(".")) {
    // Embedded IPv4 in the last 32 bits ("::ffff:1.2.3.4").
    const v4 = parseIpv4(body.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail = [(v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]];
    body = body.slice(0, lastColon + 1) + "0";
  }
  const halves = body.split("::");
  if (halves.length > 2) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const head = parseGroups(halves[0]);
    const rest = parseGroups(halves[1]);
    if (head === undefined || rest === undefined) return undefined;
    const restGroups = tail.length ? [...rest.slice(0, -1), ...tail] : rest;
    const missing = 8 - head.length - restGroups.length;
    if (missing < 1) return undefined;
    groups = [...head, ...new Array<number>(missing).fill(0), ...restGroups];
  } else {
    const all = parseGroups(body);
    if (all === undefined) return undefined;
    groups = tail.length ? [...all.slice(0, -1), ...tail] : all;
    if (groups.length !== 8) return undefined;
  }
  const out = new Uint8Array(16);
  groups.forEach((group, i) => {
    out[2 * i] = group >> 8;
    out[2 * i + 1] = group & 0xff;
  });
  return out;
}

/** Parses an IPv4 or IPv6 address into 4 or 16 bytes; throws `SyntaxError` when invalid. */
export function parseIp(text: string): Uint8Array {
  const bytes = text.includes(":") ? parseIpv6(text) : parseIpv4(text);
  if (bytes === undefined) throw new SyntaxError(`Cannot parse IP address "${text}"`);
  return bytes;
}

/** The address family (`AF_INET`/`AF_INET6`) of an IP address string. */
export function ipFamily(text: string): number {
  return text.includes(":") ? AF_INET6 : AF_INET;
}

/** Formats 4 or 16 bytes as an IP address string; throws `RangeError` for other lengths. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  if (bytes.length !== 16) {
    throw new RangeError(`Cannot format IP address: ${bytes.length} bytes, expected 4 or 16`);
  }
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((bytes[2 * i] << 8) | bytes[2 * i + 1]);
  // Longest run of >= 2 zero words (first one on ties), as glibc inet_ntop.
  let bestBase = -1;
  let bestLength = 0;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestBase = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestLength < 2) bestBase = -1;
  let out = "";
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLength) {
      if (i === bestBase) out += ":";
      continue;
    }
    if (i !== 0) out += ":";
    const embeddedV4 = i === 6 && bestBase === 0 &&
      (bestLength === 6 || (bestLength === 5 && words[5] === 0xffff));
    if (embeddedV4) {
      out += Array.from(bytes.subarray(12)).join(".");
      break;
    }
    out += words[i].toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLength === 8) out += ":";
  return out;
}

/** Parses "aa:bb:cc:dd:ee:ff" (any number of octets) into bytes; throws `SyntaxError`. */
export function parseMac(text: string): Uint8Array {
  const parts = text.split(":");
  if (text === "" || parts.some((part) => !/^[0-9a-fA-F]{2}$/.test(part))) {
    throw new SyntaxError(`Cannot parse hardware address "${text}"`);
  }
  return new Uint8Array(parts.map((part) => parseInt(part, 16)));
}

/** Formats bytes as a lowercase colon-separated hardware address. */
export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(":");
}

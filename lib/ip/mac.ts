/**
 * Hardware (MAC) addresses as Go's `net` package reads and prints them.
 *
 * @example Usage
 * ```ts
 * import { formatMac, tryParseMac } from "./mac.ts";
 * formatMac(tryParseMac("0A58.0A01.0005")!); // "0a:58:0a:01:00:05"
 * ```
 *
 * @module
 */

const PAIR = /^[0-9a-fA-F]{2}$/;
const QUAD = /^[0-9a-fA-F]{4}$/;

/**
 * Parses a MAC address like Go's `net.ParseMAC`: 6, 8 or 20 bytes written as
 * `:`- or `-`-separated pairs or `.`-separated groups of four hex digits.
 * Returns undefined when `text` is none of those.
 */
export function tryParseMac(text: string): Uint8Array | undefined {
  if (text.length < 14) return undefined;
  let pairs: string[];
  if (text[2] === ":" || text[2] === "-") {
    if ((text.length + 1) % 3 !== 0) return undefined;
    pairs = text.split(text[2]);
    if (!pairs.every((pair) => PAIR.test(pair))) return undefined;
  } else if (text[4] === ".") {
    if ((text.length + 1) % 5 !== 0) return undefined;
    const quads = text.split(".");
    if (!quads.every((quad) => QUAD.test(quad))) return undefined;
    pairs = quads.flatMap((quad) => [quad.slice(0, 2), quad.slice(2)]);
  } else {
    return undefined;
  }
  if (pairs.length !== 6 && pairs.length !== 8 && pairs.length !== 20) return undefined;
  return Uint8Array.from(pairs, (pair) => parseInt(pair, 16));
}

/** Formats bytes like Go's `HardwareAddr.String()`: lower-case pairs joined by `:`. */
export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * `CNI_ARGS` (`K=V;K2=V2`) parsing with the Go library's `types.LoadArgs`
 * rules and messages, plus the value parsers the reference plugins use
 * (`IgnoreUnknown` booleans, IPs with an optional prefix, MAC addresses).
 *
 * @module
 */

import { goQuote, goQuoteList } from "./_go.ts";
import { formatIp, parseCidr, parseIp, parseMacAddress } from "./_ip.ts";

/** Parses one value; throws an `Error` whose message Go would print after `: `. */
export type ArgParser<T> = (value: string) => T;

/** The parsed arguments: each known key that was given, plus `IgnoreUnknown`. */
export type CniArgs<T> = Partial<T> & { IgnoreUnknown?: boolean };

/**
 * Go's `types.UnmarshallableBool`: `1`/`true`/`0`/`false`, any case.
 *
 * @throws {SyntaxError} `boolean unmarshal error: invalid input <value lower-cased>`.
 */
export function argBool(value: string): boolean {
  const s = value.toLowerCase();
  if (s === "1" || s === "true") return true;
  if (s === "0" || s === "false") return false;
  throw new SyntaxError(`boolean unmarshal error: invalid input ${s}`);
}

/** Go's `types.UnmarshallableString`: the value as given. */
export function argString(value: string): string {
  return value;
}

/**
 * The plugins' `ip.IP` argument: an address, optionally with a prefix length
 * that is ignored. Returns the address in Go's canonical text form.
 *
 * @throws {SyntaxError} `invalid IP address <value>`.
 */
export function argIp(value: string): string {
  const parsed = value.includes("/") ? parseCidr(value)?.ip : parseIp(value);
  if (!parsed) throw new SyntaxError(`invalid IP address ${value}`);
  return formatIp(parsed);
}

/**
 * Go's `net.ParseMAC` (6, 8 or 20 bytes; `:`, `-` or `.` separated), returned
 * lower-case and colon-separated.
 *
 * @throws {SyntaxError} `address <value>: invalid MAC address`.
 */
export function parseMac(value: string): string {
  const mac = parseMacAddress(value);
  if (mac === undefined) throw new SyntaxError(`address ${value}: invalid MAC address`);
  return mac;
}

/**
 * Parses `CNI_ARGS` like Go's `types.LoadArgs` into a struct whose fields are
 * `known` (names match case-sensitively, like Go field names) plus the
 * embedded `IgnoreUnknown`. Unknown keys are an error unless `IgnoreUnknown`
 * is true anywhere in the string. All errors are plain `Error`s (the skeleton
 * reports them as code 999, as the reference plugins do).
 *
 * @example Usage
 * ```ts
 * const args = parseCniArgs("IgnoreUnknown=1;IP=10.1.0.5;K8S_POD_NAME=x", { IP: argIp });
 * args.IP; // "10.1.0.5"
 * ```
 */
export function parseCniArgs<T extends Record<string, unknown>>(
  text: string,
  known: { [K in keyof T]: ArgParser<T[K]> },
): CniArgs<T> {
  const out: Record<string, unknown> = {};
  if (text === "") return out as CniArgs<T>;
  const parsers: Record<string, ArgParser<unknown>> = { IgnoreUnknown: argBool, ...known };
  const unknown: string[] = [];
  for (const pair of text.split(";")) {
    const kv = pair.split("=");
    if (kv.length !== 2) throw new Error(`ARGS: invalid pair ${goQuote(pair)}`);
    const [key, value] = kv;
    if (key === "CommonArgs") {
      // Go finds the embedded struct itself, which has no text unmarshaller.
      throw new Error(
        "ARGS: cannot unmarshal into field 'CommonArgs' - type '*types.CommonArgs' does not implement encoding.TextUnmarshaler",
      );
    }
    if (!Object.hasOwn(parsers, key)) {
      unknown.push(pair);
      continue;
    }
    try {
      out[key] = parsers[key](value);
    } catch (error) {
      throw new Error(
        `ARGS: error parsing value of pair ${goQuote(pair)}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  if (unknown.length > 0 && out.IgnoreUnknown !== true) {
    throw new Error(`ARGS: unknown args ${goQuoteList(unknown)}`);
  }
  return out as CniArgs<T>;
}

/**
 * Validation of every value that ends up in rule text. A value that passes
 * cannot add a line, a command or a rule to an iptables-restore or nft batch;
 * anything else is rejected with a `TypeError` (wrong type) or `RangeError`
 * (bad value) naming the field and the value.
 *
 * @module
 */
import { canonicalIp, formatIp, type IpAddress, isIpv4Mapped, tryParseIp } from "../ip/cidr.ts";
import { MAX_CHAIN_NAME_LENGTH } from "./chain_name.ts";

// deno-lint-ignore no-control-regex -- control characters are exactly what is rejected.
const CONTROL = /[\x00-\x1f\x7f]/;

/** Chains and targets iptables treats specially; a user chain may not take these names. */
const RESERVED_CHAIN_NAMES = new Set([
  "ACCEPT",
  "DROP",
  "QUEUE",
  "RETURN",
  "PREROUTING",
  "INPUT",
  "FORWARD",
  "OUTPUT",
  "POSTROUTING",
]);

function show(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}

/** Characters that would end or quote a token in iptables-restore input. */
const RESTORE_SYNTAX = /[\s"'\\]/;
const utf8 = new TextEncoder();

/**
 * Checks an iptables chain name as iptables itself does: 1-28 bytes, not
 * starting with `-` or `!`, not a built-in chain or verdict, plus what keeps
 * an iptables-restore line one line of tokens: no whitespace, quotes,
 * backslashes or control characters. Anything else iptables accepts
 * (`X!`, `cni@admin`, `ADMIN:1`, `é`) passes. Returns the name.
 *
 * @example Usage
 * ```ts
 * import { assertThrows } from "@std/assert";
 * assertThrows(() => validateChainName("MY ADMIN", "iptablesAdminChainName"), RangeError);
 * ```
 */
export function validateChainName(name: unknown, field: string): string {
  if (typeof name !== "string") {
    throw new TypeError(`${field} must be a string, got ${show(name)}`);
  }
  const bytes = utf8.encode(name).length;
  if (bytes === 0 || bytes > MAX_CHAIN_NAME_LENGTH) {
    throw new RangeError(
      `${field} must be 1 to ${MAX_CHAIN_NAME_LENGTH} bytes long, got ${show(name)}`,
    );
  }
  if (CONTROL.test(name) || RESTORE_SYNTAX.test(name)) {
    throw new RangeError(
      `${field} may not contain whitespace, quotes, backslashes or control characters, got ${
        show(name)
      }`,
    );
  }
  if (name.startsWith("-") || name.startsWith("!")) {
    throw new RangeError(`${field} may not start with "-" or "!", got ${show(name)}`);
  }
  if (RESERVED_CHAIN_NAMES.has(name)) {
    throw new RangeError(`${field} may not be a built-in chain or verdict, got ${show(name)}`);
  }
  return name;
}

/**
 * Checks a port number (1-65535). Returns it.
 *
 * @example Usage
 * ```ts
 * import { assertThrows } from "@std/assert";
 * assertThrows(() => validatePort(70000, "hostPort"), RangeError);
 * ```
 */
export function validatePort(port: unknown, field: string): number {
  if (typeof port !== "number") {
    throw new TypeError(`${field} must be a number, got ${show(port)}`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`${field} must be an integer from 1 to 65535, got ${show(port)}`);
  }
  return port;
}

/** Transport protocols a port mapping can use. */
export type PortProtocol = "tcp" | "udp" | "sctp";

/**
 * Checks a port-mapping protocol (`tcp`, `udp` or `sctp`, any case). Returns it in lowercase.
 *
 * @example Usage
 * ```ts
 * import { assertEquals } from "@std/assert";
 * assertEquals(validateProtocol("TCP", "protocol"), "tcp");
 * ```
 */
export function validateProtocol(protocol: unknown, field: string): PortProtocol {
  if (typeof protocol !== "string") {
    throw new TypeError(`${field} must be a string, got ${show(protocol)}`);
  }
  const lower = protocol.toLowerCase();
  if (lower !== "tcp" && lower !== "udp" && lower !== "sctp") {
    throw new RangeError(`${field} must be "tcp", "udp" or "sctp", got ${show(protocol)}`);
  }
  return lower;
}

/**
 * Parses an IP literal for rule text; rejects CIDRs, zones, IPv4-mapped IPv6
 * (unless `unwrapMapped`: then its IPv4 address) and anything else iptables
 * would read differently.
 *
 * @example Usage
 * ```ts
 * import { assertThrows } from "@std/assert";
 * assertThrows(() => validateAddress("10.0.0.1/24", "hostIP"), RangeError);
 * ```
 */
export function validateAddress(
  text: unknown,
  field: string,
  options: { unwrapMapped?: boolean } = {},
): IpAddress {
  if (typeof text !== "string") {
    throw new TypeError(`${field} must be a string, got ${show(text)}`);
  }
  // Mapped text stays IPv6 here so that it can be refused, not silently unwrapped.
  const addr = tryParseIp(text, { keepMapped: true });
  if (!addr) throw new RangeError(`${field} must be an IPv4 or IPv6 address, got ${show(text)}`);
  if (isIpv4Mapped(addr) && options.unwrapMapped) return canonicalIp(addr);
  if (isIpv4Mapped(addr)) {
    throw new RangeError(
      `${field} must not be an IPv4-mapped IPv6 address, got ${show(text)}; use ${
        formatIp(canonicalIp(addr))
      }`,
    );
  }
  return addr;
}

/**
 * Checks a network interface name the way the kernel and iptables read it:
 * 1-15 bytes, no whitespace, `/` or `:`, not `.`/`..`, not starting with `-` or `!`.
 *
 * @example Usage
 * ```ts
 * import { assertEquals } from "@std/assert";
 * assertEquals(validateInterfaceName("cni0", "bridge"), "cni0");
 * ```
 */
export function validateInterfaceName(name: unknown, field: string): string {
  if (typeof name !== "string") {
    throw new TypeError(`${field} must be a string, got ${show(name)}`);
  }
  const bytes = new TextEncoder().encode(name).length;
  if (bytes === 0 || bytes > 15) {
    throw new RangeError(`${field} must be 1 to 15 bytes long, got ${show(name)}`);
  }
  if (name === "." || name === ".." || /[\s/:"'\\]/.test(name) || CONTROL.test(name)) {
    throw new RangeError(`${field} is not a valid interface name, got ${show(name)}`);
  }
  if (name.startsWith("-") || name.startsWith("!")) {
    throw new RangeError(`${field} must not start with "-" or "!", got ${show(name)}`);
  }
  return name;
}

/**
 * Checks text that goes into a quoted comment: no control characters (which
 * would end the line), and for nft no double quote (nft strings cannot escape it).
 *
 * @example Usage
 * ```ts
 * import { assertThrows } from "@std/assert";
 * assertThrows(() => validateCommentText("a\nb", "comment"), RangeError);
 * ```
 */
export function validateCommentText(
  text: string,
  field: string,
  options: { nft?: boolean } = {},
): string {
  if (CONTROL.test(text)) {
    throw new RangeError(`${field} must not contain control characters, got ${show(text)}`);
  }
  if (options.nft && (text.includes('"') || text.includes("\\"))) {
    throw new RangeError(`${field} must not contain '"' or '\\' for nftables, got ${show(text)}`);
  }
  return text;
}

/** Which firewall tool a set of match conditions is written for. */
export type ConditionsBackend = "iptables" | "nftables";

/**
 * Which backend a `conditionsV4`/`conditionsV6` list is written for, as the
 * reference decides it: iptables when the first token starts with `-` or `!`,
 * nftables otherwise, none for an empty list.
 */
export function conditionsBackend(tokens: readonly string[]): ConditionsBackend | undefined {
  if (tokens.length === 0 || tokens[0] === "") return undefined;
  return tokens[0].startsWith("-") || tokens[0].startsWith("!") ? "iptables" : "nftables";
}

/**
 * Checks extra match conditions (a list of tokens). Tokens may not contain
 * control characters (a newline would start a new rule) and may not be
 * empty; nft tokens may not contain `;` or `#`, which would end
 * the statement or comment out the rest of the rule. Returns a copy.
 *
 * @example Usage
 * ```ts
 * import { assertThrows } from "@std/assert";
 * assertThrows(() => validateConditions(["-d", "1.2.3.4\n-A X"], "conditionsV4"), RangeError);
 * ```
 */
export function validateConditions(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || !value.every((token) => typeof token === "string")) {
    throw new TypeError(`${field} must be a list of strings, got ${JSON.stringify(value)}`);
  }
  const tokens = value as string[];
  const backend = conditionsBackend(tokens);
  for (const token of tokens) {
    if (CONTROL.test(token)) {
      throw new RangeError(`${field} must not contain control characters, got ${show(token)}`);
    }
    if (token === "") throw new RangeError(`${field} must not contain empty tokens`);
    if (backend === "nftables" && /[;#]/.test(token)) {
      throw new RangeError(`${field} must not contain ";" or "#" for nftables, got ${show(token)}`);
    }
  }
  return [...tokens];
}

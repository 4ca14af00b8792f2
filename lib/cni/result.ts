/**
 * CNI results across spec versions: parse any version's shape into the 1.x
 * {@linkcode Result}, convert between versions with the Go library's
 * converters, and print exactly what the reference plugins (HEAD) print.
 *
 * Go keeps one result type per family (`types020`, `types040`, `types100`)
 * and a "conversion" to the version a result is already labelled with returns
 * it unchanged. A result we parse from a 0.1.0-0.4.0 shape therefore
 * remembers that shape (and is frozen, so the memory cannot go stale), while
 * results built by plugins are 1.x-typed whatever their label says. That is
 * what lets a chained plugin pass a 0.4.0 `prevResult` through byte for byte,
 * and what reproduces loopback's 1.x-shaped output labelled `0.3.1`.
 *
 * @module
 */

import type { DNS, Interface, IPConfig, Result, Route } from "./types.ts";
import {
  fieldTypeError,
  goField,
  goList,
  goMarshalIndent,
  goQuote,
  isJsonObject,
  valueTypeError,
} from "./_go.ts";
import { formatCidr, formatIp, isV4, parseCidr, parseIp } from "./_ip.ts";
import {
  CURRENT_VERSION,
  FAMILY_IMPLEMENTED,
  FAMILY_VERSIONS,
  type ResultFamily,
  SUPPORTED_VERSIONS,
  versionFamily,
} from "./version.ts";

/** An `ip4`/`ip6` block of a 0.1.0/0.2.0 result. */
interface Block {
  ip: string;
  gateway?: string;
  routes: Route[];
}

/** What a result parsed from a pre-1.0 shape remembers about that shape. */
type Origin =
  | { family: "040"; versions: string[] }
  | { family: "020"; ip4?: Block; ip6?: Block };

const ORIGINS = new WeakMap<Result, Origin>();

type Json = Record<string, unknown>;

// ---------------------------------------------------------------- decoding

function str(value: unknown, field: string): string {
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") throw fieldTypeError(value, field, "string");
  return value;
}

function int(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number") throw fieldTypeError(value, field, "int");
  if (!Number.isSafeInteger(value)) {
    throw new TypeError(
      `json: cannot unmarshal number ${value} into Go struct field ${field} of type int`,
    );
  }
  return value;
}

function strList(value: unknown, field: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw fieldTypeError(value, field, "[]string");
  return value.map((item) => str(item, field));
}

function list(value: unknown, field: string, type: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw fieldTypeError(value, field, type);
  return value;
}

function object(value: unknown, type: string): Json {
  if (!isJsonObject(value)) throw valueTypeError(value, type);
  return value;
}

/** `types.IPNet.UnmarshalJSON`: a CIDR string, canonicalised; a missing key prints `<nil>`. */
function cidr(value: unknown): string {
  if (value === undefined) return "<nil>";
  if (value !== null && typeof value !== "string") throw valueTypeError(value, "string");
  const text = value ?? "";
  const parsed = parseCidr(text);
  if (!parsed) throw new SyntaxError(`invalid CIDR address: ${text}`);
  return formatCidr(parsed);
}

/** `net.IP.UnmarshalText`: empty means unset. */
function ip(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw fieldTypeError(value, field, "net.IP");
  const parsed = parseIp(value);
  if (!parsed) throw new SyntaxError(`invalid IP address: ${value}`);
  return formatIp(parsed);
}

function decodeRoute(value: unknown): Route {
  const o = object(value, "types.route");
  const route: Route = { dst: cidr(goField(o, "dst")) };
  const gw = ip(goField(o, "gw"), "route.gw");
  if (gw !== undefined) route.gw = gw;
  const mtu = int(goField(o, "mtu"), "route.mtu");
  if (mtu) route.mtu = mtu;
  const advmss = int(goField(o, "advmss"), "route.advmss");
  if (advmss) route.advmss = advmss;
  const priority = int(goField(o, "priority"), "route.priority");
  if (priority) route.priority = priority;
  const table = int(goField(o, "table"), "route.table");
  if (table !== undefined) route.table = table;
  const scope = int(goField(o, "scope"), "route.scope");
  if (scope !== undefined) route.scope = scope;
  return route;
}

function decodeDns(value: unknown, field: string): DNS | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isJsonObject(value)) throw fieldTypeError(value, field, "types.DNS");
  const dns: DNS = {};
  const nameservers = strList(goField(value, "nameservers"), `${field}.nameservers`);
  if (nameservers?.length) dns.nameservers = nameservers;
  const domain = str(goField(value, "domain"), `${field}.domain`);
  if (domain) dns.domain = domain;
  const search = strList(goField(value, "search"), `${field}.search`);
  if (search?.length) dns.search = search;
  const options = strList(goField(value, "options"), `${field}.options`);
  if (options?.length) dns.options = options;
  return dns;
}

function decodeInterface(value: unknown, pkg: string, full: boolean): Interface {
  if (!isJsonObject(value)) {
    throw fieldTypeError(value, "Result.interfaces", `${pkg}.Interface`);
  }
  const field = (name: string) => `Interface.interfaces.${name}`;
  const intf: Interface = { name: str(goField(value, "name"), field("name")) };
  const mac = str(goField(value, "mac"), field("mac"));
  if (mac) intf.mac = mac;
  if (full) {
    const mtu = int(goField(value, "mtu"), field("mtu"));
    if (mtu) intf.mtu = mtu;
  }
  const sandbox = str(goField(value, "sandbox"), field("sandbox"));
  if (sandbox) intf.sandbox = sandbox;
  if (full) {
    const socketPath = str(goField(value, "socketPath"), field("socketPath"));
    if (socketPath) intf.socketPath = socketPath;
    const pciID = str(goField(value, "pciID"), field("pciID"));
    if (pciID) intf.pciID = pciID;
  }
  return intf;
}

function decodeIpConfig(value: unknown, pkg: string): { ipc: IPConfig; version: string } {
  const o = object(value, `${pkg}.ipConfig`);
  const version = pkg === "types040" ? str(goField(o, "version"), "ipConfig.version") : "";
  const ipc: IPConfig = { address: "" };
  const index = int(goField(o, "interface"), "ipConfig.interface");
  if (index !== undefined) ipc.interface = index;
  ipc.address = cidr(goField(o, "address"));
  const gateway = ip(goField(o, "gateway"), "ipConfig.gateway");
  if (gateway !== undefined) ipc.gateway = gateway;
  return { ipc, version };
}

function decodeBlock(value: unknown, field: string): Block | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isJsonObject(value)) throw fieldTypeError(value, field, "types020.IPConfig");
  const block: Block = { ip: cidr(goField(value, "ip")), routes: [] };
  const gateway = ip(goField(value, "gateway"), "ipConfig.gateway");
  if (gateway !== undefined) block.gateway = gateway;
  block.routes = list(goField(value, "routes"), "ipConfig.routes", "[]types.Route")
    .map(decodeRoute);
  return block;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}

function decodeFamily(value: unknown, family: ResultFamily): Result {
  const pkg = `types${family}`;
  const o = value === null ? {} : object(value, `${pkg}.Result`);
  const label = str(goField(o, "cniVersion"), "Result.cniVersion");
  const result: Result = { cniVersion: label };
  let origin: Origin | undefined;
  if (family === "020") {
    const ip4 = decodeBlock(goField(o, "ip4"), "Result.ip4");
    const ip6 = decodeBlock(goField(o, "ip6"), "Result.ip6");
    const blocks = [ip4, ip6].filter((b): b is Block => b !== undefined);
    if (blocks.length) {
      result.ips = blocks.map((b) => withGateway({ address: b.ip }, b.gateway));
    }
    const routes = blocks.flatMap((b) => b.routes);
    if (routes.length) result.routes = routes;
    origin = { family, ip4, ip6 };
  } else {
    const interfaces = goField(o, "interfaces");
    if (interfaces !== undefined && interfaces !== null) {
      result.interfaces = list(interfaces, "Result.interfaces", `[]*${pkg}.Interface`)
        .map((item) => decodeInterface(item, pkg, family === "100"));
    }
    const ips = goField(o, "ips");
    const versions: string[] = [];
    if (ips !== undefined && ips !== null) {
      result.ips = list(ips, "Result.ips", `[]*${pkg}.IPConfig`).map((item) => {
        const { ipc, version } = decodeIpConfig(item, pkg);
        versions.push(version);
        return ipc;
      });
    }
    const routes = goField(o, "routes");
    if (routes !== undefined && routes !== null) {
      result.routes = list(routes, "Result.routes", "[]*types.Route").map(decodeRoute);
    }
    if (family === "040") origin = { family, versions };
  }
  const dns = decodeDns(goField(o, "dns"), "Result.dns");
  if (dns) result.dns = dns;

  const accepted = FAMILY_VERSIONS[family];
  if (!accepted.includes(label)) {
    throw new Error(
      `result type supports ${goList(accepted)} but unmarshalled CNIVersion is ${goQuote(label)}`,
    );
  }
  if (!origin) return result;
  ORIGINS.set(result, origin);
  return deepFreeze(result);
}

function withGateway(ipc: IPConfig, gateway: string | undefined): IPConfig {
  if (gateway !== undefined) ipc.gateway = gateway;
  return ipc;
}

/**
 * Go's `version.ConfigDecoder.Decode` on a decoded JSON document: the
 * `cniVersion` key, `"0.1.0"` when absent or empty.
 */
export function decodeVersionField(json: unknown): string {
  const prefix = "decoding version from network config: ";
  if (json === null) return "0.1.0";
  if (!isJsonObject(json)) {
    throw new TypeError(
      prefix + valueTypeError(json, 'struct { CNIVersion string "json:\\"cniVersion\\"" }').message,
    );
  }
  const value = goField(json, "cniVersion");
  if (value === undefined || value === null || value === "") return "0.1.0";
  if (typeof value !== "string") {
    throw new TypeError(prefix + fieldTypeError(value, ".cniVersion", "string").message);
  }
  return value;
}

/**
 * Parses a result of any spec version into the 1.x {@linkcode Result}, like
 * Go's `create.Create(version, json)`: `version` (default: the document's own
 * `cniVersion`, `"0.1.0"` if none) picks the result type, whose checks and
 * messages apply. The returned result keeps its own `cniVersion` label.
 *
 * Results parsed from a 0.1.0-0.4.0 shape are frozen: they remember that
 * shape so printing them in their own version reproduces it. Copy or use
 * {@linkcode toCurrentResult} to modify one.
 *
 * @example Usage
 * ```ts
 * const r = parseResult({ cniVersion: "0.4.0", ips: [{ version: "4", address: "10.1.0.2/24" }] });
 * r.ips?.[0].address; // "10.1.0.2/24"
 * ```
 */
export function parseResult(json: unknown, version?: string): Result {
  const v = version ?? decodeVersionField(json);
  const family = versionFamily(v);
  if (!family) throw new Error(`unsupported CNI result version ${goQuote(v)}`);
  return decodeFamily(json, family);
}

// ---------------------------------------------------------------- printing

function canonicalCidr(text: string): string {
  const parsed = parseCidr(text);
  return parsed ? formatCidr(parsed) : text;
}

function canonicalIp(text: string): string {
  const parsed = parseIp(text);
  return parsed ? formatIp(parsed) : text;
}

function isV4Cidr(text: string): boolean {
  const parsed = parseCidr(text);
  return parsed !== undefined && isV4(parsed.ip);
}

/** `types.Route` as Go marshals it (struct order, omitempty). */
function routeJson(route: Route): Json {
  const out: Json = { dst: canonicalCidr(route.dst) };
  if (route.gw) out.gw = canonicalIp(route.gw);
  if (route.mtu) out.mtu = route.mtu;
  if (route.advmss) out.advmss = route.advmss;
  if (route.priority) out.priority = route.priority;
  if (route.table !== undefined && route.table !== null) out.table = route.table;
  if (route.scope !== undefined && route.scope !== null) out.scope = route.scope;
  return out;
}

function dnsJson(dns: DNS | undefined): Json {
  const out: Json = {};
  if (dns?.nameservers?.length) out.nameservers = [...dns.nameservers];
  if (dns?.domain) out.domain = dns.domain;
  if (dns?.search?.length) out.search = [...dns.search];
  if (dns?.options?.length) out.options = [...dns.options];
  return out;
}

function ipJson(ipc: IPConfig, version?: string): Json {
  const out: Json = {};
  if (version !== undefined) out.version = version;
  if (ipc.interface !== undefined && ipc.interface !== null) out.interface = ipc.interface;
  out.address = canonicalCidr(ipc.address);
  if (ipc.gateway) out.gateway = canonicalIp(ipc.gateway);
  return out;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (!isJsonObject(value)) return value;
  const out: Json = {};
  for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key]);
  return out;
}

/** `types100.Result.MarshalJSON`: every key sorted, `dns` dropped when empty. */
function render100(r: Result, label: string): Json {
  const out: Json = { cniVersion: label };
  if (r.interfaces?.length) {
    out.interfaces = r.interfaces.map((intf) => {
      const o: Json = { name: intf.name ?? "" };
      if (intf.mac) o.mac = intf.mac;
      if (intf.mtu) o.mtu = intf.mtu;
      if (intf.sandbox) o.sandbox = intf.sandbox;
      if (intf.socketPath) o.socketPath = intf.socketPath;
      if (intf.pciID) o.pciID = intf.pciID;
      return o;
    });
  }
  if (r.ips?.length) out.ips = r.ips.map((ipc) => ipJson(ipc));
  if (r.routes?.length) out.routes = r.routes.map(routeJson);
  const dns = dnsJson(r.dns);
  if (Object.keys(dns).length) out.dns = dns;
  return sortKeys(out) as Json;
}

/** `types040.Result` in struct order; `dns` always present. */
function render040(r: Result, label: string, versions: string[]): Json {
  const out: Json = {};
  if (label) out.cniVersion = label;
  if (r.interfaces?.length) {
    out.interfaces = r.interfaces.map((intf) => {
      const o: Json = { name: intf.name ?? "" };
      if (intf.mac) o.mac = intf.mac;
      if (intf.sandbox) o.sandbox = intf.sandbox;
      return o;
    });
  }
  if (r.ips?.length) out.ips = r.ips.map((ipc, i) => ipJson(ipc, versions[i]));
  if (r.routes?.length) out.routes = r.routes.map(routeJson);
  out.dns = dnsJson(r.dns);
  return out;
}

function blockJson(block: Block): Json {
  const out: Json = { ip: canonicalCidr(block.ip) };
  if (block.gateway) out.gateway = canonicalIp(block.gateway);
  if (block.routes.length) out.routes = block.routes.map(routeJson);
  return out;
}

/** `types020.Result` in struct order; `dns` always present. */
function render020(label: string, ip4: Block | undefined, ip6: Block | undefined, dns?: DNS): Json {
  const out: Json = {};
  if (label) out.cniVersion = label;
  if (ip4) out.ip4 = blockJson(ip4);
  if (ip6) out.ip6 = blockJson(ip6);
  out.dns = dnsJson(dns);
  return out;
}

/** Go's 0.4.0 -> 0.2.0 converter (`types040.convertTo02x`). */
function to020(r: Result, versions: string[], label: string): Json {
  let ip4: Block | undefined;
  let ip6: Block | undefined;
  for (const [i, ipc] of (r.ips ?? []).entries()) {
    // Only the first address of each family survives: 0.2.0 has one of each.
    if (versions[i] === "4" && !ip4) ip4 = withBlockGateway(ipc);
    else if (versions[i] === "6" && !ip6) ip6 = withBlockGateway(ipc);
    if (ip4 && ip6) break;
  }
  for (const route of r.routes ?? []) {
    const is4 = isV4Cidr(route.dst);
    const slim: Route = { dst: route.dst };
    if (route.gw) slim.gw = route.gw;
    if (is4 && ip4) ip4.routes.push(slim);
    else if (!is4 && ip6) ip6.routes.push(slim);
  }
  if (!ip4 && !ip6) throw new Error("cannot convert: no valid IP addresses");
  return render020(label, ip4, ip6, r.dns);
}

function withBlockGateway(ipc: IPConfig): Block {
  const block: Block = { ip: ipc.address, routes: [] };
  if (ipc.gateway) block.gateway = ipc.gateway;
  return block;
}

/** The per-address `version` Go computes going from 1.x to 0.4.0. */
function familyVersions(r: Result): string[] {
  return (r.ips ?? []).map((ipc) => (isV4Cidr(ipc.address) ? "4" : "6"));
}

/** Addresses, routes and DNS of a 0.1.0/0.2.0 result as 0.4.0 sees them. */
function from020(origin: { ip4?: Block; ip6?: Block }, dns: DNS | undefined): Result {
  const blocks = [origin.ip4, origin.ip6].filter((b): b is Block => b !== undefined);
  const r: Result = { cniVersion: "" };
  if (blocks.length) r.ips = blocks.map((b) => withGateway({ address: b.ip }, b.gateway));
  const routes = blocks.flatMap((b) => b.routes);
  if (routes.length) r.routes = routes;
  if (dns) r.dns = dns;
  return r;
}

/**
 * Converts a result to the JSON object Go prints for `toVersion` (`""` means
 * 0.1.0), with the library's converters. Converting to the version a result
 * is already labelled with returns it unchanged (in its own shape); a result
 * without a label counts as its type's own version.
 *
 * @throws {Error} `no converter for CNI result version X to Y` or
 * `cannot convert: no valid IP addresses`.
 */
export function convertResult(result: Result, toVersion: string): Record<string, unknown> {
  const to = toVersion || "0.1.0";
  const origin = ORIGINS.get(result);
  const family: ResultFamily = origin?.family ?? "100";
  const label = result.cniVersion || FAMILY_IMPLEMENTED[family];
  if (label !== to && !(SUPPORTED_VERSIONS.includes(label) && SUPPORTED_VERSIONS.includes(to))) {
    throw new Error(`no converter for CNI result version ${label} to ${to}`);
  }
  // Go's shortcut: the "conversion" to a result's own label returns it as it is.
  const targetFamily = label === to ? family : versionFamily(to)!;

  if (origin?.family === "020") {
    if (targetFamily === "020") return render020(to, origin.ip4, origin.ip6, result.dns);
    const r = from020(origin, result.dns);
    const versions = [...(origin.ip4 ? ["4"] : []), ...(origin.ip6 ? ["6"] : [])];
    return targetFamily === "040" ? render040(r, to, versions) : render100(r, to);
  }
  if (origin?.family === "040") {
    if (targetFamily === "040") return render040(result, to, origin.versions);
    if (targetFamily === "020") return to020(result, origin.versions, to);
    return render100(result, to);
  }
  if (targetFamily === "100") return render100(result, to);
  if (targetFamily === "040") return render040(result, to, familyVersions(result));
  return to020(result, familyVersions(result), to);
}

/**
 * The exact stdout text a HEAD plugin prints for `result` in `toVersion`:
 * 4-space indent, Go's escaping, no trailing newline. 1.x-typed output has
 * every key sorted and no empty `dns`; older shapes keep struct order and an
 * always-present `dns`.
 *
 * @example Usage
 * ```ts
 * encodeResult({ cniVersion: "1.1.0", ips: [{ address: "10.1.0.2/24" }] }, "1.0.0");
 * ```
 */
export function encodeResult(result: Result, toVersion: string): string {
  return goMarshalIndent(convertResult(result, toVersion));
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

/**
 * Go's `current.NewResultFromResult`: the result as a mutable 1.x result
 * labelled with the current version (1.1.0). A result already labelled 1.1.0
 * (or unlabelled) and 1.x-typed is returned as is.
 */
export function toCurrentResult(result: Result): Result {
  const origin = ORIGINS.get(result);
  const family: ResultFamily = origin?.family ?? "100";
  const label = result.cniVersion || FAMILY_IMPLEMENTED[family];
  if (!SUPPORTED_VERSIONS.includes(label)) {
    throw new Error(`no converter for CNI result version ${label} to ${CURRENT_VERSION}`);
  }
  if (!origin) {
    if (label === CURRENT_VERSION && result.cniVersion) return result;
    return { ...clone(result), cniVersion: CURRENT_VERSION };
  }
  const base = origin.family === "020" ? from020(origin, result.dns) : result;
  return { ...clone(base), cniVersion: CURRENT_VERSION };
}

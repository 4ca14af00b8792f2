/**
 * Pure result assembly for the bridge plugin: the interface list, the IPAM
 * addresses bound to the container interface, gateway defaulting, the
 * default routes `isDefaultGateway` adds, and the per-family gateway
 * addresses the bridge must carry (the reference's `calcGateways`).
 *
 * @module
 */
import type { DNS, Interface, IPConfig, Result, Route } from "../lib/cni/types.ts";
import {
  type Cidr,
  formatCidr,
  formatIp,
  type IpFamily,
  ipsEqual,
  networkAddress,
  nextIp,
  tryParseCidr,
  tryParseIp,
} from "../lib/ip/cidr.ts";

/** Index of the container interface in a bridge result (bridge, host veth, container). */
export const CONTAINER_INTERFACE = 2;

/** A gateway address the bridge must carry: the gateway with the container's prefix length. */
export interface GatewayAddress {
  address: string;
  prefixLength: number;
}

/** Gateways per family, IPv4 first as the reference processes them. */
export interface Gateways {
  4: GatewayAddress[];
  6: GatewayAddress[];
}

/** The three interfaces every bridge result starts with. */
export function baseInterfaces(
  bridge: Interface,
  hostVeth: Interface,
  container: Interface,
): Interface[] {
  return [
    { name: bridge.name, mac: bridge.mac },
    { name: hostVeth.name, mac: hostVeth.mac },
    { name: container.name, mac: container.mac, sandbox: container.sandbox },
  ];
}

/**
 * Default routes `isDefaultGateway` added (not parsed from JSON). Upstream
 * builds them from `net.IPv4zero`, a 16-byte IP, so an error naming one
 * prints an IPv4 mask of 16 bytes.
 */
export const ADDED_DEFAULT_ROUTES: WeakSet<Route> = new WeakSet();

function defaultDst(family: IpFamily): string {
  return family === 4 ? "0.0.0.0/0" : "::/0";
}

/** True when `route` is a default route of `family` with a gateway (Go compares `Dst.String()`). */
function isDefaultWithGateway(route: Route, family: IpFamily): boolean {
  if (route.gw === undefined || route.gw === "") return false;
  const dst = tryParseCidr(route.dst);
  return dst !== undefined && formatCidr(dst) === defaultDst(family);
}

/** Options for {@linkcode assignAddresses}. */
export interface AssignOptions {
  isGateway: boolean;
  isDefaultGateway: boolean;
}

/**
 * Binds IPAM addresses to the container interface and works out gateways,
 * mutating `ips` and `routes` like the reference: each IP gets
 * `interface: 2`; a missing gateway becomes the subnet's first address when
 * `isGateway`; with `isDefaultGateway` each family gets one default route via
 * its first gateway unless a default route with a gateway is already there.
 * Returns the gateway addresses for the bridge (only when `isGateway`).
 * Throws `Unknown IP object: <address>` for an address that is not a CIDR.
 */
export function assignAddresses(
  ips: IPConfig[],
  routes: Route[],
  options: AssignOptions,
): Gateways {
  const gateways: Gateways = { 4: [], 6: [] };
  const defaultFound = { 4: false, 6: false };
  for (const ipc of ips) {
    const cidr = tryParseCidr(ipc.address);
    if (cidr === undefined) throw new Error(`Unknown IP object: ${JSON.stringify(ipc)}`);
    const family = cidr.address.family;
    ipc.interface = CONTAINER_INTERFACE;
    if (ipc.gateway === undefined && options.isGateway) ipc.gateway = firstHost(cidr);
    if (options.isDefaultGateway && !defaultFound[family]) {
      defaultFound[family] = routes.some((route) => isDefaultWithGateway(route, family));
      if (!defaultFound[family]) {
        const route: Route = { dst: defaultDst(family) };
        if (ipc.gateway !== undefined) route.gw = ipc.gateway;
        routes.push(route);
        ADDED_DEFAULT_ROUTES.add(route);
        defaultFound[family] = true;
      }
    }
    if (options.isGateway && ipc.gateway !== undefined) {
      gateways[family].push({ address: ipc.gateway, prefixLength: cidr.prefixLength });
    }
  }
  return gateways;
}

/** The subnet's network address plus one (Go's `ip.NextIP(ip.Mask(mask))`). */
export function firstHost(cidr: Cidr): string {
  const next = nextIp(networkAddress(cidr));
  if (next === undefined) throw new RangeError(`No gateway address in ${formatCidr(cidr)}`);
  return formatIp(next);
}

/** Options for {@linkcode buildResult}. */
export interface BuildResultOptions {
  /** Addresses, routes and DNS from IPAM (1.x shape); none for layer 2. */
  ipam?: { ips?: IPConfig[]; routes?: Route[]; dns?: DNS };
  /** The config's `dns`, which wins when set. */
  dns?: DNS;
  isGateway?: boolean;
  isDefaultGateway?: boolean;
  /** Extra interfaces appended after the three base ones (the VLAN gateway veth). */
  extraInterfaces?: Interface[];
}

/** What {@linkcode buildResult} produced. */
export interface BuiltResult {
  result: Result;
  gateways: Gateways;
}

/**
 * Builds the 1.x result of an ADD from the interfaces and the IPAM result.
 * `IPAM plugin returned missing IP config` when IPAM gave no address.
 */
export function buildResult(
  interfaces: Interface[],
  options: BuildResultOptions = {},
): BuiltResult {
  const result: Result = { cniVersion: "1.1.0", interfaces: [...interfaces] };
  let gateways: Gateways = { 4: [], 6: [] };
  if (options.ipam !== undefined) {
    const ips = structuredClone(options.ipam.ips ?? []);
    const routes = structuredClone(options.ipam.routes ?? []);
    if (ips.length === 0) throw new Error("IPAM plugin returned missing IP config");
    gateways = assignAddresses(ips, routes, {
      isGateway: options.isGateway ?? false,
      isDefaultGateway: options.isDefaultGateway ?? false,
    });
    result.ips = ips;
    if (routes.length > 0) result.routes = routes;
    if (options.ipam.dns !== undefined) result.dns = structuredClone(options.ipam.dns);
  }
  if (options.dns !== undefined) result.dns = structuredClone(options.dns);
  if (options.extraInterfaces?.length) result.interfaces!.push(...options.extraInterfaces);
  return { result, gateways };
}

/** The family of a bare IP or CIDR string, or undefined when it is neither. */
export function familyOf(text: string): IpFamily | undefined {
  return (tryParseCidr(text)?.address ?? tryParseIp(text))?.family;
}

/** Same address and prefix length, however the text is spelled. */
export function sameCidr(a: string, b: string): boolean {
  const x = tryParseCidr(a);
  const y = tryParseCidr(b);
  return x !== undefined && y !== undefined && x.prefixLength === y.prefixLength &&
    ipsEqual(x.address, y.address);
}

/** Same network (prefix length and masked address). */
export function sameNetwork(a: string, b: string): boolean {
  const x = tryParseCidr(a);
  const y = tryParseCidr(b);
  return x !== undefined && y !== undefined && x.prefixLength === y.prefixLength &&
    ipsEqual(networkAddress(x), networkAddress(y));
}

/** Same IP address, however the text is spelled. */
export function sameIp(a: string, b: string): boolean {
  const x = tryParseIp(a);
  const y = tryParseIp(b);
  return x !== undefined && y !== undefined && ipsEqual(x, y);
}

/** The families of `ip/len` strings, ascending (unparsable ones are skipped). */
export function familiesOf(addresses: readonly string[]): IpFamily[] {
  const out = new Set<IpFamily>();
  for (const text of addresses) {
    const cidr = tryParseCidr(text);
    if (cidr !== undefined) out.add(cidr.address.family);
  }
  return [...out].sort();
}

/**
 * A `net.IPNet` as Go's fmt prints the struct value (its `String()` needs a
 * pointer): `{10.0.0.5 ffffff00}` with `%v`, `{IP:10.0.0.5 Mask:ffffff00}`
 * with `%+v`. The address keeps its host bits, the mask is hex. `maskBytes`
 * overrides the mask's bytes (an IPv4 default route made from `net.IPv4zero`
 * has the 16 bytes `::ffff:0.0.0.0`).
 */
export function goIpNet(cidr: Cidr, verb: "%v" | "%+v", maskBytes?: readonly number[]): string {
  const bytes = maskBytes ?? Array.from({ length: cidr.bits / 8 }, (_, i) => {
    const ones = Math.min(8, Math.max(0, cidr.prefixLength - 8 * i));
    return (0xff00 >> ones) & 0xff;
  });
  const mask = bytes.map((b) => b.toString(16).padStart(2, "0")).join("");
  const ip = formatIp(cidr.address);
  return verb === "%v" ? `{${ip} ${mask}}` : `{IP:${ip} Mask:${mask}}`;
}

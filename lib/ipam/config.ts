/**
 * Loading a host-local IPAM configuration the way the reference's
 * `allocator.LoadIPAMConfig` does: same precedence (legacy top-level range
 * first, `runtimeConfig.ipRanges` in front of everything), same requested-IP
 * sources (CNI_ARGS `IP`, `args.cni.ips`, `runtimeConfig.ips`) and the same
 * error messages, including Go's `json: cannot unmarshal ...` texts.
 *
 * @module
 */

import type { Route } from "../cni/types.ts";
import {
  type Cidr,
  formatCidr,
  formatIp,
  type IpAddress,
  tryParseCidr,
  tryParseIp,
} from "../ip/cidr.ts";
import { parseCniArgs } from "../cni/args.ts";
import { versionAtLeast } from "../cni/version.ts";
import {
  goDecode,
  goInt,
  goNested,
  goSlice,
  goString,
  goStruct,
  goText,
  kindError,
  type Schema,
} from "./_go_json.ts";
import { canonicalizeRangeSet, type RangeInput, type RangeSet, rangeSetsOverlap } from "./range.ts";

/** A loaded and validated host-local configuration. */
export interface IpamConfig {
  /** The network name (top-level `name`); names the lease directory. */
  name: string;
  /** The configuration's `cniVersion`. */
  cniVersion: string;
  /** Routes copied verbatim into the result; undefined when none are configured. */
  routes?: Route[];
  /** Lease directory root; empty means the default `/var/lib/cni/networks`. */
  dataDir: string;
  /** A resolv.conf-style file for the result's `dns`; empty for none. */
  resolvConf: string;
  /** Validated range sets in allocation order. */
  ranges: RangeSet[];
  /** Requested addresses in the order the reference collects them. */
  requestedIps: IpAddress[];
}

/** Options for {@linkcode loadIpamConfig}. */
export interface LoadIpamConfigOptions {
  /** The raw `CNI_ARGS` value. @default {""} */
  cniArgs?: string;
  /**
   * The `cniVersion` the config declared (`""` when absent), used in the
   * "more than 1 address per family" check. @default {the decoded `cniVersion`}
   */
  cniVersion?: string;
}

// --------------------------------------------------------------- schemas

/** `types.IPNet.UnmarshalJSON`: decodes a string, then `ParseCIDR`. */
const ipNet: Schema<Cidr> = (value, site) => {
  if (value !== null && typeof value !== "string") throw kindError(value, site, "string");
  const text = value ?? "";
  const cidr = tryParseCidr(text);
  if (!cidr) throw new SyntaxError(`invalid CIDR address: ${text}`);
  return cidr;
};

/** `net.IP.UnmarshalText`: empty means unset. */
const netIp = goText<IpAddress>("net.IP", (text) => {
  if (text === "") return undefined;
  const ip = tryParseIp(text);
  if (!ip) throw new SyntaxError(`invalid IP address: ${text}`);
  return ip;
});

/** The plugins' `ip.IP` text form: `addr` or `addr/len` (prefix ignored); empty means nil. */
function parseCniIp(text: string): IpAddress | undefined {
  if (text === "") return undefined;
  const ip = text.includes("/") ? tryParseCidr(text)?.address : tryParseIp(text);
  if (!ip) throw new SyntaxError(`invalid IP address ${text}`);
  return ip;
}

const cniIp = goText<IpAddress>("*ip.IP", parseCniIp);

const rangeSchema = goStruct("allocator.Range", "Range", {
  rangeStart: netIp,
  rangeEnd: netIp,
  subnet: ipNet,
  gateway: netIp,
});
const rangeSetSchema = goSlice("allocator.RangeSet", rangeSchema);
const rangeSetsSchema = goSlice("[]allocator.RangeSet", rangeSetSchema);

const routeSchema = goNested(goStruct("types.route", "route", {
  dst: ipNet,
  gw: netIp,
  mtu: goInt(),
  advmss: goInt(),
  priority: goInt(),
  table: goInt(),
  scope: goInt(),
}));

const ipamSchema = goStruct("allocator.IPAMConfig", "IPAMConfig", {
  // The embedded *Range: the legacy single range.
  rangeStart: netIp,
  rangeEnd: netIp,
  subnet: ipNet,
  gateway: netIp,
  Name: goString(),
  type: goString(),
  routes: goSlice("[]*types.Route", routeSchema),
  dataDir: goString(),
  resolvConf: goString(),
  ranges: rangeSetsSchema,
});

const RUNTIME_CONFIG_TYPE =
  'struct { IPRanges []allocator.RangeSet "json:\\"ipRanges,omitempty\\""; ' +
  'IPs []*ip.IP "json:\\"ips,omitempty\\"" }';
const ARGS_TYPE = 'struct { A *allocator.IPAMArgs "json:\\"cni\\"" }';

const netSchema = goStruct("allocator.Net", "Net", {
  name: goString(),
  cniVersion: goString(),
  ipam: ipamSchema,
  runtimeConfig: goStruct(RUNTIME_CONFIG_TYPE, "", {
    ipRanges: rangeSetsSchema,
    ips: goSlice("[]*ip.IP", cniIp),
  }),
  args: goStruct(ARGS_TYPE, "", {
    cni: goStruct("allocator.IPAMArgs", "IPAMArgs", { ips: goSlice("[]*ip.IP", cniIp) }),
  }),
});

// ------------------------------------------------------------------ load

type Obj = Record<string, unknown>;

function toRoute(raw: Obj): Route {
  // A route without dst prints Go's zero IPNet, "<nil>", exactly like the reference.
  const route: Route = { dst: raw.dst ? formatCidr(raw.dst as Cidr) : "<nil>" };
  if (raw.gw) route.gw = formatIp(raw.gw as IpAddress);
  if (raw.mtu) route.mtu = raw.mtu as number;
  if (raw.advmss) route.advmss = raw.advmss as number;
  if (raw.priority) route.priority = raw.priority as number;
  if (raw.table !== undefined) route.table = raw.table as number;
  if (raw.scope !== undefined) route.scope = raw.scope as number;
  return route;
}

/**
 * The requested address from `CNI_ARGS` (`IP=<addr>[/<len>]`), parsed by
 * `types.LoadArgs` rules into the reference's `IPAMEnvArgs`. An empty `IP=`
 * requests nothing, as Go's `ip.IP` treats empty text.
 */
export function parseIpamEnvArgs(text: string): IpAddress | undefined {
  const args = parseCniArgs<{ IP: IpAddress | undefined }>(text, { IP: parseCniIp });
  return args.IP;
}

/** Go's `version.GreaterThanOrEqualTo` as the config loader uses it: parse failures are "no". */
function versionAtLeastOrFalse(version: string, min: string): boolean {
  try {
    return versionAtLeast(version, min);
  } catch {
    return false;
  }
}

function rangeInputs(raw: unknown): RangeInput[] {
  return ((raw as (Obj | undefined)[] | undefined) ?? []).map((r) => (r ?? {}) as RangeInput);
}

/**
 * Loads and validates a host-local configuration from the decoded stdin
 * object (the whole network configuration, not just `ipam`).
 * @throws {TypeError | SyntaxError | RangeError} with the reference's message,
 * e.g. `IPAM config missing 'ipam' key` or `invalid range set 0: empty range set`.
 */
export function loadIpamConfig(conf: unknown, options: LoadIpamConfigOptions = {}): IpamConfig {
  const net = goDecode(netSchema, conf, "Net") ?? {};
  const ipam = net.ipam as Obj | undefined;
  if (!ipam) throw new TypeError("IPAM config missing 'ipam' key");
  const runtimeConfig = (net.runtimeConfig ?? {}) as Obj;
  const cniArgs = (net.args as Obj | undefined)?.cni as Obj | undefined;

  // A present-but-empty ip.IP stays in the list as nil and fails below, as in Go.
  const requested: (IpAddress | undefined)[] = [];
  const envIp = parseIpamEnvArgs(options.cniArgs ?? "");
  if (envIp) requested.push(envIp);
  requested.push(...((cniArgs?.ips ?? []) as (IpAddress | undefined)[]));
  requested.push(...((runtimeConfig.ips ?? []) as (IpAddress | undefined)[]));
  const requestedIps = requested.map((ip) => {
    if (!ip) throw new TypeError("cannot understand ip: IP <nil> not v4 nor v6");
    return ip;
  });

  const sets: RangeInput[][] = ((ipam.ranges ?? []) as unknown[]).map(rangeInputs);
  if (ipam.subnet) {
    const { subnet, rangeStart, rangeEnd, gateway } = ipam as RangeInput;
    sets.unshift([{ subnet, rangeStart, rangeEnd, gateway }]);
  }
  const runtimeRanges = (runtimeConfig.ipRanges ?? []) as unknown[];
  if (runtimeRanges.length > 0) sets.unshift(...runtimeRanges.map(rangeInputs));
  if (sets.length === 0) throw new RangeError("no IP ranges specified");

  const ranges: RangeSet[] = [];
  let v4 = 0;
  let v6 = 0;
  sets.forEach((inputs, i) => {
    try {
      ranges.push(canonicalizeRangeSet(inputs));
    } catch (error) {
      throw new RangeError(`invalid range set ${i}: ${(error as Error).message}`, { cause: error });
    }
    if (ranges[i][0].rangeStart.family === 4) v4++;
    else v6++;
  });

  const cniVersion = options.cniVersion ?? (net.cniVersion as string | undefined) ?? "";
  if ((v4 > 1 || v6 > 1) && !versionAtLeastOrFalse(cniVersion, "0.3.0")) {
    throw new RangeError(
      `CNI version ${cniVersion} does not support more than 1 address per family`,
    );
  }
  for (let i = 0; i < ranges.length - 1; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      if (rangeSetsOverlap(ranges[i], ranges[j])) {
        throw new RangeError(`range set ${i} overlaps with ${j}`);
      }
    }
  }

  const rawRoutes = ipam.routes as (Obj | undefined)[] | undefined;
  const routes = rawRoutes?.filter((r): r is Obj => r !== undefined).map(toRoute);
  return {
    name: (net.name as string | undefined) ?? "",
    cniVersion,
    routes: routes && routes.length > 0 ? routes : undefined,
    dataDir: (ipam.dataDir as string | undefined) ?? "",
    resolvConf: (ipam.resolvConf as string | undefined) ?? "",
    ranges,
    requestedIps,
  };
}

/**
 * host-local range sets as the status pages see them: which addresses a
 * network's `ipam` config can hand out, how many, and which range a lease
 * file falls into. Follows host-local's defaults (cni-plugins.md 4.1):
 * `rangeStart` = network + 1, `rangeEnd` = broadcast - 1 (IPv4) or the last
 * address (IPv6), `gateway` = network + 1 and never allocated; a legacy
 * top-level `subnet` is range set 0.
 *
 * @module
 */
import {
  type Cidr,
  formatIp,
  type IpAddress,
  lastAddress,
  networkAddress,
  tryParseCidr,
  tryParseIp,
} from "../ip/cidr.ts";
import { loadIpamConfig } from "../ipam/config.ts";

/** One range of a range set, with its allocatable size. */
export interface RangeInfo {
  /** The subnet as configured. */
  subnet: string;
  rangeStart: string;
  rangeEnd: string;
  gateway: string;
  /** Allocatable addresses: start..end inclusive, minus the gateway if it lies inside. */
  capacity: number;
}

/** A range set (host-local allocates one address per set). */
export interface RangeSetInfo {
  /** Position after prepending the legacy range (the `last_reserved_ip.<index>` suffix). */
  index: number;
  ranges: RangeInfo[];
}

interface ParsedRange {
  info: RangeInfo;
  family: 4 | 6;
  start: bigint;
  end: bigint;
  first: bigint;
  last: bigint;
}

/** Range sets of one host-local `ipam` object, ready for membership tests. */
export interface RangeSets {
  sets: RangeSetInfo[];
  /** Problems found in the config, one message each (the config is not rejected). */
  errors: string[];
  /** Where address `ip` belongs: range set and range index, or `undefined`. */
  locate(ip: string): { set: number; range: number } | undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function addrIn(text: unknown, name: string, family: 4 | 6): IpAddress | string | undefined {
  if (text === undefined || text === null || text === "") return undefined;
  if (typeof text !== "string") return `${name} must be a string`;
  const addr = tryParseIp(text);
  if (!addr || addr.family !== family) return `${name} "${text}" is not an IPv${family} address`;
  return addr;
}

function parseRange(raw: unknown): ParsedRange | string {
  if (!isObject(raw)) return "range must be an object";
  if (typeof raw.subnet !== "string") return "range has no subnet";
  const cidr: Cidr | undefined = tryParseCidr(raw.subnet);
  if (!cidr) return `invalid subnet "${raw.subnet}"`;
  const family = cidr.address.family;
  const first = networkAddress(cidr).value;
  const last = lastAddress(cidr).value;
  const fields: Record<string, IpAddress | undefined> = {};
  for (const name of ["rangeStart", "rangeEnd", "gateway"]) {
    const value = addrIn(raw[name], name, family);
    if (typeof value === "string") return value;
    if (value && (value.value < first || value.value > last)) {
      return `${name} ${formatIp(value)} not in network ${raw.subnet}`;
    }
    fields[name] = value;
  }
  const start = fields.rangeStart?.value ?? first + 1n;
  const end = fields.rangeEnd?.value ?? (family === 4 ? last - 1n : last);
  const gateway = fields.gateway?.value ?? first + 1n;
  if (end < start) return `rangeEnd is before rangeStart in ${raw.subnet}`;
  const size = end - start + 1n - (gateway >= start && gateway <= end ? 1n : 0n);
  const fmt = (value: bigint) => formatIp({ family, value });
  return {
    info: {
      subnet: raw.subnet,
      rangeStart: fmt(start),
      rangeEnd: fmt(end),
      gateway: fmt(gateway),
      capacity: size > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(size),
    },
    family,
    start,
    end,
    first,
    last,
  };
}

/**
 * Reads the range sets of a host-local `ipam` object. Never throws: broken
 * parts are skipped and described in `errors`.
 *
 * @example Usage
 * ```ts
 * const sets = parseRangeSets({ type: "host-local", ranges: [[{ subnet: "10.1.0.0/24" }]] });
 * sets.sets[0].ranges[0].capacity; // 253
 * sets.locate("10.1.0.7"); // { set: 0, range: 0 }
 * ```
 */
export function parseRangeSets(ipam: Record<string, unknown>): RangeSets {
  const rawSets: unknown[] = [];
  if (typeof ipam.subnet === "string" && ipam.subnet !== "") {
    rawSets.push([{
      subnet: ipam.subnet,
      rangeStart: ipam.rangeStart,
      rangeEnd: ipam.rangeEnd,
      gateway: ipam.gateway,
    }]);
  }
  if (Array.isArray(ipam.ranges)) rawSets.push(...ipam.ranges);
  else if (ipam.ranges !== undefined) rawSets.push(ipam.ranges);
  const errors: string[] = [];
  const sets: RangeSetInfo[] = [];
  const parsed: ParsedRange[][] = [];
  rawSets.forEach((rawSet, index) => {
    const ranges: ParsedRange[] = [];
    if (!Array.isArray(rawSet)) errors.push(`range set ${index} is not a list`);
    else {
      rawSet.forEach((raw, i) => {
        const range = parseRange(raw);
        if (typeof range === "string") errors.push(`range set ${index} range ${i}: ${range}`);
        else ranges.push(range);
      });
    }
    parsed.push(ranges);
    sets.push({ index, ranges: ranges.map((r) => r.info) });
  });
  if (rawSets.length === 0) errors.push("no IP ranges specified");
  // The counts above are lenient; host-local itself also refuses host bits in a subnet, a
  // subnet too small, overlapping ranges and mixed families: say so when it would.
  if (errors.length === 0) {
    try {
      loadIpamConfig({ cniVersion: "1.1.0", name: "status", ipam });
    } catch (error) {
      errors.push(`host-local refuses this config: ${(error as Error).message}`);
    }
  }
  return {
    sets,
    errors,
    locate(ip: string) {
      const addr = tryParseIp(ip);
      if (!addr) return undefined;
      for (let set = 0; set < parsed.length; set++) {
        const range = parsed[set].findIndex((r) =>
          r.family === addr.family && addr.value >= r.start && addr.value <= r.end
        );
        if (range >= 0) return { set, range };
      }
      return undefined;
    },
  };
}

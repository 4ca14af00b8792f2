/**
 * host-local ranges and range sets: defaults, validation with the reference
 * plugin's messages, membership, and the round-robin iteration order.
 *
 * A range set is a list of ranges of one family; host-local hands out one
 * address per range set. Ranges are validated with `canonicalizeRangeSet()`,
 * which fills in `rangeStart` (network + 1), `rangeEnd` (IPv4: broadcast − 1,
 * IPv6: the last address) and `gateway` (network + 1).
 *
 * @module
 */

import {
  type Cidr,
  cidrContains,
  compareIps,
  formatCidr,
  formatIp,
  hasHostBits,
  type IpAddress,
  ipsEqual,
  lastAddress,
  networkAddress,
  nextIp,
} from "../ip/cidr.ts";

/** A range as configured; every field but `subnet` may be missing. */
export interface RangeInput {
  subnet?: Cidr;
  rangeStart?: IpAddress;
  rangeEnd?: IpAddress;
  gateway?: IpAddress;
}

/** A validated range with all defaults filled in. */
export interface Range {
  readonly subnet: Cidr;
  readonly rangeStart: IpAddress;
  readonly rangeEnd: IpAddress;
  /** Never handed out. Not required to lie inside the subnet (the reference does not check). */
  readonly gateway: IpAddress;
}

/** Ranges of one family; one address is allocated per range set. */
export type RangeSet = readonly Range[];

/** `Range.Contains` of the reference while ranges are still being filled in. */
function containsPartial(
  subnet: Cidr,
  start: IpAddress | undefined,
  end: IpAddress | undefined,
  ip: IpAddress,
) {
  if (ip.family !== subnet.address.family || !cidrContains(subnet, ip)) return false;
  if (start && start.family === ip.family && compareIps(ip, start) < 0) return false;
  if (end && end.family === ip.family && compareIps(ip, end) > 0) return false;
  return true;
}

/**
 * Validates one range and fills in its defaults (the reference's
 * `Range.Canonicalize`).
 * @throws {RangeError} with the reference's message, e.g.
 * `Network has host bits set. For a subnet mask of length 24 the network address is 10.9.8.0`.
 */
export function canonicalizeRange(input: RangeInput): Range {
  const subnet = input.subnet;
  if (!subnet) throw new RangeError("IP <nil> not v4 nor v6");
  if (subnet.prefixLength > subnet.bits - 2) {
    throw new RangeError(`Network ${formatCidr(subnet)} too small to allocate from`);
  }
  if (subnet.bits !== (subnet.address.family === 4 ? 32 : 128)) {
    throw new RangeError("IPNet IP and Mask version mismatch");
  }
  if (hasHostBits(subnet)) {
    throw new RangeError(
      `Network has host bits set. For a subnet mask of length ${subnet.prefixLength} the network address is ${
        formatIp(networkAddress(subnet))
      }`,
    );
  }
  const network = networkAddress(subnet);
  const first = nextIp(network)!;
  const gateway = input.gateway ?? first;
  let rangeStart = first;
  if (input.rangeStart) {
    if (!containsPartial(subnet, input.rangeStart, input.rangeEnd, input.rangeStart)) {
      throw new RangeError(
        `RangeStart ${formatIp(input.rangeStart)} not in network ${formatCidr(subnet)}`,
      );
    }
    rangeStart = input.rangeStart;
  }
  let rangeEnd: IpAddress;
  if (input.rangeEnd) {
    if (!containsPartial(subnet, rangeStart, input.rangeEnd, input.rangeEnd)) {
      throw new RangeError(
        `RangeEnd ${formatIp(input.rangeEnd)} not in network ${formatCidr(subnet)}`,
      );
    }
    rangeEnd = input.rangeEnd;
  } else {
    const last = lastAddress(subnet);
    // IPv4 keeps the broadcast address out; IPv6 has none.
    rangeEnd = subnet.address.family === 4 ? { family: 4, value: last.value - 1n } : last;
  }
  return { subnet: { ...subnet, address: network }, rangeStart, rangeEnd, gateway };
}

/** True when `ip` lies in `[rangeStart, rangeEnd]` of the range's subnet. */
export function rangeContains(range: Range, ip: IpAddress): boolean {
  return containsPartial(range.subnet, range.rangeStart, range.rangeEnd, ip);
}

/** True when two ranges of one family share an address (the reference's `Range.Overlaps`). */
export function rangesOverlap(a: Range, b: Range): boolean {
  if (a.rangeStart.family !== b.rangeStart.family) return false;
  return rangeContains(a, b.rangeStart) || rangeContains(a, b.rangeEnd) ||
    rangeContains(b, a.rangeStart) || rangeContains(b, a.rangeEnd);
}

/** `start-end`, as the reference prints a range. */
export function formatRange(range: Range): string {
  return `${formatIp(range.rangeStart)}-${formatIp(range.rangeEnd)}`;
}

/** `start-end,start-end`, as the reference prints a range set. */
export function formatRangeSet(set: RangeSet): string {
  return set.map(formatRange).join(",");
}

/**
 * Validates a range set: not empty, every range valid, one family, no
 * overlaps (the reference's `RangeSet.Canonicalize`).
 * @throws {RangeError} with the reference's message, e.g. `mixed address families`.
 */
export function canonicalizeRangeSet(inputs: readonly RangeInput[]): Range[] {
  if (inputs.length === 0) throw new RangeError("empty range set");
  const set: Range[] = [];
  for (const input of inputs) {
    const range = canonicalizeRange(input);
    if (set.length > 0 && set[0].rangeStart.family !== range.rangeStart.family) {
      throw new RangeError("mixed address families");
    }
    set.push(range);
  }
  for (let i = 0; i < set.length - 1; i++) {
    for (let j = i + 1; j < set.length; j++) {
      if (rangesOverlap(set[i], set[j])) {
        throw new RangeError(
          `subnets ${formatRange(set[i])} and ${formatRange(set[j])} overlap`,
        );
      }
    }
  }
  return set;
}

/** The range of `set` holding `ip`, or undefined. */
export function findRange(set: RangeSet, ip: IpAddress): Range | undefined {
  return set.find((range) => rangeContains(range, ip));
}

/** True when some range of the set holds `ip`. */
export function rangeSetContains(set: RangeSet, ip: IpAddress): boolean {
  return findRange(set, ip) !== undefined;
}

/** True when any range of `a` overlaps any range of `b`. */
export function rangeSetsOverlap(a: RangeSet, b: RangeSet): boolean {
  return a.some((ra) => b.some((rb) => rangesOverlap(ra, rb)));
}

/** A candidate address and the range it belongs to. */
export interface Candidate {
  ip: IpAddress;
  range: Range;
}

/**
 * Candidates in the reference's round-robin order: starting after
 * `lastReserved` when the set holds it (continuing into the next range at a
 * range's end and wrapping around, `lastReserved` itself last), else from the
 * first range's start; gateways are skipped; one full lap at most.
 */
export function* rangeSetCandidates(
  set: RangeSet,
  options: { lastReserved?: IpAddress } = {},
): Generator<Candidate> {
  const last = options.lastReserved;
  let index = 0;
  let cur: IpAddress | undefined;
  let start: IpAddress | undefined;
  const lastIndex = last ? set.findIndex((range) => rangeContains(range, last)) : -1;
  if (last && lastIndex >= 0) {
    index = lastIndex;
    cur = last;
  }
  while (true) {
    let range = set[index];
    if (cur === undefined) {
      cur = range.rangeStart;
      start = cur;
    } else {
      if (ipsEqual(cur, range.rangeEnd)) {
        index = (index + 1) % set.length;
        range = set[index];
        cur = range.rangeStart;
      } else {
        cur = nextIp(cur)!;
      }
      if (start === undefined) start = cur;
      else if (ipsEqual(cur, start)) return;
    }
    if (!ipsEqual(cur, range.gateway)) yield { ip: cur, range };
  }
}

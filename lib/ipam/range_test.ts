import { assert, assertEquals, assertThrows } from "@std/assert";
import { formatIp, parseCidr, parseIp } from "../ip/cidr.ts";
import {
  canonicalizeRange,
  canonicalizeRangeSet,
  formatRange,
  formatRangeSet,
  type RangeInput,
  type RangeSet,
  rangeSetCandidates,
  rangeSetContains,
  rangeSetsOverlap,
} from "./range.ts";

function input(subnet: string, extra: Record<string, string> = {}): RangeInput {
  const out: RangeInput = { subnet: parseCidr(subnet) };
  if (extra.start) out.rangeStart = parseIp(extra.start);
  if (extra.end) out.rangeEnd = parseIp(extra.end);
  if (extra.gw) out.gateway = parseIp(extra.gw);
  return out;
}

function candidates(set: RangeSet, last?: string): string[] {
  const lastReserved = last ? parseIp(last) : undefined;
  return [...rangeSetCandidates(set, { lastReserved })].map((c) => formatIp(c.ip));
}

Deno.test("canonicalizeRange() fills in .1 start, broadcast-1 end and .1 gateway for IPv4", () => {
  const r = canonicalizeRange(input("10.9.8.0/24"));
  assertEquals(formatRange(r), "10.9.8.1-10.9.8.254");
  assertEquals(formatIp(r.gateway), "10.9.8.1");
});

Deno.test("canonicalizeRange() ends IPv6 ranges at the last address", () => {
  const r = canonicalizeRange(input("fd00:1::/120"));
  assertEquals(formatRange(r), "fd00:1::1-fd00:1::ff");
  assertEquals(formatIp(r.gateway), "fd00:1::1");
});

Deno.test("canonicalizeRange() rejects subnets the reference rejects, with its messages", () => {
  assertThrows(
    () => canonicalizeRange(input("10.9.8.5/24")),
    RangeError,
    "Network has host bits set. For a subnet mask of length 24 the network address is 10.9.8.0",
  );
  assertThrows(
    () => canonicalizeRange(input("10.9.8.0/31")),
    RangeError,
    "Network 10.9.8.0/31 too small to allocate from",
  );
  // The size check comes first and prints the subnet as written.
  assertThrows(
    () => canonicalizeRange(input("10.9.8.5/32")),
    RangeError,
    "Network 10.9.8.5/32 too small",
  );
  assertThrows(
    () => canonicalizeRange(input("fd00::/127")),
    RangeError,
    "Network fd00::/127 too small",
  );
  assertThrows(
    () => canonicalizeRange(input("::ffff:10.0.0.0/120")),
    RangeError,
    "IPNet IP and Mask version mismatch",
  );
  assertThrows(() => canonicalizeRange({}), RangeError, "IP <nil> not v4 nor v6");
});

Deno.test("canonicalizeRange() checks rangeStart and rangeEnd against the subnet and each other", () => {
  assertThrows(
    () => canonicalizeRange(input("10.9.8.0/24", { start: "10.9.9.50" })),
    RangeError,
    "RangeStart 10.9.9.50 not in network 10.9.8.0/24",
  );
  assertThrows(
    () => canonicalizeRange(input("10.9.8.0/24", { end: "10.9.9.1" })),
    RangeError,
    "RangeEnd 10.9.9.1 not in network 10.9.8.0/24",
  );
  assertThrows(
    () => canonicalizeRange(input("10.9.8.0/24", { start: "10.9.8.50", end: "10.9.8.40" })),
    RangeError,
    "RangeStart 10.9.8.50 not in network 10.9.8.0/24",
  );
  assertThrows(
    () => canonicalizeRange(input("10.9.8.0/24", { start: "fd00::1" })),
    RangeError,
    "RangeStart fd00::1 not in network",
  );
  const r = canonicalizeRange(input("10.9.8.0/24", { start: "10.9.8.0", end: "10.9.8.255" }));
  assertEquals(formatRange(r), "10.9.8.0-10.9.8.255");
});

Deno.test("canonicalizeRange() accepts a gateway outside the subnet, like the reference", () => {
  const r = canonicalizeRange(input("10.9.8.0/24", { gw: "10.1.1.1" }));
  assertEquals(formatIp(r.gateway), "10.1.1.1");
});

Deno.test("canonicalizeRangeSet() rejects empty, mixed and overlapping sets", () => {
  assertThrows(() => canonicalizeRangeSet([]), RangeError, "empty range set");
  assertThrows(
    () => canonicalizeRangeSet([input("10.0.0.0/24"), input("fd00::/64")]),
    RangeError,
    "mixed address families",
  );
  assertThrows(
    () => canonicalizeRangeSet([input("10.0.0.0/24"), input("10.0.0.0/25")]),
    RangeError,
    "subnets 10.0.0.1-10.0.0.254 and 10.0.0.1-10.0.0.126 overlap",
  );
  // Same subnet, disjoint start/end windows: allowed.
  const set = canonicalizeRangeSet([
    input("10.0.0.0/24", { start: "10.0.0.10", end: "10.0.0.19" }),
    input("10.0.0.0/24", { start: "10.0.0.20", end: "10.0.0.29" }),
  ]);
  assertEquals(formatRangeSet(set), "10.0.0.10-10.0.0.19,10.0.0.20-10.0.0.29");
});

Deno.test("rangeSetContains() honours start and end, and rangeSetsOverlap() compares sets", () => {
  const set = canonicalizeRangeSet([
    input("10.0.0.0/24", { start: "10.0.0.10", end: "10.0.0.19" }),
  ]);
  assert(rangeSetContains(set, parseIp("10.0.0.10")));
  assert(rangeSetContains(set, parseIp("10.0.0.19")));
  assert(!rangeSetContains(set, parseIp("10.0.0.9")));
  assert(!rangeSetContains(set, parseIp("10.0.0.20")));
  assert(!rangeSetContains(set, parseIp("fd00::1")));
  const other = canonicalizeRangeSet([input("10.0.0.0/25")]);
  assert(rangeSetsOverlap(set, other));
  assert(!rangeSetsOverlap(set, canonicalizeRangeSet([input("10.0.1.0/24")])));
});

Deno.test("rangeSetCandidates() starts at rangeStart and skips the gateway", () => {
  const set = canonicalizeRangeSet([input("10.0.0.0/29")]);
  assertEquals(candidates(set), ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
});

Deno.test("rangeSetCandidates() continues after the last reserved address and wraps", () => {
  const set = canonicalizeRangeSet([input("10.0.0.0/29")]);
  assertEquals(candidates(set, "10.0.0.4"), [
    "10.0.0.5",
    "10.0.0.6",
    "10.0.0.2",
    "10.0.0.3",
    "10.0.0.4",
  ]);
  // At rangeEnd the next candidate is the (next) range's start.
  assertEquals(candidates(set, "10.0.0.6"), [
    "10.0.0.2",
    "10.0.0.3",
    "10.0.0.4",
    "10.0.0.5",
    "10.0.0.6",
  ]);
  // A last address outside the set is ignored.
  assertEquals(candidates(set, "10.0.1.4"), [
    "10.0.0.2",
    "10.0.0.3",
    "10.0.0.4",
    "10.0.0.5",
    "10.0.0.6",
  ]);
});

Deno.test("rangeSetCandidates() walks several ranges in order and round-robins across them", () => {
  const set = canonicalizeRangeSet([
    input("10.0.0.0/30"), // .1 is the gateway, .2 the only address
    input("10.0.1.0/24", { start: "10.0.1.10", end: "10.0.1.11" }),
    input("10.0.2.0/30"),
  ]);
  assertEquals(candidates(set), ["10.0.0.2", "10.0.1.10", "10.0.1.11", "10.0.2.2"]);
  assertEquals(candidates(set, "10.0.1.10"), ["10.0.1.11", "10.0.2.2", "10.0.0.2", "10.0.1.10"]);
});

Deno.test("rangeSetCandidates() yields nothing when the only address is the gateway", () => {
  const set = canonicalizeRangeSet([input("10.0.0.0/30", { start: "10.0.0.1", end: "10.0.0.1" })]);
  assertEquals(candidates(set), []);
  assertEquals(candidates(set, "10.0.0.1"), []);
});

Deno.test("rangeSetCandidates() includes the IPv6 all-ones address", () => {
  const set = canonicalizeRangeSet([input("fd00::/126")]);
  assertEquals(candidates(set), ["fd00::2", "fd00::3"]);
});

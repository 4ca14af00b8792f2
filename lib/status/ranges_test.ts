import { assertEquals } from "@std/assert";
import { parseRangeSets } from "./ranges.ts";

Deno.test("parseRangeSets() applies host-local defaults and skips the gateway", () => {
  const sets = parseRangeSets({ type: "host-local", ranges: [[{ subnet: "10.1.0.0/24" }]] });
  assertEquals(sets.errors, []);
  assertEquals(sets.sets, [{
    index: 0,
    ranges: [{
      subnet: "10.1.0.0/24",
      rangeStart: "10.1.0.1",
      rangeEnd: "10.1.0.254",
      gateway: "10.1.0.1",
      capacity: 253,
    }],
  }]);
});

Deno.test("parseRangeSets() counts the whole IPv6 range and excludes only an inside gateway", () => {
  const sets = parseRangeSets({
    ranges: [
      [{ subnet: "fd00::/120" }],
      [{ subnet: "10.2.0.0/24", rangeStart: "10.2.0.10", rangeEnd: "10.2.0.19" }],
      [{
        subnet: "10.3.0.0/24",
        rangeStart: "10.3.0.10",
        rangeEnd: "10.3.0.19",
        gateway: "10.3.0.15",
      }],
    ],
  });
  assertEquals(sets.sets.map((s) => s.ranges[0].capacity), [254, 10, 9]);
  assertEquals(sets.sets[0].ranges[0].rangeEnd, "fd00::ff");
});

Deno.test("parseRangeSets() puts the legacy top-level subnet first", () => {
  const sets = parseRangeSets({
    subnet: "10.9.0.0/30",
    ranges: [[{ subnet: "10.8.0.0/29" }]],
  });
  assertEquals(sets.sets.map((s) => s.ranges[0].subnet), ["10.9.0.0/30", "10.8.0.0/29"]);
  assertEquals(sets.sets[0].ranges[0].capacity, 1); // .1 gateway, .2 only
  assertEquals(sets.locate("10.8.0.3"), { set: 1, range: 0 });
});

Deno.test("parseRangeSets() locates addresses by range and family", () => {
  const sets = parseRangeSets({
    ranges: [[{ subnet: "10.0.0.0/28" }, { subnet: "10.0.1.0/28" }], [{ subnet: "fd00::/64" }]],
  });
  assertEquals(sets.locate("10.0.1.4"), { set: 0, range: 1 });
  assertEquals(sets.locate("fd00::9"), { set: 1, range: 0 });
  assertEquals(sets.locate("10.0.0.15"), undefined); // broadcast is not allocatable
  assertEquals(sets.locate("10.5.0.1"), undefined);
  assertEquals(sets.locate("not-an-ip"), undefined);
});

Deno.test("parseRangeSets() reports bad ranges without throwing", () => {
  const sets = parseRangeSets({
    ranges: [[{ subnet: "10.0.0.0/33" }], [{ subnet: "10.1.0.0/24", rangeStart: "10.2.0.1" }], "x"],
  });
  assertEquals(sets.errors, [
    'range set 0 range 0: invalid subnet "10.0.0.0/33"',
    "range set 1 range 0: rangeStart 10.2.0.1 not in network 10.1.0.0/24",
    "range set 2 is not a list",
  ]);
  assertEquals(parseRangeSets({ type: "host-local" }).errors, ["no IP ranges specified"]);
});

Deno.test("parseRangeSets() reports what host-local itself would refuse", () => {
  const refused = (ranges: unknown) => parseRangeSets({ type: "host-local", ranges }).errors;
  assertEquals(refused([[{ subnet: "10.0.0.5/24" }]]), [
    "host-local refuses this config: invalid range set 0: Network has host bits set. For a subnet mask of length 24 the network address is 10.0.0.0",
  ]);
  assertEquals(refused([[{ subnet: "fd00::/127" }]]), [
    "host-local refuses this config: invalid range set 0: Network fd00::/127 too small to allocate from",
  ]);
  assertEquals(refused([[{ subnet: "10.0.0.0/24" }, { subnet: "10.0.0.0/25" }]]).length, 1);
  assertEquals(refused([[{ subnet: "10.0.0.0/24" }, { subnet: "fd00::/64" }]]).length, 1);
  assertEquals(refused([[{ subnet: "10.0.0.0/24" }], [{ subnet: "fd00::/64" }]]), []);
});

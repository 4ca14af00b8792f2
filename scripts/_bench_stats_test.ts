import { assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import {
  formatNumber,
  makeRow,
  median,
  percentile,
  renderGrid,
  renderTable,
  summarize,
} from "./_bench_stats.ts";

Deno.test("median() takes the middle value, or the mean of the two middle ones", () => {
  assertEquals(median([5, 1, 3]), 3);
  assertEquals(median([4, 1, 3, 2]), 2.5);
  assertThrows(() => median([]), RangeError, "0 samples");
});

Deno.test("percentile() is nearest-rank on the sorted samples", () => {
  const values = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
  // index round(0.9 * 9) = 8 of 1..10
  assertEquals(percentile(values, 0.9), 9);
  assertEquals(percentile(values, 0), 1);
  assertEquals(percentile(values, 1), 10);
  assertThrows(() => percentile(values, 1.5), RangeError, "within [0, 1]");
});

Deno.test("summarize() keeps the samples in order, rounded to microseconds", () => {
  const s = summarize([3.14159, 1, 2]);
  assertEquals(s.n, 3);
  assertEquals(s.median, 2);
  assertEquals(s.min, 1);
  assertEquals(s.max, 3.14159);
  assertEquals(s.samples, [3.142, 1, 2]);
});

Deno.test("makeRow() computes cnibox/reference and checks a ratio target", () => {
  const row = makeRow({ scenario: "1 chain", metric: "ADD" }, {
    reference: [100, 100, 100],
    cnibox: [80, 90, 70],
    target: { kind: "ratio", max: 0.85, text: "<= 0.85" },
  });
  assertEquals(row.ratio, 0.8);
  assertEquals(row.met, true);
  const slow = makeRow({ scenario: "1 chain", metric: "ADD" }, {
    reference: [100],
    cnibox: [90],
    target: { kind: "ratio", max: 0.85, text: "<= 0.85" },
  });
  assertEquals(slow.met, false);
});

Deno.test("makeRow() checks an absolute target against cnibox's median", () => {
  const row = makeRow({ scenario: "4 start", metric: "VERSION" }, {
    reference: [3],
    cnibox: [24, 30, 20],
    target: { kind: "absolute", max: 25, text: "<= 25 ms" },
  });
  assertEquals(row.met, true);
  assertEquals(row.ratio, 8);
});

Deno.test("makeRow() leaves met unset without data and honours an explicit ratio", () => {
  const none = makeRow({ scenario: "x", metric: "y" }, {
    target: { kind: "ratio", max: 1, text: "<= 1" },
  });
  assertEquals(none.met, undefined);
  const explicit = makeRow({ scenario: "x", metric: "y" }, {
    ratio: 1.5,
    target: { kind: "ratio", max: 1.3, text: "<= 1.3" },
  });
  assertEquals(explicit.met, false);
});

Deno.test("formatNumber() keeps about three significant digits", () => {
  assertEquals(formatNumber(1234.5), "1235");
  assertEquals(formatNumber(45.678), "45.7");
  assertEquals(formatNumber(2.345), "2.35");
});

Deno.test("renderTable() shows median (p90), ratio, target and a bold miss", () => {
  const table = renderTable([
    makeRow({ scenario: "1 chain", metric: "ADD | 0 live" }, {
      reference: [100, 110, 120],
      cnibox: [150, 160, 170],
      target: { kind: "ratio", max: 0.85, text: "ratio <= 0.85" },
    }),
    makeRow({ scenario: "4 start", metric: "RSS" }, { unit: "MiB", cnibox: [40] }),
  ]);
  const lines = table.split("\n");
  assertEquals(lines.length, 4);
  assertEquals(
    lines[2],
    "| 1 chain | ADD \\| 0 live | 110 (120) | 160 (170) | 1.45 | ratio <= 0.85 | **no** |",
  );
  assertEquals(lines[3], "| 4 start | RSS | – | 40.0 MiB |  |  |  |");
});

Deno.test("renderGrid() right-aligns every column but the first", () => {
  const grid = renderGrid(["a", "b", "c"], [["x", "1", "2"]]);
  assertStringIncludes(grid, "|---|---:|---:|");
  assertStringIncludes(grid, "| x | 1 | 2 |");
});

import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { join } from "@std/path";
import { collectInventory } from "./inventory.ts";
import type { JournalEntry } from "./journal_reader.ts";
import { escapeLabel, renderMetrics, RunCounters } from "./metrics.ts";
import { statusFixture } from "./_testing.ts";

function run(plugin: string, command: string, outcome: "ok" | "error", ms: number): JournalEntry {
  return { time: 0, plugin, command, outcome, durationMs: ms };
}

Deno.test("escapeLabel() escapes backslash, quote and newline", () => {
  assertEquals(escapeLabel('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
});

Deno.test("RunCounters counts by plugin/command/outcome and fills cumulative buckets", () => {
  const counters = new RunCounters();
  counters.add([
    run("bridge", "ADD", "ok", 3),
    run("bridge", "ADD", "ok", 30),
    run("bridge", "ADD", "error", 700),
    run("loopback", "", "ok", 1),
  ]);
  assertEquals(counters.runs(), [
    { plugin: "bridge", command: "ADD", outcome: "error", count: 1 },
    { plugin: "bridge", command: "ADD", outcome: "ok", count: 2 },
    { plugin: "loopback", command: "none", outcome: "ok", count: 1 },
  ]);
  const h = counters.durations()[0].histogram;
  assertEquals(h.count, 3);
  // le 0.005: 1 (3 ms); le 0.05: 2 (30 ms); le 1: 3 (700 ms)
  assertEquals([h.buckets[0], h.buckets[3], h.buckets[7]], [1, 2, 3]);
  assert(Math.abs(h.sum - 0.733) < 1e-9);
});

Deno.test("renderMetrics() exposes lease usage, stale counts and plugin runs", async () => {
  await using fx = await statusFixture();
  const counters = new RunCounters();
  counters.add([run("bridge", "ADD", "ok", 20), run("bridge", "DEL", "error", 2)]);
  const text = renderMetrics(await collectInventory(fx.sources), { runs: counters });
  for (
    const line of [
      "# TYPE cnibox_leases_used gauge",
      'cnibox_leases_used{network="alpha",range_set="0",range="0",subnet="10.22.0.0/24"} 4',
      'cnibox_leases_capacity{network="alpha",range_set="0",range="0",subnet="10.22.0.0/24"} 253',
      'cnibox_leases_used{network="beta",range_set="1",range="0",subnet="fd33::/120"} 1',
      'cnibox_stale_leases{network="alpha"} 3',
      'cnibox_stale_leases{network="nomad"} 1',
      'cnibox_stale_attachments{network="alpha"} 1',
      'cnibox_attachments{network="beta"} 1',
      "cnibox_config_errors 1",
      'cnibox_plugin_runs_total{plugin="bridge",command="ADD",outcome="ok"} 1',
      'cnibox_plugin_runs_total{plugin="bridge",command="DEL",outcome="error"} 1',
      'cnibox_plugin_run_duration_seconds_bucket{plugin="bridge",command="ADD",le="0.01"} 0',
      'cnibox_plugin_run_duration_seconds_bucket{plugin="bridge",command="ADD",le="0.025"} 1',
      'cnibox_plugin_run_duration_seconds_bucket{plugin="bridge",command="ADD",le="+Inf"} 1',
      'cnibox_plugin_run_duration_seconds_count{plugin="bridge",command="ADD"} 1',
    ]
  ) assertStringIncludes(text, `${line}\n`);
  // Every sample line is "name{labels} value" or "name value".
  for (const line of text.trimEnd().split("\n")) {
    if (line.startsWith("#")) continue;
    assert(/^[a-z_]+(\{[^}]*\})? ([0-9.e+-]+|\+Inf|NaN)$/.test(line), line);
  }
});

Deno.test("renderMetrics() leaves out run families without a journal", async () => {
  await using fx = await statusFixture();
  const text = renderMetrics(await collectInventory(fx.sources));
  assertEquals(text.includes("cnibox_plugin_runs_total"), false);
  assertStringIncludes(text, "cnibox_networks 4\n");
});

Deno.test("renderMetrics() gives each range of a set its own series, also for slices of one subnet", async () => {
  await using fx = await statusFixture();
  await Deno.writeTextFile(
    join(fx.configDir, "90-slices.conflist"),
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "slices",
      plugins: [{
        type: "bridge",
        ipam: {
          type: "host-local",
          dataDir: fx.dataDir,
          ranges: [[
            { subnet: "10.2.0.0/24", rangeStart: "10.2.0.10", rangeEnd: "10.2.0.50" },
            { subnet: "10.2.0.0/24", rangeStart: "10.2.0.100", rangeEnd: "10.2.0.150" },
          ]],
        },
      }],
    }),
  );
  const text = renderMetrics(await collectInventory(fx.sources));
  const series = text.split("\n").filter((l) => l.startsWith("cnibox_leases_capacity{"))
    .map((l) => l.slice(0, l.lastIndexOf(" ")));
  assertEquals(series.length, new Set(series).size, "duplicate series");
  assertStringIncludes(
    text,
    'cnibox_leases_capacity{network="slices",range_set="0",range="1",subnet="10.2.0.0/24"} 51\n',
  );
});

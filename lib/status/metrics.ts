/**
 * Prometheus text exposition (format 0.0.4) of the CNI state and of the
 * plugin-run journal: lease usage and capacity per network and range, stale
 * counts, runs by plugin/command/outcome and a run-duration histogram.
 *
 * @module
 */
import type { Inventory } from "./inventory.ts";
import type { JournalEntry } from "./journal_reader.ts";

/** Upper bounds (seconds) of the run-duration histogram buckets. */
export const DURATION_BUCKETS: readonly number[] = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

// Journal lines are written by anyone who can write the journal file; a
// bound on label combinations keeps a garbage journal from exploding memory.
const MAX_SERIES = 2000;

interface Histogram {
  buckets: number[];
  sum: number;
  count: number;
}

/**
 * Cumulative plugin-run counters, fed with journal entries as they are read.
 * Counters only grow (what Prometheus expects of a `_total`), even when the
 * journal file itself rotates.
 */
export class RunCounters {
  #runs = new Map<string, number>();
  #durations = new Map<string, Histogram>();
  /** Entries dropped because of the series bound. */
  dropped = 0;

  /** Adds entries to the counters. */
  add(entries: Iterable<JournalEntry>): void {
    for (const entry of entries) {
      const command = entry.command === "" ? "none" : entry.command;
      const runKey = `${entry.plugin}\0${command}\0${entry.outcome}`;
      const durKey = `${entry.plugin}\0${command}`;
      if (
        (!this.#runs.has(runKey) || !this.#durations.has(durKey)) &&
        this.#runs.size + this.#durations.size >= MAX_SERIES
      ) {
        this.dropped++;
        continue;
      }
      this.#runs.set(runKey, (this.#runs.get(runKey) ?? 0) + 1);
      let h = this.#durations.get(durKey);
      if (!h) {
        h = { buckets: DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 };
        this.#durations.set(durKey, h);
      }
      const seconds = entry.durationMs / 1000;
      DURATION_BUCKETS.forEach((le, i) => {
        if (seconds <= le) h.buckets[i]++;
      });
      h.sum += seconds;
      h.count++;
    }
  }

  /** Runs per `{ plugin, command, outcome }`, sorted. */
  runs(): { plugin: string; command: string; outcome: string; count: number }[] {
    return [...this.#runs].sort(([a], [b]) => a.localeCompare(b)).map(([key, count]) => {
      const [plugin, command, outcome] = key.split("\0");
      return { plugin, command, outcome, count };
    });
  }

  /** Duration histograms per `{ plugin, command }`, sorted. */
  durations(): { plugin: string; command: string; histogram: Histogram }[] {
    return [...this.#durations].sort(([a], [b]) => a.localeCompare(b)).map(([key, histogram]) => {
      const [plugin, command] = key.split("\0");
      return { plugin, command, histogram };
    });
  }
}

/** Escapes a label value (backslash, double quote and newline, as the format requires). */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(pairs: Record<string, string>): string {
  const body = Object.entries(pairs).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",");
  return body ? `{${body}}` : "";
}

function formatNumber(value: number): string {
  if (value === Infinity) return "+Inf";
  if (Number.isNaN(value)) return "NaN";
  return String(value);
}

class Exposition {
  #lines: string[] = [];

  family(name: string, type: "gauge" | "counter" | "histogram", help: string): void {
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }

  sample(name: string, pairs: Record<string, string>, value: number): void {
    this.#lines.push(`${name}${labels(pairs)} ${formatNumber(value)}`);
  }

  text(): string {
    return this.#lines.join("\n") + "\n";
  }
}

function countBy<T>(items: T[], key: (item: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

/** Options for {@linkcode renderMetrics}. */
export interface RenderMetricsOptions {
  /** Plugin-run counters from the journal; omitted families are not rendered. */
  runs?: RunCounters;
}

/**
 * Renders the metrics page.
 *
 * @example Usage
 * ```ts ignore
 * const text = renderMetrics(await collectInventory(sources), { runs });
 * ```
 */
export function renderMetrics(inventory: Inventory, options: RenderMetricsOptions = {}): string {
  const out = new Exposition();

  out.family("cnibox_networks", "gauge", "Network configurations found (shadowed ones included).");
  out.sample("cnibox_networks", {}, inventory.networks.length);
  out.family("cnibox_config_errors", "gauge", "Network config files that could not be loaded.");
  out.sample("cnibox_config_errors", {}, inventory.configErrors.length);

  // One series per range: a set may hold several ranges of one subnet (rangeStart/rangeEnd
  // slices), and a chain several host-local plugins, so both positions are labels.
  const ranges = inventory.networks.flatMap((n) =>
    n.hostLocal.flatMap((hl, ipam) =>
      hl.rangeSets.flatMap((set) =>
        set.ranges.map((r, range) => ({
          labels: {
            network: n.name,
            ...(n.hostLocal.length > 1 ? { ipam: String(ipam) } : {}),
            range_set: String(set.index),
            range: String(range),
            subnet: r.subnet,
          },
          used: r.used,
          capacity: r.capacity,
        }))
      )
    )
  );
  out.family(
    "cnibox_leases_used",
    "gauge",
    "host-local addresses leased, per network and range.",
  );
  for (const r of ranges) out.sample("cnibox_leases_used", r.labels, r.used);
  out.family(
    "cnibox_leases_capacity",
    "gauge",
    "host-local addresses a range can hand out (gateway excluded).",
  );
  for (const r of ranges) out.sample("cnibox_leases_capacity", r.labels, r.capacity);

  const networkNames = [
    ...new Set([
      ...inventory.leases.map((l) => l.network),
      ...inventory.attachments.map((a) => a.network),
    ]),
  ].sort();
  const leases = countBy(inventory.leases, (l) => l.network);
  const staleLeases = countBy(inventory.leases.filter((l) => l.stale), (l) => l.network);
  const attachments = countBy(inventory.attachments, (a) => a.network);
  const staleAttachments = countBy(inventory.attachments.filter((a) => a.stale), (a) => a.network);
  out.family("cnibox_leases", "gauge", "host-local lease files, per network.");
  for (const n of networkNames) out.sample("cnibox_leases", { network: n }, leases.get(n) ?? 0);
  out.family(
    "cnibox_stale_leases",
    "gauge",
    "Leases with no live cached attachment (leaked addresses), per network.",
  );
  for (const n of networkNames) {
    out.sample("cnibox_stale_leases", { network: n }, staleLeases.get(n) ?? 0);
  }
  out.family(
    "cnibox_attachments",
    "gauge",
    "Cached attachments (libcni result cache), per network.",
  );
  for (const n of networkNames) {
    out.sample("cnibox_attachments", { network: n }, attachments.get(n) ?? 0);
  }
  out.family(
    "cnibox_stale_attachments",
    "gauge",
    "Cached attachments whose network namespace is gone, per network.",
  );
  for (const n of networkNames) {
    out.sample("cnibox_stale_attachments", { network: n }, staleAttachments.get(n) ?? 0);
  }

  const runs = options.runs;
  if (runs) {
    out.family(
      "cnibox_plugin_runs_total",
      "counter",
      "Plugin runs recorded in the journal, by plugin, command and outcome.",
    );
    for (const r of runs.runs()) {
      out.sample(
        "cnibox_plugin_runs_total",
        { plugin: r.plugin, command: r.command, outcome: r.outcome },
        r.count,
      );
    }
    out.family(
      "cnibox_plugin_run_duration_seconds",
      "histogram",
      "Wall time of plugin runs, by plugin and command.",
    );
    for (const d of runs.durations()) {
      const base = { plugin: d.plugin, command: d.command };
      DURATION_BUCKETS.forEach((le, i) => {
        out.sample(
          "cnibox_plugin_run_duration_seconds_bucket",
          { ...base, le: String(le) },
          d.histogram.buckets[i],
        );
      });
      out.sample(
        "cnibox_plugin_run_duration_seconds_bucket",
        { ...base, le: "+Inf" },
        d.histogram.count,
      );
      out.sample(
        "cnibox_plugin_run_duration_seconds_sum",
        base,
        Math.round(d.histogram.sum * 1e6) / 1e6,
      );
      out.sample("cnibox_plugin_run_duration_seconds_count", base, d.histogram.count);
    }
    out.family(
      "cnibox_journal_dropped_entries_total",
      "counter",
      "Journal entries not counted because of the label-combination bound.",
    );
    out.sample("cnibox_journal_dropped_entries_total", {}, runs.dropped);
  }
  return out.text();
}

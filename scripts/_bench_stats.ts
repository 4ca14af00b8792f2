/**
 * Numbers and tables for `deno task bench`: summaries of timing samples
 * (median, p90), the cnibox/reference ratio against a target, and the
 * markdown table the bench prints. Pure functions; no I/O.
 *
 * @module
 */

/** Summary of one series of samples (milliseconds unless the row says otherwise). */
export interface Summary {
  /** Number of samples. */
  n: number;
  median: number;
  /** Nearest-rank 90th percentile (the perf baseline's definition). */
  p90: number;
  min: number;
  max: number;
  /** The samples in the order they were taken. */
  samples: number[];
}

/**
 * Median of `values` (mean of the two middle ones for an even count).
 * Throws `RangeError` for an empty list.
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("Cannot take the median of 0 samples");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Nearest-rank percentile as the perf baseline computes it: the sorted value
 * at index `round(q * (n - 1))`. Throws `RangeError` for an empty list or `q`
 * outside [0, 1].
 */
export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) throw new RangeError("Cannot take a percentile of 0 samples");
  if (!(q >= 0 && q <= 1)) throw new RangeError(`Percentile must be within [0, 1], got ${q}`);
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.round(q * (sorted.length - 1)))];
}

/** Summarises a series; throws `RangeError` when it is empty. */
export function summarize(samples: readonly number[]): Summary {
  return {
    n: samples.length,
    median: median(samples),
    p90: percentile(samples, 0.9),
    min: Math.min(...samples),
    max: Math.max(...samples),
    samples: samples.map(round3),
  };
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** A goal for one row: its ratio (or absolute value) must be at most `max`. */
export interface Target {
  /** What is compared: the cnibox/reference ratio, or cnibox's median itself. */
  kind: "ratio" | "absolute";
  /** The upper bound. */
  max: number;
  /** How the issue words it, e.g. "<= 0.85". */
  text: string;
}

/** One line of the result table. */
export interface Row {
  /** Scenario id, e.g. "chain". */
  scenario: string;
  /** What was measured, e.g. "ADD, 0 live allocations". */
  metric: string;
  /** Unit of the numbers. @default {"ms"} */
  unit?: string;
  reference?: Summary;
  cnibox?: Summary;
  /** cnibox median / reference median, or for self-comparisons the ratio the target names. */
  ratio?: number;
  target?: Target;
  /** Whether the target was met; absent when there is no target or no data. */
  met?: boolean;
  /** A short remark shown in the table (e.g. which plugins were borrowed). */
  note?: string;
}

/** Options for {@linkcode makeRow}. */
export interface RowOptions {
  unit?: string;
  reference?: readonly number[];
  cnibox?: readonly number[];
  target?: Target;
  note?: string;
  /** Use this ratio instead of cnibox/reference (for self-comparisons). */
  ratio?: number;
}

/** Builds a row from raw samples, computing the ratio and whether the target is met. */
export function makeRow(id: { scenario: string; metric: string }, options: RowOptions): Row {
  const row: Row = { scenario: id.scenario, metric: id.metric };
  if (options.unit) row.unit = options.unit;
  if (options.reference && options.reference.length > 0) {
    row.reference = summarize(options.reference);
  }
  if (options.cnibox && options.cnibox.length > 0) row.cnibox = summarize(options.cnibox);
  if (options.ratio !== undefined) row.ratio = options.ratio;
  else if (row.reference && row.cnibox && row.reference.median > 0) {
    row.ratio = row.cnibox.median / row.reference.median;
  }
  if (options.target) {
    row.target = options.target;
    const value = options.target.kind === "ratio" ? row.ratio : row.cnibox?.median;
    if (value !== undefined) row.met = value <= options.target.max;
  }
  if (options.note) row.note = options.note;
  return row;
}

/** Formats a number with a precision that suits its size (3 significant digits, at most 2 decimals). */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function cell(summary: Summary | undefined, unit: string | undefined): string {
  if (!summary) return "–";
  const suffix = unit && unit !== "ms" ? ` ${unit}` : "";
  if (summary.n === 1) return `${formatNumber(summary.median)}${suffix}`;
  return `${formatNumber(summary.median)} (${formatNumber(summary.p90)})${suffix}`;
}

function escapeCell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

/**
 * Renders rows as a markdown table: medians with p90 in parentheses, the
 * ratio, the target and whether it was met.
 */
export function renderTable(rows: readonly Row[]): string {
  const lines = [
    "| scenario | metric | reference median (p90) | cnibox median (p90) | ratio | target | met |",
    "|---|---|---:|---:|---:|---|:-:|",
  ];
  for (const row of rows) {
    const metric = row.note ? `${row.metric} (${row.note})` : row.metric;
    const met = row.met === undefined ? "" : row.met ? "yes" : "**no**";
    lines.push(
      `| ${row.scenario} | ${escapeCell(metric)} | ${cell(row.reference, row.unit)} | ${
        cell(row.cnibox, row.unit)
      } | ${row.ratio === undefined ? "" : row.ratio.toFixed(2)} | ${
        escapeCell(row.target?.text ?? "")
      } | ${met} |`,
    );
  }
  return lines.join("\n");
}

/** Renders a plain markdown table from a header and string cells. */
export function renderGrid(
  header: readonly string[],
  cells: readonly (readonly string[])[],
): string {
  const lines = [
    `| ${header.map(escapeCell).join(" | ")} |`,
    `|${header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
  ];
  for (const line of cells) lines.push(`| ${line.map(escapeCell).join(" | ")} |`);
  return lines.join("\n");
}

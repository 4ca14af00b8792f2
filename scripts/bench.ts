// deno-lint-ignore-file no-console -- the bench reports to its user.
/**
 * `deno task bench`: cnibox side by side with the reference plugins
 * (`/usr/lib/cni`), in the same run, alternating A/B per iteration, each
 * implementation in its own private host namespace with its own driver
 * process (`lib/runtime` in-process, see `_bench_driver.ts`).
 *
 * Scenarios (issue 7): 1 `chain` (Nomad's chain, 0 and N live allocations),
 * 2 `hostlocal` (1/1000/4000 leases), 3 `concurrent` (64 ADDs, 64 DELs),
 * 4 `start` (VERSION, peak RSS), 5 `status` (the status endpoint).
 * `--profile` adds where the time goes per plugin and per step.
 *
 * Prints a markdown table (medians, p90, ratio cnibox/reference, targets) on
 * stdout, progress on stderr, and writes `bench-results/<timestamp>.json`.
 * Needs root. Creates only namespaces named `cbx-bn-*` and a temp directory,
 * and removes them; traffic only inside them and on 127.0.0.1.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { installPlugins } from "../commands/install.ts";
import { ROOT } from "../lib/testing/netns.ts";
import { BenchHost, type Impl, type LiveAlloc } from "./_bench_host.ts";
import {
  CHAIN_PLUGINS,
  chainScenario,
  type Check,
  concurrentScenario,
  hostLocalScenario,
  type ScenarioContext,
  type Sizes,
  startScenario,
} from "./_bench_scenarios.ts";
import {
  profileChain,
  type ProfileReport,
  renderProfile,
  startupAnatomy,
} from "./_bench_profile.ts";
import { statusScenario, type StatusSizes } from "./_bench_status.ts";
import { renderTable, type Row } from "./_bench_stats.ts";

/** Scenario names in run order, with their issue numbers. */
export const SCENARIOS = ["chain", "hostlocal", "concurrent", "start", "status"] as const;
/**
 * Waits (at most 20 s) until the kernel has finished the work an earlier
 * scenario left behind: deleting dozens of network namespaces goes on in
 * kernel workers for seconds after the last DEL, and a start-up timed then
 * measures that, not the plugins. Settled = the CPUs at least 90 % idle over
 * two 500 ms windows in a row (/proc/stat).
 */
async function settle(log: (line: string) => void): Promise<void> {
  const busyAndTotal = () => {
    // user nice system idle iowait irq softirq steal (guest time is inside user and nice).
    const ticks = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1, 9)
      .map(Number);
    const total = ticks.reduce((a, b) => a + b, 0);
    return { idle: ticks[3] + ticks[4], total }; // idle + iowait
  };
  const started = performance.now();
  let quiet = 0;
  while (quiet < 2 && performance.now() - started < 20_000) {
    const before = busyAndTotal();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = busyAndTotal();
    const idle = (after.idle - before.idle) / Math.max(1, after.total - before.total);
    quiet = idle >= 0.9 ? quiet + 1 : 0;
  }
  const waited = (performance.now() - started) / 1000;
  if (waited > 1.5) log(`bench: waited ${waited.toFixed(1)} s for the machine to settle`);
}

/** A scenario name. */
export type Scenario = (typeof SCENARIOS)[number];

/** Everything a bench run is told. */
export interface BenchOptions {
  scenarios: Scenario[];
  impls: ("reference" | "cnibox")[];
  sizes: Sizes;
  status: StatusSizes;
  profile: boolean;
  profileCycles: number;
  /** Other allocations kept live while profiling (where cost grows with allocations). */
  profileLive: number;
  anatomyRuns: number;
  /** cnibox plugin dir; unset: install launchers into the work dir. */
  ours?: string;
  reference: string;
  /** JSON output path; unset: `bench-results/<timestamp>.json`. */
  json?: string;
  keep: boolean;
  quick: boolean;
}

const USAGE = `usage: deno task bench [flags]
  --quick                 ~1 minute smoke run (small sizes)
  --scenario <list>       comma-separated: chain,hostlocal,concurrent,start,status or 1-5 (default: all)
  --impl <both|cnibox|reference>   which implementations to run (default both)
  --profile               also report where the time goes per plugin and per step
  --profile-live <n>      profile with n other allocations live (default 0)
  --iterations <n>        timed ADD+DEL cycles per live level (scenario 1)
  --live <list>           live allocation levels (scenario 1), e.g. 0,100
  --leases <list>         lease levels (scenario 2), e.g. 1,1000,4000
  --hl-iterations <n>     timed cycles per lease level (scenario 2)
  --concurrency <n>       concurrent ADDs/DELs (scenario 3)
  --rounds <n>            rounds per implementation (scenario 3)
  --start-iterations <n>  VERSION runs per plugin (scenario 4)
  --warmup <n>            untimed cycles before timing
  --ours <dir>            cnibox plugin dir (default: fresh launchers over this checkout)
  --reference <dir>       reference plugin dir (default /usr/lib/cni)
  --json <path>           JSON output (default bench-results/<timestamp>.json)
  --keep                  keep the work directory
`;

function numberFlag(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`--${name} must be a non-negative integer, got "${value}"`);
  }
  return n;
}

function listFlag(value: unknown, name: string): number[] | undefined {
  if (value === undefined) return undefined;
  const list = String(value).split(",").map((v) => numberFlag(v.trim(), name)!);
  if (list.length === 0) throw new RangeError(`--${name} needs at least one value`);
  return list;
}

/** Parses the bench's flags; throws `TypeError`/`RangeError` for bad ones. */
export function parseBenchArgs(args: readonly string[]): BenchOptions & { help: boolean } {
  const flags = parseArgs(args, {
    string: [
      "scenario",
      "impl",
      "iterations",
      "live",
      "leases",
      "hl-iterations",
      "concurrency",
      "rounds",
      "start-iterations",
      "warmup",
      "profile-live",
      "ours",
      "reference",
      "json",
    ],
    boolean: ["quick", "profile", "keep", "help"],
    alias: { h: "help", s: "scenario" },
  });
  if (flags._.length > 0) throw new TypeError(`Unexpected argument "${flags._[0]}"`);
  const quick = flags.quick === true;
  const sizes: Sizes = quick
    ? {
      iterations: 5,
      warmup: 1,
      live: [0, 10],
      leases: [1, 1000],
      hlIterations: 5,
      concurrency: 16,
      rounds: 1,
      startIterations: 8,
      rssSamples: 1,
    }
    : {
      iterations: 20,
      warmup: 2,
      live: [0, 100],
      leases: [1, 1000, 4000],
      hlIterations: 20,
      concurrency: 64,
      rounds: 2,
      startIterations: 30,
      rssSamples: 3,
    };
  sizes.iterations = numberFlag(flags.iterations, "iterations") ?? sizes.iterations;
  sizes.warmup = numberFlag(flags.warmup, "warmup") ?? sizes.warmup;
  sizes.live = listFlag(flags.live, "live") ?? sizes.live;
  sizes.leases = listFlag(flags.leases, "leases") ?? sizes.leases;
  sizes.hlIterations = numberFlag(flags["hl-iterations"], "hl-iterations") ?? sizes.hlIterations;
  sizes.concurrency = numberFlag(flags.concurrency, "concurrency") ?? sizes.concurrency;
  sizes.rounds = numberFlag(flags.rounds, "rounds") ?? sizes.rounds;
  sizes.startIterations = numberFlag(flags["start-iterations"], "start-iterations") ??
    sizes.startIterations;
  if (sizes.leases.some((n) => n > 4000)) {
    throw new RangeError(`--leases: at most 4000 fit the bench's /20, got ${sizes.leases}`);
  }
  if (sizes.iterations < 1 || sizes.hlIterations < 1 || sizes.startIterations < 1) {
    throw new RangeError("--iterations, --hl-iterations and --start-iterations must be >= 1");
  }
  const status: StatusSizes = quick
    ? { attachments: 1000, leases: 4000, requests: 30, coldRequests: 1, seconds: 1, clients: 4 }
    : { attachments: 1000, leases: 4000, requests: 200, coldRequests: 3, seconds: 3, clients: 8 };
  let scenarios: Scenario[] = [...SCENARIOS];
  if (typeof flags.scenario === "string") {
    scenarios = flags.scenario.split(",").map((s) => {
      const name = /^[1-5]$/.test(s.trim()) ? SCENARIOS[Number(s) - 1] : s.trim();
      if (!SCENARIOS.includes(name as Scenario)) {
        throw new RangeError(`Unknown scenario "${s}"; expected ${SCENARIOS.join(", ")} or 1-5`);
      }
      return name as Scenario;
    });
    scenarios = SCENARIOS.filter((s) => scenarios.includes(s));
  }
  const impl = typeof flags.impl === "string" ? flags.impl : "both";
  if (!["both", "cnibox", "reference"].includes(impl)) {
    throw new RangeError(`--impl must be both, cnibox or reference, got "${impl}"`);
  }
  return {
    help: flags.help === true,
    scenarios,
    impls: impl === "both" ? ["reference", "cnibox"] : [impl as "reference" | "cnibox"],
    sizes,
    status,
    profile: flags.profile === true,
    profileCycles: quick ? 1 : 3,
    profileLive: numberFlag(flags["profile-live"], "profile-live") ?? 0,
    anatomyRuns: quick ? 4 : 15,
    ours: typeof flags.ours === "string" ? flags.ours : undefined,
    reference: typeof flags.reference === "string" ? flags.reference : "/usr/lib/cni",
    json: typeof flags.json === "string" ? flags.json : undefined,
    keep: flags.keep === true,
    quick,
  };
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Installs (or adopts) cnibox's plugin dir; plugins it lacks are linked from the reference. */
async function prepareOurs(options: BenchOptions, work: string): Promise<Impl> {
  let dir = options.ours;
  if (!dir) {
    dir = `${work}/cnibox-bin`;
    await installPlugins(dir, { force: true });
  }
  const borrowed: string[] = [];
  for (const plugin of CHAIN_PLUGINS) {
    if (exists(`${dir}/${plugin}`)) continue;
    if (options.ours) throw new Error(`--ours ${dir} has no "${plugin}"`);
    await Deno.symlink(`${options.reference}/${plugin}`, `${dir}/${plugin}`);
    borrowed.push(plugin);
  }
  return { name: "cnibox", dir, borrowed };
}

function loadavg(): number[] {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).map(Number);
  } catch {
    return [];
  }
}

/** Renders the checks as a markdown list. */
export function renderChecks(checks: readonly Check[]): string {
  return checks.map((c) =>
    `- ${c.ok ? "ok" : "**FAILED**"}: ${c.scenario}: ${c.name} (${c.detail})`
  )
    .join("\n");
}

/** The JSON a bench run writes. */
export interface BenchResult {
  schema: "cnibox-bench/1";
  startedAt: string;
  durationS: number;
  command: string;
  machine: {
    cpus: number;
    kernel: string;
    deno: string;
    loadavgStart: number[];
    loadavgEnd: number[];
  };
  options: Omit<BenchOptions, "json" | "keep">;
  implementations: Impl[];
  rows: Row[];
  checks: Check[];
  status?: Record<string, unknown>;
  profile?: ProfileReport;
}

/** Runs the bench; returns the result (also written as JSON). */
export async function runBench(
  options: BenchOptions,
  log: (text: string) => void = (t) => console.error(t),
): Promise<{ result: BenchResult; markdown: string; jsonPath: string }> {
  const started = new Date();
  const loadStart = loadavg();
  const work = await Deno.makeTempDir({ prefix: "cbx-bn-" });
  const hosts: BenchHost[] = [];
  const rows: Row[] = [];
  const checks: Check[] = [];
  const impls: Impl[] = [];
  let profile: ProfileReport | undefined;
  let status: Record<string, unknown> | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    cleaning ??= (async () => {
      for (const host of hosts) await host.close({ keep: options.keep }).catch(() => {});
      if (!options.keep) await Deno.remove(work, { recursive: true }).catch(() => {});
    })();
  const onSignal = () => {
    log("bench: interrupted, cleaning up");
    cleanup().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    if (options.impls.includes("reference")) {
      impls.push({ name: "reference", dir: options.reference, borrowed: [] });
    }
    const needsOurs = options.impls.includes("cnibox") || options.scenarios.includes("status");
    const ours = needsOurs ? await prepareOurs(options, work) : undefined;
    if (ours && options.impls.includes("cnibox")) impls.push(ours);
    if (ours?.borrowed.length) {
      log(`bench: cnibox has no ${ours.borrowed.join(", ")} yet; using the reference's (marked)`);
    }
    const hostScenarios = options.scenarios.filter((s) => s !== "status");
    if (hostScenarios.length > 0 || options.profile) {
      for (const impl of impls) hosts.push(await BenchHost.start(impl, { work }));
      const ctx: ScenarioContext = { hosts, sizes: options.sizes, rows, checks, log };
      const runners: [Scenario, (ctx: ScenarioContext) => Promise<void>][] = [
        ["chain", chainScenario],
        ["hostlocal", hostLocalScenario],
        ["concurrent", concurrentScenario],
        ["start", startScenario],
      ];
      for (const [name, run] of runners) {
        if (!options.scenarios.includes(name)) continue;
        try {
          await settle(log);
          await run(ctx);
        } catch (error) {
          // One broken scenario (e.g. a plugin failing) must not hide the others' numbers.
          log(`bench: scenario ${name} failed: ${(error as Error).message}`);
          checks.push({
            scenario: name,
            name: "scenario ran to the end",
            ok: false,
            detail: (error as Error).message.slice(0, 500),
          });
        }
      }
      if (options.profile) {
        profile = { plugins: [], chains: [], anatomy: [] };
        try {
          const live = new Map<BenchHost, LiveAlloc[]>();
          for (const host of hosts) {
            if (options.profileLive > 0) {
              log(`profile: ${host.impl.name}: ${options.profileLive} live`);
            }
            const list: LiveAlloc[] = [];
            for (let k = 0; k < options.profileLive; k++) {
              const alloc = await host.newAlloc();
              await host.add(alloc);
              list.push(alloc);
            }
            live.set(host, list);
          }
          const chain = await profileChain(hosts, { cycles: options.profileCycles, log });
          for (const [host, list] of live) {
            for (const alloc of list) {
              await host.del(alloc);
              await host.dropAlloc(alloc);
            }
          }
          checks.push(...chain.checks);
          profile.plugins = chain.plugins;
          profile.chains = chain.chains;
        } catch (error) {
          log(`bench: profile failed: ${(error as Error).message}`);
          checks.push({
            scenario: "profile",
            name: "chain profile ran to the end",
            ok: false,
            detail: (error as Error).message.slice(0, 500),
          });
        }
        if (ours && options.impls.includes("cnibox")) {
          log(`profile: start-up anatomy, ${options.anatomyRuns} runs per variant`);
          profile.anatomy = await startupAnatomy({
            binDir: ours.dir,
            scratch: work,
            runs: options.anatomyRuns,
            plugins: CHAIN_PLUGINS.filter((p) => !ours.borrowed.includes(p)),
          });
        }
      }
      for (const host of hosts) await host.close({ keep: options.keep });
    }
    if (options.scenarios.includes("status") && ours) {
      const report = await statusScenario(
        { binDir: ours.dir, root: `${work}/status` },
        options.status,
        log,
      );
      rows.push(...report.rows);
      status = report.details;
    }
  } finally {
    await cleanup();
    Deno.removeSignalListener("SIGINT", onSignal);
  }
  const { json: _json, keep: _keep, ...shown } = options;
  const result: BenchResult = {
    schema: "cnibox-bench/1",
    startedAt: started.toISOString(),
    durationS: Math.round((Date.now() - started.getTime()) / 100) / 10,
    command: `deno task bench ${Deno.args.join(" ")}`.trim(),
    machine: {
      cpus: navigator.hardwareConcurrency,
      kernel: Deno.osRelease(),
      deno: Deno.version.deno,
      loadavgStart: loadStart,
      loadavgEnd: loadavg(),
    },
    options: shown,
    implementations: impls,
    rows,
    checks,
  };
  if (status) result.status = status;
  if (profile) result.profile = profile;
  const jsonPath = options.json ??
    new URL(
      `../bench-results/${started.toISOString().replace(/[:.]/g, "-")}.json`,
      import.meta.url,
    ).pathname;
  await Deno.mkdir(jsonPath.slice(0, jsonPath.lastIndexOf("/")) || ".", { recursive: true });
  await Deno.writeTextFile(jsonPath, JSON.stringify(result, null, 1) + "\n");
  return { result, markdown: renderMarkdown(result), jsonPath };
}

/** The report printed on stdout. */
export function renderMarkdown(result: BenchResult): string {
  const m = result.machine;
  const parts = [
    `## cnibox vs reference plugins: \`${result.command}\``,
    "",
    `${result.startedAt}, ${m.cpus} CPUs, kernel ${m.kernel}, deno ${m.deno}, load average ${
      m.loadavgStart.join(" ")
    } at start and ${m.loadavgEnd.join(" ")} at the end, ${result.durationS} s. ` +
    `Medians with p90 in parentheses, ms unless stated; ratio = cnibox / reference.`,
    "",
    renderTable(result.rows),
  ];
  const borrowed = result.implementations.find((i) => i.name === "cnibox")?.borrowed ?? [];
  if (borrowed.length > 0) {
    parts.push(
      "",
      `cnibox does not have ${borrowed.join(", ")} yet: its column runs the reference's for those.`,
    );
  }
  if (result.checks.length > 0) parts.push("", "Checks:", "", renderChecks(result.checks));
  if (result.profile) parts.push("", renderProfile(result.profile));
  return parts.join("\n") + "\n";
}

async function main(): Promise<number> {
  let options;
  try {
    options = parseBenchArgs(Deno.args);
  } catch (error) {
    console.error(`bench: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  if (!ROOT) {
    console.error("bench: needs root (it creates network namespaces)");
    return 1;
  }
  const { markdown, jsonPath, result } = await runBench(options);
  console.log(markdown);
  console.error(`bench: wrote ${jsonPath}`);
  return result.checks.every((c) => c.ok) ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());

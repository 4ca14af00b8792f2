/**
 * `deno task bench --profile`: where the time of a chain ADD/DEL goes, per
 * plugin and per step, for both implementations.
 *
 * - Per plugin exec: wall time; for cnibox also the time inside the skeleton
 *   (the journal's `durationMs`), so wall minus that is process start-up,
 *   module loading and exit.
 * - Processes each plugin starts (`strace -f -e trace=execve`) and how long
 *   those children ran.
 * - For cnibox: the modules a run reads and evaluates and any npm package it
 *   opens (`strace -e trace=openat`), so "no plugin run loads hono" is
 *   checked on real runs.
 * - cnibox start-up anatomy: `/bin/true`, a bare `deno run`, the project
 *   config, the plugin's own module graph, and the installed launcher, for
 *   the same VERSION call.
 *
 * @module
 */
import { PLUGIN_FILES } from "../applets.ts";
import type { BenchHost } from "./_bench_host.ts";
import { wire } from "./_bench_host.ts";
import { alternate, CHAIN_PLUGINS, type Check, onPath } from "./_bench_scenarios.ts";
import { formatNumber, median, renderGrid } from "./_bench_stats.ts";
import {
  type ExecTrace,
  formatCounts,
  type OpenTrace,
  parseExecTrace,
  parseOpenTrace,
} from "./_bench_strace.ts";

/** Per implementation, verb and plugin: what the profile measured. */
export interface PluginProfile {
  impl: string;
  verb: "ADD" | "DEL";
  plugin: string;
  /** Median wall time of the exec, ms. */
  wallMs: number;
  /** Median time inside the skeleton (cnibox journal), ms. */
  skeletonMs?: number;
  /** Median execs per program started by this plugin run. */
  execs: Record<string, number>;
  /** Median ms spent in children per program (under strace, so inflated). */
  childMs: Record<string, number>;
  /** Modules and packages (cnibox, one traced run). */
  modules?: OpenTrace;
}

/** One row of the start-up anatomy. */
export interface AnatomyRow {
  plugin: string;
  /** Variant name → median ms. */
  medians: Record<string, number>;
}

/** Everything `--profile` produced. */
export interface ProfileReport {
  plugins: PluginProfile[];
  anatomy: AnatomyRow[];
  /** Chain totals per implementation and verb, from the profiled runs. */
  chains: { impl: string; verb: string; wallMs: number; execs: number; childMs: number }[];
}

type Run = { type: string; ms: number; wrapperOutput?: string };
type JournalLine = { plugin: string; command: string; durationMs: number };

function medianRecord(records: Record<string, number>[]): Record<string, number> {
  const keys = new Set(records.flatMap((r) => Object.keys(r)));
  const out: Record<string, number> = {};
  for (const k of keys) out[k] = median(records.map((r) => r[k] ?? 0));
  return out;
}

/** Profiles Nomad's chain on every host: `cycles` ADD+DEL cycles plain and under strace. */
export async function profileChain(
  hosts: readonly BenchHost[],
  options: { cycles: number; log: (text: string) => void },
): Promise<{ plugins: PluginProfile[]; chains: ProfileReport["chains"]; checks: Check[] }> {
  const wall = new Map<string, number[]>();
  const skeleton = new Map<string, number[]>();
  const traces = new Map<string, ExecTrace[]>();
  const modules = new Map<string, OpenTrace[]>();
  const chainWall = new Map<string, number[]>();
  const key = (impl: string, verb: string, plugin: string) => `${impl}\0${verb}\0${plugin}`;
  const push = <T>(map: Map<string, T[]>, k: string, v: T) =>
    map.set(k, [...(map.get(k) ?? []), v]);
  const checks: Check[] = [];
  const passes: ("plain" | "strace" | "openat")[] = ["plain"];
  if (onPath("strace")) passes.push("strace", "openat");
  else {
    checks.push({
      scenario: "profile",
      name: "processes and modules traced",
      ok: false,
      detail: "skipped: strace is missing (Debian package `strace`)",
    });
  }
  for (const pass of passes) {
    const cycles = options.cycles;
    options.log(`profile: ${pass} pass, ${cycles} cycle(s) per implementation`);
    for (let i = 0; i < cycles; i++) {
      await alternate(hosts, i, async (host) => {
        const impl = host.impl.name;
        if (pass === "openat" && impl !== "cnibox") return;
        const alloc = await host.newAlloc();
        try {
          for (const verb of ["ADD", "DEL"] as const) {
            const reply = await host.request({
              op: "profile",
              verb,
              alloc: wire(alloc),
              ...(pass === "plain" ? {} : { wrap: pass }),
            });
            const runs = reply.plugins as Run[];
            if (pass === "plain") {
              push(chainWall, `${impl}\0${verb}`, reply.ms!);
              for (const run of runs) push(wall, key(impl, verb, run.type), run.ms);
              for (const line of reply.journal as JournalLine[]) {
                push(skeleton, key(impl, line.command, line.plugin), line.durationMs);
              }
            } else if (pass === "strace") {
              for (const run of runs) {
                push(traces, key(impl, verb, run.type), parseExecTrace(run.wrapperOutput ?? ""));
              }
            } else {
              for (const run of runs) {
                push(modules, key(impl, verb, run.type), parseOpenTrace(run.wrapperOutput ?? ""));
              }
            }
          }
        } finally {
          await host.dropAlloc(alloc);
        }
      });
    }
  }
  const plugins: PluginProfile[] = [];
  const chains: ProfileReport["chains"] = [];
  for (const host of hosts) {
    const impl = host.impl.name;
    for (const verb of ["ADD", "DEL"] as const) {
      const order = verb === "ADD" ? CHAIN_PLUGINS : [...CHAIN_PLUGINS].reverse();
      let execs = 0;
      let childMs = 0;
      for (const plugin of order) {
        const k = key(impl, verb, plugin);
        const w = wall.get(k);
        const s = skeleton.get(k);
        if (!w && !s) continue;
        const t = traces.get(k) ?? [];
        const profile: PluginProfile = {
          impl,
          verb,
          plugin,
          wallMs: w ? median(w) : NaN,
          execs: medianRecord(t.map((x) => x.execs)),
          childMs: medianRecord(t.map((x) => x.childMs)),
        };
        if (s) profile.skeletonMs = median(s);
        const traced = modules.get(k);
        const m = traced && mergeOpenTraces(traced);
        if (m) {
          profile.modules = m;
          checks.push({
            scenario: "profile",
            name: `${plugin} ${verb} (cnibox) loads no npm package`,
            ok: m.npm.length === 0,
            detail: (m.npm.length === 0
              ? `${m.evaluated} modules evaluated, ${m.sources} sources read`
              : `opened code of ${m.npm.join(", ")}`) +
              (m.npmMetadata.length ? `; npm metadata read: ${m.npmMetadata.join(", ")}` : ""),
          });
        }
        if (w) {
          execs += Object.values(profile.execs).reduce((a, b) => a + b, 0);
          childMs += Object.values(profile.childMs).reduce((a, b) => a + b, 0);
        }
        plugins.push(profile);
      }
      const cw = chainWall.get(`${impl}\0${verb}`);
      if (cw) chains.push({ impl, verb, wallMs: median(cw), execs, childMs });
    }
  }
  return { plugins, chains, checks };
}

/** Combines traces of the same run kind: npm sets united, counts and phases as medians. */
export function mergeOpenTraces(traces: readonly OpenTrace[]): OpenTrace {
  const out: OpenTrace = {
    sources: median(traces.map((t) => t.sources)),
    evaluated: median(traces.map((t) => t.evaluated)),
    npm: [...new Set(traces.flatMap((t) => t.npm))].sort(),
    npmMetadata: [...new Set(traces.flatMap((t) => t.npmMetadata))].sort(),
  };
  const phased = traces.flatMap((t) => (t.phases ? [t.phases] : []));
  if (phased.length > 0) {
    out.phases = {
      start: median(phased.map((p) => p.start)),
      readGraph: median(phased.map((p) => p.readGraph)),
      loadModules: median(phased.map((p) => p.loadModules)),
      rest: median(phased.map((p) => p.rest)),
    };
  }
  return out;
}

/** The module a plugin's `applets.ts` entry imports, e.g. "plugins/bridge.ts". */
export function pluginModule(name: string): string | undefined {
  return Object.hasOwn(PLUGIN_FILES, name) ? PLUGIN_FILES[name] : undefined;
}

/**
 * Start-up anatomy of cnibox plugins (VERSION): the same call through ever
 * more of the real start path. Runs outside any namespace (VERSION touches no
 * network state).
 */
export async function startupAnatomy(
  options: { binDir: string; scratch: string; runs: number; plugins: readonly string[] },
): Promise<AnatomyRow[]> {
  const root = new URL("..", import.meta.url).pathname;
  const deno = Deno.execPath();
  const config = JSON.parse(await Deno.readTextFile(`${root}deno.json`));
  // The project's import map without npm entries, so no npm resolver is set up.
  const slimImports: Record<string, string> = {};
  for (const [k, v] of Object.entries(config.imports as Record<string, string>)) {
    if (!v.startsWith("npm:")) slimImports[k] = new URL(v, `file://${root}`).pathname;
  }
  const dir = `${options.scratch}/anatomy`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/slim.json`, JSON.stringify({ imports: slimImports }));
  await Deno.writeTextFile(`${dir}/empty.js`, "Deno.exit(0);\n");
  const variants: { name: string; plugin: string; argv: string[] }[] = [];
  // The VERSION path of plugin_main.ts without it: the probe module and the version table.
  const probeEntry = `${dir}/probe.ts`;
  await Deno.writeTextFile(
    probeEntry,
    [
      `const [probe, version] = await Promise.all([`,
      `  import(${JSON.stringify(`${root}lib/cni/probe.ts`)}),`,
      `  import(${JSON.stringify(`${root}lib/cni/version.ts`)}),`,
      `]);`,
      `probe.writeProbe(probe.probeOutput("x", version.SUPPORTED_VERSIONS, "VERSION"));`,
      ``,
    ].join("\n"),
  );
  // The skeleton answering VERSION: what every verb run loads before its plugin.
  const versionEntry = `${dir}/version.ts`;
  await Deno.writeTextFile(
    versionEntry,
    [
      `const [skel, version] = await Promise.all([`,
      `  import(${JSON.stringify(`${root}lib/cni/skel.ts`)}),`,
      `  import(${JSON.stringify(`${root}lib/cni/version.ts`)}),`,
      `]);`,
      `const never = () => Promise.reject(new Error("VERSION only"));`,
      `const plugin = { name: "x", supportedVersions: version.SUPPORTED_VERSIONS, funcs: { add: never, del: never } };`,
      `Deno.exit(await skel.runPlugin(plugin, skel.denoIo()));`,
      ``,
    ].join("\n"),
  );
  for (const plugin of options.plugins) {
    const module = pluginModule(plugin);
    const base = [deno, "run", "-A", "--quiet", "--no-prompt"];
    variants.push({ name: "/bin/true", plugin, argv: ["/bin/true"] });
    variants.push({
      name: "deno, empty file",
      plugin,
      argv: [...base, "--no-config", `${dir}/empty.js`],
    });
    variants.push({
      name: "+ project config",
      plugin,
      argv: [...base, "--config", `${root}deno.json`, `${dir}/empty.js`],
    });
    variants.push({
      name: "probe module only (VERSION path)",
      plugin,
      argv: [...base, "--config", `${root}deno.json`, probeEntry],
    });
    variants.push({
      name: "skeleton (loaded before any verb)",
      plugin,
      argv: [...base, "--config", `${root}deno.json`, versionEntry],
    });
    if (module) {
      const entry = `${dir}/${plugin}.ts`;
      await Deno.writeTextFile(
        entry,
        [
          `const [skel, , module] = await Promise.all([`,
          `  import(${JSON.stringify(`${root}lib/cni/skel.ts`)}),`,
          `  import(${JSON.stringify(`${root}lib/cni/delegate.ts`)}),`,
          `  import(${JSON.stringify(`${root}${module}`)}),`,
          `]);`,
          `Deno.exit(await skel.runPlugin(module.plugin, skel.denoIo()));`,
          ``,
        ].join("\n"),
      );
      variants.push({
        name: "+ plugin's static graph (what ADD loads first)",
        plugin,
        argv: [...base, "--config", `${root}deno.json`, entry],
      });
      variants.push({
        name: "same, config without npm imports",
        plugin,
        argv: [...base, "--config", `${dir}/slim.json`, entry],
      });
    }
    variants.push({
      name: "main.ts, no launcher",
      plugin,
      argv: [...base, "--config", `${root}deno.json`, `${root}main.ts`, plugin],
    });
    variants.push({ name: "installed launcher", plugin, argv: [`${options.binDir}/${plugin}`] });
  }
  const env = {
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: "VERSION",
    CNIBOX_JOURNAL: "",
    DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`,
  };
  const stdin = new TextEncoder().encode('{"cniVersion":"1.0.0"}');
  const runOnce = async (argv: string[]) => {
    const t0 = performance.now();
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      env,
      clearEnv: true,
      stdin: "piped",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(stdin).catch(() => {});
    await w.close().catch(() => {});
    const status = await child.status;
    if (!status.success) throw new Error(`${argv.join(" ")} failed with ${status.code}`);
    return performance.now() - t0;
  };
  const samples = new Map<(typeof variants)[number], number[]>();
  for (const v of variants) {
    await runOnce(v.argv); // transpile cache and code cache
    samples.set(v, []);
  }
  // Round-robin so load changes hit every variant alike.
  for (let i = 0; i < options.runs; i++) {
    for (const v of variants) samples.get(v)!.push(await runOnce(v.argv));
  }
  return options.plugins.map((plugin) => ({
    plugin,
    medians: Object.fromEntries(
      variants.filter((v) => v.plugin === plugin).map((v) => [v.name, median(samples.get(v)!)]),
    ),
  }));
}

/** Renders the profile as markdown: per-plugin table, chain totals, start-up anatomy. */
export function renderProfile(report: ProfileReport): string {
  const out: string[] = [];
  out.push("### Where the time goes: per plugin exec (medians, ms)\n");
  out.push(
    "`in skeleton` is cnibox's journal `durationMs` (plugin work); `outside` = wall − in skeleton " +
      "(process start, module loading, exit). Children come from a separate `strace` pass " +
      "(their times are inflated by tracing).\n",
  );
  out.push(renderGrid(
    ["impl", "verb", "plugin", "wall", "in skeleton", "outside", "children started", "child ms"],
    report.plugins.map((p) => [
      p.impl,
      p.verb,
      p.plugin,
      Number.isNaN(p.wallMs) ? "(in-process)" : formatNumber(p.wallMs),
      p.skeletonMs === undefined ? "" : formatNumber(p.skeletonMs),
      p.skeletonMs === undefined || Number.isNaN(p.wallMs)
        ? ""
        : formatNumber(p.wallMs - p.skeletonMs),
      formatCounts(p.execs),
      formatCounts(Object.fromEntries(
        Object.entries(p.childMs).map(([k, v]) => [k, Math.round(v * 10) / 10]),
      )),
    ]),
  ));
  out.push("\n### Chain totals (profiled runs, medians)\n");
  out.push(renderGrid(
    ["impl", "verb", "chain wall ms", "processes started", "ms inside children (strace)"],
    report.chains.map((c) => [
      c.impl,
      c.verb,
      formatNumber(c.wallMs),
      String(c.execs),
      formatNumber(c.childMs),
    ]),
  ));
  const modules = report.plugins.filter((p) => p.modules);
  if (modules.length > 0) {
    out.push("\n### cnibox module loading per plugin run (traced runs, medians)\n");
    out.push(
      "Phases from `strace -ttt -e openat,execve` timestamps (inflated by tracing): exec until the " +
        "first source is read; reading the module graph's sources; loading transpiled modules; " +
        "the rest (plugin work, children, exit).\n",
    );
    const phase = (p: PluginProfile, k: "start" | "readGraph" | "loadModules" | "rest") =>
      p.modules!.phases ? formatNumber(p.modules!.phases[k]) : "";
    out.push(renderGrid(
      [
        "verb",
        "plugin",
        "sources read",
        "modules evaluated",
        "npm code opened",
        "npm metadata read",
        "start",
        "read graph",
        "load modules",
        "rest",
      ],
      modules.map((p) => [
        p.verb,
        p.plugin,
        String(p.modules!.sources),
        String(p.modules!.evaluated),
        p.modules!.npm.join(", ") || "none",
        p.modules!.npmMetadata.join(", ") || "none",
        phase(p, "start"),
        phase(p, "readGraph"),
        phase(p, "loadModules"),
        phase(p, "rest"),
      ]),
    ));
  }
  if (report.anatomy.length > 0) {
    const names = [...new Set(report.anatomy.flatMap((a) => Object.keys(a.medians)))];
    out.push("\n### cnibox start-up anatomy (VERSION, medians, ms)\n");
    out.push(
      "The same VERSION call through ever more of the real start path: a bare `deno run`, the " +
        "project's config (import map, lockfile), the skeleton alone (what main.ts loads for " +
        "VERSION), the plugin's static module graph (what an ADD loads before it starts), " +
        "main.ts run directly (`deno run main.ts <plugin>`: Deno reads every source its literal " +
        "imports reach), and the installed launcher (`sh` and the plugin's probe bundle, with " +
        "the bundles' own DENO_DIR). Variants run round-robin.\n",
    );
    out.push(renderGrid(
      ["plugin", ...names],
      report.anatomy.map((a) => [
        a.plugin,
        ...names.map((n) => (a.medians[n] === undefined ? "" : formatNumber(a.medians[n]))),
      ]),
    ));
  }
  return out.join("\n");
}

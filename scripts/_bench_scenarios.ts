/**
 * Scenarios 1-4 of the bench (issue 7), each run on every implementation in
 * the same run, alternating A/B per iteration (and which one goes first), in
 * each implementation's own host namespace:
 *
 * 1. `chain`: Nomad's default chain, ADD and DEL with 0 and with N other
 *    allocations live.
 * 2. `hostlocal`: host-local alone, ADD and DEL at 1, 1000 and 4000 leases.
 * 3. `concurrent`: 64 concurrent ADDs, then 64 concurrent DELs on one network;
 *    all addresses distinct, nothing left behind.
 * 4. `start`: every plugin's bare start (VERSION) and peak RSS per plugin run.
 *
 * @module
 */
import type { Alloc } from "./_bench_driver.ts";
import type { BenchHost, LiveAlloc } from "./_bench_host.ts";
import { wire } from "./_bench_host.ts";
import { makeRow, median, type Row } from "./_bench_stats.ts";

/** The plugins of Nomad's chain, in ADD order (host-local runs under bridge). */
export const CHAIN_PLUGINS = ["loopback", "bridge", "host-local", "firewall", "portmap"] as const;

/** Sizes of one bench run. */
export interface Sizes {
  /** Timed ADD+DEL cycles per implementation and live level (scenario 1). */
  iterations: number;
  /** Untimed cycles before timing (cold first ADD, index rebuilds). */
  warmup: number;
  /** Live allocation levels (scenario 1). */
  live: number[];
  /** Lease levels (scenario 2). */
  leases: number[];
  /** Timed cycles per lease level (scenario 2). */
  hlIterations: number;
  /** Concurrent ADDs/DELs (scenario 3). */
  concurrency: number;
  /** Rounds of scenario 3 per implementation. */
  rounds: number;
  /** VERSION runs per plugin and implementation (scenario 4). */
  startIterations: number;
  /** Peak-RSS samples per plugin run kind (scenario 4). */
  rssSamples: number;
}

/** A pass/fail observation that is not a timing. */
export interface Check {
  scenario: string;
  name: string;
  ok: boolean;
  detail: string;
}

/** Where scenarios report to. */
export interface ScenarioContext {
  /** One host per implementation; reference first when both run. */
  hosts: BenchHost[];
  sizes: Sizes;
  rows: Row[];
  checks: Check[];
  /** Progress lines (stderr). */
  log: (text: string) => void;
}

/** Runs `fn` for every host, the order alternating with `i`. */
export async function alternate(
  hosts: readonly BenchHost[],
  i: number,
  fn: (host: BenchHost) => Promise<void>,
): Promise<void> {
  const order = i % 2 === 0 ? hosts : [...hosts].reverse();
  for (const host of order) await fn(host);
}

function samplesOf(ctx: ScenarioContext): Map<BenchHost, number[]> {
  return new Map(ctx.hosts.map((h) => [h, []]));
}

function pick(
  ctx: ScenarioContext,
  samples: Map<BenchHost, number[]>,
  name: string,
): number[] | undefined {
  const host = ctx.hosts.find((h) => h.impl.name === name);
  return host ? samples.get(host) : undefined;
}

function borrowedNote(ctx: ScenarioContext, plugins: readonly string[]): string | undefined {
  const ours = ctx.hosts.find((h) => h.impl.name === "cnibox");
  const used = ours?.impl.borrowed.filter((p) => plugins.includes(p)) ?? [];
  return used.length > 0 ? `cnibox borrows ${used.join(", ")} from the reference` : undefined;
}

/** Wall and CPU samples of one implementation. */
interface Samples {
  ms: number[];
  cpuMs: number[];
}

async function cycle(host: BenchHost, add?: Samples, del?: Samples): Promise<void> {
  const alloc = await host.newAlloc();
  try {
    const a = await host.add(alloc);
    add?.ms.push(a.ms);
    add?.cpuMs.push(a.cpuMs);
    const d = await host.del(alloc);
    del?.ms.push(d.ms);
    del?.cpuMs.push(d.cpuMs);
  } finally {
    await host.dropAlloc(alloc);
  }
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** The CPU row: means, because each sample is counted in 10 ms clock ticks. */
function cpuRow(
  ctx: ScenarioContext,
  id: { scenario: string; metric: string },
  samples: Map<BenchHost, Samples>,
): Row {
  const of = (name: string) => {
    const host = ctx.hosts.find((h) => h.impl.name === name);
    const cpu = host ? samples.get(host)!.cpuMs : [];
    return cpu.length > 0 ? [mean(cpu)] : undefined;
  };
  return makeRow(id, {
    unit: "ms CPU",
    reference: of("reference"),
    cnibox: of("cnibox"),
    note: "mean, all processes",
  });
}

/** Scenario 1: Nomad's chain, ADD and DEL latency at each live level. */
export async function chainScenario(ctx: ScenarioContext): Promise<void> {
  const { sizes } = ctx;
  const note = borrowedNote(ctx, CHAIN_PLUGINS);
  for (const live of sizes.live) {
    const filled = new Map<BenchHost, LiveAlloc[]>();
    for (const host of ctx.hosts) {
      ctx.log(`chain: ${host.impl.name}: ${live} live allocations`);
      const list: LiveAlloc[] = [];
      for (let k = 0; k < live; k++) {
        const alloc = await host.newAlloc();
        await host.add(alloc);
        list.push(alloc);
      }
      filled.set(host, list);
    }
    for (let w = 0; w < sizes.warmup; w++) {
      await alternate(ctx.hosts, w, (host) => cycle(host));
    }
    const addSamples = new Map(ctx.hosts.map((h) => [h, { ms: [], cpuMs: [] } as Samples]));
    const delSamples = new Map(ctx.hosts.map((h) => [h, { ms: [], cpuMs: [] } as Samples]));
    for (let i = 0; i < sizes.iterations; i++) {
      await alternate(
        ctx.hosts,
        i,
        (host) => cycle(host, addSamples.get(host), delSamples.get(host)),
      );
    }
    const adds = new Map([...addSamples].map(([h, s]) => [h, s.ms]));
    const dels = new Map([...delSamples].map(([h, s]) => [h, s.ms]));
    ctx.log(
      `chain: ${live} live: ${summaryLine(ctx, adds, "ADD")}; ${summaryLine(ctx, dels, "DEL")}`,
    );
    const addTarget = live === 0 ? 0.85 : 0.6;
    ctx.rows.push(makeRow({ scenario: "1 chain", metric: `ADD, ${live} live allocations` }, {
      reference: pick(ctx, adds, "reference"),
      cnibox: pick(ctx, adds, "cnibox"),
      target: { kind: "ratio", max: addTarget, text: `ratio <= ${addTarget}` },
      note,
    }));
    ctx.rows.push(makeRow({ scenario: "1 chain", metric: `DEL, ${live} live allocations` }, {
      reference: pick(ctx, dels, "reference"),
      cnibox: pick(ctx, dels, "cnibox"),
      target: { kind: "ratio", max: 0.6, text: "ratio <= 0.6" },
      note,
    }));
    ctx.rows.push(
      cpuRow(ctx, { scenario: "1 chain", metric: `CPU per ADD, ${live} live` }, addSamples),
    );
    ctx.rows.push(
      cpuRow(ctx, { scenario: "1 chain", metric: `CPU per DEL, ${live} live` }, delSamples),
    );
    for (const host of ctx.hosts) {
      for (const alloc of filled.get(host)!) {
        await host.del(alloc);
        await host.dropAlloc(alloc);
      }
    }
  }
}

function summaryLine(ctx: ScenarioContext, samples: Map<BenchHost, number[]>, what: string) {
  return ctx.hosts.map((h) => {
    const s = samples.get(h)!;
    return `${h.impl.name} ${what} ${s.length ? median(s).toFixed(1) : "-"} ms`;
  }).join(", ");
}

/** The i-th address of 10.88.0.0/20 counting from .2 (the gateway .1 is never leased). */
export function leaseIp(i: number): string {
  const n = i + 2;
  return `10.88.${n >> 8}.${n & 255}`;
}

/** Writes `count` leases in the reference's on-disk format (cni-plugins.md 4.3) and the range cursor. */
export async function fillLeases(dir: string, count: number): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    await Deno.writeTextFile(`${dir}/${leaseIp(i)}`, `fill-${i}\r\neth0`, { mode: 0o644 });
  }
  if (count > 0) await Deno.writeTextFile(`${dir}/last_reserved_ip.0`, leaseIp(count - 1));
}

function hostLocalConf(dataDir: string): string {
  return JSON.stringify({
    cniVersion: "0.4.0",
    name: "hl",
    type: "host-local",
    ipam: {
      type: "host-local",
      ranges: [[{ subnet: "10.88.0.0/20" }]],
      routes: [{ dst: "0.0.0.0/0" }],
      dataDir,
    },
  });
}

/** Scenario 2: host-local alone, ADD and DEL at each lease level. */
export async function hostLocalScenario(ctx: ScenarioContext): Promise<void> {
  const { sizes } = ctx;
  const addMedians = new Map<string, Map<number, number>>();
  for (const level of sizes.leases) {
    const confs = new Map<BenchHost, string>();
    // The skeleton refuses CNI_NETNS = its own netns, so host-local gets an (unused) container netns.
    const sandboxes = new Map<BenchHost, LiveAlloc>();
    for (const host of ctx.hosts) {
      const dataDir = `${host.work}/hl-${level}`;
      await fillLeases(`${dataDir}/hl`, level);
      confs.set(host, hostLocalConf(dataDir));
      sandboxes.set(host, await host.newAlloc());
    }
    const hlCycle = async (host: BenchHost, add: number[], del: number[]) => {
      const alloc: Alloc = {
        containerId: `hl-${crypto.randomUUID()}`,
        netns: sandboxes.get(host)!.netns,
        ifName: "eth0",
        args: [],
        capabilityArgs: {},
      };
      const stdin = confs.get(host)!;
      for (const [command, out] of [["ADD", add], ["DEL", del]] as const) {
        const reply = await host.request({
          op: "exec",
          plugin: "host-local",
          command,
          stdin,
          alloc,
        });
        out.push(reply.ms!);
      }
    };
    for (let w = 0; w < sizes.warmup; w++) {
      await alternate(ctx.hosts, w, (host) => hlCycle(host, [], []));
    }
    const adds = samplesOf(ctx);
    const dels = samplesOf(ctx);
    for (let i = 0; i < sizes.hlIterations; i++) {
      await alternate(ctx.hosts, i, (host) => hlCycle(host, adds.get(host)!, dels.get(host)!));
    }
    ctx.log(
      `host-local: ${level} leases: ${summaryLine(ctx, adds, "ADD")}; ${
        summaryLine(ctx, dels, "DEL")
      }`,
    );
    for (const host of ctx.hosts) {
      await host.dropAlloc(sandboxes.get(host)!);
      const m = addMedians.get(host.impl.name) ?? new Map();
      m.set(level, median(adds.get(host)!));
      addMedians.set(host.impl.name, m);
    }
    const note = borrowedNote(ctx, ["host-local"]);
    ctx.rows.push(
      makeRow({
        scenario: "2 host-local",
        metric: `ADD at ${level} lease${level === 1 ? "" : "s"}`,
      }, {
        reference: pick(ctx, adds, "reference"),
        cnibox: pick(ctx, adds, "cnibox"),
        note,
      }),
    );
    ctx.rows.push(
      makeRow({
        scenario: "2 host-local",
        metric: `DEL at ${level} lease${level === 1 ? "" : "s"}`,
      }, {
        reference: pick(ctx, dels, "reference"),
        cnibox: pick(ctx, dels, "cnibox"),
        note,
      }),
    );
  }
  const low = Math.min(...sizes.leases);
  const high = Math.max(...sizes.leases);
  if (high > low) {
    const growth = (name: string) => {
      const m = addMedians.get(name);
      return m ? m.get(high)! / m.get(low)! : undefined;
    };
    const ref = growth("reference");
    const ours = growth("cnibox");
    ctx.rows.push(makeRow({
      scenario: "2 host-local",
      metric: `ADD at ${high} leases / ADD at ${low} lease${low === 1 ? "" : "s"} (cnibox)`,
    }, {
      ratio: ours,
      target: { kind: "ratio", max: 1.3, text: "<= 1.3" },
      note: ref === undefined ? undefined : `reference: ${ref.toFixed(2)}`,
    }));
  }
}

/** Host state that must be the same before a round of ADDs and after its DELs. */
export interface HostState {
  leases: number;
  cacheFiles: number;
  links: string[];
  iptables: string[];
  ip6tables: string[];
}

/** Regular files in `dir` whose name matches `pattern`; 0 when there is no directory. */
async function countFiles(dir: string, pattern: RegExp): Promise<number> {
  let n = 0;
  try {
    for await (const e of Deno.readDir(dir)) if (e.isFile && pattern.test(e.name)) n++;
  } catch {
    // No directory: nothing there.
  }
  return n;
}

/** iptables-save output without comments and counters, as a sorted list of lines. */
export function normaliseRules(save: string): string[] {
  return save.split("\n")
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => line.replace(/\s*\[\d+:\d+\]$/, ""))
    .sort();
}

/** Reads what a finished ADD+DEL round must leave unchanged. */
export async function hostState(host: BenchHost): Promise<HostState> {
  const links = (await host.inHost("ip", ["-o", "link", "show"])).split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split(":")[1].trim().split("@")[0])
    .sort();
  return {
    leases: await countFiles(`${host.dataDir}/nomad`, /^[0-9a-f.:]+$/),
    cacheFiles: await countFiles(`${host.cacheDir}/results`, /^[^.]/),
    links,
    iptables: normaliseRules(await host.inHost("iptables-save", [])),
    ip6tables: normaliseRules(await host.inHost("ip6tables-save", [])),
  };
}

/** Lines in `a` missing from `b` and the other way round (multiset difference). */
export function diffLines(
  before: readonly string[],
  after: readonly string[],
): { gone: string[]; added: string[] } {
  const count = new Map<string, number>();
  for (const l of before) count.set(l, (count.get(l) ?? 0) + 1);
  const added: string[] = [];
  for (const l of after) {
    const n = count.get(l) ?? 0;
    if (n > 0) count.set(l, n - 1);
    else added.push(l);
  }
  const gone = [...count].flatMap(([l, n]) => Array<string>(n).fill(l));
  return { gone, added };
}

/** Scenario 3: N concurrent ADDs then N concurrent DELs per implementation and round. */
export async function concurrentScenario(ctx: ScenarioContext): Promise<void> {
  const { sizes } = ctx;
  const n = sizes.concurrency;
  // Steady state first: the first ADD on a fresh host creates the bridge and the shared chains.
  for (const host of ctx.hosts) await cycle(host);
  const adds = samplesOf(ctx);
  const dels = samplesOf(ctx);
  const cpu = new Map(ctx.hosts.map((h) => [h, { ms: [], cpuMs: [] } as Samples]));
  for (let round = 0; round < sizes.rounds; round++) {
    await alternate(ctx.hosts, round, async (host) => {
      const before = await hostState(host);
      const allocs: LiveAlloc[] = [];
      for (let k = 0; k < n; k++) allocs.push(await host.newAlloc());
      const added = await host.request({ op: "addMany", allocs: allocs.map(wire) });
      const addOutcomes = added.outcomes as { ok: boolean; ip?: string; error?: string }[];
      const deleted = await host.request({ op: "delMany", allocs: allocs.map(wire) });
      const delOutcomes = deleted.outcomes as { ok: boolean; error?: string }[];
      for (const alloc of allocs) await host.dropAlloc(alloc);
      const after = await hostState(host);
      adds.get(host)!.push(added.ms!);
      dels.get(host)!.push(deleted.ms!);
      cpu.get(host)!.cpuMs.push(((added.cpuMs as number) + (deleted.cpuMs as number)) / n);
      const ips = addOutcomes.filter((o) => o.ok).map((o) => o.ip);
      const okAdds = addOutcomes.filter((o) => o.ok).length;
      const okDels = delOutcomes.filter((o) => o.ok).length;
      const distinct = new Set(ips).size;
      const name = host.impl.name;
      const firstError = [...addOutcomes, ...delOutcomes].find((o) => !o.ok)?.error;
      ctx.checks.push({
        scenario: "3 concurrent",
        name: `${name} round ${round + 1}: ${n} ADDs succeed with distinct addresses`,
        ok: okAdds === n && distinct === n,
        detail: `${okAdds}/${n} ADDs ok, ${distinct} distinct addresses, ${okDels}/${n} DELs ok${
          firstError ? `; first error: ${firstError.slice(0, 300)}` : ""
        }`,
      });
      const rules = diffLines(before.iptables, after.iptables);
      const rules6 = diffLines(before.ip6tables, after.ip6tables);
      const links = diffLines(before.links, after.links);
      const left = [
        after.leases !== before.leases ? `${after.leases - before.leases} leases` : "",
        after.cacheFiles !== before.cacheFiles
          ? `${after.cacheFiles - before.cacheFiles} cache files`
          : "",
        links.added.length ? `links ${links.added.join(" ")}` : "",
        rules.added.length ? `${rules.added.length} iptables lines (${rules.added[0]})` : "",
        rules.gone.length ? `${rules.gone.length} iptables lines gone (${rules.gone[0]})` : "",
        rules6.added.length ? `${rules6.added.length} ip6tables lines (${rules6.added[0]})` : "",
      ].filter((s) => s !== "");
      ctx.checks.push({
        scenario: "3 concurrent",
        name: `${name} round ${round + 1}: nothing left after the DELs`,
        ok: left.length === 0,
        detail: left.length === 0
          ? `leases, cache files, links and rules as before (${before.iptables.length} iptables lines)`
          : `left: ${left.join("; ")}`,
      });
      ctx.log(
        `concurrent: ${name} round ${round + 1}: ADD ${added.ms!.toFixed(0)} ms, DEL ${
          deleted.ms!.toFixed(0)
        } ms, ${okAdds}/${n} ok, ${distinct} distinct, left: ${left.join("; ") || "nothing"}`,
      );
    });
  }
  const note = borrowedNote(ctx, CHAIN_PLUGINS);
  ctx.rows.push(makeRow({ scenario: "3 concurrent", metric: `${n} concurrent ADDs, wall` }, {
    reference: pick(ctx, adds, "reference"),
    cnibox: pick(ctx, adds, "cnibox"),
    target: { kind: "ratio", max: 1, text: "ratio <= 1" },
    note,
  }));
  ctx.rows.push(makeRow({ scenario: "3 concurrent", metric: `${n} concurrent DELs, wall` }, {
    reference: pick(ctx, dels, "reference"),
    cnibox: pick(ctx, dels, "cnibox"),
    note,
  }));
  ctx.rows.push(
    cpuRow(ctx, { scenario: "3 concurrent", metric: "CPU per allocation (ADD + DEL)" }, cpu),
  );
}

/** Whether `path` is an executable file. */
export function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** Whether `name` is an executable in one of `PATH`'s directories. */
export function onPath(name: string): boolean {
  const dirs = (Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":");
  return dirs.some((dir) => isExecutable(`${dir}/${name}`));
}

/** Peak RSS in MiB from `/usr/bin/time -f %M` output (KiB on its last line). */
export function parseRss(text: string): number | undefined {
  const last = text.trim().split("\n").at(-1) ?? "";
  return /^\d+$/.test(last) ? Number(last) / 1024 : undefined;
}

/** Scenario 4: bare start (VERSION) per plugin, and peak RSS per plugin run. */
export async function startScenario(ctx: ScenarioContext): Promise<void> {
  const { sizes } = ctx;
  const stdin = '{"cniVersion":"1.0.0"}';
  for (const plugin of CHAIN_PLUGINS) {
    const times = samplesOf(ctx);
    for (let w = 0; w < sizes.warmup; w++) {
      await alternate(ctx.hosts, w, async (host) => {
        await host.request({ op: "exec", plugin, command: "VERSION", stdin });
      });
    }
    for (let i = 0; i < sizes.startIterations; i++) {
      await alternate(ctx.hosts, i, async (host) => {
        const reply = await host.request({ op: "exec", plugin, command: "VERSION", stdin });
        times.get(host)!.push(reply.ms!);
      });
    }
    ctx.log(`start: ${plugin}: ${summaryLine(ctx, times, "VERSION")}`);
    ctx.rows.push(makeRow({ scenario: "4 start", metric: `${plugin} VERSION (bare start)` }, {
      reference: pick(ctx, times, "reference"),
      cnibox: pick(ctx, times, "cnibox"),
      target: { kind: "absolute", max: 25, text: "cnibox <= 25 ms" },
      note: borrowedNote(ctx, [plugin]),
    }));
  }
  if (!isExecutable("/usr/bin/time")) {
    ctx.checks.push({
      scenario: "4 start",
      name: "peak RSS measured",
      ok: false,
      detail: "skipped: /usr/bin/time is missing (Debian package `time`)",
    });
    return;
  }
  // Peak RSS: VERSION runs, then each plugin's ADD and DEL in a real chain, under /usr/bin/time.
  const rss = new Map<string, Map<BenchHost, number[]>>();
  const push = (key: string, host: BenchHost, value: number | undefined) => {
    if (value === undefined) return;
    if (!rss.has(key)) rss.set(key, samplesOf(ctx));
    rss.get(key)!.get(host)!.push(value);
  };
  for (let i = 0; i < sizes.rssSamples; i++) {
    await alternate(ctx.hosts, i, async (host) => {
      for (const plugin of CHAIN_PLUGINS) {
        const reply = await host.request({
          op: "exec",
          plugin,
          command: "VERSION",
          stdin,
          wrap: "time",
        });
        push(`${plugin} VERSION`, host, parseRss(reply.wrapperOutput as string));
      }
      const alloc = await host.newAlloc();
      try {
        for (const verb of ["ADD", "DEL"] as const) {
          const reply = await host.request({
            op: "profile",
            verb,
            alloc: wire(alloc),
            wrap: "time",
          });
          for (const run of reply.plugins as { type: string; wrapperOutput?: string }[]) {
            push(`${run.type} ${verb}`, host, parseRss(run.wrapperOutput ?? ""));
          }
        }
      } finally {
        await host.dropAlloc(alloc);
      }
    });
  }
  for (const [key, samples] of rss) {
    ctx.rows.push(makeRow({ scenario: "4 start", metric: `peak RSS, ${key}` }, {
      unit: "MiB",
      reference: pick(ctx, samples, "reference"),
      cnibox: pick(ctx, samples, "cnibox"),
      note: borrowedNote(ctx, [key.split(" ")[0]]),
    }));
  }
}

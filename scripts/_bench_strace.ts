/**
 * Reading `strace -f -ttt -e trace=execve -o <file>` logs of one plugin run:
 * which programs it started, how often, and how long each child lived. This
 * is how the bench counts the processes an ADD or DEL spawns and how much of
 * its time goes to them.
 *
 * @module
 */

/** What one traced plugin run did. */
export interface ExecTrace {
  /** Successful execve calls per program basename, the traced plugin itself excluded. */
  execs: Record<string, number>;
  /** Milliseconds spent in children per program (exec of a process until its exit). */
  childMs: Record<string, number>;
  /** Child processes that exec'd something. */
  processes: number;
  /** Milliseconds from the plugin's own exec until its exit. */
  wallMs: number;
  /** Basenames the traced process itself exec'd, in order (e.g. a launcher, then deno). */
  self: string[];
}

// "<pid> <sec.usec> execve("<path>", [...], ...) = 0" (possibly split by "<unfinished ...>")
const EXEC = /^(\d+)\s+(\d+\.\d+)\s+execve\("((?:[^"\\]|\\.)*)"/;
const RESUMED = /^(\d+)\s+(\d+\.\d+)\s+<\.\.\. execve resumed>.*=\s*(-?\d+)/;
const EXITED = /^(\d+)\s+(\d+\.\d+)\s+\+\+\+ (?:exited with \d+|killed by \S+)/;

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/**
 * Parses one strace log. The first pid in the log is the traced plugin;
 * every other pid that exec'd a program is one of its children (a launcher
 * `exec`ing deno stays one process). Failed execve calls (PATH probing) are
 * ignored.
 *
 * @example Usage
 * ```ts
 * const trace = parseExecTrace([
 *   '100 1.000000 execve("/usr/lib/cni/firewall", ["firewall"], 0x0) = 0',
 *   '101 1.010000 execve("/usr/sbin/iptables", ["iptables"], 0x0) = 0',
 *   "101 1.012000 +++ exited with 0 +++",
 *   "100 1.020000 +++ exited with 0 +++",
 * ].join("\n"));
 * trace.execs; // { iptables: 1 }
 * ```
 */
export function parseExecTrace(text: string): ExecTrace {
  let root: string | undefined;
  const pending = new Map<string, { t: number; prog: string }>();
  const started = new Map<string, number>();
  const program = new Map<string, string>();
  const trace: ExecTrace = { execs: {}, childMs: {}, processes: 0, wallMs: 0, self: [] };
  const exec = (pid: string, t: number, prog: string) => {
    if (!started.has(pid)) started.set(pid, t);
    program.set(pid, prog);
    if (pid === root) trace.self.push(prog);
    else trace.execs[prog] = (trace.execs[prog] ?? 0) + 1;
  };
  for (const line of text.split("\n")) {
    const pidMatch = line.match(/^(\d+)\s/);
    if (!pidMatch) continue;
    root ??= pidMatch[1];
    let m = line.match(EXEC);
    if (m) {
      const [, pid, t, path] = m;
      if (line.includes("<unfinished ...>")) {
        pending.set(pid, { t: Number(t), prog: basename(path) });
      } else if (/=\s*0\s*$/.test(line)) exec(pid, Number(t), basename(path));
      continue;
    }
    m = line.match(RESUMED);
    if (m) {
      const waiting = pending.get(m[1]);
      pending.delete(m[1]);
      if (waiting && m[3] === "0") exec(m[1], waiting.t, waiting.prog);
      continue;
    }
    m = line.match(EXITED);
    if (m) {
      const [, pid, t] = m;
      const begin = started.get(pid);
      if (begin === undefined) continue;
      const ms = (Number(t) - begin) * 1000;
      if (pid === root) trace.wallMs = ms;
      else {
        const prog = program.get(pid)!;
        trace.childMs[prog] = (trace.childMs[prog] ?? 0) + ms;
        trace.processes++;
      }
    }
  }
  return trace;
}

/** Sums several traces' per-program counts and times (e.g. all plugins of one chain ADD). */
export function mergeTraces(traces: readonly ExecTrace[]): ExecTrace {
  const out: ExecTrace = { execs: {}, childMs: {}, processes: 0, wallMs: 0, self: [] };
  for (const t of traces) {
    for (const [k, v] of Object.entries(t.execs)) out.execs[k] = (out.execs[k] ?? 0) + v;
    for (const [k, v] of Object.entries(t.childMs)) out.childMs[k] = (out.childMs[k] ?? 0) + v;
    out.processes += t.processes;
    out.wallMs += t.wallMs;
    out.self.push(...t.self);
  }
  return out;
}

/** "iptables=3, ip6tables=1" (sorted by count, then name), or "none". */
export function formatCounts(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (entries.length === 0) return "none";
  return entries.map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(1)}`).join(", ");
}

/** What one plugin run opened, from `strace -f -ttt -e trace=openat,execve`. */
export interface OpenTrace {
  /**
   * Distinct `.ts` sources read (Deno reads the whole reachable module graph);
   * a plugin bundle counts as a source and as an evaluated module.
   */
  sources: number;
  /** Distinct transpiled modules loaded from DENO_DIR's `gen/` (the modules evaluated). */
  evaluated: number;
  /** npm packages whose code (any file but the registry metadata) was opened. */
  npm: string[];
  /** npm packages whose registry metadata (`registry.json`) was read. */
  npmMetadata: string[];
  /**
   * Phases of the traced process in ms (inflated by tracing): exec until the
   * first source is read (runtime start, config, lockfile), reading the
   * module graph's sources, loading transpiled modules, and the rest until
   * exit (the plugin's work, its children, exit).
   */
  phases?: { start: number; readGraph: number; loadModules: number; rest: number };
}

/** Parses an openat trace; failed opens are ignored. Phases need `-ttt` timestamps. */
export function parseOpenTrace(text: string): OpenTrace {
  const sources = new Set<string>();
  const evaluated = new Set<string>();
  const npm = new Set<string>();
  const npmMetadata = new Set<string>();
  let root: string | undefined;
  let t0: number | undefined;
  let firstSource: number | undefined;
  let firstGen: number | undefined;
  let lastGen: number | undefined;
  let exit: number | undefined;
  for (const line of text.split("\n")) {
    const head = line.match(/^(\d+)\s+(?:(\d+\.\d+)\s+)?/);
    if (!head) continue;
    root ??= head[1];
    const mine = head[1] === root;
    const t = head[2] === undefined ? undefined : Number(head[2]);
    if (mine && t0 === undefined && line.includes("execve(")) t0 = t;
    if (mine && /\+\+\+ (exited|killed)/.test(line)) exit = t;
    const m = line.match(/openat\([^,]+, "((?:[^"\\]|\\.)*)"[^)]*\)\s*=\s*(-?\d+)/);
    if (!m || Number(m[2]) < 0) continue;
    const path = m[1];
    const pkg = path.match(/\/npm\/[^/]+\/((?:@[^/]+\/)?[^/]+)\//)?.[1];
    if (pkg) (path.endsWith("/registry.json") ? npmMetadata : npm).add(pkg);
    else if (/\/dist\/bundles\/[^/]+\/[^/]+\.js$/.test(path)) {
      // A plugin bundle (what installed launchers run): read and evaluated as it is.
      sources.add(path);
      evaluated.add(path);
      if (mine) {
        firstSource ??= t;
        firstGen ??= t;
        lastGen = t;
      }
    } else if (path.includes("/gen/") && path.endsWith(".js")) {
      evaluated.add(path);
      if (mine) {
        firstGen ??= t;
        lastGen = t;
      }
    } else if (path.endsWith(".ts")) {
      sources.add(path);
      if (mine) firstSource ??= t;
    }
  }
  const out: OpenTrace = {
    sources: sources.size,
    evaluated: evaluated.size,
    npm: [...npm].sort(),
    npmMetadata: [...npmMetadata].sort(),
  };
  if (
    t0 !== undefined && firstSource !== undefined && firstGen !== undefined &&
    lastGen !== undefined && exit !== undefined
  ) {
    const ms = (a: number, b: number) => Math.round((b - a) * 1e6) / 1e3;
    out.phases = {
      start: ms(t0, firstSource),
      readGraph: ms(firstSource, firstGen),
      loadModules: ms(firstGen, lastGen),
      rest: ms(lastGen, exit),
    };
  }
  return out;
}

/**
 * Private rig of the hardening suite: a bin dir with our five plugins and
 * `cnibox`, process runs that survive hostile stdin and can be killed as a
 * group, whole-node state (kernel, firewall, sysctls, files) for
 * before/after comparison, and a seeded random source so a failing run can be
 * replayed. Test-only.
 *
 * @module
 */
import { PLUGINS } from "../applets.ts";
import { installPlugins } from "../commands/install.ts";
import { readTree, REFERENCE_DIR, type Snapshot, snapshot } from "../lib/testing/harness.ts";
import { type CommandOutput, sh, type TestNetns } from "../lib/testing/netns.ts";

/** Netns name prefix of every namespace this suite creates. */
export const PREFIX = "cbx-hd";

/** `HARDENING_FULL=1` runs the long variants (200 kills, 10 storm rounds). */
export const FULL: boolean = Deno.env.get("HARDENING_FULL") === "1";

/** Seed of the random choices; `HARDENING_SEED` replays a run. */
export const SEED: number = Number(Deno.env.get("HARDENING_SEED") ?? Date.now() % 1_000_000);

export { REFERENCE_DIR };

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The plugin names of the suite. */
export const PLUGIN_NAMES = ["loopback", "bridge", "host-local", "firewall", "portmap"] as const;

let installing: Promise<string> | undefined;

/** A temp dir with launchers for our plugins and `cnibox` (installed once per test process). */
export function binDir(): Promise<string> {
  installing ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: `${PREFIX}-bin-` });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    await installPlugins(dir, { force: true });
    for (const name of PLUGIN_NAMES) {
      if (!Object.hasOwn(PLUGINS, name)) throw new Error(`${name} is not in the applet table`);
    }
    return dir;
  })();
  return installing;
}

/** Options of {@linkcode runProcess}. */
export interface ProcessOptions {
  env?: Record<string, string | undefined>;
  stdin?: string | Uint8Array;
  /** Run inside this namespace (`ip netns exec`). */
  host?: TestNetns;
  /** SIGKILL the process group after this many ms (then `killed` is true). */
  killAfterMs?: number;
  /** Fail the test if the process runs longer than this. @default {60000} */
  timeoutMs?: number;
}

/** A finished process. */
export interface ProcessOutput extends CommandOutput {
  /** Killed by `killAfterMs` before it exited on its own. */
  killed: boolean;
  /** Wall time in ms. */
  ms: number;
  /** Pid of the process, which is also its process group id. */
  pid: number;
}

/**
 * Runs `cmd` in its own process group with a clean environment (PATH plus
 * `env`). Writing stdin tolerates a plugin that stops reading early, and
 * `killAfterMs` kills the whole group (the plugin and anything it started),
 * which is what a node crash or an OOM kill of the runtime's cgroup does.
 */
export async function runProcess(
  cmd: string,
  args: string[],
  options: ProcessOptions = {},
): Promise<ProcessOutput> {
  const env: Record<string, string> = { PATH };
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value !== undefined) env[key] = value;
  }
  const argv = options.host ? ["ip", "netns", "exec", options.host.name, cmd, ...args] : [
    cmd,
    ...args,
  ];
  // setsid execs in place (the child is no group leader), so the pid is the group id.
  const child = new Deno.Command("setsid", {
    args: argv,
    env,
    clearEnv: true,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const started = performance.now();
  let killed = false;
  let exited = false;
  const killGroup = () => {
    if (exited) return;
    try {
      Deno.kill(-child.pid, "SIGKILL");
      killed = true;
    } catch {
      // already gone
    }
  };
  const killTimer = options.killAfterMs === undefined
    ? undefined
    : setTimeout(killGroup, options.killAfterMs);
  const limit = options.timeoutMs ?? 60_000;
  let overtime = false;
  const guard = setTimeout(() => {
    overtime = true;
    killGroup();
  }, limit);
  if (options.stdin !== undefined) {
    const data = typeof options.stdin === "string"
      ? new TextEncoder().encode(options.stdin)
      : options.stdin;
    const writer = child.stdin.getWriter();
    try {
      for (let at = 0; at < data.length; at += 1 << 20) {
        await writer.write(data.subarray(at, at + (1 << 20)));
      }
      await writer.close();
    } catch {
      // The reader stopped early (a bounded reader refusing more, or a kill).
      await writer.abort().catch(() => {});
    }
  }
  const out = await child.output();
  exited = true;
  clearTimeout(killTimer);
  clearTimeout(guard);
  if (overtime) throw new Error(`${argv.join(" ")} ran longer than ${limit} ms; killed`);
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    killed: killed && out.signal === "SIGKILL",
    ms: performance.now() - started,
    pid: child.pid,
  };
}

/** Kernel, firewall and sysctl state of a namespace, plus the sysctls plugins write. */
export interface NsState extends Snapshot {
  sysctls: string;
}

/** The sysctls a plugin could write in a namespace (forwarding, route_localnet, accept_ra, ...). */
async function sysctls(ns: TestNetns): Promise<string> {
  const out = await ns.exec("sh", [
    "-c",
    "grep -r . /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding " +
    "/proc/sys/net/ipv4/conf/*/route_localnet /proc/sys/net/ipv6/conf/*/accept_ra " +
    "/proc/sys/net/ipv6/conf/*/disable_ipv6 2>/dev/null | sort",
  ]);
  return out.stdout;
}

/** Snapshot of one namespace including sysctls. */
export async function nsState(ns: TestNetns): Promise<NsState> {
  const [snap, sys] = await Promise.all([snapshot(ns), sysctls(ns)]);
  return { ...snap, sysctls: sys };
}

/** Everything a plugin run could change on a (private) node: namespaces and directories. */
export interface NodeState {
  namespaces: Record<string, NsState>;
  files: Record<string, Record<string, string>>;
}

/** Reads the state of the given namespaces and directories. */
export async function nodeState(
  namespaces: readonly TestNetns[],
  dirs: readonly string[],
): Promise<NodeState> {
  const state: NodeState = { namespaces: {}, files: {} };
  for (const ns of namespaces) state.namespaces[ns.name] = await nsState(ns);
  for (const dir of dirs) state.files[dir] = await readTree(dir);
  return state;
}

/** Lines of `text` that name one of `needles` (for residue reports). */
export function linesWith(text: string, needles: readonly string[]): string[] {
  return text.split("\n").filter((line) => needles.some((n) => line.includes(n)));
}

/** Whether nobody holds `path` locked (`flock -n`); a missing file is free. */
export async function lockIsFree(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
  } catch {
    return true;
  }
  const out = await sh("flock", ["-n", "-s", path, "true"]);
  return out.code === 0;
}

/** A small seeded PRNG (mulberry32), so a run's random choices replay with the same seed. */
export class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** Parses the journal file the skeleton appends to (`CNIBOX_JOURNAL`). */
export async function readJournal(
  path: string,
): Promise<{ plugin: string; command: string; outcome: string; code?: number }[]> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return [];
  }
  return text.split("\n").filter(Boolean).map((line) => JSON.parse(line));
}

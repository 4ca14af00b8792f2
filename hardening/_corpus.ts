/**
 * The bad-input corpus (`testdata/bad-input/<plugin>/*.json`): case format,
 * loading, and running one case against our plugin (and, where useful, the
 * reference) in a private host namespace plus a container namespace, with
 * the node's state read before and after. Test-only.
 *
 * A case file:
 * ```json
 * {
 *   "description": "hostPort 0",
 *   "plugin": "portmap",            // or loopback, bridge, host-local, firewall, exec
 *   "env": { "CNI_COMMAND": "DEL" }, // over the defaults; null removes a variable
 *   "setup": [["ip", "-n", "@CONTAINER@", "link", "add", "eth0", "type", "dummy"]],
 *   "stdin": { ... },                // or "stdinText", "stdinBase64", "stdinGenerate"
 *   "expect": { "code": 7, "msg": "Invalid host port" },
 *   "reference": "same"              // or { "code": 999, "deliberate": "why" }, or absent
 * }
 * ```
 * `exec` cases carry `args` (after `cnibox exec`) and `conflist` /
 * `conflistText` / `conflistGenerate` instead of stdin, and expect
 * `{ "exit": 1, "stderr": "substring" }` (cnibox exec reports errors as
 * cnitool does: text on stderr, nothing on stdout).
 *
 * Placeholders in strings: `@NETNS@` (container netns path), `@DATADIR@`
 * (the case's lease dir), `@HOST@` / `@CONTAINER@` (namespace names, for
 * setup commands).
 *
 * @module
 */
import { createNetns, sh, type TestNetns } from "../lib/testing/netns.ts";
import { binDir, type NodeState, nodeState, PREFIX, REFERENCE_DIR, runProcess } from "./_rig.ts";

const CORPUS_DIR = new URL("../testdata/bad-input/", import.meta.url).pathname;

/** How to build a large stdin or conflist without storing it. */
export interface Generator {
  /** `nested`: an unknown key holding `depth` nested arrays; `pad`: one holding a `bytes`-long string. */
  kind: "nested" | "pad";
  depth?: number;
  bytes?: number;
}

/** What a case expects from our side. */
export interface Expectation {
  /** CNI error code on stdout (plugin cases). */
  code?: number;
  /** Substring of the error's `msg` (plugin cases). */
  msg?: string;
  /** Exit status (exec cases; plugin cases always expect 1). */
  exit?: number;
  /** Substring of stderr (exec cases). */
  stderr?: string;
}

/** What the reference does with the same input. */
export type ReferenceExpectation =
  | "same"
  | { code: number; deliberate?: string; note?: string };

/** One case file. */
export interface BadInputCase {
  /** `<plugin>/<file name without .json>`. */
  id: string;
  description: string;
  plugin: "loopback" | "bridge" | "host-local" | "firewall" | "portmap" | "exec";
  env?: Record<string, string | null>;
  setup?: string[][];
  /** Wait this long before the after-snapshot (kernel state that settles late). */
  settleMs?: number;
  stdin?: unknown;
  stdinText?: string;
  stdinBase64?: string;
  stdinGenerate?: Generator;
  args?: string[];
  conflist?: unknown;
  conflistText?: string;
  conflistGenerate?: Generator;
  expect: Expectation;
  reference?: ReferenceExpectation;
  /** Set on cases that fail because of a known plugin defect (listed in docs/hardening.md). */
  defect?: string;
}

/** Loads every case, sorted by id. */
export function loadCases(): BadInputCase[] {
  const cases: BadInputCase[] = [];
  for (const dir of Deno.readDirSync(CORPUS_DIR)) {
    if (!dir.isDirectory) continue;
    for (const file of Deno.readDirSync(`${CORPUS_DIR}${dir.name}`)) {
      if (!file.name.endsWith(".json")) continue;
      const raw = JSON.parse(Deno.readTextFileSync(`${CORPUS_DIR}${dir.name}/${file.name}`));
      cases.push({ ...raw, id: `${dir.name}/${file.name.slice(0, -5)}` });
    }
  }
  return cases.sort((a, b) => a.id.localeCompare(b.id));
}

/** Replaces placeholders in every string of a JSON value. */
export function substitute<T>(value: T, vars: Record<string, string>): T {
  if (typeof value === "string") {
    let out: string = value;
    for (const [key, replacement] of Object.entries(vars)) out = out.replaceAll(key, replacement);
    return out as T;
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, vars)) as T;
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, substitute(v, vars)]),
    ) as T;
  }
  return value;
}

/** Builds generated input: `head` + the junk value + `}`. */
export function generate(spec: Generator, head: string): string {
  if (spec.kind === "nested") {
    const depth = spec.depth ?? 100_000;
    return `${head}"junk":${"[".repeat(depth)}${"]".repeat(depth)}}`;
  }
  return `${head}"junk":"${"x".repeat(spec.bytes ?? 20 * 1024 * 1024)}"}`;
}

/** The stdin bytes of a plugin case. */
function stdinOf(c: BadInputCase, vars: Record<string, string>): Uint8Array {
  if (c.stdinBase64 !== undefined) {
    return Uint8Array.from(atob(c.stdinBase64), (ch) => ch.charCodeAt(0));
  }
  if (c.stdinGenerate) {
    return new TextEncoder().encode(
      generate(c.stdinGenerate, `{"cniVersion":"1.0.0","name":"hdnet","type":"${c.plugin}",`),
    );
  }
  if (c.stdinText !== undefined) return new TextEncoder().encode(substitute(c.stdinText, vars));
  return new TextEncoder().encode(JSON.stringify(substitute(c.stdin, vars)));
}

/** The conflist file text of an exec case (a default three-plugin chain if none is given). */
function conflistOf(c: BadInputCase, vars: Record<string, string>): string {
  if (c.conflistGenerate) {
    return generate(
      c.conflistGenerate,
      `{"cniVersion":"1.0.0","name":"hdnet","plugins":[{"type":"loopback"}],`,
    );
  }
  if (c.conflistText !== undefined) return substitute(c.conflistText, vars);
  return JSON.stringify(substitute(c.conflist ?? DEFAULT_CONFLIST, vars));
}

const DEFAULT_CONFLIST = {
  cniVersion: "1.0.0",
  name: "hdnet",
  plugins: [
    {
      type: "bridge",
      bridge: "cni-hd0",
      isGateway: true,
      ipMasq: true,
      ipam: { type: "host-local", dataDir: "@DATADIR@", ranges: [[{ subnet: "10.99.0.0/24" }]] },
    },
    { type: "firewall", backend: "iptables" },
    { type: "portmap", capabilities: { portMappings: true } },
  ],
};

/** The outcome of one run of a case. */
export interface CaseRun {
  exit: number;
  stdout: string;
  stderr: string;
  /** The parsed error JSON (plugin cases), or undefined if stdout was not one. */
  error?: { code: number; msg: string; details?: string };
  /** Differences between the node state before and after (empty: nothing changed). */
  changes: string[];
}

/** Namespaces and directories of one case. */
export interface CaseWorld extends AsyncDisposable {
  host: TestNetns;
  container: TestNetns;
  tmp: string;
  vars: Record<string, string>;
  dirs: string[];
}

/** Creates the private host and container namespaces and temp dirs of a case, and runs its setup. */
export async function caseWorld(c: BadInputCase): Promise<CaseWorld> {
  const host = await createNetns(PREFIX);
  const container = await createNetns(PREFIX);
  const tmp = await Deno.makeTempDir({ prefix: `${PREFIX}-case-` });
  const vars = {
    "@NETNS@": container.path,
    "@DATADIR@": `${tmp}/leases`,
    "@HOST@": host.name,
    "@CONTAINER@": container.name,
  };
  for (const command of c.setup ?? []) {
    const [cmd, ...args] = substitute(command, vars);
    const out = await sh(cmd, args);
    if (out.code !== 0) {
      await host.remove();
      await container.remove();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      throw new Error(`setup ${command.join(" ")} failed: ${out.stderr}`);
    }
  }
  return {
    host,
    container,
    tmp,
    vars,
    dirs: [`${tmp}/leases`, `${tmp}/cache`],
    async [Symbol.asyncDispose]() {
      await host.remove();
      await container.remove();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    },
  };
}

function parseError(stdout: string): CaseRun["error"] {
  try {
    const value = JSON.parse(stdout);
    if (value && typeof value.code === "number" && typeof value.msg === "string") return value;
  } catch {
    // not JSON
  }
  return undefined;
}

/** Runs a case once, ours or the reference, and reports output and state changes. */
export async function runCase(
  c: BadInputCase,
  world: CaseWorld,
  options: { reference?: boolean } = {},
): Promise<CaseRun> {
  const bin = options.reference ? REFERENCE_DIR : await binDir();
  const before = await nodeState([world.host, world.container], world.dirs);
  const journal = `${world.tmp}/journal`;
  let out;
  if (c.plugin === "exec") {
    const netconf = `${world.tmp}/net.d`;
    await Deno.mkdir(netconf, { recursive: true });
    await Deno.writeTextFile(`${netconf}/hdnet.conflist`, conflistOf(c, world.vars));
    const env: Record<string, string | undefined> = {
      NETCONFPATH: netconf,
      CNI_PATH: bin,
      CNI_CACHE_DIR: `${world.tmp}/cache`,
      CNIBOX_JOURNAL: journal,
      CAP_ARGS: JSON.stringify({
        portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
      }),
    };
    for (const [k, v] of Object.entries(substitute(c.env ?? {}, world.vars))) {
      env[k] = v ?? undefined;
    }
    out = await runProcess(`${await binDir()}/cnibox`, [
      "exec",
      ...substitute(c.args ?? [], world.vars),
    ], { env, host: world.host });
  } else {
    const env: Record<string, string | undefined> = {
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "cbx-hd-case",
      CNI_NETNS: world.container.path,
      CNI_IFNAME: "eth0",
      CNI_PATH: bin,
      CNIBOX_JOURNAL: journal,
    };
    for (const [k, v] of Object.entries(substitute(c.env ?? {}, world.vars))) {
      env[k] = v ?? undefined;
    }
    out = await runProcess(`${bin}/${c.plugin}`, [], {
      env,
      host: world.host,
      stdin: stdinOf(c, world.vars),
    });
  }
  // A bridge's carrier and MAC follow its ports up to about a second late.
  if (c.settleMs) await new Promise((resolve) => setTimeout(resolve, c.settleMs));
  const after = await nodeState([world.host, world.container], world.dirs);
  return {
    exit: out.code,
    stdout: out.stdout,
    stderr: out.stderr,
    error: parseError(out.stdout),
    changes: describeChanges(before, after),
  };
}

function lines(value: unknown): string[] {
  if (typeof value === "string") return value.split("\n");
  if (Array.isArray(value)) return value.map((v) => JSON.stringify(v));
  return [JSON.stringify(value)];
}

/** Human-readable differences between two node states (`+`/`-` lines per section). */
export function describeChanges(before: NodeState, after: NodeState): string[] {
  const out: string[] = [];
  const compare = (where: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a) === JSON.stringify(b)) return;
    const la = lines(a);
    const lb = lines(b);
    for (const line of la) if (!lb.includes(line)) out.push(`${where}: - ${line}`);
    for (const line of lb) if (!la.includes(line)) out.push(`${where}: + ${line}`);
    if (out.length === 0) out.push(`${where}: changed order`);
  };
  for (const [ns, state] of Object.entries(before.namespaces)) {
    const next = after.namespaces[ns] as unknown as Record<string, unknown>;
    for (const [key, value] of Object.entries(state)) compare(`${ns} ${key}`, value, next?.[key]);
  }
  for (const [dir, files] of Object.entries(before.files)) {
    compare(dir, leaseView(files), leaseView(after.files[dir] ?? {}));
  }
  return out;
}

/**
 * The files that hold state, without bookkeeping: host-local's empty `lock`
 * files, its round-robin cursor `last_reserved_ip.N` (moved by any
 * allocation that is rolled back, in the reference too) and cnibox's lease
 * index stamps under `.cnibox/`. Leases themselves and cache entries stay.
 */
export function leaseView(files: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(files).filter(([path, content]) =>
      !(/(^|\/)lock$/.test(path) && content === "") &&
      !/(^|\/)last_reserved_ip\.\d+$/.test(path) &&
      !/^\.cnibox\//.test(path)
    ),
  );
}

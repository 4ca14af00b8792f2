/**
 * Side-by-side rig for the firewall and portmap proof tests: runs the
 * reference binaries (/usr/lib/cni) and ours (through run_plugin.ts) inside
 * a private "host" namespace with the same stdin and environment, records
 * the processes ours starts, and snapshots iptables for comparison.
 *
 * @module
 */
import { type CommandOutput, sh, type TestNetns } from "../../lib/testing/netns.ts";
import type { ExecCall } from "../../lib/firewall/exec.ts";

const ENTRY = new URL("./run_plugin.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** Where Debian keeps the reference plugins. */
export const REFERENCE_DIR = "/usr/lib/cni";

/** One plugin call. */
export interface PluginCall {
  plugin: "firewall" | "portmap";
  command: "ADD" | "DEL" | "CHECK" | "GC";
  conf: Record<string, unknown>;
  containerId?: string;
  /** CNI_NETNS (the container; only its path is used by these plugins). */
  netns?: string;
  ifName?: string;
  /** Directories searched before the standard PATH (e.g. one whose iptables is legacy). */
  pathFirst?: string;
  /**
   * Ours only: run in a private mount namespace whose `/run` is read-only
   * (no lock files, no firewall records). @default {false}
   */
  readOnlyRun?: boolean;
}

/** A finished call, with the processes ours started (empty for the reference). */
export interface CallOutput extends CommandOutput {
  calls: ExecCall[];
}

function environment(call: PluginCall): Record<string, string> {
  return {
    PATH: `${call.pathFirst ? `${call.pathFirst}:` : ""}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: Deno.env.get("HOME") ?? "/root",
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId ?? "abc123",
    CNI_NETNS: call.netns ?? "/var/run/netns/cbx-fw-container",
    CNI_IFNAME: call.ifName ?? "eth0",
    CNI_PATH: REFERENCE_DIR,
  };
}

/** Runs the reference plugin inside `host`. */
export async function runReference(host: TestNetns, call: PluginCall): Promise<CallOutput> {
  const out = await sh("ip", ["netns", "exec", host.name, `${REFERENCE_DIR}/${call.plugin}`], {
    stdin: JSON.stringify(call.conf),
    env: environment(call),
    clearEnv: true,
  });
  return { ...out, calls: [] };
}

/** Runs our plugin inside `host`, recording the processes it starts. */
export async function runOurs(host: TestNetns, call: PluginCall): Promise<CallOutput> {
  const log = await Deno.makeTempFile({ prefix: "cbx-fw-exec-" });
  try {
    const plugin = [Deno.execPath(), "run", "-A", "--quiet", "--no-prompt"]
      .concat(["--config", CONFIG, ENTRY, call.plugin]);
    // `ip netns exec` mounts its own /run; a read-only one is made inside a private mount
    // namespace entered after the network namespace (its nsfs files under /run stay).
    const readOnly = ["mount --rbind /run /run", "mount -o remount,bind,ro /run", 'exec "$@"'];
    const out = await sh(call.readOnlyRun ? "nsenter" : "ip", [
      ...(call.readOnlyRun
        ? [`--net=${host.path}`, "unshare", "-m", "sh", "-c", readOnly.join(" && "), "sh"]
        : ["netns", "exec", host.name]),
      ...plugin,
    ], {
      stdin: JSON.stringify(call.conf),
      env: { ...environment(call), CBX_EXEC_LOG: log },
      clearEnv: true,
    });
    const text = await Deno.readTextFile(log);
    return { ...out, calls: text ? JSON.parse(text) : [] };
  } finally {
    await Deno.remove(log);
  }
}

/** `iptables-save` and `ip6tables-save` of `host`, without counters, `#` lines and empty tables. */
export async function saves(host: TestNetns): Promise<string> {
  const normalise = (text: string) =>
    withoutEmptyTables(
      text.split("\n").filter((line) => line && !line.startsWith("#"))
        .map((line) => line.replace(/\[\d+:\d+\]$/, "[0:0]")).join("\n"),
    );
  const v4 = await host.exec("iptables-save", []);
  const v6 = await host.exec("ip6tables-save", []);
  return `${normalise(v4.stdout)}\n--- ip6tables ---\n${normalise(v6.stdout)}`;
}

/**
 * Drops tables that hold nothing (built-in chains with policy ACCEPT, no
 * rules, no user chains) from one normalised listing. iptables-nft creates
 * such a table the first time any command touches it, so the reference
 * leaves e.g. an empty ip6tables nat table after handling an IPv4-only
 * container where ours never touched ip6tables. Empty tables filter
 * nothing, so comparisons ignore them.
 */
export function withoutEmptyTables(save: string): string {
  const out: string[] = [];
  let block: string[] = [];
  for (const line of save.split("\n")) {
    block.push(line);
    if (line !== "COMMIT") continue;
    const body = block.slice(1, -1);
    if (!body.every((l) => /^:[A-Z]+ ACCEPT \[0:0\]$/.test(l))) out.push(...block);
    block = [];
  }
  return [...out, ...block].join("\n");
}

/** True when the reference plugins are installed. */
export const HAVE_REFERENCE: boolean = (() => {
  try {
    return Deno.statSync(`${REFERENCE_DIR}/portmap`).isFile &&
      Deno.statSync(`${REFERENCE_DIR}/firewall`).isFile;
  } catch {
    return false;
  }
})();

/** A sequence to run side by side: ADD calls, then DEL calls (in order). */
export interface Scenario {
  add: PluginCall[];
  del: PluginCall[];
  /** Commands run in the host namespace first (e.g. creating an external mark chain). */
  setup?: string[][];
}

/** What one implementation pairing left behind. */
export interface ScenarioRun {
  afterAdd: string;
  afterDel: string;
  /** Processes ours started, per call (empty for reference calls). */
  processes: { command: string; count: number }[];
}

type Runner = (host: TestNetns, call: PluginCall) => Promise<CallOutput>;

/**
 * Runs a scenario in a fresh namespace: ADDs with `adder`, DELs with
 * `deleter`; every call must succeed. Snapshots after the ADDs and the DELs.
 */
export async function runScenario(
  scenario: Scenario,
  runners: { adder: Runner; deleter: Runner; createNetns: (prefix: string) => Promise<TestNetns> },
): Promise<ScenarioRun> {
  await using host = await runners.createNetns("cbx-fw");
  for (const cmd of scenario.setup ?? []) {
    const out = await host.exec(cmd[0], cmd.slice(1));
    if (out.code !== 0) throw new Error(`setup ${cmd.join(" ")} failed: ${out.stderr}`);
  }
  const processes: { command: string; count: number }[] = [];
  const run = async (runner: Runner, call: PluginCall) => {
    const out = await runner(host, call);
    if (out.code !== 0) {
      throw new Error(
        `${call.plugin} ${call.command} exited ${out.code}: ${out.stdout} ${out.stderr}`,
      );
    }
    if (runner === runOurs) {
      processes.push({ command: `${call.plugin} ${call.command}`, count: out.calls.length });
    }
  };
  for (const call of scenario.add) await run(runners.adder, call);
  const afterAdd = await saves(host);
  for (const call of scenario.del) await run(runners.deleter, call);
  return { afterAdd, afterDel: await saves(host), processes };
}

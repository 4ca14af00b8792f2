/**
 * Black-box test rig: runs our installed plugins (launchers over this
 * checkout, the same dispatch path as a compiled binary's symlinks) and the
 * reference plugins from `/usr/lib/cni` with the same input, optionally inside
 * a private "host" namespace, and snapshots what a run changes.
 *
 * @module
 */
import { type CommandOutput, sh, type TestNetns } from "./netns.ts";

/** Where Debian's containernetworking-plugins put the reference binaries. */
export const REFERENCE_DIR = "/usr/lib/cni";

/** The CNI versions the reference 1.1.1 binaries and cnibox both speak. */
export const SHARED_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"] as const;

/** True when the reference plugins are installed (side-by-side tests are skipped otherwise, by name). */
export const HAVE_REFERENCE: boolean = (() => {
  try {
    return Deno.statSync(`${REFERENCE_DIR}/loopback`).isFile;
  } catch {
    return false;
  }
})();

let installing: Promise<string> | undefined;

/** Installs launchers for every applet into a temp dir once per test process; returns the dir. */
export function pluginDir(): Promise<string> {
  installing ??= (async () => {
    const { installPlugins } = await import("../../commands/install.ts");
    const dir = await Deno.makeTempDir({ prefix: "cnibox-bin-" });
    // Launchers are a few hundred bytes each, but one dir per test process adds up.
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    await installPlugins(dir, { force: true });
    return dir;
  })();
  return installing;
}

/** The CNI environment of one plugin call. */
export interface CniEnv {
  CNI_COMMAND?: string;
  CNI_CONTAINERID?: string;
  CNI_NETNS?: string;
  CNI_IFNAME?: string;
  CNI_ARGS?: string;
  CNI_PATH?: string;
  [key: string]: string | undefined;
}

/** Options for {@linkcode runApplet}. */
export interface RunOptions {
  /** CNI environment; nothing else is inherited except PATH. */
  env: CniEnv;
  /** stdin text. @default {""} */
  stdin?: string;
  /** Run inside this namespace (the plugin's "host"). */
  host?: TestNetns;
  /** Run the reference binary instead of ours. @default {false} */
  reference?: boolean;
}

/** Runs plugin `name` (ours or the reference) with a clean environment. */
export async function runApplet(name: string, options: RunOptions): Promise<CommandOutput> {
  const dir = options.reference ? REFERENCE_DIR : await pluginDir();
  const env: Record<string, string> = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };
  // The test runner points the run journal at a scratch file; plugin runs inherit that.
  // Scratch locations the test runner chose (journal, firewall records) carry over.
  for (const key of ["CNIBOX_JOURNAL", "CNIBOX_FIREWALL_RECORDS"]) {
    const value = Deno.env.get(key);
    if (value !== undefined) env[key] = value;
  }
  for (const [key, value] of Object.entries(options.env)) if (value !== undefined) env[key] = value;
  const bin = `${dir}/${name}`;
  const [cmd, args] = options.host ? ["ip", ["netns", "exec", options.host.name, bin]] : [bin, []];
  return await sh(cmd, args, { stdin: options.stdin ?? "", env, clearEnv: true });
}

/** Kernel and firewall state of one namespace, normalised for comparison. */
export interface Snapshot {
  links: unknown[];
  addresses: unknown[];
  routes: unknown[];
  iptables: string;
  ip6tables: string;
  nft: string;
}

function normaliseSave(text: string): string {
  return text.split("\n")
    .filter((line) => line && !line.startsWith("#"))
    .map((line) => line.replace(/\[\d+:\d+\]/, "[0:0]"))
    .join("\n");
}

/** Takes a snapshot of a namespace's links, addresses, routes and rules. */
export async function snapshot(ns: TestNetns): Promise<Snapshot> {
  const json = async (args: string[]) =>
    JSON.parse((await ns.exec("ip", ["-j", ...args])).stdout || "[]");
  // Volatile fields (counters, bridge and bridge-port timers) are dropped so two snapshots compare by content.
  type LinkInfo = Record<string, Record<string, unknown> | undefined>;
  const strip = (items: Record<string, unknown>[]) =>
    items.map(({ stats64: _s, stats: _t, ...rest }) => {
      const info = rest.linkinfo as LinkInfo | undefined;
      for (const data of [info?.info_data, info?.info_slave_data]) {
        for (const key of Object.keys(data ?? {})) if (key.endsWith("_timer")) delete data![key];
      }
      return rest;
    });
  return {
    links: strip(await json(["-d", "link", "show"])),
    addresses: await json(["addr", "show"]),
    routes: await json(["route", "show", "table", "all"]),
    iptables: normaliseSave((await ns.exec("iptables-save", [])).stdout),
    ip6tables: normaliseSave((await ns.exec("ip6tables-save", [])).stdout),
    nft: (await ns.exec("nft", ["list", "ruleset"])).stdout,
  };
}

/** Reads every file under `dir` as `{ relativePath: content }` (lease dirs, caches). */
export async function readTree(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  async function walk(sub: string): Promise<void> {
    for await (const entry of Deno.readDir(`${dir}/${sub}`)) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.isDirectory) await walk(rel);
      else files[rel] = await Deno.readTextFile(`${dir}/${rel}`);
    }
  }
  try {
    await walk("");
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return files;
}

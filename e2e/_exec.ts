/**
 * A private "host" for Nomad-shaped runs: a network namespace playing the
 * Nomad client machine, a temp dir with the conflists, the libcni result
 * cache and the host-local dataDir, and `cnibox exec` (our libcni-like
 * runtime) run inside that namespace with the environment a runtime gives
 * plugins (nothing inherited but PATH).
 *
 * Test-only.
 *
 * @module
 */
import { type CommandOutput, createNetns, sh, type TestNetns } from "../lib/testing/netns.ts";
import { cniboxBin } from "./_env.ts";

/** A private host namespace plus the directories a CNI runtime uses. */
export interface CniHost extends AsyncDisposable {
  ns: TestNetns;
  /** Temp dir holding everything below. */
  work: string;
  /** NETCONFPATH: the conflists. */
  confDir: string;
  /** CNI_CACHE_DIR: libcni's result cache. */
  cacheDir: string;
  /** The dataDir the conflists' host-local uses. */
  dataDir: string;
  /** Namespaces created through {@linkcode CniHost.sandbox}; removed on dispose. */
  sandboxes: TestNetns[];
  /** Creates a container namespace (removed with the host). */
  sandbox(): Promise<TestNetns>;
  /** Writes a conflist file into confDir. */
  addConflist(file: string, text: string): Promise<void>;
}

/** Creates a private host namespace and temp dirs; `await using` removes both. */
export async function createCniHost(prefix: string): Promise<CniHost> {
  const work = await Deno.makeTempDir({ prefix: "cbx-e2e-" });
  const ns = await createNetns(`${prefix}-h`);
  const host: CniHost = {
    ns,
    work,
    confDir: `${work}/net.d`,
    cacheDir: `${work}/cache`,
    dataDir: `${work}/run-cni`,
    sandboxes: [],
    async sandbox() {
      const sandbox = await createNetns(`${prefix}-c`);
      host.sandboxes.push(sandbox);
      return sandbox;
    },
    async addConflist(file, text) {
      await Deno.writeTextFile(`${host.confDir}/${file}`, text);
    },
    async [Symbol.asyncDispose]() {
      for (const sandbox of host.sandboxes) await sandbox.remove();
      await ns.remove();
      await Deno.remove(work, { recursive: true }).catch(() => {});
    },
  };
  await Deno.mkdir(host.confDir);
  return host;
}

/** One attachment as a runtime names it. */
export interface Attachment {
  network: string;
  /** CNI_NETNS (need not exist any more, for DEL). */
  netns: string;
  containerId: string;
  /** CNI_ARGS. @default {""} */
  cniArgs?: string;
  /** Capability arguments (CAP_ARGS), e.g. `{ portMappings: [...] }`. */
  capArgs?: Record<string, unknown>;
  /** @default {"eth0"} */
  ifname?: string;
}

/** Runs `cnibox exec <verb>` inside the host namespace with plugins from `cniPath`. */
export async function cniExec(
  host: CniHost,
  verb: "add" | "check" | "del",
  options: Attachment & { cniPath: string },
): Promise<CommandOutput> {
  const env: Record<string, string> = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    NETCONFPATH: host.confDir,
    CNI_PATH: options.cniPath,
    CNI_CACHE_DIR: host.cacheDir,
    CNI_IFNAME: options.ifname ?? "eth0",
    CNI_CONTAINERID: options.containerId,
    CNI_ARGS: options.cniArgs ?? "",
  };
  if (options.capArgs) env.CAP_ARGS = JSON.stringify(options.capArgs);
  return await sh(
    "ip",
    [
      "netns",
      "exec",
      host.ns.name,
      await cniboxBin(),
      "exec",
      verb,
      options.network,
      options.netns,
    ],
    { env, clearEnv: true },
  );
}

/** Like {@linkcode cniExec} but throws with the runtime's stderr on failure; returns stdout. */
export async function mustCniExec(
  host: CniHost,
  verb: "add" | "check" | "del",
  options: Attachment & { cniPath: string },
): Promise<string> {
  const out = await cniExec(host, verb, options);
  if (out.code !== 0) {
    throw new Error(
      `cnibox exec ${verb} ${options.network} (${options.containerId}) exited ${out.code}: ` +
        `${out.stderr.trim()}${out.stdout.trim()}`,
    );
  }
  return out.stdout;
}

/**
 * `cnibox gc <network> [--dry-run]`: garbage-collect one network the way
 * libcni's `GCNetworkList` does, with the valid attachments taken from the
 * result cache: a cached attachment is valid while its network namespace
 * still exists (or when it cannot be told). Stale attachments get a full DEL;
 * then, for 1.1.0 configs, every plugin gets GC with the valid attachments
 * (host-local releases the other leases, bridge/portmap/firewall their
 * rules). Prints what it removed, or with `--dry-run` what it would remove.
 *
 * ```
 * cnibox gc <network> [--dry-run] [--cni-config-dir <dir>]... [--cni-path <dir>]...
 *           [--cache-dir <dir>]
 * ```
 *
 * Defaults follow the environment cnitool reads (`NETCONFPATH`, `CNI_PATH`,
 * `CNI_CACHE_DIR`), else `/etc/cni/net.d` + `/opt/cni/config`,
 * `/opt/cni/bin` and `/var/lib/cni`. A network with no config file on disk
 * (Nomad's built-in `nomad` bridge) is collected with the config its cached
 * attachments were made with.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { CniError } from "../lib/cni/error.ts";
import type { Attachment } from "../lib/cni/types.ts";
import { versionAtLeast } from "../lib/cni/version.ts";
import { type CacheEntry, cacheFilePath, listCacheEntries } from "../lib/runtime/cache.ts";
import {
  confListFromConf,
  loadAllConfLists,
  type NetworkConfigList,
  parseConfList,
  parsePluginConf,
} from "../lib/runtime/conflist.ts";
import { gcNetworkList } from "../lib/runtime/runtime.ts";
import { netnsExists, type NetnsProbe } from "../lib/status/attachments.ts";
import { DEFAULT_HOST_LOCAL_DIR } from "../lib/status/inventory.ts";
import { isValidNetworkName, type Lease, readNetworkLeases } from "../lib/status/leases.ts";

const USAGE =
  `usage: cnibox gc <network> [--dry-run] [--cni-config-dir <dir>]... [--cni-path <dir>]...
                 [--cache-dir <dir>]
Deletes cached attachments of <network> whose netns is gone (full DEL), then sends GC with the
remaining ones to every plugin (cniVersion >= 1.1.0). --dry-run only prints what would go.
env: NETCONFPATH, CNI_PATH, CNI_CACHE_DIR
`;

/** Injection points for tests; the defaults are the real process. */
export interface GcCommandOptions {
  /** @default {Deno.env.toObject()} */
  env?: Record<string, string>;
  /** @default writes to the process's stdout */
  stdout?: (text: string) => void;
  /** @default writes to the process's stderr */
  stderr?: (text: string) => void;
  /** Netns existence test. @default {netnsExists} */
  probe?: NetnsProbe;
}

function writer(file: { writeSync(p: Uint8Array): number }): (text: string) => void {
  return (text) => {
    const bytes = new TextEncoder().encode(text);
    let off = 0;
    while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
  };
}

function errorText(error: unknown): string {
  if (error instanceof AggregateError) return error.errors.map(errorText).join("\n");
  if (error instanceof CniError && error.details) return `${error.message}; ${error.details}`;
  return error instanceof Error ? error.message : String(error);
}

async function mtime(cacheDir: string, entry: CacheEntry): Promise<number> {
  try {
    return (await Deno.stat(cacheFilePath(cacheDir, entry))).mtime?.getTime() ?? 0;
  } catch {
    return 0;
  }
}

/** The network's config: the first config dir that has it, else the newest cached copy. */
async function findList(
  network: string,
  configDirs: readonly string[],
  cached: CacheEntry[],
  options: { cacheDir: string; warn: (text: string) => void },
): Promise<{ list: NetworkConfigList; source: string }> {
  const { cacheDir, warn } = options;
  for (const dir of configDirs) {
    // Unlike libcni, a broken file does not stop the search; it is reported.
    for (const entry of await loadAllConfLists(dir)) {
      if (entry.error) warn(`cnibox gc: skipping ${entry.error.message}\n`);
      else if (entry.list.name === network) return { list: entry.list, source: entry.file };
    }
  }
  let newest: CacheEntry | undefined;
  let newestAt = -1;
  for (const entry of cached) {
    const at = await mtime(cacheDir, entry);
    if (at > newestAt) [newest, newestAt] = [entry, at];
  }
  if (newest) {
    // libcni caches a list's bytes, or a single plugin's for `AddNetwork` callers.
    let list = parseConfList(newest.config);
    if (list.plugins.length === 0) list = confListFromConf(parsePluginConf(newest.config));
    return { list, source: `the cached config of ${newest.containerId}/${newest.ifName}` };
  }
  throw new Error(
    `no network configuration named "${network}" in ${configDirs.join(", ")} and none cached`,
  );
}

/** Host-local data dirs the config names for this network. */
function leaseDirs(list: NetworkConfigList): string[] {
  const dirs = new Set<string>();
  for (const plugin of list.plugins) {
    const ipam = plugin.conf.ipam as Record<string, unknown> | undefined;
    if (!ipam || ipam.type !== "host-local") continue;
    dirs.add(
      typeof ipam.dataDir === "string" && ipam.dataDir ? ipam.dataDir : DEFAULT_HOST_LOCAL_DIR,
    );
  }
  return [...dirs];
}

async function readLeases(list: NetworkConfigList): Promise<Lease[]> {
  const leases: Lease[] = [];
  for (const dir of leaseDirs(list)) leases.push(...await readNetworkLeases(dir, list.name));
  return leases;
}

const key = (id: string, ifname: string) => `${id}\0${ifname}`;

/** Lease files and cache entries are text from disk: keep control characters off the terminal. */
function shown(text: string): string {
  // deno-lint-ignore no-control-regex -- matching control characters is the point.
  return text.replace(/[\x00-\x1f\x7f]/g, "?");
}

/** Runs `cnibox gc ...`; returns the exit status. */
export async function run(args: string[], options: GcCommandOptions = {}): Promise<number> {
  const env = options.env ?? Deno.env.toObject();
  const out = options.stdout ?? writer(Deno.stdout);
  const err = options.stderr ?? writer(Deno.stderr);
  const probe = options.probe ?? netnsExists;

  let flags;
  try {
    flags = parseArgs(args, {
      string: ["cache-dir"],
      collect: ["cni-config-dir", "cni-path"],
      boolean: ["dry-run", "help"],
      alias: { n: "dry-run", h: "help" },
    });
  } catch (error) {
    err(`cnibox gc: ${errorText(error)}\n${USAGE}`);
    return 2;
  }
  if (flags.help) {
    out(USAGE);
    return 0;
  }
  const [network, ...extra] = flags._;
  if (!network || extra.length > 0) {
    err(USAGE);
    return 2;
  }
  if (!isValidNetworkName(network)) {
    err(`cnibox gc: invalid network name "${network}"\n`);
    return 2;
  }
  const given = (value: unknown) => Array.isArray(value) && value.length > 0;
  const configDirs = given(flags["cni-config-dir"])
    ? flags["cni-config-dir"] as string[]
    : env.NETCONFPATH
    ? [env.NETCONFPATH]
    : ["/etc/cni/net.d", "/opt/cni/config"];
  const pluginDirs = given(flags["cni-path"])
    ? flags["cni-path"] as string[]
    : (env.CNI_PATH || "/opt/cni/bin").split(":").filter((p) => p !== "");
  const cacheDir = typeof flags["cache-dir"] === "string"
    ? flags["cache-dir"]
    : env.CNI_CACHE_DIR || "/var/lib/cni";
  const dryRun = flags["dry-run"] === true;
  const verb = (done: string, would: string) => dryRun ? `would ${would}` : done;

  try {
    const cached = await listCacheEntries(cacheDir, { networkName: network });
    const { list, source } = await findList(network, configDirs, cached, { cacheDir, warn: err });
    const valid: Attachment[] = [];
    const stale: { entry: CacheEntry; why: string }[] = [];
    for (const entry of cached) {
      const exists = entry.netns ? await probe(entry.netns) : null;
      if (exists === false) stale.push({ entry, why: `netns ${entry.netns} is gone` });
      else valid.push({ containerID: entry.containerId, ifname: entry.ifName });
    }
    const leasesBefore = await readLeases(list);
    out(
      `network ${list.name} (cniVersion ${list.cniVersion}, from ${source}): ${cached.length} cached attachments, ${valid.length} valid, ${stale.length} stale\n`,
    );
    if (list.disableGC) {
      out("nothing to do: the network config sets disableGC\n");
      return 0;
    }
    const pluginGc = versionAtLeast(list.cniVersion, "1.1.0");

    let failure: unknown;
    if (!dryRun) {
      try {
        await gcNetworkList(list, {
          path: pluginDirs,
          cacheDir,
          validAttachments: valid,
          env,
          stderr: (chunk) => err(new TextDecoder().decode(chunk)),
        });
      } catch (error) {
        failure = error;
      }
    }
    const remaining = dryRun ? new Set(cached.map((e) => key(e.containerId, e.ifName))) : new Set(
      (await listCacheEntries(cacheDir, { networkName: network })).map((e) =>
        key(e.containerId, e.ifName)
      ),
    );
    for (const { entry, why } of stale) {
      if (dryRun || !remaining.has(key(entry.containerId, entry.ifName))) {
        out(
          `${verb("removed", "remove")} attachment ${
            shown(`${entry.containerId}/${entry.ifName}`)
          } (${shown(why)}; DEL through the chain)\n`,
        );
      }
    }

    const validKeys = new Set(valid.map((a) => key(a.containerID, a.ifname)));
    const validIds = new Set(valid.map((a) => a.containerID));
    const staleKeys = new Set(stale.map((s) => key(s.entry.containerId, s.entry.ifName)));
    const owned = (l: Lease) =>
      l.ifname === "" ? validIds.has(l.containerId) : validKeys.has(key(l.containerId, l.ifname));
    if (dryRun) {
      for (const lease of leasesBefore) {
        if (owned(lease)) continue;
        const who = shown(`${lease.containerId}/${lease.ifname || "?"}`);
        if (staleKeys.has(key(lease.containerId, lease.ifname))) {
          out(`would release lease ${lease.ip} (${who}; by the DEL above)\n`);
        } else if (pluginGc) {
          out(`would release lease ${lease.ip} (${who}; no attachment; by host-local GC)\n`);
        } else {
          out(
            `lease ${lease.ip} (${who}) has no attachment but stays: plugins get GC only from cniVersion 1.1.0\n`,
          );
        }
      }
    } else {
      const after = new Set((await readLeases(list)).map((l) => l.ip));
      for (const lease of leasesBefore) {
        if (!after.has(lease.ip)) {
          out(
            `released lease ${lease.ip} (${
              shown(`${lease.containerId}/${lease.ifname || "?"}`)
            })\n`,
          );
        }
      }
    }
    if (pluginGc) {
      out(
        `${verb("sent", "send")} GC to ${
          list.plugins.map((p) => p.conf.type).join(", ")
        } with ${valid.length} valid attachments\n`,
      );
    }
    if (failure !== undefined) {
      err(`${errorText(failure)}\n`);
      return 1;
    }
    return 0;
  } catch (error) {
    err(`cnibox gc: ${errorText(error)}\n`);
    return 1;
  }
}

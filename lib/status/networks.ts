/**
 * Network configurations as the status pages list them: every config file
 * in the config directories, its plugin chain, and where (and whether) each
 * plugin binary is found in the plugin path and whether it is cnibox.
 *
 * @module
 */
import { join } from "@std/path";
import { loadAllConfLists, type NetworkConfigList } from "../runtime/conflist.ts";

/** One plugin of a chain (or the IPAM plugin a chain member delegates to). */
export interface ChainPlugin {
  type: string;
  /** `"ipam"` for an `ipam.type` of the plugin before it. */
  role: "plugin" | "ipam";
  /** Where the binary is in the plugin path, or `null` when it is missing. */
  path: string | null;
  /** Whether that binary is cnibox (a cnibox launcher, or a link to the cnibox binary). */
  cnibox: boolean;
}

/** One network config found on disk. */
export interface NetworkInfo {
  name: string;
  file: string;
  /** The selected spec version. */
  cniVersion: string;
  disableGC: boolean;
  plugins: ChainPlugin[];
  /** Set when an earlier file (the one runtimes use) has the same network name. */
  shadowedBy?: string;
  /** The parsed list, for running STATUS and reading host-local settings. */
  list: NetworkConfigList;
}

/** A config file that could not be loaded. */
export interface ConfigError {
  file: string;
  error: string;
}

/** Everything found in the config directories. */
export interface NetworkScan {
  networks: NetworkInfo[];
  errors: ConfigError[];
}

/** Options for {@linkcode scanNetworks}. */
export interface ScanNetworksOptions {
  /** Plugin directories, searched in order (`CNI_PATH`). @default {[]} */
  pluginDirs?: readonly string[];
  /** Decides whether a plugin binary is cnibox. @default {isCniboxBinary} */
  isCnibox?: (path: string) => Promise<boolean>;
}

/** The marker line of the launchers `cnibox install` writes (see commands/install.ts). */
const LAUNCHER_MARKER = "# cnibox-launcher:";

/**
 * Default test for "this plugin binary is cnibox": a launcher script that
 * carries the cnibox marker in its first bytes, or a symlink (chain) ending
 * at a file named `cnibox`, or the executable of this very process.
 */
export async function isCniboxBinary(path: string): Promise<boolean> {
  try {
    const real = await Deno.realPath(path);
    if (real.endsWith("/cnibox")) return true;
    if (!/\/deno$/.test(Deno.execPath()) && real === Deno.execPath()) return true;
    using file = await Deno.open(real, { read: true });
    const head = new Uint8Array(512);
    const n = (await file.read(head)) ?? 0;
    const text = new TextDecoder().decode(head.subarray(0, n));
    return text.startsWith("#!") && text.includes(LAUNCHER_MARKER);
  } catch {
    return false;
  }
}

/** The first `<dir>/<name>` that is a regular file (after symlinks), as libcni finds plugins. */
export async function findPlugin(
  name: string,
  pluginDirs: readonly string[],
): Promise<string | null> {
  if (name === "" || name.includes("/") || name === "." || name === "..") return null;
  for (const dir of pluginDirs) {
    const full = join(dir, name);
    try {
      if ((await Deno.stat(full)).isFile) return full;
    } catch {
      // Missing here; keep looking.
    }
  }
  return null;
}

async function chainOf(
  list: NetworkConfigList,
  options: Required<ScanNetworksOptions>,
  memo: Map<string, Promise<ChainPlugin>>,
): Promise<ChainPlugin[]> {
  const lookup = (type: string, role: ChainPlugin["role"]): Promise<ChainPlugin> => {
    const key = `${role}\0${type}`;
    let found = memo.get(key);
    if (!found) {
      found = (async () => {
        const path = await findPlugin(type, options.pluginDirs);
        return { type, role, path, cnibox: path !== null && await options.isCnibox(path) };
      })();
      memo.set(key, found);
    }
    return found;
  };
  const chain: Promise<ChainPlugin>[] = [];
  for (const plugin of list.plugins) {
    chain.push(lookup(plugin.conf.type, "plugin"));
    const ipam = plugin.conf.ipam as Record<string, unknown> | undefined;
    if (ipam && typeof ipam.type === "string" && ipam.type !== "") {
      chain.push(lookup(ipam.type, "ipam"));
    }
  }
  return await Promise.all(chain);
}

/**
 * Loads every network config in `configDirs` (directories in order, files
 * in libcni's lookup order). Broken files are reported in `errors` and do
 * not stop the scan; a later file with an already-seen name is marked
 * `shadowedBy` the file runtimes would use.
 */
export async function scanNetworks(
  configDirs: readonly string[],
  options: ScanNetworksOptions = {},
): Promise<NetworkScan> {
  const opts = {
    pluginDirs: options.pluginDirs ?? [],
    isCnibox: options.isCnibox ?? isCniboxBinary,
  };
  const memo = new Map<string, Promise<ChainPlugin>>();
  const networks: NetworkInfo[] = [];
  const errors: ConfigError[] = [];
  const firstFile = new Map<string, string>();
  for (const dir of configDirs) {
    let entries;
    try {
      entries = await loadAllConfLists(dir);
    } catch (error) {
      errors.push({ file: dir, error: error instanceof Error ? error.message : String(error) });
      continue;
    }
    for (const entry of entries) {
      if (entry.error) {
        // The loader prefixes its messages with the file, which is reported separately here.
        const text = entry.error.message;
        const error = text.startsWith(`${entry.file}: `) ? text.slice(entry.file.length + 2) : text;
        errors.push({ file: entry.file, error });
        continue;
      }
      const list = entry.list;
      const info: NetworkInfo = {
        name: list.name,
        file: entry.file,
        cniVersion: list.cniVersion,
        disableGC: list.disableGC,
        plugins: await chainOf(list, opts, memo),
        list,
      };
      const first = firstFile.get(list.name);
      if (first === undefined) firstFile.set(list.name, entry.file);
      else info.shadowedBy = first;
      networks.push(info);
    }
  }
  return { networks, errors };
}

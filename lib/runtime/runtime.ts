/**
 * Running a whole network configuration list with libcni's semantics
 * (`libcni/api.go`): ADD in order with `prevResult` chaining and the result
 * cache, CHECK and DEL against the cached result, GC of stale cached
 * attachments, and STATUS.
 *
 * Deliberate differences from libcni (each where libcni falls short):
 * - CHECK without a cached result fails before running any plugin (libcni runs
 *   the plugins without `prevResult`; the spec requires one).
 * - Cache files are written atomically (see `cache.ts`).
 *
 * Like libcni, a failed ADD is not rolled back: plugins that succeeded keep
 * their state and nothing is cached; the caller decides whether to DEL.
 *
 * @module
 */
import { CniError } from "../cni/error.ts";
import type { Attachment, Result } from "../cni/types.ts";
import { quoteGo } from "./_json.ts";
import { cachedResultAs, resultJson } from "./_result.ts";
import { validateContainerId, validateInterfaceName, validateNetworkName } from "./_validate.ts";
import { compareVersions, versionAtLeast } from "../cni/version.ts";
import {
  type CacheEntry,
  defaultCacheDir,
  deleteCacheEntry,
  listCacheEntries,
  readCacheEntry,
  writeCacheEntry,
} from "./cache.ts";
import type { NetworkConfigList, PluginConfig } from "./conflist.ts";
import {
  buildOneConfig,
  type ExecOptions,
  execPlugin,
  execPluginWithResult,
  findInPath,
  injectConf,
  type InvokeArgs,
} from "./invoke.ts";

/** The per-attachment arguments of one call (libcni `RuntimeConf`). */
export interface RuntimeConf {
  /** `CNI_CONTAINERID`. */
  containerId: string;
  /** `CNI_NETNS`: path of the container's network namespace. */
  netns: string;
  /** `CNI_IFNAME`. */
  ifName: string;
  /** `CNI_ARGS` pairs. @default {[]} */
  args?: [string, string][];
  /** Capability arguments; each plugin gets those it declares. @default {{}} */
  capabilityArgs?: Record<string, unknown>;
}

/** Where plugins and the cache are. */
export interface RuntimeOptions extends ExecOptions {
  /** Plugin directories (`CNI_PATH`). */
  path: readonly string[];
  /** Cache directory. @default {`CNI_CACHE_DIR` or "/var/lib/cni"} */
  cacheDir?: string;
}

/** Options for {@linkcode gcNetworkList}. */
export interface GcOptions extends RuntimeOptions {
  /**
   * Attachments that are still in use. Cached attachments of the network not
   * listed here are deleted. `undefined` (cnitool's behaviour) also omits
   * `cni.dev/valid-attachments` from the GC request. @default {undefined}
   */
  validAttachments?: Attachment[];
}

/** `version >= min`, false when `version` does not parse (libcni ignores that error for GC/STATUS). */
function supports(version: string, min: string): boolean {
  try {
    return versionAtLeast(version, min);
  } catch {
    return false;
  }
}

function cacheDirOf(options: RuntimeOptions): string {
  return options.cacheDir ?? defaultCacheDir();
}

function describe(plugin: PluginConfig): string {
  let out = `type=${quoteGo(plugin.conf.type)}`;
  if (plugin.conf.name) out += ` name=${quoteGo(plugin.conf.name)}`;
  return out;
}

/** Prefixes an error's message, keeping its CNI code when it has one (Go's `%w`). */
function wrap(prefix: string, error: unknown): Error {
  if (error instanceof CniError) {
    return new CniError(error.code, `${prefix}: ${error.message}`, error.details, {
      cause: error,
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new Error(`${prefix}: ${message}`, { cause: error });
}

function invokeArgs(command: string, rt: RuntimeConf, options: RuntimeOptions): InvokeArgs {
  return {
    command,
    containerId: rt.containerId,
    netns: rt.netns,
    ifName: rt.ifName,
    args: rt.args ?? [],
    path: options.path,
  };
}

function requirePlugins(list: NetworkConfigList): void {
  if (list.plugins.length === 0) throw new TypeError(`Network "${list.name}" has no plugins`);
}

/**
 * Runs ADD for every plugin of the list in order, each getting the previous
 * result as `prevResult`, then caches and returns the last result.
 *
 * @example Usage
 * ```ts ignore
 * const list = await loadConfList("/etc/cni/net.d", "mynet");
 * const result = await addNetworkList(list, {
 *   containerId: "c1", netns: "/var/run/netns/c1", ifName: "eth0",
 * }, { path: ["/opt/cni/bin"] });
 * ```
 */
export async function addNetworkList(
  list: NetworkConfigList,
  rt: RuntimeConf,
  options: RuntimeOptions,
): Promise<Result> {
  requirePlugins(list);
  let result: Result | undefined;
  for (const plugin of list.plugins) {
    try {
      const pluginPath = await findInPath(plugin.conf.type, options.path);
      validateContainerId(rt.containerId);
      validateNetworkName(list.name);
      validateInterfaceName(rt.ifName);
      const stdin = buildOneConfig(plugin, {
        name: list.name,
        cniVersion: list.cniVersion,
        prevResult: result,
        capabilityArgs: rt.capabilityArgs,
      });
      result = await execPluginWithResult(pluginPath, {
        stdin,
        args: invokeArgs("ADD", rt, options),
      }, options);
    } catch (error) {
      throw wrap(`plugin ${describe(plugin)} failed (add)`, error);
    }
  }
  const entry: CacheEntry = {
    containerId: rt.containerId,
    config: list.bytes,
    ifName: rt.ifName,
    networkName: list.name,
    netns: rt.netns,
    cniArgs: rt.args,
    capabilityArgs: rt.capabilityArgs,
    result: resultJson(result!),
  };
  try {
    await writeCacheEntry(cacheDirOf(options), entry);
  } catch (error) {
    throw wrap(`failed to set network ${quoteGo(list.name)} cached result`, error);
  }
  return result!;
}

/**
 * Returns the cached result of an attachment converted to the list's
 * version, or `undefined` when nothing is cached (libcni
 * `GetNetworkListCachedResult`). Throws for malformed or unconvertible entries.
 */
export async function getCachedResult(
  list: NetworkConfigList,
  rt: RuntimeConf,
  options: RuntimeOptions,
): Promise<Result | undefined> {
  const entry = await readCacheEntry(cacheDirOf(options), {
    networkName: list.name,
    containerId: rt.containerId,
    ifName: rt.ifName,
  });
  if (entry === undefined) return undefined;
  if (entry.result === undefined) {
    throw new TypeError(`Cached entry of network ${quoteGo(list.name)} has no result`);
  }
  return cachedResultAs(entry.result, list.cniVersion);
}

async function runWithoutResult(
  command: string,
  list: NetworkConfigList,
  plugin: PluginConfig,
  prevResult: Result | undefined,
  rt: RuntimeConf,
  options: RuntimeOptions,
): Promise<void> {
  const pluginPath = await findInPath(plugin.conf.type, options.path);
  const stdin = buildOneConfig(plugin, {
    name: list.name,
    cniVersion: list.cniVersion,
    prevResult,
    capabilityArgs: rt.capabilityArgs,
  });
  await execPlugin(pluginPath, { stdin, args: invokeArgs(command, rt, options) }, options);
}

/**
 * Runs CHECK for every plugin in order with the cached result as
 * `prevResult`. Needs a list version >= 0.4.0 and a cached result; does
 * nothing when the list sets `disableCheck`.
 */
export async function checkNetworkList(
  list: NetworkConfigList,
  rt: RuntimeConf,
  options: RuntimeOptions,
): Promise<void> {
  if (compareVersions(list.cniVersion, "0.4.0") < 0) {
    throw new Error(
      `configuration version ${quoteGo(list.cniVersion)} does not support the CHECK command`,
    );
  }
  if (list.disableCheck) return;
  let cached: Result | undefined;
  try {
    cached = await getCachedResult(list, rt, options);
  } catch (error) {
    throw wrap(`failed to get network ${quoteGo(list.name)} cached result`, error);
  }
  if (cached === undefined) {
    throw new Error(
      `failed to get network ${quoteGo(list.name)} cached result: no cached result for container ${
        quoteGo(rt.containerId)
      } interface ${quoteGo(rt.ifName)}`,
    );
  }
  for (const plugin of list.plugins) {
    await runWithoutResult("CHECK", list, plugin, cached, rt, options);
  }
}

/**
 * Runs DEL for every plugin in reverse order, stopping at the first error.
 * For lists >= 0.4.0 the cached result is passed as `prevResult` (an
 * unreadable cache entry is dropped and DEL goes on without one). The cache
 * entry is removed after all plugins succeeded.
 */
export async function delNetworkList(
  list: NetworkConfigList,
  rt: RuntimeConf,
  options: RuntimeOptions,
): Promise<void> {
  const cacheDir = cacheDirOf(options);
  const key = { networkName: list.name, containerId: rt.containerId, ifName: rt.ifName };
  let cached: Result | undefined;
  if (compareVersions(list.cniVersion, "0.4.0") >= 0) {
    try {
      cached = await getCachedResult(list, rt, options);
    } catch {
      await deleteCacheEntry(cacheDir, key).catch(() => {});
      cached = undefined;
    }
  }
  for (let i = list.plugins.length - 1; i >= 0; i--) {
    const plugin = list.plugins[i];
    try {
      await runWithoutResult("DEL", list, plugin, cached, rt, options);
    } catch (error) {
      throw wrap(`plugin ${describe(plugin)} failed (delete)`, error);
    }
  }
  await deleteCacheEntry(cacheDir, key).catch(() => {});
}

/**
 * Garbage-collects a network (libcni `GCNetworkList`): DEL for every cached
 * attachment of the network that is not in `validAttachments`, then, for
 * lists >= 1.1.0, GC to each plugin. Errors are collected and thrown together
 * as an `AggregateError`. Returns the attachments that were deleted. Does
 * nothing when the list sets `disableGC`.
 */
export async function gcNetworkList(
  list: NetworkConfigList,
  options: GcOptions,
): Promise<Attachment[]> {
  if (list.disableGC) return [];
  let cached: CacheEntry[];
  try {
    cached = await listCacheEntries(cacheDirOf(options));
  } catch {
    // libcni gives up silently when it cannot list the cache.
    return [];
  }
  const valid = new Set(
    (options.validAttachments ?? []).map((a) => `${a.containerID}\0${a.ifname}`),
  );
  const errors: Error[] = [];
  const deleted: Attachment[] = [];
  for (const entry of cached) {
    if (entry.networkName !== list.name) continue;
    if (valid.has(`${entry.containerId}\0${entry.ifName}`)) continue;
    const rt: RuntimeConf = {
      containerId: entry.containerId,
      netns: entry.netns ?? "",
      ifName: entry.ifName,
      args: entry.cniArgs,
      capabilityArgs: entry.capabilityArgs,
    };
    try {
      await delNetworkList(list, rt, options);
      deleted.push({ containerID: entry.containerId, ifname: entry.ifName });
    } catch (error) {
      errors.push(
        wrap(`failed to delete stale attachment ${entry.containerId} ${entry.ifName}`, error),
      );
    }
  }
  if (supports(list.cniVersion, "1.1.0")) {
    const inject: Record<string, unknown> = { name: list.name, cniVersion: list.cniVersion };
    if (options.validAttachments !== undefined) {
      inject["cni.dev/valid-attachments"] = options.validAttachments;
      // The spec once named the key this way (containernetworking/cni#1101).
      inject["cni.dev/attachments"] = options.validAttachments;
    }
    for (const plugin of list.plugins) {
      let config: PluginConfig;
      try {
        config = injectConf(plugin, inject);
      } catch (error) {
        errors.push(
          wrap(`failed to generate configuration to GC plugin ${plugin.conf.type}`, error),
        );
        continue;
      }
      try {
        const pluginPath = await findInPath(plugin.conf.type, options.path);
        await execPlugin(pluginPath, {
          stdin: config.bytes,
          args: { command: "GC", path: options.path },
        }, options);
      } catch (error) {
        errors.push(wrap(`failed to GC plugin ${plugin.conf.type}`, error));
      }
    }
  }
  if (errors.length > 0) {
    throw new AggregateError(errors, errors.map((e) => e.message).join("\n"));
  }
  return deleted;
}

/**
 * Sends STATUS to every plugin in order (libcni `GetStatusNetworkList`) and
 * throws the first failure unchanged, so its code (50, 51, ...) survives.
 * Lists older than 1.1.0 have no STATUS and always pass.
 */
export async function statusNetworkList(
  list: NetworkConfigList,
  options: RuntimeOptions,
): Promise<void> {
  if (!supports(list.cniVersion, "1.1.0")) return;
  for (const plugin of list.plugins) {
    let config: PluginConfig;
    try {
      config = injectConf(plugin, { name: list.name, cniVersion: list.cniVersion });
    } catch (error) {
      throw wrap(
        `failed to generate configuration to get plugin STATUS ${plugin.conf.type}`,
        error,
      );
    }
    const pluginPath = await findInPath(plugin.conf.type, options.path);
    await execPlugin(pluginPath, {
      stdin: config.bytes,
      args: { command: "STATUS", path: options.path },
    }, options);
  }
}

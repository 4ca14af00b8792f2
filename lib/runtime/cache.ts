/**
 * libcni's result cache: one file per attachment at
 * `<cacheDir>/results/<network>-<containerID>-<ifName>` (directory 0700,
 * file 0600) holding the `cniCacheV1` JSON object. Runtimes read it for CHECK
 * and DEL, garbage collection enumerates it, and other libcni-based tools
 * (cnitool, containerd, Nomad) share the same files.
 *
 * Unlike libcni, writes go to a temporary file that is renamed into place, so
 * a concurrent reader never sees half a file.
 *
 * @module
 */
import { join } from "@std/path";
import { goTypeName, isObject, marshalGo } from "./_json.ts";

/** libcni's default cache directory. */
export const DEFAULT_CACHE_DIR = "/var/lib/cni";

/** The `kind` of the only cache format libcni writes. */
export const CACHE_KIND = "cniCacheV1";

/** Which attachment a cache file belongs to. */
export interface AttachmentKey {
  /** The network (list) name. */
  networkName: string;
  /** The container ID (`CNI_CONTAINERID`). */
  containerId: string;
  /** The interface name (`CNI_IFNAME`). */
  ifName: string;
}

/** One cached attachment (libcni `cachedInfo`). */
export interface CacheEntry extends AttachmentKey {
  /** The bytes of the network config list the attachment was made with. */
  config: Uint8Array;
  /** The netns path of the ADD. */
  netns?: string;
  /** The `CNI_ARGS` pairs of the ADD. */
  cniArgs?: [string, string][];
  /** All capability arguments the runtime supplied to the ADD. */
  capabilityArgs?: Record<string, unknown>;
  /** The final ADD result as Go marshals it (its own version and shape). */
  result?: Record<string, unknown>;
}

/** The cache directory: `CNI_CACHE_DIR` from `env` when set, else `/var/lib/cni`. */
export function defaultCacheDir(
  env: Record<string, string | undefined> = Deno.env.toObject(),
): string {
  return env.CNI_CACHE_DIR || DEFAULT_CACHE_DIR;
}

/**
 * Path of an attachment's cache file. Throws `RangeError` when a part is
 * empty (libcni's message) or could escape the results directory.
 */
export function cacheFilePath(cacheDir: string, key: AttachmentKey): string {
  const { networkName, containerId, ifName } = key;
  if (networkName === "" || containerId === "" || ifName === "") {
    throw new RangeError(
      `cache file path requires network name (${JSON.stringify(networkName)}), container ID (${
        JSON.stringify(containerId)
      }), and interface name (${JSON.stringify(ifName)})`,
    );
  }
  const name = `${networkName}-${containerId}-${ifName}`;
  if (name.includes("/") || name.includes("\0")) {
    throw new RangeError(`Cannot build cache file name from "${name}": contains "/" or NUL`);
  }
  return join(cacheDir, "results", name);
}

/**
 * Serializes an entry exactly as libcni does: compact JSON in `cachedInfo`
 * field order, `config` in base64, empty optional fields omitted, nested maps
 * with sorted keys.
 */
export function encodeCacheEntry(entry: CacheEntry): string {
  const parts = [
    `"kind":${marshalGo(CACHE_KIND)}`,
    `"containerId":${marshalGo(entry.containerId)}`,
    `"config":${marshalGo(entry.config.toBase64())}`,
    `"ifName":${marshalGo(entry.ifName)}`,
    `"networkName":${marshalGo(entry.networkName)}`,
  ];
  if (entry.netns) parts.push(`"netns":${marshalGo(entry.netns)}`);
  if (entry.cniArgs && entry.cniArgs.length > 0) {
    parts.push(`"cniArgs":${marshalGo(entry.cniArgs)}`);
  }
  if (entry.capabilityArgs && Object.keys(entry.capabilityArgs).length > 0) {
    parts.push(`"capabilityArgs":${marshalGo(entry.capabilityArgs)}`);
  }
  if (entry.result && Object.keys(entry.result).length > 0) {
    parts.push(`"result":${marshalGo(entry.result)}`);
  }
  return `{${parts.join(",")}}`;
}

/**
 * Parses a cache file. Throws `SyntaxError` for bad JSON and `TypeError` for
 * a wrong `kind` or wrongly typed fields.
 */
export function decodeCacheEntry(text: string): CacheEntry {
  const raw: unknown = JSON.parse(text);
  if (!isObject(raw)) throw new TypeError(`Cache entry must be an object, got ${goTypeName(raw)}`);
  if (raw.kind !== CACHE_KIND) {
    throw new TypeError(`Cache entry has wrong kind: ${JSON.stringify(raw.kind ?? "")}`);
  }
  const str = (key: string): string => {
    const value = raw[key] ?? "";
    if (typeof value !== "string") {
      throw new TypeError(`Cache entry field "${key}" must be a string, got ${goTypeName(value)}`);
    }
    return value;
  };
  let config: Uint8Array;
  try {
    config = Uint8Array.fromBase64(str("config"));
  } catch (error) {
    throw new TypeError(`Cache entry field "config" is not base64: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const entry: CacheEntry = {
    containerId: str("containerId"),
    config,
    ifName: str("ifName"),
    networkName: str("networkName"),
  };
  if (str("netns") !== "") entry.netns = str("netns");
  if (raw.cniArgs !== undefined && raw.cniArgs !== null) {
    const args = raw.cniArgs;
    if (
      !Array.isArray(args) ||
      !args.every((p) =>
        Array.isArray(p) && p.length === 2 && p.every((s) => typeof s === "string")
      )
    ) {
      throw new TypeError('Cache entry field "cniArgs" must be a list of [key, value] strings');
    }
    entry.cniArgs = args as [string, string][];
  }
  for (const key of ["capabilityArgs", "result"] as const) {
    const value = raw[key];
    if (value === undefined || value === null) continue;
    if (!isObject(value)) {
      throw new TypeError(`Cache entry field "${key}" must be an object, got ${goTypeName(value)}`);
    }
    entry[key] = value;
  }
  return entry;
}

/** Writes (or replaces) an attachment's cache file, creating the directory with mode 0700. */
export async function writeCacheEntry(cacheDir: string, entry: CacheEntry): Promise<void> {
  const path = cacheFilePath(cacheDir, entry);
  const dir = join(cacheDir, "results");
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  // A dot name keeps our own listing from ever picking up a leftover temp file.
  const tmp = join(
    dir,
    `.${entry.networkName}-${entry.containerId}-${entry.ifName}.${Deno.pid}.tmp`,
  );
  try {
    await Deno.writeTextFile(tmp, encodeCacheEntry(entry), { mode: 0o600 });
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
}

/**
 * Reads an attachment's cache entry; `undefined` when there is no file (or it
 * cannot be read, as libcni treats that). Throws on malformed content.
 */
export async function readCacheEntry(
  cacheDir: string,
  key: AttachmentKey,
): Promise<CacheEntry | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(cacheFilePath(cacheDir, key));
  } catch (error) {
    if (error instanceof RangeError) throw error;
    return undefined;
  }
  return decodeCacheEntry(text);
}

/** Removes an attachment's cache file; false when there was none. */
export async function deleteCacheEntry(cacheDir: string, key: AttachmentKey): Promise<boolean> {
  await removeOrphanTempFiles(cacheFilePath(cacheDir, key));
  try {
    await Deno.remove(cacheFilePath(cacheDir, key));
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Removes `.<name>.<pid>.tmp` files of this entry whose writer is gone: a
 * runtime killed between writing its temp file and renaming it leaves one.
 */
async function removeOrphanTempFiles(path: string): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = path.slice(0, slash);
  const prefix = `.${path.slice(slash + 1)}.`;
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.name.startsWith(prefix) || !entry.name.endsWith(".tmp")) continue;
      const pid = Number(entry.name.slice(prefix.length, -".tmp".length));
      if (!Number.isInteger(pid) || processAlive(pid)) continue;
      await Deno.remove(`${dir}/${entry.name}`).catch(() => {});
    }
  } catch {
    // No results dir: nothing to sweep.
  }
}

function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Larger files are not cache entries (an entry holds one config and one result). */
const MAX_CACHE_FILE_BYTES = 4 * 1024 * 1024;

/** Options for {@linkcode listCacheEntries}. */
export interface ListCacheOptions {
  /** Only entries of this container. @default {undefined} (all) */
  containerId?: string;
  /** Only entries of this network. @default {undefined} (all) */
  networkName?: string;
}

/**
 * Enumerates all cached attachments (libcni `GetCachedAttachments`), sorted by
 * file name. Unreadable, malformed, incomplete and oversized files are
 * skipped, and so is anything but a regular file; a missing directory yields
 * `[]`.
 *
 * @example Usage
 * ```ts ignore
 * for (const a of await listCacheEntries("/var/lib/cni")) console.log(a.networkName, a.containerId);
 * ```
 */
export function listCacheEntries(
  cacheDir: string,
  options: ListCacheOptions = {},
): CacheEntry[] {
  const dir = join(cacheDir, "results");
  const names: string[] = [];
  try {
    // Sync calls: many small local files, read much faster than as async ops.
    // Regular files only: a FIFO would block the reading thread, and libcni never writes a
    // link (the status endpoint reads this directory while serving).
    for (const e of Deno.readDirSync(dir)) {
      if (e.isFile && !e.name.startsWith(".")) names.push(e.name);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  names.sort();
  const { containerId, networkName } = options;
  const entries: CacheEntry[] = [];
  for (const name of names) {
    if (containerId) {
      const part = `-${containerId}-`;
      const pos = name.indexOf(part);
      if (pos <= 0 || pos + part.length >= name.length) continue;
    }
    let entry: CacheEntry;
    try {
      const path = join(dir, name);
      if (Deno.lstatSync(path).size > MAX_CACHE_FILE_BYTES) continue;
      entry = decodeCacheEntry(Deno.readTextFileSync(path));
    } catch {
      continue;
    }
    if (containerId && entry.containerId !== containerId) continue;
    if (networkName !== undefined && entry.networkName !== networkName) continue;
    if (entry.ifName === "" || entry.networkName === "") continue;
    entries.push(entry);
  }
  return entries;
}

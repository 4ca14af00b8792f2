/**
 * Network configuration lists as libcni loads them (`libcni/conf.go`): parse a
 * conflist, wrap a single-plugin `.conf`/`.json` into a list, pick the spec
 * version, and find a network by name in a config directory.
 *
 * Lookup order is libcni's: all `*.conflist` files sorted by name first, then
 * all `*.conf`/`*.json` files sorted by name; the first file whose `name`
 * matches wins. A file that cannot be parsed stops the search (as in libcni);
 * unlike libcni, every such error names the file.
 *
 * @module
 */
import { goJsonDecode } from "../cni/_go.ts";
import { join } from "@std/path";
import { compareVersions, CURRENT_VERSION } from "../cni/version.ts";
import { goTypeName, isObject, marshalGo } from "./_json.ts";

/** Default directory for network configs (cnitool's `NETCONFPATH` default). */
export const DEFAULT_NETCONF_DIR = "/etc/cni/net.d";

/** One plugin object of a list, with the keys libcni itself reads. */
export interface PluginConf {
  /** The plugin binary's name, looked up in `CNI_PATH`. */
  type: string;
  /** Overwritten by the list's name when the plugin is run. */
  name?: string;
  /** Overwritten by the list's version when the plugin is run. */
  cniVersion?: string;
  /** Capabilities the plugin wants `runtimeConfig` for. */
  capabilities?: Record<string, boolean>;
  /** Plugin-specific keys, passed through unchanged. */
  [key: string]: unknown;
}

/** A plugin's config: decoded, plus the bytes libcni derives stdin from. */
export interface PluginConfig {
  /** The decoded object. */
  conf: PluginConf;
  /** Its JSON bytes. */
  bytes: Uint8Array;
}

/** A network configuration list (libcni `NetworkConfigList`). */
export interface NetworkConfigList {
  /** The network name. */
  name: string;
  /** The selected spec version (see {@linkcode parseConfList}). */
  cniVersion: string;
  /** CHECK is a no-op for this network. */
  disableCheck: boolean;
  /** GC is a no-op for this network. */
  disableGC: boolean;
  /** Ignore plugin configs in `<dir>/<name>/*.conf`. */
  loadOnlyInlinedPlugins: boolean;
  /** The plugins, in ADD order. */
  plugins: PluginConfig[];
  /** The list's raw bytes; the result cache stores them (base64). */
  bytes: Uint8Array;
  /** The file the list was loaded from, when it came from a file. */
  file?: string;
}

/** Thrown when no config in a directory carries the requested network name. */
export class NetworkNotFoundError extends Error {
  /** The error's name. */
  override name = "NetworkNotFoundError";
  /** The directory searched. */
  readonly dir: string;
  /** The network name looked for. */
  readonly network: string;
  /** True when the directory held no config files at all. */
  readonly empty: boolean;

  /** Builds libcni's message for `network` missing from `dir`. */
  constructor(dir: string, network: string, options: { empty?: boolean } = {}) {
    super(
      options.empty
        ? `no net configurations found in ${dir}`
        : `no net configuration with name "${network}" in ${dir}`,
    );
    this.dir = dir;
    this.network = network;
    this.empty = options.empty ?? false;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function toBytes(bytes: Uint8Array | string): Uint8Array {
  return typeof bytes === "string" ? encoder.encode(bytes) : bytes;
}

/**
 * Parses one plugin config (libcni `NetworkPluginConfFromBytes`). Checks the
 * types of the keys libcni decodes and requires `type`.
 *
 * @example Usage
 * ```ts
 * const plugin = parsePluginConf('{"type":"bridge","capabilities":{"mac":true}}');
 * plugin.conf.type; // "bridge"
 * ```
 */
export function parsePluginConf(bytes: Uint8Array | string): PluginConfig {
  let raw: unknown;
  try {
    raw = goJsonDecode(toBytes(bytes));
  } catch (error) {
    throw new SyntaxError(`error parsing configuration: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (!isObject(raw)) {
    throw new TypeError(
      `error parsing configuration: expected a JSON object, got ${goTypeName(raw)}`,
    );
  }
  for (const key of ["cniVersion", "name", "type"]) {
    if (raw[key] !== undefined && raw[key] !== null && typeof raw[key] !== "string") {
      throw new TypeError(
        `error parsing configuration: "${key}" must be a string, got ${goTypeName(raw[key])}`,
      );
    }
  }
  const caps = raw.capabilities;
  if (caps !== undefined && caps !== null) {
    if (!isObject(caps)) {
      throw new TypeError(
        `error parsing configuration: "capabilities" must be an object, got ${goTypeName(caps)}`,
      );
    }
    for (const [cap, enabled] of Object.entries(caps)) {
      if (typeof enabled !== "boolean") {
        throw new TypeError(
          `error parsing configuration: "capabilities.${cap}" must be a boolean, got ${
            goTypeName(enabled)
          }`,
        );
      }
    }
  }
  for (const key of ["ipam", "dns"]) {
    if (raw[key] !== undefined && raw[key] !== null && !isObject(raw[key])) {
      throw new TypeError(
        `error parsing configuration: "${key}" must be an object, got ${goTypeName(raw[key])}`,
      );
    }
  }
  if (typeof raw.type !== "string" || raw.type === "") {
    throw new TypeError("error parsing configuration: missing 'type'");
  }
  return { conf: raw as PluginConf, bytes: toBytes(bytes) };
}

/**
 * Parses a conflist (libcni `NetworkConfFromBytes`). The spec version is
 * chosen as libcni does: when `cniVersions` is present, the candidates are its
 * entries plus `cniVersion`, versions newer than 1.1.0 are dropped and the
 * highest remaining one wins; otherwise `cniVersion` is taken as is.
 *
 * A list without `plugins` parses to zero plugins (the file loader may add
 * plugins from `<dir>/<name>/*.conf`), unless `loadOnlyInlinedPlugins` is set.
 *
 * @example Usage
 * ```ts
 * const list = parseConfList(
 *   '{"name":"n","cniVersion":"1.0.0","cniVersions":["0.4.0","1.1.0","9.0.0"],"plugins":[{"type":"loopback"}]}',
 * );
 * list.cniVersion; // "1.1.0"
 * ```
 */
export function parseConfList(bytes: Uint8Array | string): NetworkConfigList {
  const prefix = "error parsing configuration list";
  let raw: unknown;
  try {
    raw = goJsonDecode(toBytes(bytes));
  } catch (error) {
    throw new SyntaxError(`${prefix}: ${(error as Error).message}`, { cause: error });
  }
  if (!isObject(raw)) {
    throw new TypeError(`${prefix}: expected a JSON object, got ${goTypeName(raw)}`);
  }
  if (!("name" in raw)) throw new TypeError(`${prefix}: no name`);
  if (typeof raw.name !== "string") {
    throw new TypeError(`${prefix}: invalid name type ${goTypeName(raw.name)}`);
  }
  let cniVersion = "";
  if ("cniVersion" in raw) {
    if (typeof raw.cniVersion !== "string") {
      throw new TypeError(`${prefix}: invalid cniVersion type ${goTypeName(raw.cniVersion)}`);
    }
    cniVersion = raw.cniVersion;
  }
  if ("cniVersions" in raw) cniVersion = selectVersion(raw.cniVersions, cniVersion);

  const readBool = (key: string): boolean => {
    const value = raw[key];
    if (value === undefined) return false;
    if (typeof value === "boolean") return value;
    if (typeof value !== "string") {
      throw new TypeError(`${prefix}: invalid type ${goTypeName(value)} for ${key}`);
    }
    const lower = value.toLowerCase();
    if (lower === "true") return true;
    if (lower === "false") return false;
    throw new TypeError(`${prefix}: invalid value "${lower}" for ${key}`);
  };
  const list: NetworkConfigList = {
    name: raw.name,
    cniVersion,
    disableCheck: readBool("disableCheck"),
    disableGC: readBool("disableGC"),
    loadOnlyInlinedPlugins: readBool("loadOnlyInlinedPlugins"),
    plugins: [],
    bytes: toBytes(bytes),
  };

  if (!("plugins" in raw)) {
    if (list.loadOnlyInlinedPlugins) {
      throw new TypeError(`${prefix}: \`loadOnlyInlinedPlugins\` is true, and no 'plugins' key`);
    }
    return list;
  }
  if (!Array.isArray(raw.plugins)) {
    throw new TypeError(`${prefix}: invalid 'plugins' type ${goTypeName(raw.plugins)}`);
  }
  if (raw.plugins.length === 0) throw new TypeError(`${prefix}: no plugins in list`);
  raw.plugins.forEach((plugin, i) => {
    try {
      // libcni re-marshals each element, so its bytes are sorted compact JSON.
      list.plugins.push(parsePluginConf(marshalGo(plugin)));
    } catch (error) {
      throw rewrap(error, `failed to parse plugin config ${i}: `);
    }
  });
  return list;
}

function selectVersion(rawVersions: unknown, cniVersion: string): string {
  const prefix = "error parsing configuration list";
  if (!Array.isArray(rawVersions)) {
    throw new TypeError(`${prefix}: invalid type for cniVersions: ${goTypeName(rawVersions)}`);
  }
  const candidates: string[] = [];
  rawVersions.forEach((v, i) => {
    if (typeof v !== "string") {
      throw new TypeError(`${prefix}: invalid type for cniVersions index ${i}: ${goTypeName(v)}`);
    }
    let newer: boolean;
    try {
      newer = compareVersions(v, CURRENT_VERSION) > 0;
    } catch (error) {
      throw new RangeError(
        `${prefix}: invalid cniVersions entry ${v} at index ${i}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (!newer) candidates.push(v);
  });
  if (cniVersion !== "") {
    let newer: boolean;
    try {
      newer = compareVersions(cniVersion, CURRENT_VERSION) > 0;
    } catch (error) {
      throw new RangeError(
        `${prefix}: invalid cniVersion ${cniVersion}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (!newer) candidates.push(cniVersion);
  }
  candidates.sort(compareVersions);
  return candidates.length > 0 ? candidates[candidates.length - 1] : cniVersion;
}

/**
 * Wraps a single plugin config into a one-element list (libcni
 * `ConfListFromConf`): `{"cniVersion","name","plugins":[conf]}` re-marshalled.
 */
export function confListFromConf(plugin: PluginConfig): NetworkConfigList {
  const raw = JSON.parse(decoder.decode(plugin.bytes));
  const wrapped = marshalGo({
    name: plugin.conf.name ?? "",
    cniVersion: plugin.conf.cniVersion ?? "",
    plugins: [raw],
  });
  return parseConfList(wrapped);
}

/** Go's `filepath.Ext`: the suffix from the last dot of the last element ("" if none). */
function goExt(name: string): string {
  const dot = name.lastIndexOf(".");
  return dot === -1 ? "" : name.slice(dot);
}

/**
 * Lists the files in `dir` whose extension is one of `extensions`, sorted by
 * path (libcni `ConfFiles` + `sort.Strings`). A missing directory yields `[]`;
 * subdirectories are skipped.
 */
export async function confFiles(dir: string, extensions: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory) continue;
      if (extensions.includes(goExt(entry.name))) files.push(join(dir, entry.name));
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  return files.sort();
}

/** A plugin's stdin is capped at this size too (lib/cni/skel.ts). */
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

async function readConfigFile(file: string): Promise<Uint8Array> {
  try {
    // Links are followed, as libcni does; a FIFO or device would block the reader (the status
    // endpoint reads these files while serving), a huge file is no network config.
    const info = await Deno.stat(file);
    if (!info.isFile) throw new Error("not a regular file");
    if (info.size > MAX_CONFIG_BYTES) throw new Error(`larger than ${MAX_CONFIG_BYTES} bytes`);
    return await Deno.readFile(file);
  } catch (error) {
    throw new Error(`error reading ${file}: ${(error as Error).message}`, { cause: error });
  }
}

function rewrap(error: unknown, prefix: string): Error {
  const message = `${prefix}${error instanceof Error ? error.message : String(error)}`;
  if (error instanceof SyntaxError) return new SyntaxError(message, { cause: error });
  if (error instanceof RangeError) return new RangeError(message, { cause: error });
  if (error instanceof TypeError) return new TypeError(message, { cause: error });
  return new Error(message, { cause: error });
}

/**
 * Loads one `.conflist` file (libcni `NetworkConfFromFile`): parses it and,
 * unless `loadOnlyInlinedPlugins` is set, appends plugin configs found in
 * `<dir of file>/<network name>/*.conf`. Errors are prefixed with the file.
 */
export async function loadConfListFile(file: string): Promise<NetworkConfigList> {
  const bytes = await readConfigFile(file);
  let list: NetworkConfigList;
  try {
    list = parseConfList(bytes);
  } catch (error) {
    throw rewrap(error, `${file}: `);
  }
  list.file = file;
  if (!list.loadOnlyInlinedPlugins) {
    const pluginDir = join(file, "..", list.name);
    for (const pluginFile of await confFiles(pluginDir, [".conf"])) {
      try {
        list.plugins.push(parsePluginConf(await readConfigFile(pluginFile)));
      } catch (error) {
        throw rewrap(error, `${pluginFile}: `);
      }
    }
  }
  if (list.plugins.length === 0) throw new TypeError(`${file}: no plugin configs found`);
  return list;
}

/** Loads a single-plugin `.conf`/`.json` file and wraps it into a list. */
export async function loadConfFile(file: string): Promise<NetworkConfigList> {
  const bytes = await readConfigFile(file);
  let list: NetworkConfigList;
  try {
    list = confListFromConf(parsePluginConf(bytes));
  } catch (error) {
    throw rewrap(error, `${file}: `);
  }
  list.file = file;
  return list;
}

/**
 * Finds network `name` in `dir` (libcni `LoadNetworkConf`/`LoadConfList`).
 * Throws {@linkcode NetworkNotFoundError} when no file has that name.
 *
 * @example Usage
 * ```ts ignore
 * const list = await loadConfList("/etc/cni/net.d", "mynet");
 * ```
 */
export async function loadConfList(dir: string, name: string): Promise<NetworkConfigList> {
  const lists = await confFiles(dir, [".conflist"]);
  for (const file of lists) {
    const list = await loadConfListFile(file);
    if (list.name === name) return list;
  }
  const singles = await confFiles(dir, [".conf", ".json"]);
  if (singles.length === 0 && lists.length === 0) {
    throw new NetworkNotFoundError(dir, name, { empty: true });
  }
  for (const file of singles) {
    const list = await loadConfFile(file);
    if (list.name === name) return list;
  }
  throw new NetworkNotFoundError(dir, name);
}

/** One config file of a directory: its list, or why it could not be loaded. */
export type ConfEntry =
  | { file: string; list: NetworkConfigList; error?: undefined }
  | { file: string; list?: undefined; error: Error };

/**
 * Loads every config in `dir`, in lookup order (conflists, then single
 * configs), without stopping at broken files. For listings such as a status
 * page; a network name may appear more than once (the first one is used).
 */
export async function loadAllConfLists(dir: string): Promise<ConfEntry[]> {
  const entries: ConfEntry[] = [];
  for (const file of await confFiles(dir, [".conflist"])) {
    try {
      entries.push({ file, list: await loadConfListFile(file) });
    } catch (error) {
      entries.push({ file, error: error instanceof Error ? error : new Error(String(error)) });
    }
  }
  for (const file of await confFiles(dir, [".conf", ".json"])) {
    try {
      entries.push({ file, list: await loadConfFile(file) });
    } catch (error) {
      entries.push({ file, error: error instanceof Error ? error : new Error(String(error)) });
    }
  }
  return entries;
}

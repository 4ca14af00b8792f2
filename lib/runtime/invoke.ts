/**
 * Running one plugin binary the way libcni does (`pkg/invoke`): find it in
 * `CNI_PATH`, build its stdin from the list entry, pass the CNI_* variables on
 * top of the caller's environment, and turn a failure into the plugin's error
 * object (or libcni's `netplugin failed ...` text when it printed none).
 * Finding, spawning and error decoding are `lib/cni/exec.ts`, which plugin
 * delegation uses too, as both sides use Go's `pkg/invoke`.
 *
 * @module
 */
import { CniError } from "../cni/error.ts";
import { execPluginFile, findPlugin } from "../cni/exec.ts";
import type { Result } from "../cni/types.ts";
import { goTypeName, isObject, marshalGo } from "./_json.ts";
import { CURRENT_VERSION } from "../cni/version.ts";
import { decodeResult, resultJson } from "./_result.ts";
import { parsePluginConf, type PluginConfig } from "./conflist.ts";

/** The CNI_* environment of one invocation (libcni `invoke.Args`). */
export interface InvokeArgs {
  /** `CNI_COMMAND`: ADD, DEL, CHECK, GC, STATUS or VERSION. */
  command: string;
  /** `CNI_CONTAINERID`. @default {""} */
  containerId?: string;
  /** `CNI_NETNS`. @default {""} */
  netns?: string;
  /** `CNI_IFNAME`. @default {""} */
  ifName?: string;
  /** `CNI_ARGS`, as pairs (joined `K=V;K2=V2`) or as the finished string. @default {""} */
  args?: readonly (readonly [string, string])[] | string;
  /** Plugin directories, joined with `:` into `CNI_PATH`. */
  path: readonly string[];
}

/** One plugin call: stdin plus the CNI_* variables. */
export interface PluginRequest {
  /** The plugin's config. */
  stdin: Uint8Array | string;
  /** The CNI_* variables. */
  args: InvokeArgs;
}

/** How to run plugins. */
export interface ExecOptions {
  /** Environment the plugin inherits; CNI_* values are set on top. @default {Deno.env.toObject()} */
  env?: Record<string, string>;
  /** Receives what a successful plugin wrote to stderr. @default writes to the process's stderr */
  stderr?: (chunk: Uint8Array) => void;
  /** Aborts a running plugin (it is killed). */
  signal?: AbortSignal;
}

/** A plugin's answer to VERSION. */
export interface PluginInfo {
  /** The version the plugin's library implements. */
  cniVersion: string;
  /** Every version the plugin accepts. */
  supportedVersions: string[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The environment a plugin is started with: `base` plus the CNI_* variables. */
export function pluginEnv(args: InvokeArgs, base: Record<string, string>): Record<string, string> {
  const pairs = args.args ?? "";
  const cniArgs = typeof pairs === "string" ? pairs : pairs.map(([k, v]) => `${k}=${v}`).join(";");
  // libcni means the CNI_* values to win over inherited ones (cni#410, #662).
  return {
    ...base,
    CNI_COMMAND: args.command,
    CNI_CONTAINERID: args.containerId ?? "",
    CNI_NETNS: args.netns ?? "",
    CNI_ARGS: cniArgs,
    CNI_IFNAME: args.ifName ?? "",
    CNI_PATH: args.path.join(":"),
  };
}

/**
 * Finds plugin `name` in `paths` (libcni `FindInPath`): the first
 * `<dir>/<name>` that is a regular file after following symlinks.
 *
 * @example Usage
 * ```ts ignore
 * await findInPath("bridge", ["/opt/cni/bin", "/usr/lib/cni"]); // "/usr/lib/cni/bridge"
 * ```
 */
export function findInPath(name: string, paths: readonly string[]): Promise<string> {
  return Promise.resolve().then(() => findPlugin(name, paths));
}

/**
 * Runs a plugin and returns its stdout (libcni `RawExec.ExecPlugin`). On a
 * non-zero exit throws a `CniError` carrying the plugin's code, msg and
 * details. Spawning is retried on "text file busy" (up to 5 times, 1 s apart).
 *
 * @example Usage
 * ```ts ignore
 * const out = await execPlugin("/usr/lib/cni/loopback", {
 *   stdin: '{"cniVersion":"1.0.0","name":"lo","type":"loopback"}',
 *   args: { command: "ADD", containerId: "c1", netns: "/var/run/netns/x", ifName: "lo", path: ["/usr/lib/cni"] },
 * });
 * ```
 */
export function execPlugin(
  pluginPath: string,
  request: PluginRequest,
  options: ExecOptions = {},
): Promise<Uint8Array> {
  const stdin = typeof request.stdin === "string" ? encoder.encode(request.stdin) : request.stdin;
  return execPluginFile(pluginPath, stdin, {
    env: pluginEnv(request.args, options.env ?? Deno.env.toObject()),
    signal: options.signal,
    stderr: options.stderr,
  });
}

/**
 * Runs a plugin that must print a result (ADD) and decodes it (libcni
 * `ExecPluginWithResult`): a result without `cniVersion` is taken to be in
 * the config's version.
 */
export async function execPluginWithResult(
  pluginPath: string,
  request: PluginRequest,
  options: ExecOptions = {},
): Promise<Result> {
  const stdout = await execPlugin(pluginPath, request, options);
  return decodeResult(stdout, request.stdin);
}

/**
 * Asks a plugin which spec versions it supports (libcni `GetVersionInfo`).
 * A plugin that answers `unknown CNI_COMMAND: VERSION` is taken to support
 * only 0.1.0.
 */
export async function getVersionInfo(
  pluginPath: string,
  options: ExecOptions = {},
): Promise<PluginInfo> {
  let stdout: Uint8Array;
  try {
    stdout = await execPlugin(pluginPath, {
      stdin: `{"cniVersion":${JSON.stringify(CURRENT_VERSION)}}`,
      // Dummy values for plugins built with an old skel that required them.
      args: { command: "VERSION", netns: "dummy", ifName: "dummy", path: ["dummy"] },
    }, options);
  } catch (error) {
    if (error instanceof CniError && errorText(error) === "unknown CNI_COMMAND: VERSION") {
      return { cniVersion: CURRENT_VERSION, supportedVersions: ["0.1.0"] };
    }
    throw error;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(stdout));
  } catch (error) {
    throw new SyntaxError(`decoding version info: ${(error as Error).message}`, { cause: error });
  }
  if (!isObject(raw)) {
    throw new TypeError(`decoding version info: expected an object, got ${goTypeName(raw)}`);
  }
  const { cniVersion, supportedVersions } = raw;
  if (typeof cniVersion !== "string" || cniVersion === "") {
    throw new TypeError("decoding version info: missing field cniVersion");
  }
  if (!Array.isArray(supportedVersions) || supportedVersions.length === 0) {
    if (cniVersion === "0.2.0") return { cniVersion, supportedVersions: ["0.1.0", "0.2.0"] };
    throw new TypeError("decoding version info: missing field supportedVersions");
  }
  if (!supportedVersions.every((v) => typeof v === "string")) {
    throw new TypeError("decoding version info: supportedVersions must be strings");
  }
  return { cniVersion, supportedVersions: supportedVersions as string[] };
}

/** Go's `Error()` of a CNI error: msg, then `; details` when present. */
export function errorText(error: CniError): string {
  return error.details ? `${error.message}; ${error.details}` : error.message;
}

/** What {@linkcode buildOneConfig} injects into a plugin's config. */
export interface OneConfigInject {
  /** The network (list) name. */
  name: string;
  /** The list's selected spec version. */
  cniVersion: string;
  /** The previous plugin's (or the cached) result. @default {undefined} (none) */
  prevResult?: Result;
  /** The runtime's capability arguments (cnitool's `CAP_ARGS`). @default {undefined} */
  capabilityArgs?: Record<string, unknown>;
}

/**
 * Builds a plugin's stdin (libcni `buildOneConfig`): the list entry with
 * `name`, `cniVersion` and `prevResult` set, and `runtimeConfig` holding only
 * the capabilities the entry declares `true` and the runtime supplied. Keys
 * come out sorted because libcni re-marshals through a map.
 *
 * @example Usage
 * ```ts
 * import { parsePluginConf } from "./conflist.ts";
 * const plugin = parsePluginConf('{"type":"portmap","capabilities":{"portMappings":true}}');
 * const stdin = buildOneConfig(plugin, {
 *   name: "mynet",
 *   cniVersion: "1.0.0",
 *   capabilityArgs: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }], mac: "x" },
 * });
 * ```
 */
export function buildOneConfig(plugin: PluginConfig, inject: OneConfigInject): Uint8Array {
  const values: Record<string, unknown> = { name: inject.name, cniVersion: inject.cniVersion };
  if (inject.prevResult !== undefined) values.prevResult = resultJson(inject.prevResult);
  const runtimeConfig: Record<string, unknown> = {};
  const supplied = inject.capabilityArgs ?? {};
  for (const [cap, enabled] of Object.entries(plugin.conf.capabilities ?? {})) {
    if (enabled && Object.hasOwn(supplied, cap)) runtimeConfig[cap] = supplied[cap];
  }
  if (Object.keys(runtimeConfig).length > 0) values.runtimeConfig = runtimeConfig;
  return injectConf(plugin, values).bytes;
}

/**
 * Returns the plugin config with `values` set at the top level (libcni
 * `InjectConf`), re-marshalled with sorted keys. Throws `TypeError` for an
 * empty key or a null value.
 */
export function injectConf(plugin: PluginConfig, values: Record<string, unknown>): PluginConfig {
  const raw = JSON.parse(decoder.decode(plugin.bytes)) as Record<string, unknown>;
  for (const [key, value] of Object.entries(values)) {
    if (key === "") throw new TypeError("keys cannot be empty");
    if (value === null || value === undefined) {
      throw new TypeError(`key '${key}' value must not be nil`);
    }
    raw[key] = value;
  }
  return parsePluginConf(marshalGo(raw));
}

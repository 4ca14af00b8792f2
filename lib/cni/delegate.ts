/**
 * Delegation to another plugin (IPAM), like Go's `invoke.Delegate*` and the
 * plugins' `ipam.Exec*`: find the binary in `CNI_PATH`, run it with the same
 * stdin and environment (only `CNI_COMMAND` changed), copy its stderr, and
 * turn its stdout into a result or an error.
 *
 * When the delegate is this very program (the compiled binary, or a launcher
 * script for our `main.ts`), the plugin runs in-process through the same
 * skeleton with in-memory I/O, and its output is handled exactly like a
 * child's, so the two paths cannot be told apart.
 *
 * @module
 */

import type { CmdArgs, Plugin, Result } from "./types.ts";
import { runPlugin } from "./skel.ts";
import { decodeConfigVersion } from "./config.ts";
import { parseResult, toCurrentResult } from "./result.ts";
import { goJsonDecode, isJsonObject, valueTypeError } from "./_go.ts";
import { findPlugin, pluginOutput, type PluginRun, runPluginFile } from "./exec.ts";

export { findPlugin };

/** Loads a plugin of this program by name; `undefined` if there is none. */
export type InProcessLoader = (name: string) => Promise<Plugin | undefined>;

let inProcessLoader: InProcessLoader | undefined;
let programModule: string | undefined;

/** Options for {@linkcode setInProcessLoader}. */
export interface InProcessOptions {
  /**
   * The entry point launchers of this program name (their marker line). A
   * plugin bundle runs from its own file but is still the checkout's
   * `plugin_main.ts` as far as launchers are concerned.
   * @default {the path of `Deno.mainModule`}
   */
  programModule?: string;
}

/**
 * Installs (or with `undefined` removes) the loader for in-process delegation;
 * `plugin_main.ts` and the plugin bundles call it.
 */
export function setInProcessLoader(
  loader: InProcessLoader | undefined,
  options: InProcessOptions = {},
): void {
  inProcessLoader = loader;
  programModule = options.programModule;
}

/** The part of {@linkcode CmdArgs} a delegation needs. */
export type DelegateArgs = Pick<CmdArgs, "stdinData" | "env">;

/** Options for the `delegate*` functions. */
export interface DelegateOptions {
  /** Where the delegate's stderr goes. @default {writes to the process's stderr} */
  stderr?: (text: string) => void;
}

/** The line a launcher script carries to say which `main.ts` it runs. */
export const LAUNCHER_MARKER = "# cnibox-launcher:";

/** Options for {@linkcode isThisProgram}, for tests. */
export interface ThisProgramOptions {
  /** @default {Deno.execPath()} */
  execPath?: string;
  /**
   * Path of the running entry point.
   * @default {the `programModule` given to {@linkcode setInProcessLoader}, else the path of `Deno.mainModule`}
   */
  mainModule?: string;
}

function realPath(path: string): string | undefined {
  try {
    return Deno.realPathSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Whether the file at `path` runs this program: it is (a link to) our
 * executable, or a small launcher script with a line
 * `# cnibox-launcher: <absolute path of main.ts>` naming the running main module.
 */
export function isThisProgram(path: string, options: ThisProgramOptions = {}): boolean {
  const target = realPath(path);
  if (target === undefined) return false;
  if (target === realPath(options.execPath ?? Deno.execPath())) return true;
  let mainModule = options.mainModule ?? programModule;
  if (mainModule === undefined) {
    const url = new URL(Deno.mainModule);
    if (url.protocol !== "file:") return false;
    mainModule = decodeURIComponent(url.pathname);
  }
  try {
    // Launchers are a few lines; never read a real binary.
    if (Deno.statSync(target).size > 4096) return false;
    const text = new TextDecoder().decode(Deno.readFileSync(target));
    const wanted = realPath(mainModule) ?? mainModule;
    for (const line of text.split("\n")) {
      if (!line.startsWith(LAUNCHER_MARKER)) continue;
      const named = line.slice(LAUNCHER_MARKER.length).trim();
      if (named === mainModule || (realPath(named) ?? named) === wanted) return true;
    }
  } catch {
    return false;
  }
  return false;
}

async function runInProcess(
  plugin: Plugin,
  stdin: Uint8Array,
  env: Record<string, string>,
): Promise<PluginRun> {
  let stdout = "";
  let stderr = "";
  const code = await runPlugin(plugin, {
    env,
    readStdin: () => Promise.resolve(stdin),
    writeStdout: (text) => void (stdout += text),
    writeStderr: (text) => void (stderr += text),
  });
  const encoder = new TextEncoder();
  return {
    failure: code === 0 ? undefined : `exit status ${code}`,
    stdout: encoder.encode(stdout),
    stderr: encoder.encode(stderr),
  };
}

async function execDelegate(
  command: string,
  name: string,
  args: DelegateArgs,
  options: DelegateOptions,
): Promise<Uint8Array> {
  const path = findPlugin(name, splitList(args.env.CNI_PATH ?? ""));
  const env = { ...args.env, CNI_COMMAND: command };
  const plugin = inProcessLoader && isThisProgram(path)
    ? await inProcessLoader(path.slice(path.lastIndexOf("/") + 1))
    : undefined;
  const run = plugin
    ? await runInProcess(plugin, args.stdinData, env)
    : await runPluginFile(path, args.stdinData, { env });
  const stderr = options.stderr;
  return pluginOutput(run, {
    stderr: stderr && ((bytes) => stderr(new TextDecoder().decode(bytes))),
  });
}

function splitList(path: string): string[] {
  return path === "" ? [] : path.split(":");
}

/**
 * Go's `fixupResultVersion` + `create.Create`: a result without its own
 * `cniVersion` is taken to be in the config's version.
 */
function resultFromStdout(stdin: Uint8Array, stdout: Uint8Array): Result {
  const confVersion = decodeConfigVersion(goJsonDecode(stdin));
  const text = new TextDecoder().decode(stdout);
  let raw: unknown;
  try {
    raw = goJsonDecode(stdout);
    if (raw !== null && !isJsonObject(raw)) {
      throw valueTypeError(raw, "map[string]interface {}");
    }
  } catch (error) {
    throw new Error(`failed to unmarshal raw result: ${(error as Error).message} result ${text}`);
  }
  const obj = raw ?? {};
  const own = obj.cniVersion;
  if (typeof own === "string" && own !== "") return parseResult(obj, own);
  // Go re-marshals the map with the version added, which sorts the keys.
  const fixed: Record<string, unknown> = { ...obj, cniVersion: confVersion };
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(fixed).sort()) sorted[key] = fixed[key];
  return parseResult(sorted, confVersion);
}

/**
 * Runs the delegate's ADD and returns its result as a mutable 1.x result
 * labelled with the current version (Go's `ipam.ExecAdd` followed by
 * `current.NewResultFromResult`).
 *
 * @throws {CniError} the delegate's own error (its code preserved), or
 * code 0 `netplugin failed ...` when it printed no error JSON.
 * @throws {Error} when the delegate cannot be found or its result not parsed.
 */
export async function delegateAdd(
  plugin: string,
  args: DelegateArgs,
  options: DelegateOptions = {},
): Promise<Result> {
  const stdout = await execDelegate("ADD", plugin, args, options);
  return toCurrentResult(resultFromStdout(args.stdinData, stdout));
}

/** Runs the delegate's CHECK. Throws like {@linkcode delegateAdd}. */
export async function delegateCheck(
  plugin: string,
  args: DelegateArgs,
  options: DelegateOptions = {},
): Promise<void> {
  await execDelegate("CHECK", plugin, args, options);
}

/** Runs the delegate's DEL. Throws like {@linkcode delegateAdd}. */
export async function delegateDel(
  plugin: string,
  args: DelegateArgs,
  options: DelegateOptions = {},
): Promise<void> {
  await execDelegate("DEL", plugin, args, options);
}

/** Runs the delegate's GC. Throws like {@linkcode delegateAdd}. */
export async function delegateGc(
  plugin: string,
  args: DelegateArgs,
  options: DelegateOptions = {},
): Promise<void> {
  await execDelegate("GC", plugin, args, options);
}

/** Runs the delegate's STATUS. Throws like {@linkcode delegateAdd}. */
export async function delegateStatus(
  plugin: string,
  args: DelegateArgs,
  options: DelegateOptions = {},
): Promise<void> {
  await execDelegate("STATUS", plugin, args, options);
}

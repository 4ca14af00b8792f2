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

import { CniError } from "./error.ts";
import type { CmdArgs, Plugin, Result } from "./types.ts";
import { runPlugin } from "./skel.ts";
import { decodeConfigVersion } from "./config.ts";
import { parseResult, toCurrentResult } from "./result.ts";
import {
  fieldTypeError,
  goField,
  goJsonDecode,
  goList,
  goQuote,
  isJsonObject,
  valueTypeError,
} from "./_go.ts";

/** Loads a plugin of this program by name; `undefined` if there is none. */
export type InProcessLoader = (name: string) => Promise<Plugin | undefined>;

let inProcessLoader: InProcessLoader | undefined;

/** Installs (or with `undefined` removes) the loader for in-process delegation; `main.ts` calls it. */
export function setInProcessLoader(loader: InProcessLoader | undefined): void {
  inProcessLoader = loader;
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
  /** Path of the running `main.ts`. @default {the path of `Deno.mainModule`} */
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
  let mainModule = options.mainModule;
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

/** `filepath.Join(dir, name)` for a plain file name (Go cleans the result). */
function joinPath(dir: string, name: string): string {
  const joined = dir === "" ? name : `${dir}/${name}`;
  const absolute = joined.startsWith("/");
  const parts: string[] = [];
  for (const part of joined.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === ".." && parts.length > 0 && parts[parts.length - 1] !== "..") parts.pop();
    else if (part !== ".." || !absolute) parts.push(part);
  }
  const out = (absolute ? "/" : "") + parts.join("/");
  return out === "" ? "." : out;
}

/**
 * Go's `invoke.FindInPath`: the first regular file named `name` in `paths`.
 *
 * @throws {Error} `no plugin name provided`, `invalid plugin name: x`,
 * `no paths provided` or `failed to find plugin "x" in path [/a /b]`.
 */
export function findPlugin(name: string, paths: readonly string[]): string {
  if (name === "") throw new Error("no plugin name provided");
  if (name.includes("/")) throw new Error(`invalid plugin name: ${name}`);
  if (paths.length === 0) throw new Error("no paths provided");
  for (const dir of paths) {
    const full = joinPath(dir, name);
    try {
      if (Deno.statSync(full).isFile) return full;
    } catch {
      // not here; try the next directory
    }
  }
  throw new Error(`failed to find plugin ${goQuote(name)} in path ${goList(paths)}`);
}

interface RunOutput {
  /** Exit status text as Go's `*exec.ExitError` prints it, or a start failure; `undefined` on success. */
  failure?: string;
  stdout: Uint8Array;
  stderr: Uint8Array;
}

const SIGNALS: Record<string, string> = {
  SIGHUP: "hangup",
  SIGINT: "interrupt",
  SIGQUIT: "quit",
  SIGILL: "illegal instruction",
  SIGTRAP: "trace/breakpoint trap",
  SIGABRT: "aborted",
  SIGBUS: "bus error",
  SIGFPE: "floating point exception",
  SIGKILL: "killed",
  SIGUSR1: "user defined signal 1",
  SIGSEGV: "segmentation fault",
  SIGUSR2: "user defined signal 2",
  SIGPIPE: "broken pipe",
  SIGALRM: "alarm clock",
  SIGTERM: "terminated",
};

/** Go's `fork/exec <path>: <errno text>` from a Deno spawn error. */
function spawnFailure(path: string, error: Error): string {
  const m = /: ([^:]*?) \(os error \d+\)$/.exec(error.message);
  const text = m ? m[1][0].toLowerCase() + m[1].slice(1) : error.message;
  return `fork/exec ${path}: ${text}`;
}

async function execFile(path: string, stdin: Uint8Array, env: Record<string, string>) {
  // Go retries "text file busy" (a binary being written) up to 5 more times.
  for (let attempt = 0;; attempt++) {
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(path, {
        env,
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      const failure = spawnFailure(path, error as Error);
      if (failure.endsWith("text file busy") && attempt < 5) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      const empty = new Uint8Array();
      return { failure, stdout: empty, stderr: empty };
    }
    const writer = child.stdin.getWriter();
    // A delegate may exit without reading stdin; Go ignores that too.
    await writer.write(stdin).catch(() => {});
    await writer.close().catch(() => {});
    const out = await child.output();
    let failure: string | undefined;
    if (out.signal) failure = `signal: ${SIGNALS[out.signal] ?? out.signal}`;
    else if (out.code !== 0) failure = `exit status ${out.code}`;
    return { failure, stdout: out.stdout, stderr: out.stderr };
  }
}

async function runInProcess(
  plugin: Plugin,
  stdin: Uint8Array,
  env: Record<string, string>,
): Promise<RunOutput> {
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

function defaultStderr(text: string): void {
  let data = new TextEncoder().encode(text);
  while (data.length > 0) data = data.subarray(Deno.stderr.writeSync(data));
}

/** Go's `RawExec.pluginErr`: the error a failed delegate stands for. */
function pluginError(run: RunOutput): CniError {
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  if (run.stdout.length === 0) {
    if (run.stderr.length === 0) {
      return new CniError(0, `netplugin failed with no error message: ${run.failure}`);
    }
    return new CniError(0, `netplugin failed: ${goQuote(text(run.stderr))}: ${run.failure}`);
  }
  const diagnostic = (reason: string, code = 0) =>
    new CniError(
      code,
      `netplugin failed but error parsing its diagnostic message ${
        goQuote(text(run.stdout))
      }: ${reason}`,
    );
  let value: unknown;
  try {
    value = goJsonDecode(run.stdout);
  } catch (error) {
    return diagnostic((error as Error).message);
  }
  if (value === null) return new CniError(0, "");
  if (!isJsonObject(value)) return diagnostic(valueTypeError(value, "types.Error").message);
  const code = goField(value, "code");
  const msg = goField(value, "msg");
  const details = goField(value, "details");
  let codeValue = 0;
  if (code !== undefined && code !== null) {
    if (typeof code !== "number") {
      return diagnostic(fieldTypeError(code, "Error.code", "uint").message);
    }
    if (!Number.isInteger(code) || code < 0) {
      return diagnostic(
        `json: cannot unmarshal number ${code} into Go struct field Error.code of type uint`,
      );
    }
    codeValue = code;
  }
  for (const [name, v] of [["msg", msg], ["details", details]] as const) {
    if (v !== undefined && v !== null && typeof v !== "string") {
      return diagnostic(fieldTypeError(v, `Error.${name}`, "string").message, codeValue);
    }
  }
  return new CniError(codeValue, (msg as string) ?? "", (details as string) ?? "");
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
    : await execFile(path, args.stdinData, env);
  if (run.failure !== undefined) throw pluginError(run);
  // Stderr is informational; Go copies it only when the delegate succeeded.
  if (run.stderr.length > 0) {
    (options.stderr ?? defaultStderr)(new TextDecoder().decode(run.stderr));
  }
  return run.stdout;
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

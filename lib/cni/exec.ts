/**
 * Running a CNI plugin binary the way Go's `pkg/invoke` does, shared by the
 * plugins' delegation (`delegate.ts`) and the runtime side
 * (`lib/runtime/invoke.ts`): `FindInPath`, `RawExec.ExecPlugin` (retry on
 * "text file busy", stderr copied only on success) and `pluginErr` (the
 * plugin's error JSON, or a `netplugin failed ...` message with Go's exit
 * and signal texts).
 *
 * @example Usage
 * ```ts ignore
 * import { execPluginFile, findPlugin } from "./exec.ts";
 * const path = findPlugin("host-local", ["/opt/cni/bin"]);
 * const stdout = await execPluginFile(path, stdin, { env: { ...env, CNI_COMMAND: "ADD" } });
 * ```
 *
 * @module
 */

import { CniError } from "./error.ts";
import {
  fieldTypeError,
  goJoinPath,
  goJsonDecode,
  goList,
  goQuote,
  isJsonObject,
  valueTypeError,
} from "./_go.ts";

/**
 * Go's `invoke.FindInPath`: the first `<dir>/<name>` in `paths` that is a
 * regular file after following symlinks.
 *
 * @throws {Error} `no plugin name provided`, `invalid plugin name: x`,
 * `no paths provided` or `failed to find plugin "x" in path [/a /b]`.
 */
export function findPlugin(name: string, paths: readonly string[]): string {
  if (name === "") throw new Error("no plugin name provided");
  if (name.includes("/")) throw new Error(`invalid plugin name: ${name}`);
  if (paths.length === 0) throw new Error("no paths provided");
  for (const dir of paths) {
    const full = goJoinPath(dir, name);
    try {
      if (Deno.statSync(full).isFile) return full;
    } catch {
      // Not there (or unreadable): keep looking, as Go does.
    }
  }
  throw new Error(`failed to find plugin ${goQuote(name)} in path ${goList(paths)}`);
}

/** What one plugin run left behind, whether it was a child process or in-process. */
export interface PluginRun {
  /**
   * Go's text for the failure (`exit status 1`, `signal: killed`,
   * `fork/exec /p: permission denied`); `undefined` when the plugin succeeded.
   */
  failure?: string;
  /** The error behind a start failure, kept as the thrown error's `cause`. */
  cause?: unknown;
  stdout: Uint8Array;
  stderr: Uint8Array;
}

/** Options for {@linkcode runPluginFile}. */
export interface RunPluginOptions {
  /** The plugin's whole environment. @default {Deno.env.toObject()} */
  env?: Record<string, string>;
  /** Kills the plugin when aborted. @default {undefined} (never) */
  signal?: AbortSignal;
}

/** Go's `syscall.Signal.String()` on Linux, by Deno's signal name. */
const SIGNAL_TEXT: Record<string, string> = {
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
  SIGSTKFLT: "stack fault",
  SIGCHLD: "child exited",
  SIGCONT: "continued",
  SIGSTOP: "stopped (signal)",
  SIGTSTP: "stopped",
  SIGTTIN: "stopped (tty input)",
  SIGTTOU: "stopped (tty output)",
  SIGURG: "urgent I/O condition",
  SIGXCPU: "CPU time limit exceeded",
  SIGXFSZ: "file size limit exceeded",
  SIGVTALRM: "virtual timer expired",
  SIGPROF: "profiling timer expired",
  SIGWINCH: "window changed",
  SIGIO: "I/O possible",
  SIGPWR: "power failure",
  SIGSYS: "bad system call",
};

/** Go's `*exec.ExitError` text for a finished process that failed. */
function exitText(status: Deno.CommandStatus): string {
  if (status.signal) return `signal: ${SIGNAL_TEXT[status.signal] ?? status.signal}`;
  return `exit status ${status.code}`;
}

/** Go's `fork/exec <path>: <errno text>` from a Deno spawn error. */
function spawnText(path: string, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // Deno: "Failed to spawn '<path>': Permission denied (os error 13)".
  const m = /: ([^:]*?) \(os error \d+\)$/.exec(message);
  const text = m ? m[1][0].toLowerCase() + m[1].slice(1) : message;
  return `fork/exec ${path}: ${text}`;
}

const EMPTY = new Uint8Array();
/** How long an aborted plugin may take to exit on SIGTERM before it gets SIGKILL. */
const KILL_GRACE_MS = 1000;

/**
 * Runs the plugin at `path` with `stdin` and a clean environment, like Go's
 * `RawExec.ExecPlugin` up to `pluginErr`: a start failure with "text file
 * busy" (the binary is being written) is retried up to 5 more times, 1 s
 * apart. Never throws for the plugin's own failure; see {@linkcode pluginOutput}.
 */
export async function runPluginFile(
  path: string,
  stdin: Uint8Array,
  options: RunPluginOptions = {},
): Promise<PluginRun> {
  const env = options.env ?? Deno.env.toObject();
  for (let attempt = 0;; attempt++) {
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(path, {
        env,
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        signal: options.signal,
      }).spawn();
    } catch (error) {
      const failure = spawnText(path, error);
      // Go keeps going after the sixth busy start and reports success with
      // no output; we report the failure instead.
      if (failure.endsWith("text file busy") && attempt < 5) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      return { failure, cause: error, stdout: EMPTY, stderr: EMPTY };
    }
    // Aborting sends SIGTERM; a plugin that ignores it gets SIGKILL a second later.
    const forceKill = () => {
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // already exited
        }
      }, KILL_GRACE_MS);
      Deno.unrefTimer(timer);
    };
    options.signal?.addEventListener("abort", forceKill, { once: true });
    try {
      // A plugin may exit without reading stdin (VERSION never does); Go ignores that too.
      const writer = child.stdin.getWriter();
      await writer.write(stdin).catch(() => {});
      await writer.close().catch(() => {});
      const out = await child.output();
      return {
        failure: out.success ? undefined : exitText(out),
        stdout: out.stdout,
        stderr: out.stderr,
      };
    } finally {
      options.signal?.removeEventListener("abort", forceKill);
    }
  }
}

/**
 * Go's `RawExec.pluginErr`: the error a failed run stands for. Its error JSON
 * on stdout is decoded like `json.Unmarshal` into `types.Error` (a field of
 * the wrong type is reported, the others still count); without stdout the
 * message is `netplugin failed ...` with stderr and the failure text.
 */
export function pluginError(run: PluginRun): CniError {
  const failure = run.failure ?? "";
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  const cause = run.cause === undefined ? undefined : { cause: run.cause };
  if (run.stdout.length === 0) {
    if (run.stderr.length === 0) {
      return new CniError(0, `netplugin failed with no error message: ${failure}`, "", cause);
    }
    return new CniError(0, `netplugin failed: ${goQuote(text(run.stderr))}: ${failure}`, "", cause);
  }
  const diagnostic = (reason: string, code = 0, details = "") =>
    new CniError(
      code,
      `netplugin failed but error parsing its diagnostic message ${
        goQuote(text(run.stdout))
      }: ${reason}`,
      details,
    );
  let value: unknown;
  try {
    value = goJsonDecode(run.stdout);
  } catch (error) {
    return diagnostic((error as Error).message);
  }
  if (value === null) return new CniError(0, "");
  if (!isJsonObject(value)) return diagnostic(valueTypeError(value, "types.Error").message);
  // Go decodes the keys in order (matched as Go's foldName does, the last one
  // wins) and reports the first type mismatch after decoding the rest.
  let code = 0;
  let msg = "";
  let details = "";
  let mismatch: string | undefined;
  for (const [key, v] of Object.entries(value)) {
    const field = key.toUpperCase().toLowerCase();
    if (v === null || (field !== "code" && field !== "msg" && field !== "details")) continue;
    if (field === "code") {
      if (typeof v !== "number") {
        mismatch ??= fieldTypeError(v, "Error.code", "uint").message;
      } else if (!Number.isInteger(v) || v < 0) {
        mismatch ??=
          `json: cannot unmarshal number ${v} into Go struct field Error.code of type uint`;
      } else {
        code = v;
      }
    } else if (typeof v !== "string") {
      mismatch ??= fieldTypeError(v, `Error.${field}`, "string").message;
    } else if (field === "msg") {
      msg = v;
    } else {
      details = v;
    }
  }
  if (mismatch !== undefined) return diagnostic(mismatch, code, details);
  return new CniError(code, msg, details);
}

/** Options for {@linkcode pluginOutput}. */
export interface PluginOutputOptions {
  /** Receives what a successful plugin wrote to stderr. @default {writes to the process's stderr} */
  stderr?: (bytes: Uint8Array) => void;
}

function writeStderr(bytes: Uint8Array): void {
  let rest = bytes;
  while (rest.length > 0) rest = rest.subarray(Deno.stderr.writeSync(rest));
}

/**
 * The end of Go's `RawExec.ExecPlugin`: a failed run throws its
 * {@linkcode pluginError}; a successful one hands its stderr on (Go copies it
 * only then) and returns its stdout.
 *
 * @throws {CniError} the plugin's error, its code preserved.
 */
export function pluginOutput(run: PluginRun, options: PluginOutputOptions = {}): Uint8Array {
  if (run.failure !== undefined) throw pluginError(run);
  if (run.stderr.length > 0) (options.stderr ?? writeStderr)(run.stderr);
  return run.stdout;
}

/**
 * Go's `RawExec.ExecPlugin`: runs the plugin and returns its stdout.
 *
 * @throws {CniError} the plugin's error (see {@linkcode pluginError}).
 */
export async function execPluginFile(
  path: string,
  stdin: Uint8Array,
  options: RunPluginOptions & PluginOutputOptions = {},
): Promise<Uint8Array> {
  return pluginOutput(await runPluginFile(path, stdin, options), options);
}

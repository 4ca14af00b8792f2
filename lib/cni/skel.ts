/**
 * The plugin skeleton (Go's `pkg/skel` at the version HEAD plugins vendor):
 * environment validation, stdin, version gates, dispatch to the plugin's
 * handlers, result and error printing, exit codes. All I/O goes through a
 * {@linkcode PluginIo} so tests and in-process delegation can supply their own.
 *
 * @module
 */

import { CniError, ErrorCode, renderError, toCniError } from "./error.ts";
import type { CmdArgs, Command, NetConf, Plugin } from "./types.ts";
import { decodeNetConfName, netConfFrom, VALID_NAME } from "./config.ts";
import { encodeResult } from "./result.ts";
import { probeOutput } from "./probe.ts";
import { versionAtLeast } from "./version.ts";
import { goJsonEscape, goQuote, goQuoteList } from "./_go.ts";
import { journalPath, recordRun } from "../status/journal.ts";
import { settleChildren } from "../sys/spawn.ts";

/** Everything a plugin run reads and writes. */
export interface PluginIo {
  /** The process environment. */
  env: Record<string, string>;
  /** Reads all of stdin (not called for VERSION). */
  readStdin(): Promise<Uint8Array>;
  /** Writes to stdout: results, VERSION output and error JSON. */
  writeStdout(text: string): void;
  /** Writes to stderr: the "about" text, diagnostics. */
  writeStderr(text: string): void;
}

/** The most stdin {@linkcode denoIo} accepts (16 MiB); a config is never near this. */
export const MAX_STDIN_BYTES = 16 * 1024 * 1024;

/** Options for {@linkcode denoIo}. */
export interface DenoIoOptions {
  /** Stdin beyond this many bytes fails the run with code 5. @default {MAX_STDIN_BYTES} */
  maxStdinBytes?: number;
}

function writeAll(file: { writeSync(p: Uint8Array): number }, text: string): void {
  let data = new TextEncoder().encode(text);
  try {
    while (data.length > 0) data = data.subarray(file.writeSync(data));
  } catch {
    // The reader went away (closed pipe); there is no one left to tell.
  }
}

/**
 * Reads a stream to its end, refusing more than `max` bytes. Synchronous on
 * purpose: nothing else runs before the config is in, and an async read of
 * stdin goes through Deno's blocking-thread pool (measured ~0.7 ms more per run).
 */
function readBounded(
  reader: { readSync(p: Uint8Array): number | null },
  max: number,
): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const buf = new Uint8Array(64 * 1024);
    const n = reader.readSync(buf);
    if (n === null) break;
    total += n;
    if (total > max) throw new RangeError(`stdin is larger than ${max} bytes`);
    chunks.push(buf.subarray(0, n));
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/**
 * The real process I/O: environment, stdin (bounded), stdout and stderr.
 * Requires `--allow-env` and access to the standard streams.
 */
export function denoIo(options: DenoIoOptions = {}): PluginIo {
  const max = options.maxStdinBytes ?? MAX_STDIN_BYTES;
  return {
    env: Deno.env.toObject(),
    readStdin: () => {
      try {
        return Promise.resolve(readBounded(Deno.stdin, max));
      } catch (error) {
        return Promise.reject(error);
      }
    },
    writeStdout: (text) => writeAll(Deno.stdout, text),
    writeStderr: (text) => writeAll(Deno.stderr, text),
  };
}

/**
 * Go's `utils.ValidateContainerID` for a non-empty id.
 *
 * @throws {CniError} code 4 `invalid characters in containerID`.
 */
export function validateContainerId(id: string): void {
  if (!VALID_NAME.test(id)) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      "invalid characters in containerID",
      id,
    );
  }
}

// Go's unicode.IsSpace, plus '/' and ':'.
const BAD_IFNAME_CHAR =
  /[/:\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

/**
 * Go's `utils.ValidateInterfaceName`: not empty, at most 15 bytes, not `.` or
 * `..`, no `/`, `:` or whitespace.
 *
 * @throws {CniError} code 4 with the library's message.
 */
export function validateInterfaceName(name: string): void {
  const code = ErrorCode.InvalidEnvironmentVariables;
  if (name.length === 0) throw new CniError(code, "interface name is empty");
  if (new TextEncoder().encode(name).length > 15) {
    throw new CniError(
      code,
      "interface name is too long",
      "interface name should be less than 16 characters",
    );
  }
  if (name === "." || name === "..") throw new CniError(code, "interface name is . or ..");
  if (BAD_IFNAME_CHAR.test(name)) {
    throw new CniError(code, "interface name contains / or : or whitespace characters");
  }
}

interface EnvVar {
  name: string;
  required: readonly string[];
  validate?: (value: string) => void;
}

// Order matters: it is the order of the "missing" list and of validation.
const ENV_VARS: readonly EnvVar[] = [
  { name: "CNI_COMMAND", required: ["ADD", "CHECK", "DEL", "GC", "STATUS"] },
  { name: "CNI_CONTAINERID", required: ["ADD", "CHECK", "DEL"], validate: validateContainerId },
  { name: "CNI_NETNS", required: ["ADD", "CHECK"] },
  { name: "CNI_IFNAME", required: ["ADD", "CHECK", "DEL"], validate: validateInterfaceName },
  { name: "CNI_ARGS", required: [] },
  { name: "CNI_PATH", required: ["ADD", "CHECK", "DEL", "GC", "STATUS"] },
  { name: "CNI_NETNS_OVERRIDE", required: [] },
];

/** `filepath.SplitList`: an empty string is an empty list. */
function splitList(path: string): string[] {
  return path === "" ? [] : path.split(":");
}

function fileId(path: string): string | undefined {
  try {
    const info = Deno.statSync(path);
    return `${info.dev}:${info.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * HEAD's `ns.CheckNetNS`: whether `netns` is the plugin's own network
 * namespace. An unopenable path counts as "not ours" (DEL may name a gone one).
 */
function isOwnNetns(netns: string): boolean {
  const target = fileId(netns);
  if (target === undefined) return false;
  const own = fileId("/proc/thread-self/ns/net") ?? fileId("/proc/self/ns/net");
  if (own === undefined) throw new CniError(ErrorCode.InvalidNetNs, "get plugin's netns failed");
  return own === target;
}

function decodingFailure(error: unknown): CniError {
  return new CniError(ErrorCode.DecodingFailure, (error as Error).message);
}

/** Go's `version.GreaterThanOrEqualTo`, with parse failures as code 6. */
function atLeast(version: string, min: string): boolean {
  try {
    return versionAtLeast(version, min);
  } catch (error) {
    throw decodingFailure(error);
  }
}

const VERBS = ["ADD", "DEL", "CHECK", "GC", "STATUS"];

/** Plugin runs in this process not finished yet (more than one while IPAM runs in-process). */
let runsInProgress = 0;

/** What the journal learns about a run while it is dispatched. */
interface RunContext {
  network?: string;
}

/**
 * Runs a plugin once: the whole CNI protocol for one invocation. Returns the
 * exit code. Every verb run (not bare runs or VERSION, which are probes) is
 * recorded in the local journal for the status endpoint's metrics; recording
 * never fails or delays the run beyond one small append.
 */
export async function runPlugin(plugin: Plugin, io: PluginIo): Promise<number> {
  const started = performance.now();
  runsInProgress++;
  const context: RunContext = {};
  let failure: number | undefined;
  try {
    return await dispatch(plugin, io, context);
  } catch (error) {
    const cniError = toCniError(error);
    failure = cniError.code;
    if (cniError.code === ErrorCode.Internal && io.env.CNIBOX_DEBUG && error instanceof Error) {
      io.writeStderr(`${error.stack ?? error.message}\n`);
    }
    io.writeStdout(goJsonEscape(renderError(cniError)));
    return 1;
  } finally {
    try {
      const command = io.env.CNI_COMMAND ?? "";
      if (VERBS.includes(command)) {
        recordRun({
          plugin: plugin.name,
          command,
          outcome: failure === undefined ? "ok" : "error",
          code: failure,
          durationMs: performance.now() - started,
          network: context.network,
          containerId: io.env.CNI_CONTAINERID,
          ifname: io.env.CNI_IFNAME,
        }, io.env.CNIBOX_JOURNAL === undefined ? {} : { path: journalPath(io.env) });
      }
    } finally {
      // Tools whose commit was announced may still be exiting: reap them, leave no orphans.
      // Only the outermost run does, so an in-process IPAM run cannot make its caller wait early.
      if (--runsInProgress === 0) settleChildren();
    }
  }
}

async function dispatch(plugin: Plugin, io: PluginIo, context: RunContext): Promise<number> {
  const env = (name: string) => io.env[name] ?? "";
  const cmd = env("CNI_COMMAND");
  const missing: string[] = [];
  for (const v of ENV_VARS) {
    const value = env(v.name);
    const required = v.required.includes(cmd);
    if (value === "") {
      if (required || v.name === "CNI_COMMAND") missing.push(v.name);
    } else if (required && v.validate) {
      v.validate(value);
    }
  }
  const probe = cmd === "" || cmd === "VERSION"
    ? probeOutput(plugin.name, plugin.supportedVersions, cmd)
    : undefined;
  if (missing.length > 0) {
    if (probe && "stderr" in probe) {
      io.writeStderr(probe.stderr);
      return 0;
    }
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `required env variables [${missing.join(",")}] missing`,
    );
  }

  if (probe && "stdout" in probe) {
    io.writeStdout(probe.stdout);
    return 0;
  }

  let stdin: Uint8Array;
  try {
    stdin = await io.readStdin();
  } catch (error) {
    throw new CniError(
      ErrorCode.IoFailure,
      `error reading from stdin: ${(error as Error).message}`,
    );
  }
  const raw = decodeNetConfName(stdin);
  if (!VERBS.includes(cmd)) {
    throw new CniError(ErrorCode.InvalidEnvironmentVariables, `unknown CNI_COMMAND: ${cmd}`);
  }
  const conf = netConfFrom(raw);
  context.network = conf.name;
  const args: CmdArgs = {
    command: cmd as Command,
    containerId: env("CNI_CONTAINERID"),
    netns: env("CNI_NETNS"),
    ifName: env("CNI_IFNAME"),
    args: env("CNI_ARGS"),
    path: splitList(env("CNI_PATH")),
    netnsOverride: env("CNI_NETNS_OVERRIDE").toUpperCase() === "TRUE" ||
      env("CNI_NETNS_OVERRIDE") === "1",
    stdinData: stdin,
    conf,
    env: io.env,
  };
  const { funcs } = plugin;

  switch (cmd) {
    case "ADD": {
      checkVersion(conf, plugin);
      // Before the handler, unlike HEAD's skeleton (which checks after the handler
      // has printed its result, so its addresses and links stay behind): a refused
      // ADD changes nothing.
      checkNetns(args);
      const result = await funcs.add(args);
      io.writeStdout(encodeResult(result, conf.cniVersion));
      return 0;
    }
    case "DEL":
      checkVersion(conf, plugin);
      await funcs.del(args);
      checkNetns(args);
      return 0;
    case "CHECK":
      await gated(conf, plugin, "0.4.0", "CHECK", funcs.check && (() => funcs.check!(args)));
      return 0;
    case "GC":
      await gated(conf, plugin, "1.1.0", "GC", funcs.gc && (() => funcs.gc!(args)));
      return 0;
    default:
      await gated(conf, plugin, "1.1.0", "STATUS", funcs.status && (() => funcs.status!(args)));
      return 0;
  }
}

/** The version reconciler: the config's version must be one the plugin lists. */
function checkVersion(conf: NetConf, plugin: Plugin): void {
  if (!plugin.supportedVersions.includes(conf.cniVersion)) {
    throw new CniError(
      ErrorCode.IncompatibleCniVersion,
      "incompatible CNI versions",
      `config is ${goQuote(conf.cniVersion)}, plugin supports ${
        goQuoteList(plugin.supportedVersions)
      }`,
    );
  }
}

/** CHECK/GC/STATUS: the verb needs a minimum config version the plugin also reaches. */
async function gated(
  conf: NetConf,
  plugin: Plugin,
  min: string,
  verb: string,
  call: (() => Promise<void>) | undefined,
): Promise<void> {
  if (!atLeast(conf.cniVersion, min)) {
    throw new CniError(ErrorCode.IncompatibleCniVersion, `config version does not allow ${verb}`);
  }
  for (const pluginVersion of plugin.supportedVersions) {
    if (atLeast(pluginVersion, conf.cniVersion)) {
      checkVersion(conf, plugin);
      if (call) await call();
      return;
    }
  }
  throw new CniError(ErrorCode.IncompatibleCniVersion, `plugin version does not allow ${verb}`);
}

function checkNetns(args: CmdArgs): void {
  if (args.netnsOverride) return;
  if (isOwnNetns(args.netns)) {
    throw new CniError(
      ErrorCode.InvalidNetNs,
      "plugin's netns and netns from CNI_NETNS should not be the same",
    );
  }
}

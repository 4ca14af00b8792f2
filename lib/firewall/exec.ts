/**
 * The one place the firewall layer starts processes, behind an interface so
 * tests can record or script the calls (the `execer` of knftables and of
 * Kubernetes' iptables utilities).
 *
 * @module
 */
import { Errno } from "../sys/errno.ts";
import { OsError } from "../sys/libc.ts";
import { type ChildProcess, type ProcessOutput, settleLater, spawnChild } from "../sys/spawn.ts";
import {
  type AppendRulesSpec,
  CommitWatch,
  type DeleteRulesSpec,
  type DropChainSpec,
  inInitialPidNamespace,
  nftAppendRules,
  nftDeleteRules,
  nftDropChain,
  nftTableExists,
} from "./nfnetlink.ts";

/**
 * Reaps the tools of {@linkcode SpawnExecer} runs that returned at their
 * commit. The CNI skeleton calls it before a plugin run ends; other users of
 * the execer call it before they exit.
 */
export { settleChildren } from "../sys/spawn.ts";

/** A firewall tool (iptables-save/-restore, nft) that failed, with its exit status and output. */
export class FirewallToolError extends Error {
  override name = "FirewallToolError";
  /** Exit status of the tool (127: not installed). */
  readonly code: number;
  /** The tool's stderr, trimmed. */
  readonly stderr: string;

  constructor(message: string, options: { code: number; stderr: string }) {
    super(message);
    this.code = options.code;
    this.stderr = options.stderr;
  }
}

/** What a finished command produced. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@linkcode Execer.run}. */
export interface ExecOptions {
  /** Text written to the command's stdin (closed afterwards). @default {undefined} (no stdin) */
  stdin?: string;
  /**
   * The command commits this many nf_tables batches (`iptables-restore`:
   * one per `COMMIT`). An execer may then return as soon as the kernel has
   * announced them (`code` 0, no output) and collect the command's exit
   * later (`settleChildren()`, before the process exits): a restore that
   * deleted rules spends 12-16 ms in exit after its commit.
   */
  commits?: number;
}

/** Runs a command to completion. Never throws for a non-zero exit status. */
export interface Execer {
  run(cmd: string, args: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /**
   * Whether nftables table `family table` exists, answered without a
   * process where the execer can (undefined: it cannot, list the table).
   */
  nftTableExists?(family: string, table: string): boolean | undefined;
  /**
   * Removes an iptables-nft chain and the jumps to it in one nf_tables
   * transaction without a process, if the node is as `spec` says (see
   * {@linkcode nftDropChain}); false or undefined: the caller's tool must.
   */
  nftDropChain?(spec: DropChainSpec): boolean | undefined;
  /**
   * Deletes the rules `spec.pick` chooses in one nf_tables transaction
   * without a process (see {@linkcode nftDeleteRules}); false or undefined:
   * the caller's tool must.
   */
  nftDeleteRules?(spec: DeleteRulesSpec): boolean | undefined;
  /**
   * Appends rules in one nf_tables transaction without a process, if the
   * table is as `spec.ready` needs it (see {@linkcode nftAppendRules}); false
   * or undefined: the caller's tool must.
   */
  nftAppendRules?(spec: AppendRulesSpec): boolean | undefined;
}

/** One recorded call of a {@linkcode RecordingExecer}. */
export interface ExecCall {
  cmd: string;
  args: string[];
  stdin?: string;
}

// Runtimes often start plugins with a short PATH; these hold iptables and nft on every distribution.
const FALLBACK_DIRS = [
  "/usr/local/sbin",
  "/usr/local/bin",
  "/usr/sbin",
  "/usr/bin",
  "/sbin",
  "/bin",
];
const resolved = new Map<string, string | undefined>();

/**
 * Finds `cmd` in `PATH` and the usual sbin directories; returns its path or
 * undefined. Results are cached for the life of the process.
 */
export function findCommand(cmd: string): string | undefined {
  if (cmd.includes("/")) return cmd;
  if (resolved.has(cmd)) return resolved.get(cmd);
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":").filter(Boolean), ...FALLBACK_DIRS];
  let found: string | undefined;
  for (const dir of dirs) {
    try {
      if (Deno.statSync(`${dir}/${cmd}`).isFile) {
        found = `${dir}/${cmd}`;
        break;
      }
    } catch {
      // not in this directory
    }
  }
  resolved.set(cmd, found);
  return found;
}

/**
 * Runs commands with `posix_spawn` (`lib/sys/spawn.ts`, about 1 ms; the
 * first `Deno.Command` of a process costs 5-7 ms); a missing binary yields
 * exit code 127. Collecting a command blocks the JS thread until it is done.
 */
export class SpawnExecer implements Execer {
  /** Runs `cmd args...`, feeding `options.stdin`, and collects its output. */
  async run(cmd: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const path = findCommand(cmd);
    if (path === undefined) return { code: 127, stdout: "", stderr: `${cmd}: command not found` };
    const stdin = options.stdin === undefined ? undefined : new TextEncoder().encode(options.stdin);
    // Listen before the spawn, so that no announcement can be missed.
    const watch = (options.commits ?? 0) > 0 ? openCommitWatch() : undefined;
    let child;
    try {
      child = spawnChild(path, args, { stdin });
    } catch (error) {
      watch?.close();
      if (!(error instanceof OsError)) throw error;
      const code = error.errno === Errno.ENOENT ? 127 : 126;
      return { code, stdout: "", stderr: `${cmd}: ${error.message}` };
    }
    // Collecting blocks; first let callers that start commands together (Promise.all) start theirs.
    await undefined;
    // The watch is closed only after the child has exited: closing an nfnetlink socket waits
    // for nf_tables' deferred cleanup just as the child's exit does.
    if (watch !== undefined) {
      let committed = false;
      try {
        committed = awaitCommits(child, watch, options.commits!);
      } catch (error) {
        try {
          child.finish(); // reap it; its pipes are closed
        } catch {
          // the first error is the one to report
        }
        watch.close();
        throw error;
      }
      if (committed) {
        settleLater(child, (late) => {
          watch.close();
          if (late.code !== 0) warnAfterCommit(cmd, late);
        });
        return { code: 0, stdout: "", stderr: "" };
      }
    }
    let out;
    try {
      out = child.finish();
    } finally {
      watch?.close();
    }
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  }

  /** Asks nf_tables over nfnetlink (one request instead of an `nft list` process). */
  nftTableExists(family: string, table: string): boolean | undefined {
    try {
      return nftTableExists(family, table);
    } catch {
      return undefined; // no nfnetlink here (or no permission): let nft answer
    }
  }

  /** Commits over nfnetlink (no `iptables-restore` process). */
  nftDropChain(spec: DropChainSpec): boolean | undefined {
    try {
      return nftDropChain(spec);
    } catch {
      return undefined; // no nfnetlink here: the tool does it
    }
  }

  /** Commits over nfnetlink (no `iptables-restore` process). */
  nftDeleteRules(spec: DeleteRulesSpec): boolean | undefined {
    try {
      return nftDeleteRules(spec);
    } catch {
      return undefined; // no nfnetlink here: the tool does it
    }
  }

  /** Commits over nfnetlink (no `iptables-restore` process). */
  nftAppendRules(spec: AppendRulesSpec): boolean | undefined {
    try {
      return nftAppendRules(spec);
    } catch {
      // No nfnetlink here, or the caller's readiness check failed: the tool does it, as the
      // node is then not known to be as the batch needs it.
      return undefined;
    }
  }
}

/**
 * A commit watch, or undefined where the announcements cannot be matched to
 * our child (see {@linkcode inInitialPidNamespace}): then only the exit tells.
 */
function openCommitWatch(): CommitWatch | undefined {
  if (!inInitialPidNamespace()) return undefined;
  try {
    return CommitWatch.open();
  } catch {
    return undefined; // no nfnetlink here: wait for the exit
  }
}

/**
 * Whether the kernel announced `count` commits by `child` before it closed
 * its output. False too when the announcements cannot be read (ENOBUFS after
 * a flood of them): then only the exit tells.
 */
function awaitCommits(child: ChildProcess, watch: CommitWatch, count: number): boolean {
  let seen = 0;
  let unreadable = false;
  const committed = child.serviceUntil({
    fd: watch.fd,
    ready: () => {
      try {
        return (seen += watch.commitsBy(child.pid)) >= count;
      } catch {
        unreadable = true;
        return true;
      }
    },
  });
  return committed && !unreadable;
}

function warnAfterCommit(cmd: string, output: ProcessOutput): void {
  const text = new TextDecoder().decode(output.stderr).trim();
  const line = `cnibox: ${cmd} exited with status ${output.code} after its commit${
    text ? `: ${text}` : ""
  }\n`;
  Deno.stderr.writeSync(new TextEncoder().encode(line));
}

/**
 * An {@linkcode Execer} that records every call and either forwards it to a
 * real execer or answers from a function (a fake for unit tests).
 *
 * @example Usage
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const execer = new RecordingExecer(() => ({ code: 0, stdout: "", stderr: "" }));
 * await execer.run("iptables-save", ["-t", "nat"]);
 * assertEquals(execer.calls, [{ cmd: "iptables-save", args: ["-t", "nat"] }]);
 * ```
 */
export class RecordingExecer implements Execer {
  /** Every call so far, in order. */
  readonly calls: ExecCall[] = [];
  #next: Execer | ((call: ExecCall) => ExecResult | Promise<ExecResult>);

  constructor(next: Execer | ((call: ExecCall) => ExecResult | Promise<ExecResult>)) {
    this.#next = next;
  }

  /** Records the call, then forwards or answers it. */
  async run(cmd: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const call: ExecCall = { cmd, args: [...args] };
    if (options.stdin !== undefined) call.stdin = options.stdin;
    this.calls.push(call);
    const next = this.#next;
    return typeof next === "function" ? await next(call) : await next.run(cmd, args, options);
  }

  /** Forwards to a real execer; a scripted one cannot know (undefined). */
  nftTableExists(family: string, table: string): boolean | undefined {
    const next = this.#next;
    return typeof next === "function" ? undefined : next.nftTableExists?.(family, table);
  }

  /** Forwards to a real execer; a scripted one leaves it to the tool (undefined). */
  nftDropChain(spec: DropChainSpec): boolean | undefined {
    const next = this.#next;
    return typeof next === "function" ? undefined : next.nftDropChain?.(spec);
  }

  /** Forwards to a real execer; a scripted one leaves it to the tool (undefined). */
  nftDeleteRules(spec: DeleteRulesSpec): boolean | undefined {
    const next = this.#next;
    return typeof next === "function" ? undefined : next.nftDeleteRules?.(spec);
  }

  /** Forwards to a real execer; a scripted one leaves it to the tool (undefined). */
  nftAppendRules(spec: AppendRulesSpec): boolean | undefined {
    const next = this.#next;
    return typeof next === "function" ? undefined : next.nftAppendRules?.(spec);
  }
}

let shared: Execer | undefined;

/** The process-wide default execer (a {@linkcode SpawnExecer}). */
export function defaultExecer(): Execer {
  shared ??= new SpawnExecer();
  return shared;
}

/**
 * Child processes without `Deno.Command`: `posix_spawn` with pipes, fed and
 * drained with `ppoll`, reaped with `wait4`, all through `libc.ts`.
 *
 * Why: the first use of `Deno.Command` in a process costs 5-7 ms (Deno loads
 * its process and streams support on demand), and every plugin run that
 * starts iptables or nft paid it once; this path costs about 1 ms
 * (docs/bench.md). The price is that {@linkcode ChildProcess.finish} blocks
 * the JS thread until the child has closed its output, which a plugin run,
 * doing one thing at a time, does not notice.
 *
 * @module
 */
import { Errno } from "./errno.ts";
import {
  close,
  dupCloexec,
  open,
  OsError,
  pipe,
  poll,
  type PollEntry,
  POLLIN,
  POLLOUT,
  posixSpawn,
  read,
  setNonblocking,
  wait4,
  write,
} from "./libc.ts";

/** What a finished child produced. */
export interface ProcessOutput {
  /** Exit status; 128 + the signal number when a signal ended it (as a shell reports it). */
  code: number;
  /** The signal that ended the child, if one did. */
  signal?: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
}

/** Options for {@linkcode spawnChild}. */
export interface SpawnOptions {
  /** Bytes written to the child's stdin, which is closed afterwards. @default {undefined} (stdin is /dev/null) */
  stdin?: Uint8Array;
  /** The child's whole environment. @default {Deno.env.toObject()} */
  env?: Record<string, string>;
}

/** An entry of the shared poll set: a pipe of a child, or the caller's extra fd. */
interface Watched extends PollEntry {
  child?: ChildProcess;
}

/**
 * A running child with piped stdout and stderr; call {@linkcode finish} once.
 *
 * Every wait services the pipes of all children not yet drained, not only
 * the one waited for: commands started together (e.g. iptables and ip6tables
 * listings) must all be read, or one could fill its pipe while holding a lock
 * the other waits for (legacy iptables holds the xtables lock until it exits).
 */
export class ChildProcess {
  /** Children whose outputs are still open. */
  static #open = new Set<ChildProcess>();

  /** The child's process id. */
  readonly pid: number;
  #stdin: number | undefined;
  #input: Uint8Array;
  #stdout: number | undefined;
  #stderr: number | undefined;
  #stdoutChunks: Uint8Array[] = [];
  #stderrChunks: Uint8Array[] = [];

  constructor(
    pid: number,
    fds: { stdin?: number; stdout: number; stderr: number },
    input: Uint8Array,
  ) {
    this.pid = pid;
    this.#stdin = fds.stdin;
    this.#input = input;
    this.#stdout = fds.stdout;
    this.#stderr = fds.stderr;
    ChildProcess.#open.add(this);
    // Start feeding now, so that a child started alongside others works while they are collected.
    if (this.#stdin === undefined) return;
    try {
      this.#feed();
    } catch (error) {
      this.#closeAll();
      wait4(pid); // without its pipes the child ends
      throw error;
    }
  }

  /**
   * Feeds and drains the child (and any other child still running) while
   * also waiting for `other` to become readable; each time it is,
   * `other.ready()` decides whether to stop. Returns true when it did, false
   * when the child closed its outputs first (it has exited, or is about to).
   * Call {@linkcode finish} afterwards either way.
   */
  serviceUntil(other: { fd: number; ready: () => boolean }): boolean {
    try {
      return ChildProcess.#pump(this, other);
    } catch (error) {
      this.#closeAll();
      throw error;
    }
  }

  /**
   * Writes the rest of stdin, reads stdout and stderr to their end, then
   * reaps the child. Blocks until the child has closed both outputs.
   */
  finish(): ProcessOutput {
    let failure: unknown;
    try {
      ChildProcess.#pump(this);
    } catch (error) {
      failure = error;
    } finally {
      this.#closeAll();
    }
    // Reaped even after a failure: its pipes are closed, so it ends.
    const status = wait4(this.pid);
    if (failure !== undefined) throw failure;
    const signal = status & 0x7f;
    return {
      code: signal === 0 ? (status >> 8) & 0xff : 128 + signal,
      ...(signal === 0 ? {} : { signal }),
      stdout: concat(this.#stdoutChunks),
      stderr: concat(this.#stderrChunks),
    };
  }

  /** Polls all open children (and `other`) until `target`'s outputs are closed (false) or `other.ready()` (true). */
  static #pump(target: ChildProcess, other?: { fd: number; ready: () => boolean }): boolean {
    const buffer = new Uint8Array(65536);
    while (target.#stdout !== undefined || target.#stderr !== undefined) {
      const entries: Watched[] = [];
      for (const child of ChildProcess.#open) {
        if (child.#stdin !== undefined) {
          entries.push({ fd: child.#stdin, events: POLLOUT, revents: 0, child });
        }
        for (const fd of [child.#stdout, child.#stderr]) {
          if (fd !== undefined) entries.push({ fd, events: POLLIN, revents: 0, child });
        }
      }
      if (other) entries.push({ fd: other.fd, events: POLLIN, revents: 0 });
      poll(entries);
      for (const { fd, revents, child } of entries) {
        if (revents === 0) continue;
        if (child === undefined) {
          if (other!.ready()) return true;
        } else if (fd === child.#stdin) {
          child.#feed();
        } else if (fd === child.#stdout || fd === child.#stderr) {
          child.#drain(fd, buffer);
        }
      }
    }
    return false;
  }

  /** Reads what is there from stdout or stderr; at their end, lets go of the child's pipes. */
  #drain(fd: number, buffer: Uint8Array): void {
    const n = read(fd, buffer);
    if (n > 0) {
      (fd === this.#stdout ? this.#stdoutChunks : this.#stderrChunks).push(buffer.slice(0, n));
      return;
    }
    if (fd === this.#stdout) this.#stdout = closed(fd);
    else this.#stderr = closed(fd);
    // Both outputs closed: the child is done with stdin too, read or not.
    if (this.#stdout === undefined && this.#stderr === undefined) this.#closeAll();
  }

  #closeAll(): void {
    for (const fd of [this.#stdin, this.#stdout, this.#stderr]) if (fd !== undefined) close(fd);
    this.#stdin = this.#stdout = this.#stderr = undefined;
    ChildProcess.#open.delete(this);
  }

  /** Writes what the pipe takes; closes stdin when all is written or the child stopped reading. */
  #feed(): void {
    const fd = this.#stdin!;
    try {
      while (this.#input.length > 0) {
        this.#input = this.#input.subarray(write(fd, this.#input));
      }
    } catch (error) {
      if (error instanceof OsError && error.errno === Errno.EAGAIN) return;
      // EPIPE: the child exited or closed stdin without reading it all; its status says why.
      if (!(error instanceof OsError && error.errno === Errno.EPIPE)) throw error;
    }
    this.#stdin = closed(fd);
  }
}

function closed(fd: number): undefined {
  close(fd);
  return undefined;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const all = new Uint8Array(chunks.reduce((n, chunk) => n + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return all;
}

/** `fd` moved to 3 or above, so that it cannot collide with the stdio slots it is copied to. */
function aboveStdio(fd: number): number {
  if (fd > 2) return fd;
  const moved = dupCloexec(fd, 3);
  close(fd);
  return moved;
}

/**
 * Starts `path` with `args` (argv[0] is `path`), stdout and stderr piped
 * back, stdin fed from `options.stdin` (as far as the pipe takes it now; the
 * rest in {@linkcode ChildProcess.finish}). Throws {@linkcode OsError} when
 * the program cannot be started (ENOENT, EACCES...).
 */
export function spawnChild(
  path: string,
  args: readonly string[],
  options: SpawnOptions = {},
): ChildProcess {
  const env = Object.entries(options.env ?? Deno.env.toObject()).map(([k, v]) => `${k}=${v}`);
  const ours: number[] = [];
  const theirs: number[] = [];
  try {
    let stdinWrite: number | undefined;
    if (options.stdin === undefined) {
      theirs.push(aboveStdio(open("/dev/null")));
    } else {
      const [r, w] = pipe().map(aboveStdio);
      theirs.push(r);
      ours.push(stdinWrite = w);
    }
    const [outRead, outWrite] = pipe().map(aboveStdio);
    ours.push(outRead);
    theirs.push(outWrite);
    const [errRead, errWrite] = pipe().map(aboveStdio);
    ours.push(errRead);
    theirs.push(errWrite);
    const pid = posixSpawn(path, [path, ...args], env, theirs as [number, number, number]);
    for (const fd of theirs.splice(0)) close(fd); // the child has its own copies
    if (stdinWrite !== undefined) {
      try {
        setNonblocking(stdinWrite);
      } catch (error) {
        // Without our ends the child ends; reap it here.
        for (const fd of ours.splice(0)) close(fd);
        wait4(pid);
        throw error;
      }
    }
    const fds = { stdin: stdinWrite, stdout: outRead, stderr: errRead };
    ours.length = 0; // the child object owns them now
    return new ChildProcess(pid, fds, options.stdin ?? new Uint8Array());
  } finally {
    for (const fd of [...theirs, ...ours]) close(fd);
  }
}

const settling: { child: ChildProcess; onExit?: (output: ProcessOutput) => void }[] = [];

/**
 * Leaves the rest of `child` (its exit, usually) to {@linkcode settleChildren}:
 * for a child whose work is known to be done while it is still exiting.
 * `onExit` sees its output then.
 */
export function settleLater(child: ChildProcess, onExit?: (output: ProcessOutput) => void): void {
  settling.push({ child, onExit });
}

/**
 * Reaps every child left to {@linkcode settleLater}. A plugin run calls it
 * before it exits, so it leaves neither orphans nor zombies behind.
 */
export function settleChildren(): void {
  for (const { child, onExit } of settling.splice(0)) {
    try {
      const output = child.finish(); // not inside `onExit?.()`, which would skip it
      onExit?.(output);
    } catch (error) {
      // The run's own outcome is already decided; say what went wrong and go on reaping.
      const text = `cnibox: cannot collect child ${child.pid}: ${(error as Error).message}\n`;
      Deno.stderr.writeSync(new TextEncoder().encode(text));
    }
  }
}

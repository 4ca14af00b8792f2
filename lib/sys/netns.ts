/**
 * Network namespaces: open them as fds, run synchronous code inside one, and
 * compare them. The only module that calls `setns`.
 *
 * `setns` moves only the calling thread. Deno runs JS on one thread and every
 * libc symbol is synchronous, so `withNetns(path, fn)` is safe as long as `fn`
 * is synchronous: open a netlink socket or write a sysctl, then return. A
 * socket opened inside stays bound to that namespace after switching back.
 *
 * Requires root (CAP_SYS_ADMIN) and `--allow-ffi`.
 *
 * @module
 */
import { Errno } from "./errno.ts";
import {
  CLONE_NEWNET,
  close,
  fstatfsType,
  fstatIdentity,
  ioctl,
  open,
  OsError,
  setns,
} from "./libc.ts";

/** Path of the calling thread's own network namespace. */
export const THREAD_NETNS_PATH = "/proc/thread-self/ns/net";

// <linux/magic.h> and <linux/nsfs.h>
const NSFS_MAGIC = 0x6e736673;
const NS_GET_NSTYPE = 0xb703; // _IO(0xb7, 0x3)

/** Why a path could not be used as a network namespace. */
export type NetnsNotFoundReason = "missing" | "not-netns";

/**
 * The path does not exist (`reason: "missing"`) or is not a network namespace
 * file (`reason: "not-netns"`, e.g. a regular file or a mount namespace).
 * Plugins treat a missing namespace on DEL as success.
 */
export class NetnsNotFoundError extends Error {
  override name = "NetnsNotFoundError";
  /** The path that was given. */
  readonly path: string;
  /** What was wrong with it. */
  readonly reason: NetnsNotFoundReason;

  /**
   * Messages are those of the Go plugins' `ns` package, which runtimes and
   * operators already match on. `fsMagic` is the file system type found.
   */
  constructor(
    path: string,
    reason: NetnsNotFoundReason,
    options?: ErrorOptions & { fsMagic?: number },
  ) {
    super(
      reason === "missing"
        ? `failed to Statfs ${JSON.stringify(path)}: no such file or directory`
        : `unknown FS magic on ${JSON.stringify(path)}: ${(options?.fsMagic ?? 0).toString(16)}`,
      options,
    );
    this.path = path;
    this.reason = reason;
  }
}

/**
 * Switching the thread back to its own namespace failed. The thread now runs
 * in the wrong namespace; nothing further is safe, so the process must exit.
 */
export class NetnsRestoreError extends Error {
  override name = "NetnsRestoreError";
  /** Always true: the caller must not continue. */
  readonly fatal = true;
}

/** An open network namespace fd (for `setns` or `IFLA_NET_NS_FD`); close it or use `using`. */
export class NetnsFd implements Disposable {
  #fd: number;
  /** The path the namespace was opened from. */
  readonly path: string;

  constructor(fd: number, path: string) {
    this.#fd = fd;
    this.path = path;
  }

  /** The raw fd; throws once closed. */
  get fd(): number {
    if (this.#fd < 0) throw new TypeError(`Cannot use network namespace fd "${this.path}": closed`);
    return this.#fd;
  }

  /** True until {@linkcode NetnsFd.close} ran. */
  get open(): boolean {
    return this.#fd >= 0;
  }

  /** Closes the fd (idempotent). */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    close(fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Opens a network namespace file, checking that it is one (nsfs, type net).
 * Throws {@linkcode NetnsNotFoundError} for a missing path or any other file.
 *
 * @example Usage
 * ```ts ignore
 * using ns = openNetnsFd("/var/run/netns/blue");
 * handle.linkSetNsFd("veth0", ns);
 * ```
 */
export function openNetnsFd(path: string): NetnsFd {
  let fd: number;
  try {
    fd = open(path);
  } catch (error) {
    if (
      error instanceof OsError && (error.errno === Errno.ENOENT || error.errno === Errno.ENOTDIR)
    ) {
      throw new NetnsNotFoundError(path, "missing", { cause: error });
    }
    throw error;
  }
  try {
    const fsMagic = fstatfsType(fd);
    if (fsMagic !== NSFS_MAGIC) throw new NetnsNotFoundError(path, "not-netns", { fsMagic });
    let type = CLONE_NEWNET;
    try {
      type = ioctl(fd, NS_GET_NSTYPE);
    } catch (error) {
      // Kernels before 4.11 lack NS_GET_NSTYPE; setns will still refuse a wrong type.
      if (!(error instanceof OsError && error.errno === Errno.ENOTTY)) throw error;
    }
    if (type !== CLONE_NEWNET) {
      throw new NetnsNotFoundError(path, "not-netns", { fsMagic: NSFS_MAGIC });
    }
  } catch (error) {
    close(fd);
    throw error;
  }
  return new NetnsFd(fd, path);
}

/** True when `path` is an existing network namespace file. */
export function netnsExists(path: string): boolean {
  try {
    openNetnsFd(path).close();
    return true;
  } catch (error) {
    if (error instanceof NetnsNotFoundError) return false;
    throw error;
  }
}

/** True when both refer to the same network namespace (same nsfs device and inode). */
export function isSameNetns(a: string | NetnsFd, b: string | NetnsFd): boolean {
  using ownedA = typeof a === "string" ? openNetnsFd(a) : undefined;
  using ownedB = typeof b === "string" ? openNetnsFd(b) : undefined;
  const idA = fstatIdentity((ownedA ?? (a as NetnsFd)).fd);
  const idB = fstatIdentity((ownedB ?? (b as NetnsFd)).fd);
  return idA.dev === idB.dev && idA.ino === idB.ino;
}

function isThenable(value: unknown): boolean {
  return typeof value === "object" && value !== null &&
    typeof (value as { then?: unknown }).then === "function";
}

/**
 * Runs a synchronous `fn` with the JS thread inside the network namespace
 * `target` and returns its value; the thread's own namespace is restored
 * afterwards, also when `fn` throws. If restoring fails, throws
 * {@linkcode NetnsRestoreError} (fatal). `fn` must not be async: code after an
 * `await` would run outside the namespace, so a returned promise is rejected
 * with a `TypeError` (after switching back).
 *
 * @example Usage
 * ```ts ignore
 * const socket = withNetns("/var/run/netns/blue", () => NetlinkSocket.open());
 * ```
 */
export function withNetns<T>(target: string | NetnsFd, fn: () => T): T {
  using owned = typeof target === "string" ? openNetnsFd(target) : undefined;
  const ns = owned ?? (target as NetnsFd);
  const home = open(THREAD_NETNS_PATH);
  try {
    setns(ns.fd, CLONE_NEWNET);
    let result: T;
    try {
      result = fn();
    } finally {
      try {
        setns(home, CLONE_NEWNET);
      } catch (error) {
        // deno-lint-ignore no-unsafe-finally
        throw new NetnsRestoreError(
          `Cannot switch the thread back from network namespace "${ns.path}"`,
          { cause: error },
        );
      }
    }
    if (isThenable(result)) {
      // Its rejection would otherwise surface later as an unhandled one.
      Promise.resolve(result).catch(() => {});
      throw new TypeError(
        `Cannot run an async callback in network namespace "${ns.path}": it must be synchronous`,
      );
    }
    return result;
  } finally {
    close(home);
  }
}

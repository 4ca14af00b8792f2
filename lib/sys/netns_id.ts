/**
 * The identity of the calling thread's network namespace, without FFI:
 * per-namespace state (iptables locks, firewall records) is keyed by it.
 *
 * @module
 */

/**
 * The inode number of the calling thread's network namespace (the `N` of
 * `net:[N]`), or undefined when `/proc` cannot tell.
 */
export function currentNetnsInode(): string | undefined {
  try {
    return /\[(\d+)\]/.exec(Deno.readLinkSync("/proc/thread-self/ns/net"))?.[1];
  } catch {
    return undefined;
  }
}

/**
 * Read and write `/proc/sys` keys, optionally inside another network
 * namespace. `/proc/sys/net` shows the namespace of the thread that opens the
 * file, so inside a namespace the open and the read/write happen under
 * `withNetns`, synchronously, through libc.
 *
 * Requires root for writes and `--allow-ffi`.
 *
 * @module
 */
import { close, O_CLOEXEC, O_RDONLY, O_WRONLY, open, read, write } from "./libc.ts";
import { type NetnsFd, withNetns } from "./netns.ts";

/** Options for {@linkcode readSysctl} and {@linkcode writeSysctl}. */
export interface SysctlOptions {
  /**
   * Network namespace (path or open fd) whose value to use.
   * @default {undefined} (the calling thread's namespace)
   */
  netns?: string | NetnsFd;
}

/**
 * Maps a sysctl key to its path under `/proc/sys`, the way `sysctl(8)` and the
 * reference plugins' `toNormalName` do: the first separator decides. With dots
 * ("net.ipv4.conf.eth0/100.rp_filter") dots and slashes swap; with slashes
 * ("net/ipv4/conf/eth0.100/rp_filter") the key is kept as is. A leading "/"
 * is allowed. Throws `RangeError` for empty, `.` or `..` components.
 *
 * @example Usage
 * ```ts
 * import { assertEquals } from "@std/assert";
 * assertEquals(sysctlPath("net.ipv4.ip_forward"), "/proc/sys/net/ipv4/ip_forward");
 * ```
 */
export function sysctlPath(key: string): string {
  let name = key.startsWith("/") ? key.slice(1) : key;
  const dot = name.indexOf(".");
  const slash = name.indexOf("/");
  if (dot !== -1 && (slash === -1 || dot < slash)) {
    name = name.replace(/[./]/g, (c) => (c === "." ? "/" : "."));
  }
  const parts = name.split("/");
  if (name === "" || parts.some((part) => part === "" || part === "." || part === "..")) {
    throw new RangeError(`Cannot use sysctl key "${key}": empty or relative path component`);
  }
  return `/proc/sys/${name}`;
}

function readFile(path: string): string {
  const fd = open(path, { flags: O_RDONLY | O_CLOEXEC });
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const buffer = new Uint8Array(4096);
      const n = read(fd, buffer);
      if (n === 0) break;
      chunks.push(buffer.subarray(0, n));
      total += n;
    }
    const all = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    return new TextDecoder().decode(all);
  } finally {
    close(fd);
  }
}

function writeFile(path: string, value: string): void {
  const fd = open(path, { flags: O_WRONLY | O_CLOEXEC });
  try {
    // proc_sysctl handlers take the whole value in one write.
    write(fd, new TextEncoder().encode(value));
  } finally {
    close(fd);
  }
}

/**
 * Reads a sysctl; returns its text without the one trailing newline.
 * Throws `OsError` (e.g. ENOENT for an unknown key or interface).
 *
 * @example Usage
 * ```ts ignore
 * const forwarding = readSysctl("net/ipv4/ip_forward");
 * ```
 */
export function readSysctl(key: string, options: SysctlOptions = {}): string {
  const path = sysctlPath(key);
  const text = options.netns === undefined
    ? readFile(path)
    : withNetns(options.netns, () => readFile(path));
  return text.endsWith("\n") ? text.slice(0, -1) : text;
}

/**
 * Writes a sysctl. Equivalent to: `sysctl -w net.ipv4.ip_forward=1`
 * (`ip netns exec NS sysctl ...` with `netns`). Requires root.
 *
 * @example Usage
 * ```ts ignore
 * writeSysctl("net/ipv6/conf/eth0/accept_dad", "0", { netns: "/var/run/netns/blue" });
 * ```
 */
export function writeSysctl(key: string, value: string, options: SysctlOptions = {}): void {
  const path = sysctlPath(key);
  if (options.netns === undefined) writeFile(path, value);
  else withNetns(options.netns, () => writeFile(path, value));
}

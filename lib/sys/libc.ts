/**
 * The one FFI boundary of the project: libc (`libc.so.6`), with thin typed
 * wrappers that turn `-1` into {@linkcode OsError}.
 *
 * System calls go through libc's generic `syscall()`, bound once, rather
 * than through one bound symbol per function: Deno compiles a call stub for
 * every bound symbol (0.15-0.8 ms each, more with more parameters), which a
 * plugin run paid for every function it used (3-6 ms for a netlink handle).
 * `syscall()` returns -1 and sets errno exactly like the named wrappers.
 * Only `posix_spawn` and its file actions are bound by name (a child
 * process cannot be made from JS with system calls alone).
 *
 * Every symbol is `nonblocking: false` on purpose: `setns` switches only the
 * calling thread and errno is thread-local, so every call must run on the JS
 * thread. errno is read through `__errno_location()` in the statement right
 * after the failing call, before any other JS can run and clobber it.
 *
 * Requires `--allow-ffi` (in practice `-A`).
 *
 * @module
 */
import { errnoDescription, errnoName } from "./errno.ts";

/** System call numbers: x86_64's own table, and the generic one arm64 uses. */
const SYSCALL_NUMBERS = {
  x86_64: {
    read: 0,
    write: 1,
    close: 3,
    fstat: 5,
    ioctl: 16,
    socket: 41,
    sendto: 44,
    recvfrom: 45,
    bind: 49,
    getsockname: 51,
    setsockopt: 54,
    fstatfs: 138,
    gettid: 186,
    openat: 257,
    setns: 308,
    pipe2: 293,
    fcntl: 72,
    ppoll: 271,
    wait4: 61,
  },
  aarch64: {
    read: 63,
    write: 64,
    close: 57,
    fstat: 80,
    ioctl: 29,
    socket: 198,
    sendto: 206,
    recvfrom: 207,
    bind: 200,
    getsockname: 204,
    setsockopt: 208,
    fstatfs: 44,
    gettid: 178,
    openat: 56,
    setns: 268,
    pipe2: 59,
    fcntl: 25,
    ppoll: 73,
    wait4: 260,
  },
} as const;

type SyscallName = keyof typeof SYSCALL_NUMBERS.x86_64;

/** `openat(2)`'s "relative to the working directory". */
const AT_FDCWD = -100;

const SYMBOLS = {
  // long syscall(long number, ...): six register arguments, integers or addresses.
  syscall: {
    parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i64",
    nonblocking: false,
  },
  // int *__errno_location(void)
  __errno_location: { parameters: [], result: "pointer", nonblocking: false },
  // int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
  //                 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
  // What system calls cannot replace: the child must not run JS between fork and exec.
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
    nonblocking: false,
  },
  // int posix_spawn_file_actions_init(posix_spawn_file_actions_t *actions)
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32", nonblocking: false },
  // int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *actions, int fd, int newfd)
  posix_spawn_file_actions_adddup2: {
    parameters: ["buffer", "i32", "i32"],
    result: "i32",
    nonblocking: false,
  },
  // int posix_spawn_file_actions_destroy(posix_spawn_file_actions_t *actions)
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32", nonblocking: false },
} as const satisfies Deno.ForeignLibraryInterface;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
type SymbolName = keyof typeof SYMBOLS;

const loaded: Partial<Libc> = {};

/** Symbols bound together: one `dlopen` for the four that every spawn needs. */
const GROUPS: readonly (readonly SymbolName[])[] = [[
  "posix_spawn",
  "posix_spawn_file_actions_init",
  "posix_spawn_file_actions_adddup2",
  "posix_spawn_file_actions_destroy",
]];

/** One libc function, bound on first use (errno is only needed after a failure). */
function fn<K extends SymbolName>(name: K): Libc[K] {
  let bound = loaded[name] as Libc[K] | undefined;
  if (bound === undefined) {
    const names = GROUPS.find((group) => group.includes(name)) ?? [name];
    try {
      const subset = Object.fromEntries(names.map((n) => [n, SYMBOLS[n]]));
      const symbols = Deno.dlopen("libc.so.6", subset).symbols as Partial<Libc>;
      for (const n of names) (loaded as Record<string, unknown>)[n] = symbols[n];
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      throw new Error("Cannot load libc.so.6", { cause: error });
    }
    bound = loaded[name] as Libc[K];
  }
  return bound;
}

function syscallNumber(name: SyscallName): number {
  const table = SYSCALL_NUMBERS[Deno.build.arch as keyof typeof SYSCALL_NUMBERS];
  if (table === undefined) throw new Error(`Cannot make system calls on ${Deno.build.arch}`);
  return table[name];
}

/** An argument of a system call: an integer, or a buffer passed by address (null: NULL). */
type SyscallArg = number | bigint | ArrayBufferView | null;

function address(arg: SyscallArg): bigint {
  if (arg === null) return 0n;
  if (typeof arg === "number" || typeof arg === "bigint") return BigInt(arg);
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(arg)));
}

/**
 * `syscall(2)`: returns the kernel's result, or -1 with errno set. Buffers
 * are passed by address; the caller holds them for the whole (synchronous) call.
 */
function sys(name: SyscallName, ...args: SyscallArg[]): number {
  const a = args.map(address);
  while (a.length < 6) a.push(0n);
  return Number(fn("syscall")(BigInt(syscallNumber(name)), a[0], a[1], a[2], a[3], a[4], a[5]));
}

/** Reads the calling thread's errno. Call it right after the failing libc call. */
export function errno(): number {
  const pointer = fn("__errno_location")();
  if (pointer === null) return 0;
  return new Deno.UnsafePointerView(pointer).getInt32();
}

/** A failed system call: which call, the errno, and optional context such as a path. */
export class OsError extends Error {
  override name = "OsError";
  /** The errno value (see `lib/sys/errno.ts`). */
  readonly errno: number;
  /** The errno name, e.g. "ENOENT". */
  readonly code: string;
  /** The libc function that failed, e.g. "setns". */
  readonly syscall: string;

  constructor(errno: number, syscall: string, detail = "", options?: ErrorOptions) {
    const what = detail ? `${syscall} ${detail}` : syscall;
    super(`Cannot ${what}: ${errnoDescription(errno)} (${errnoName(errno)})`, options);
    this.errno = errno;
    this.code = errnoName(errno);
    this.syscall = syscall;
  }
}

// Values from <asm-generic/fcntl.h>, <linux/sched.h>, <sys/socket.h> (x86_64).
/** `O_RDONLY` */
export const O_RDONLY = 0;
/** `O_WRONLY` */
export const O_WRONLY = 1;
/** `O_CLOEXEC` */
export const O_CLOEXEC = 0x80000;
/** `CLONE_NEWNET`, the nstype for `setns` on a network namespace. */
export const CLONE_NEWNET = 0x40000000;
/** `SOCK_RAW` */
export const SOCK_RAW = 3;
/** `SOCK_CLOEXEC` */
export const SOCK_CLOEXEC = 0x80000;
/** `SOL_SOCKET` */
export const SOL_SOCKET = 1;
/** `SO_RCVBUF` */
export const SO_RCVBUF = 8;
/** `SO_RCVTIMEO` (struct timeval on x86_64: two 64-bit fields) */
export const SO_RCVTIMEO = 20;
/** `MSG_TRUNC`: recvfrom returns the real datagram length even when it did not fit. */
export const MSG_TRUNC = 0x20;
/** `MSG_DONTWAIT`: this receive fails with EAGAIN instead of blocking. */
export const MSG_DONTWAIT = 0x40;

const ENCODER = new TextEncoder();

/** Encodes a string as a NUL-terminated C string. */
export function cstr(text: string): Uint8Array {
  return ENCODER.encode(text + "\0");
}

const EINTR = 4;
const EAGAIN = 11;

/** `socket(2)`; returns the new fd. `protocol` defaults to 0. */
export function socket(domain: number, options: { type: number; protocol?: number }): number {
  const fd = sys("socket", domain, options.type, options.protocol ?? 0);
  if (fd === -1) throw new OsError(errno(), "socket");
  return fd;
}

/** `bind(2)` with a raw sockaddr. */
export function bind(fd: number, address: Uint8Array): void {
  if (sys("bind", fd, address, address.length) === -1) throw new OsError(errno(), "bind");
}

/** `getsockname(2)` into `address`; returns the sockaddr length the kernel reported. */
export function getsockname(fd: number, address: Uint8Array): number {
  const length = new Uint32Array([address.length]);
  if (sys("getsockname", fd, address, length) === -1) {
    throw new OsError(errno(), "getsockname");
  }
  return length[0];
}

/** `setsockopt(2)` with a raw option value. */
export function setsockopt(
  fd: number,
  option: { level: number; name: number; value: Uint8Array },
): void {
  const { level, name, value } = option;
  if (sys("setsockopt", fd, level, name, value, value.length) === -1) {
    throw new OsError(errno(), "setsockopt", `(level ${level}, option ${name})`);
  }
}

/** `sendto(2)`; returns the number of bytes sent. Retries on EINTR. */
export function sendto(
  fd: number,
  data: Uint8Array,
  options: { address?: Uint8Array; flags?: number } = {},
): number {
  const address = options.address ?? null;
  for (;;) {
    const n = sys(
      "sendto",
      fd,
      data,
      data.length,
      options.flags ?? 0,
      address,
      address?.length ?? 0,
    );
    if (n !== -1) return n;
    const code = errno();
    if (code !== EINTR) throw new OsError(code, "sendto");
  }
}

/**
 * `recvfrom(2)` into `buffer`; returns the byte count (with `MSG_TRUNC` in
 * `flags`, the full datagram length even if larger than `buffer`). The sender's
 * sockaddr is written into `options.address` when given. Retries on EINTR.
 */
export function recvfrom(
  fd: number,
  buffer: Uint8Array,
  options: { address?: Uint8Array; flags?: number } = {},
): number {
  const n = tryRecvfrom(fd, buffer, options);
  if (n === null) throw new OsError(EAGAIN, "recvfrom");
  return n;
}

/**
 * {@linkcode recvfrom} for a receive that must not block (`MSG_DONTWAIT` or
 * a non-blocking socket): null where it would block (EAGAIN; a receive
 * timeout, `SO_RCVTIMEO`, yields null too). Waiting for data is no failure,
 * so no error object is made for it (an error costs more than the call).
 */
export function tryRecvfrom(
  fd: number,
  buffer: Uint8Array,
  options: { address?: Uint8Array; flags?: number } = {},
): number | null {
  const address = options.address ?? null;
  const length = new Uint32Array([address?.length ?? 0]);
  for (;;) {
    const n = sys(
      "recvfrom",
      fd,
      buffer,
      buffer.length,
      options.flags ?? 0,
      address,
      address === null ? null : length,
    );
    if (n !== -1) return n;
    const code = errno();
    if (code === EAGAIN) return null;
    if (code !== EINTR) throw new OsError(code, "recvfrom");
  }
}

/** `close(2)`. EINTR is not retried (Linux closes the fd anyway). */
export function close(fd: number): void {
  if (sys("close", fd) === -1) {
    const code = errno();
    if (code !== EINTR) throw new OsError(code, "close");
  }
}

/** `open(2)`; returns the fd. `flags` defaults to `O_RDONLY | O_CLOEXEC`. */
export function open(path: string, options: { flags?: number; mode?: number } = {}): number {
  const flags = options.flags ?? (O_RDONLY | O_CLOEXEC);
  const name = cstr(path);
  for (;;) {
    const fd = sys("openat", AT_FDCWD, name, flags, options.mode ?? 0);
    if (fd !== -1) return fd;
    const code = errno();
    if (code !== EINTR) throw new OsError(code, "open", JSON.stringify(path));
  }
}

/** `read(2)` into `buffer`; returns the byte count (0 at end of file). Retries on EINTR. */
export function read(fd: number, buffer: Uint8Array): number {
  for (;;) {
    const n = sys("read", fd, buffer, buffer.length);
    if (n !== -1) return n;
    const code = errno();
    if (code !== EINTR) throw new OsError(code, "read");
  }
}

/** `write(2)`; returns the byte count written. Retries on EINTR. */
export function write(fd: number, data: Uint8Array): number {
  for (;;) {
    const n = sys("write", fd, data, data.length);
    if (n !== -1) return n;
    const code = errno();
    if (code !== EINTR) throw new OsError(code, "write");
  }
}

/** `setns(2)` on the calling thread. */
export function setns(fd: number, nstype: number): void {
  if (sys("setns", fd, nstype) === -1) throw new OsError(errno(), "setns");
}

/** `fstatfs(2)`; returns `f_type`, the filesystem magic number. */
export function fstatfsType(fd: number): number {
  // struct statfs is 120 bytes on x86_64; f_type (__fsword_t, 8 bytes) comes first.
  const buffer = new Uint8Array(128);
  if (sys("fstatfs", fd, buffer) === -1) throw new OsError(errno(), "fstatfs");
  return Number(new DataView(buffer.buffer).getBigInt64(0, true));
}

/** `fstat(2)`; returns the device and inode numbers, which identify a namespace file. */
export function fstatIdentity(fd: number): { dev: bigint; ino: bigint } {
  // struct stat on x86_64: st_dev (u64) at 0, st_ino (u64) at 8; 144 bytes in all.
  const buffer = new Uint8Array(144);
  if (sys("fstat", fd, buffer) === -1) throw new OsError(errno(), "fstat");
  const view = new DataView(buffer.buffer);
  return { dev: view.getBigUint64(0, true), ino: view.getBigUint64(8, true) };
}

/** `ioctl(2)` with no argument; returns the non-negative result. */
export function ioctl(fd: number, request: number): number {
  const result = sys("ioctl", fd, request);
  if (result === -1) throw new OsError(errno(), "ioctl", `0x${request.toString(16)}`);
  return result;
}

/** `gettid(2)`: the calling thread's id (the JS thread, since no symbol is nonblocking). */
export function gettid(): number {
  return sys("gettid");
}

/** `O_NONBLOCK` (x86_64 and arm64) */
export const O_NONBLOCK = 0x800;
/** `poll(2)` events: readable, writable, error, hang-up. */
export const POLLIN = 0x1;
/** `POLLOUT` */
export const POLLOUT = 0x4;
/** `POLLERR` */
export const POLLERR = 0x8;
/** `POLLHUP` */
export const POLLHUP = 0x10;

const F_DUPFD_CLOEXEC = 1030;
const F_GETFL = 3;
const F_SETFL = 4;

/** `pipe2(2)` with `O_CLOEXEC`; returns `[read end, write end]`. */
export function pipe(): [number, number] {
  const fds = new Int32Array(2);
  if (sys("pipe2", fds, O_CLOEXEC) === -1) throw new OsError(errno(), "pipe2");
  return [fds[0], fds[1]];
}

/** `fcntl(fd, F_DUPFD_CLOEXEC, lowest)`: a close-on-exec copy of `fd` numbered `lowest` or above. */
export function dupCloexec(fd: number, lowest = 3): number {
  const copy = sys("fcntl", fd, F_DUPFD_CLOEXEC, lowest);
  if (copy === -1) throw new OsError(errno(), "fcntl", `F_DUPFD_CLOEXEC of fd ${fd}`);
  return copy;
}

/** Sets `O_NONBLOCK` on `fd`. */
export function setNonblocking(fd: number): void {
  const flags = sys("fcntl", fd, F_GETFL);
  if (flags === -1 || sys("fcntl", fd, F_SETFL, flags | O_NONBLOCK) === -1) {
    throw new OsError(errno(), "fcntl", `O_NONBLOCK on fd ${fd}`);
  }
}

/** One entry of {@linkcode poll}: the fd, the events asked for, and (after the call) those that happened. */
export interface PollEntry {
  fd: number;
  events: number;
  revents: number;
}

/** `ppoll(2)` without timeout or signal mask: waits until an entry is ready, fills `revents`. */
export function poll(entries: PollEntry[]): void {
  // struct pollfd { int fd; short events; short revents; }
  const buffer = new Uint8Array(entries.length * 8);
  const view = new DataView(buffer.buffer);
  entries.forEach((entry, i) => {
    view.setInt32(i * 8, entry.fd, true);
    view.setInt16(i * 8 + 4, entry.events, true);
  });
  for (;;) {
    if (sys("ppoll", buffer, entries.length, null, null, 8) !== -1) break;
    const code = errno();
    if (code !== EINTR) throw new OsError(code, "ppoll");
  }
  entries.forEach((entry, i) => entry.revents = view.getInt16(i * 8 + 6, true));
}

/** `wait4(2)` for one child; returns its raw wait status. Retries on EINTR. */
export function wait4(pid: number): number {
  const status = new Int32Array(1);
  for (;;) {
    if (sys("wait4", pid, status, 0, null) !== -1) return status[0];
    const code = errno();
    if (code !== EINTR) throw new OsError(code, "wait4", `pid ${pid}`);
  }
}

const SIGPIPE = 13;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;

/**
 * glibc's `posix_spawnattr_t` (public layout in `<spawn.h>`: `short __flags`
 * at 0, `sigset_t __sd` at 8, `sigset_t __ss` at 136; 336 bytes), filled by
 * hand so no `posix_spawnattr_*` symbol has to be bound. The child gets an
 * empty signal mask and SIGPIPE back at its default: Deno ignores SIGPIPE,
 * and an ignored signal stays ignored across exec (Rust's `Command` resets it too).
 */
function spawnAttributes(): Uint8Array {
  const attr = new Uint8Array(336);
  new DataView(attr.buffer).setInt16(0, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK, true);
  const bit = SIGPIPE - 1;
  attr[8 + (bit >> 3)] |= 1 << (bit & 7);
  return attr;
}

/**
 * A NULL-terminated `char *[]` over `strings`, with the strings in the same
 * buffer behind the pointers, so passing the buffer keeps them alive.
 */
function cstrArray(strings: readonly string[]): Uint8Array {
  const encoded = strings.map(cstr);
  const table = 8 * (encoded.length + 1);
  const buffer = new Uint8Array(table + encoded.reduce((n, s) => n + s.length, 0));
  const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
  const pointers = new DataView(buffer.buffer);
  let offset = table;
  encoded.forEach((s, i) => {
    buffer.set(s, offset);
    pointers.setBigUint64(i * 8, base + BigInt(offset), true);
    offset += s.length;
  });
  return buffer;
}

/**
 * `posix_spawn(3)` of `path` with `argv` (including argv[0]) and `env`;
 * `stdio[i]` becomes the child's fd `i` (give fds above 2). The child also
 * inherits every other fd without close-on-exec. Returns the child's pid.
 * glibc reports a failed exec (ENOENT, EACCES...) as the result.
 */
export function posixSpawn(
  path: string,
  argv: readonly string[],
  env: readonly string[],
  stdio: readonly [number, number, number],
): number {
  // posix_spawn_file_actions_t: 80 bytes on LP64 glibc; init allocates, destroy frees.
  const actions = new Uint8Array(80);
  let result = fn("posix_spawn_file_actions_init")(actions);
  if (result !== 0) throw new OsError(result, "posix_spawn_file_actions_init");
  try {
    for (const [slot, fd] of stdio.entries()) {
      result = fn("posix_spawn_file_actions_adddup2")(actions, fd, slot);
      if (result !== 0) throw new OsError(result, "posix_spawn_file_actions_adddup2");
    }
    const pid = new Int32Array(1);
    result = fn("posix_spawn")(
      pid,
      cstr(path),
      actions,
      spawnAttributes(),
      cstrArray(argv),
      cstrArray(env),
    );
    if (result !== 0) throw new OsError(result, "posix_spawn", JSON.stringify(path));
    return pid[0];
  } finally {
    fn("posix_spawn_file_actions_destroy")(actions);
  }
}

/**
 * Linux errno numbers (x86_64/generic, from `<asm-generic/errno-base.h>` and
 * `<asm-generic/errno.h>`) with their names and `strerror` texts.
 *
 * Pure data: importing this never loads libc, so error classes elsewhere can
 * name an errno without paying for FFI.
 *
 * @module
 */

/** Errno values by kernel name. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  ENOSPC: 28,
  EROFS: 30,
  EPIPE: 32,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EPROTO: 71,
  ERESTART: 85,
  EMSGSIZE: 90,
  EPROTOTYPE: 91,
  ENOPROTOOPT: 92,
  EPROTONOSUPPORT: 93,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ECONNRESET: 104,
  ENOBUFS: 105,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
  EALREADY: 114,
  EINPROGRESS: 115,
} as const;

/** An errno name known to {@linkcode Errno}. */
export type ErrnoName = keyof typeof Errno;

// strerror() texts as glibc prints them; used in error messages.
const DESCRIPTIONS: Record<number, string> = {
  1: "Operation not permitted",
  2: "No such file or directory",
  3: "No such process",
  4: "Interrupted system call",
  5: "Input/output error",
  6: "No such device or address",
  7: "Argument list too long",
  9: "Bad file descriptor",
  11: "Resource temporarily unavailable",
  12: "Cannot allocate memory",
  13: "Permission denied",
  14: "Bad address",
  16: "Device or resource busy",
  17: "File exists",
  18: "Invalid cross-device link",
  19: "No such device",
  20: "Not a directory",
  21: "Is a directory",
  22: "Invalid argument",
  23: "Too many open files in system",
  24: "Too many open files",
  25: "Inappropriate ioctl for device",
  28: "No space left on device",
  30: "Read-only file system",
  32: "Broken pipe",
  34: "Numerical result out of range",
  36: "File name too long",
  38: "Function not implemented",
  39: "Directory not empty",
  40: "Too many levels of symbolic links",
  61: "No data available",
  71: "Protocol error",
  85: "Interrupted system call should be restarted",
  90: "Message too long",
  91: "Protocol wrong type for socket",
  92: "Protocol not available",
  93: "Protocol not supported",
  95: "Operation not supported",
  97: "Address family not supported by protocol",
  98: "Address already in use",
  99: "Cannot assign requested address",
  100: "Network is down",
  101: "Network is unreachable",
  104: "Connection reset by peer",
  105: "No buffer space available",
  107: "Transport endpoint is not connected",
  110: "Connection timed out",
  111: "Connection refused",
  113: "No route to host",
  114: "Operation already in progress",
  115: "Operation now in progress",
};

const NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Errno).map(([name, value]) => [value, name]),
);

/** Returns the kernel name of an errno ("EEXIST"), or "E<n>" when unknown. */
export function errnoName(errno: number): string {
  return NAMES[errno] ?? `E${errno}`;
}

/** Returns the `strerror` text of an errno ("File exists"), or "Unknown error <n>". */
export function errnoDescription(errno: number): string {
  return DESCRIPTIONS[errno] ?? `Unknown error ${errno}`;
}

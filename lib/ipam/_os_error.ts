/**
 * Go's `*fs.PathError` text (`open /x: permission denied`) for Deno file
 * system errors, so store failures read like the reference plugin's.
 *
 * @module
 */

const REASONS: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
  EEXIST: "file exists",
  EROFS: "read-only file system",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  ELOOP: "too many levels of symbolic links",
  ENAMETOOLONG: "file name too long",
  EIO: "input/output error",
};

/** Wraps a Deno error as `<op> <path>: <reason>` with the original as `cause`. */
export function goOsError(op: string, path: string, error: unknown): Error {
  const code = (error as { code?: string }).code ?? "";
  const reason = REASONS[code] ?? (error instanceof Error ? error.message : String(error));
  return new Error(`${op} ${path}: ${reason}`, { cause: error });
}

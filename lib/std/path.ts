/**
 * Local stand-in for `jsr:@std/path` (POSIX only), built on `node:path`.
 *
 * `deno.json` maps `@std/path` here because JSR is unreachable in this
 * environment; the exported names and signatures are std's.
 *
 * @module
 */
import posix from "node:path";
import { fileURLToPath } from "node:url";

/** Last portion of a path, optionally without `suffix`. */
export function basename(path: string, suffix = ""): string {
  return posix.basename(path, suffix);
}

/** Directory part of a path. */
export function dirname(path: string): string {
  return posix.dirname(path);
}

/** Extension of the last portion, with its dot. */
export function extname(path: string): string {
  return posix.extname(path);
}

/** Joins and normalises path segments. */
export function join(...paths: string[]): string {
  return posix.join(...paths);
}

/** Resolves segments to an absolute path. */
export function resolve(...paths: string[]): string {
  return posix.resolve(...paths);
}

/** Relative path from `from` to `to`. */
export function relative(from: string, to: string): string {
  return posix.relative(from, to);
}

/** Whether `path` is absolute. */
export function isAbsolute(path: string): boolean {
  return posix.isAbsolute(path);
}

/** Converts a `file:` URL to a path. */
export function fromFileUrl(url: string | URL): string {
  return fileURLToPath(url);
}

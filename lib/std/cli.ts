/**
 * Local stand-in for `jsr:@std/cli`'s `parseArgs`, built on `node:util`.
 *
 * `deno.json` maps `@std/cli` here because JSR is unreachable in this
 * environment. It supports the subset of std's options this project uses:
 * `string`, `boolean`, `collect`, `default` and `alias`. Unlike std it rejects
 * unknown flags (`node:util` strict mode), which is what a CLI wants.
 *
 * @module
 */
import { parseArgs as nodeParseArgs } from "node:util";

/** Options for {@linkcode parseArgs}, named as in `@std/cli`. */
export interface ParseOptions {
  /** Flags that take a string value. */
  string?: readonly string[];
  /** Flags that take no value. */
  boolean?: readonly string[];
  /** String flags that may repeat; their values are collected in an array. */
  collect?: readonly string[];
  /** Default values per flag. */
  default?: Record<string, string | boolean | string[]>;
  /** Single-letter short names per flag, e.g. `{ h: "help" }`. */
  alias?: Record<string, string>;
}

/** Parsed flags plus the positional arguments in `_`. */
export type Args = Record<string, string | boolean | string[] | undefined> & { _: string[] };

/** Parses command-line arguments; throws `TypeError` on an unknown flag or a missing value. */
export function parseArgs(args: readonly string[], options: ParseOptions = {}): Args {
  type NodeOption = { type: "string" | "boolean"; multiple?: boolean; short?: string };
  const spec: Record<string, NodeOption> = {};
  for (const name of options.string ?? []) spec[name] = { type: "string" };
  for (const name of options.collect ?? []) spec[name] = { type: "string", multiple: true };
  for (const name of options.boolean ?? []) spec[name] = { type: "boolean" };
  for (const [short, long] of Object.entries(options.alias ?? {})) {
    if (spec[long] && short.length === 1) spec[long].short = short;
  }
  const { values, positionals } = nodeParseArgs({
    args: [...args],
    options: spec,
    allowPositionals: true,
    strict: true,
  });
  const result: Args = { _: positionals };
  for (const [name, value] of Object.entries(options.default ?? {})) result[name] = value;
  for (const [name, value] of Object.entries(values)) result[name] = value as Args[string];
  for (const name of options.boolean ?? []) result[name] ??= false;
  return result;
}

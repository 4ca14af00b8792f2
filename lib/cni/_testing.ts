/**
 * Test helpers for the plugin-running tests of lib/cni: a scratch directory
 * and executable scripts to stand in for plugins.
 *
 * @module
 */

/** Runs `fn` with a fresh directory (its real path), removed afterwards. */
export async function withDir(
  prefix: string,
  fn: (dir: string) => Promise<void> | void,
): Promise<void> {
  const dir = Deno.realPathSync(Deno.makeTempDirSync({ prefix }));
  try {
    await fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Options for {@linkcode writeScript}. */
export interface WriteScriptOptions {
  /** File mode. @default {0o755} */
  mode?: number;
}

/** Writes `text` (shebang included) to `path` with an exact mode, umask notwithstanding. */
export function writeScript(path: string, text: string, options: WriteScriptOptions = {}): void {
  const mode = options.mode ?? 0o755;
  Deno.writeTextFileSync(path, text, { mode });
  Deno.chmodSync(path, mode);
}

/**
 * The local journal of plugin runs: one JSON line per run (plugin, command,
 * outcome, duration), appended to a small file that rotates once it reaches
 * a size cap, so it never grows past about twice the cap.
 *
 * Plugin runs load this module, so it imports nothing (no hono, no `node:*`)
 * and does its work synchronously: one `stat` (for the size cap) and one
 * append (`open(O_APPEND)`, `write`, `close`). A single write of a short line
 * to an `O_APPEND` file is not interleaved with other writers, so concurrent
 * runs need no lock. Nothing here may fail or delay a run: every error is
 * swallowed.
 *
 * @module
 */

/** Where runs are recorded unless `CNIBOX_JOURNAL` says otherwise (tmpfs: gone after a reboot). */
export const DEFAULT_JOURNAL_PATH = "/run/cnibox/journal";

/** The journal rotates when the next line would take it past this size. */
export const DEFAULT_JOURNAL_MAX_BYTES = 1024 * 1024;

/** One plugin run as the skeleton reports it. */
export interface RunEntry {
  /** The plugin's name, e.g. `"bridge"`. */
  plugin: string;
  /** The CNI verb (`CNI_COMMAND`), e.g. `"ADD"`; `""` for a bare run. */
  command: string;
  /** Whether the run succeeded. */
  outcome: "ok" | "error";
  /** Wall time of the run in milliseconds. */
  durationMs: number;
  /** The CNI error code when the run failed. */
  code?: number;
  /** The network name from the config, when known. */
  network?: string;
  /** `CNI_CONTAINERID`, when given. */
  containerId?: string;
  /** `CNI_IFNAME`, when given. */
  ifname?: string;
  /** When the run ended, in ms since the epoch. @default {Date.now()} */
  time?: number;
}

/** Options for {@linkcode recordRun}. */
export interface RecordRunOptions {
  /**
   * Journal file; `""` disables recording.
   * @default {the `CNIBOX_JOURNAL` environment variable, else DEFAULT_JOURNAL_PATH}
   */
  path?: string;
  /** Size cap before rotation to `<path>.1`. @default {DEFAULT_JOURNAL_MAX_BYTES} */
  maxBytes?: number;
}

/** The journal path for an environment: `CNIBOX_JOURNAL` when set (empty disables), else the default. */
export function journalPath(env: { CNIBOX_JOURNAL?: string | undefined } = {}): string {
  return env.CNIBOX_JOURNAL ?? DEFAULT_JOURNAL_PATH;
}

function envJournalPath(): string {
  try {
    return journalPath({ CNIBOX_JOURNAL: Deno.env.get("CNIBOX_JOURNAL") });
  } catch {
    return DEFAULT_JOURNAL_PATH; // no env permission: fall back to the default
  }
}

/** Renders one entry as the journal line it is stored as (without the newline). */
export function formatRunEntry(entry: RunEntry): string {
  const line: Record<string, string | number> = {
    time: entry.time ?? Date.now(),
    plugin: entry.plugin,
    command: entry.command,
    outcome: entry.outcome,
    durationMs: Math.round(entry.durationMs * 1000) / 1000,
  };
  if (entry.code !== undefined) line.code = entry.code;
  if (entry.network) line.network = entry.network;
  if (entry.containerId) line.containerId = entry.containerId;
  if (entry.ifname) line.ifname = entry.ifname;
  return JSON.stringify(line);
}

const APPEND = { append: true, create: true } as const;
// Deno applies `mode` on every write, so it is passed only when the file is new.
const CREATE = { append: true, create: true, mode: 0o640 } as const;

function parentDir(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash > 0 ? path.slice(0, slash) : "/";
}

/**
 * Appends one run to the journal. Never throws and never waits for a lock;
 * a run that cannot be recorded is simply not recorded.
 *
 * @example Usage
 * ```ts ignore
 * recordRun({ plugin: "bridge", command: "ADD", outcome: "ok", durationMs: 41.2 });
 * ```
 */
export function recordRun(entry: RunEntry, options: RecordRunOptions = {}): void {
  try {
    const path = options.path ?? envJournalPath();
    if (path === "") return;
    const maxBytes = options.maxBytes ?? DEFAULT_JOURNAL_MAX_BYTES;
    const line = formatRunEntry(entry) + "\n";
    let info: Deno.FileInfo | undefined;
    try {
      info = Deno.statSync(path);
    } catch {
      // No journal yet: the write below creates it.
    }
    if (info && !info.isFile) return;
    if (info && info.size > 0 && info.size + line.length > maxBytes) {
      // Rotate only if `path` is still the file we measured: another run may have rotated it.
      if (Deno.statSync(path).ino === info.ino) Deno.renameSync(path, `${path}.1`);
      info = undefined;
    }
    try {
      Deno.writeTextFileSync(path, line, info ? APPEND : CREATE);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) return;
      Deno.mkdirSync(parentDir(path), { recursive: true, mode: 0o755 });
      Deno.writeTextFileSync(path, line, CREATE);
    }
  } catch {
    // A journal problem (read-only /run, full disk, no permission) must never fail a plugin run.
  }
}

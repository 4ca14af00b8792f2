/**
 * Reading the plugin-run journal that {@linkcode recordRun} writes: parsing
 * its lines, and following the file across rotations so a long-running
 * reader sees every run exactly once.
 *
 * @module
 */
import type { RunEntry } from "./journal.ts";

/** A journal entry as read back: `time` is always set. */
export type JournalEntry = RunEntry & { time: number };

const COMMANDS = new Set(["ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS", ""]);
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/;

/**
 * Parses one journal line; returns `undefined` for anything that is not a
 * well-formed entry. Plugin and command names are restricted to short plain
 * tokens because they become metric labels.
 */
export function parseJournalLine(line: string): JournalEntry | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return undefined;
  const r = raw as Record<string, unknown>;
  if (typeof r.plugin !== "string" || !NAME.test(r.plugin)) return undefined;
  if (typeof r.command !== "string" || !COMMANDS.has(r.command)) return undefined;
  if (r.outcome !== "ok" && r.outcome !== "error") return undefined;
  if (typeof r.durationMs !== "number" || !Number.isFinite(r.durationMs) || r.durationMs < 0) {
    return undefined;
  }
  if (typeof r.time !== "number" || !Number.isFinite(r.time)) return undefined;
  const entry: JournalEntry = {
    time: r.time,
    plugin: r.plugin,
    command: r.command,
    outcome: r.outcome,
    durationMs: r.durationMs,
  };
  if (typeof r.code === "number" && Number.isInteger(r.code)) entry.code = r.code;
  if (typeof r.network === "string") entry.network = r.network;
  if (typeof r.containerId === "string") entry.containerId = r.containerId;
  if (typeof r.ifname === "string") entry.ifname = r.ifname;
  return entry;
}

/** Parses a chunk of journal text; malformed lines are skipped. */
export function parseJournal(text: string): JournalEntry[] {
  const entries: JournalEntry[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const entry = parseJournalLine(line);
    if (entry) entries.push(entry);
  }
  return entries;
}

/** Options for {@linkcode JournalTail}. */
export interface JournalTailOptions {
  /** Most bytes read from one file per poll (older bytes are skipped). @default {4 MiB} */
  maxReadBytes?: number;
}

const decoder = new TextDecoder();

async function statOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch {
    return undefined;
  }
}

/**
 * Follows a journal file and its rotation `<path>.1`. The first
 * {@linkcode JournalTail.poll} returns everything in both files (oldest
 * first); later polls return only lines appended since, including the tail
 * of a file that was rotated away in between.
 */
export class JournalTail {
  readonly path: string;
  #ino: number | null = null;
  #offset = 0;
  #partial = "";
  #started = false;
  #maxReadBytes: number;
  #polling: Promise<unknown> = Promise.resolve();

  constructor(path: string, options: JournalTailOptions = {}) {
    this.path = path;
    this.#maxReadBytes = options.maxReadBytes ?? 4 * 1024 * 1024;
  }

  /**
   * Reads what is new since the last poll. Never throws for missing or
   * unreadable files. Concurrent calls run one after the other: each line is
   * returned once (two scrapes at once must not both count it).
   */
  poll(): Promise<JournalEntry[]> {
    const run = this.#polling.then(() => this.#poll());
    this.#polling = run.catch(() => {});
    return run;
  }

  async #poll(): Promise<JournalEntry[]> {
    const entries: JournalEntry[] = [];
    const current = await statOrUndefined(this.path);
    if (!this.#started) {
      this.#started = true;
      const rotated = await statOrUndefined(`${this.path}.1`);
      if (rotated?.isFile) {
        entries.push(...parseJournal((await this.#read(`${this.path}.1`, 0)).text));
      }
    } else if (this.#ino !== null && current?.ino !== this.#ino) {
      // The file we followed was rotated: finish it from `<path>.1` if it is still there.
      const rotated = await statOrUndefined(`${this.path}.1`);
      if (rotated?.ino === this.#ino) {
        entries.push(...this.#lines((await this.#read(`${this.path}.1`, this.#offset)).text));
      }
      this.#ino = null;
    }
    if (!current?.isFile) {
      this.#reset(null);
      return entries;
    }
    if (current.ino !== this.#ino || current.size < this.#offset) this.#reset(current.ino);
    if (current.size > this.#offset) {
      const { text, end } = await this.#read(this.path, this.#offset);
      this.#offset = end;
      entries.push(...this.#lines(text));
    }
    return entries;
  }

  #reset(ino: number | null): void {
    this.#ino = ino;
    this.#offset = 0;
    this.#partial = "";
  }

  #lines(text: string): JournalEntry[] {
    const all = this.#partial + text;
    const cut = all.lastIndexOf("\n");
    // A run may be writing its line right now: keep an unterminated tail for the next poll.
    this.#partial = all.slice(cut + 1);
    return parseJournal(all.slice(0, cut + 1));
  }

  /** Reads `path` from byte `from` to its current end; `end` is where the next read starts. */
  async #read(path: string, from: number): Promise<{ text: string; end: number }> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch {
      return { text: "", end: from };
    }
    try {
      const size = (await file.stat()).size;
      const start = Math.max(from, size - this.#maxReadBytes);
      if (size <= start) return { text: "", end: Math.max(from, size) };
      await file.seek(start, Deno.SeekMode.Start);
      const buffer = new Uint8Array(size - start);
      let filled = 0;
      while (filled < buffer.length) {
        const n = await file.read(buffer.subarray(filled));
        if (n === null) break;
        filled += n;
      }
      return { text: decoder.decode(buffer.subarray(0, filled)), end: start + filled };
    } finally {
      file.close();
    }
  }
}

/**
 * An owner → lease index for one host-local lease directory, so ADD, DEL and
 * CHECK cost the same with 1 or 100 000 leases. The reference plugin reads
 * every lease file on each ADD (`GetByID`) and DEL (`ReleaseByID`).
 *
 * Layout: `<dataDir>/.cnibox/<network>/` (outside the lease directory, so the
 * lease directory looks exactly as the reference leaves it, and the
 * reference's directory walk never reads index files; network names cannot
 * start with a dot, so the folder never collides with a network):
 *
 * - `bXX`: 256 hash buckets, JSON `{ "<lease file content, trimmed>": ["<file name>", …] }`;
 * - `stamp`: JSON `{ format, buckets, dev, ino, mtimeMs, ctimeMs }` of the
 *   lease directory as it was right after our last change.
 *
 * Staleness: any change of a directory's entries (the reference creating or
 * deleting a lease) makes the kernel set its mtime and ctime to one and the
 * same instant. After each change of ours we move the directory's mtime 10 s
 * back with `utime` and record (ino, mtime, ctime): a pair with mtime ≠ ctime
 * that no later entry change can reproduce, whatever the clock granularity.
 * If the directory does not match the stamp on the next run, someone else
 * changed it and the index is rebuilt from one scan; otherwise it is trusted.
 * Callers still verify every hit against the lease file before acting, so a
 * stale entry can never cause a wrong release. Everything happens under the
 * lease directory's `lock` flock.
 *
 * @module
 */

import { tryParseIp } from "../ip/cidr.ts";

/** Name of the folder (inside the data dir) that holds the per-network indexes. */
export const INDEX_ROOT = ".cnibox";

const FORMAT = 1;
const BUCKETS = 256;
const STAMP = "stamp";
/** How far back the lease directory's mtime is moved; larger than any file system's time granularity. */
const MTIME_SHIFT_MS = 10_000;

interface Stamp {
  format: number;
  buckets: number;
  dev: number;
  ino: number;
  mtimeMs: number;
  ctimeMs: number;
}

/** One lease file found by a scan. */
export interface ScannedLease {
  /** File name (the IP address as text). */
  name: string;
  /** File content with surrounding whitespace trimmed: `<id>\r\n<ifname>` or a legacy `<id>`. */
  key: string;
}

/**
 * Reads every lease file of a directory: regular files whose name parses as
 * an IP address. Unreadable files are skipped. Missing directory: no leases.
 */
export function scanLeaseDir(dir: string): ScannedLease[] {
  const leases: ScannedLease[] = [];
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = Deno.readDirSync(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return leases;
    throw error;
  }
  for (const entry of entries) {
    if (!entry.isFile || !tryParseIp(entry.name)) continue;
    try {
      leases.push({ name: entry.name, key: Deno.readTextFileSync(`${dir}/${entry.name}`).trim() });
    } catch {
      // Vanished or unreadable: the reference skips it too.
    }
  }
  return leases;
}

/** FNV-1a over UTF-16 code units, folded to a bucket number. */
function bucketOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return (h ^ (h >>> 8) ^ (h >>> 16) ^ (h >>> 24)) & (BUCKETS - 1);
}

function bucketName(bucket: number): string {
  return `b${bucket.toString(16).padStart(2, "0")}`;
}

function stampOf(info: Deno.FileInfo): Stamp | undefined {
  if (!info.mtime || !info.ctime) return undefined;
  return {
    format: FORMAT,
    buckets: BUCKETS,
    dev: info.dev,
    ino: info.ino ?? 0,
    mtimeMs: info.mtime.getTime(),
    ctimeMs: info.ctime.getTime(),
  };
}

function sameStamp(a: Stamp | undefined, b: Stamp | undefined): boolean {
  return !!a && !!b && a.format === b.format && a.buckets === b.buckets && a.dev === b.dev &&
    a.ino === b.ino && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

/** A stamp is only meaningful if no kernel entry change could have produced it (mtime ≠ ctime). */
function isOurStamp(stamp: Stamp): boolean {
  return Math.floor(stamp.mtimeMs / 1000) < Math.floor(stamp.ctimeMs / 1000);
}

/** Options for {@linkcode LeaseIndex.open}. */
export interface LeaseIndexOptions {
  /** Where the index lives. @default {`<dirname(leaseDir)>/.cnibox/<basename(leaseDir)>`} */
  indexDir?: string;
  /** Rebuild from a full scan even if the stamp matches. @default {false} */
  rebuild?: boolean;
}

/**
 * The owner index of one lease directory. Open it only while holding the
 * directory's lock, and `persist()` before releasing the lock.
 */
export class LeaseIndex {
  readonly #leaseDir: string;
  readonly #indexDir: string;
  #loadedStamp: Stamp | undefined;
  #buckets = new Map<number, Map<string, string[]>>();
  #dirty = new Set<number>();
  #rebuilt = false;
  #poisoned = false;
  #lastScan: ScannedLease[] = [];
  /** After a rebuild every bucket file is rewritten (and stale ones removed) on persist. */
  #rewriteAll = false;

  private constructor(leaseDir: string, indexDir: string) {
    this.#leaseDir = leaseDir;
    this.#indexDir = indexDir;
  }

  /** Opens the index of `leaseDir`, rebuilding it from one scan if the directory changed behind our back. */
  static open(leaseDir: string, options: LeaseIndexOptions = {}): LeaseIndex {
    const slash = leaseDir.lastIndexOf("/");
    const parent = slash < 0 ? "." : leaseDir.slice(0, slash);
    const indexDir = options.indexDir ?? `${parent}/${INDEX_ROOT}/${leaseDir.slice(slash + 1)}`;
    const index = new LeaseIndex(leaseDir, indexDir);
    let stamp: Stamp | undefined;
    try {
      stamp = JSON.parse(Deno.readTextFileSync(`${indexDir}/${STAMP}`));
    } catch {
      stamp = undefined;
    }
    const current = stampOf(Deno.statSync(leaseDir));
    if (!options.rebuild && stamp && sameStamp(stamp, current) && isOurStamp(stamp)) {
      index.#loadedStamp = stamp;
    } else {
      index.rebuild();
    }
    return index;
  }

  /** True when this open had to rebuild the index from a full scan. */
  get rebuilt(): boolean {
    return this.#rebuilt;
  }

  /** The leases found by the last rebuild (empty if the index was trusted). */
  get lastScan(): ScannedLease[] {
    return this.#lastScan;
  }

  /** Where the index files live. */
  get indexDir(): string {
    return this.#indexDir;
  }

  /** Replaces the index with one built from a full scan of the lease directory; returns the scan. */
  rebuild(): ScannedLease[] {
    const leases = scanLeaseDir(this.#leaseDir);
    this.#buckets.clear();
    for (let b = 0; b < BUCKETS; b++) this.#buckets.set(b, new Map());
    for (const lease of leases) this.#insert(lease.key, lease.name);
    this.#dirty.clear();
    this.#rebuilt = true;
    this.#rewriteAll = true;
    this.#loadedStamp = undefined;
    this.#lastScan = leases;
    return leases;
  }

  #bucket(bucket: number): Map<string, string[]> {
    let map = this.#buckets.get(bucket);
    if (!map) {
      map = new Map();
      try {
        const json = JSON.parse(Deno.readTextFileSync(`${this.#indexDir}/${bucketName(bucket)}`));
        for (const [key, names] of Object.entries(json)) {
          if (Array.isArray(names)) map.set(key, names.filter((n) => typeof n === "string"));
        }
      } catch (error) {
        // A missing bucket is empty; a torn or unreadable one cannot be trusted.
        if (!(error instanceof Deno.errors.NotFound)) {
          this.rebuild();
          return this.#buckets.get(bucket)!;
        }
      }
      this.#buckets.set(bucket, map);
    }
    return map;
  }

  #insert(key: string, name: string): void {
    const bucket = bucketOf(key);
    const map = this.#bucket(bucket);
    const names = map.get(key) ?? [];
    if (!names.includes(name)) {
      names.push(name);
      map.set(key, names);
      this.#dirty.add(bucket);
    }
  }

  /** File names recorded for a key (may be stale: verify before acting). */
  lookup(key: string): readonly string[] {
    return this.#bucket(bucketOf(key)).get(key) ?? [];
  }

  /** Records that file `name` now holds `key`. */
  add(key: string, name: string): void {
    this.#insert(key, name);
  }

  /** Forgets that file `name` holds `key`. */
  remove(key: string, name: string): void {
    const bucket = bucketOf(key);
    const map = this.#bucket(bucket);
    const names = map.get(key);
    if (!names?.includes(name)) return;
    const rest = names.filter((n) => n !== name);
    if (rest.length > 0) map.set(key, rest);
    else map.delete(key);
    this.#dirty.add(bucket);
  }

  /** Marks the index as unreliable: the next open rebuilds it. */
  poison(): void {
    this.#poisoned = true;
  }

  /**
   * Writes changed buckets and re-stamps the lease directory. The stamp is
   * removed while bucket files are in flux, so a crash at any point makes the
   * next run rebuild. Best effort: failures only cost that rebuild.
   */
  persist(): void {
    try {
      if (this.#poisoned) throw new Error("index poisoned");
      const before = stampOf(Deno.statSync(this.#leaseDir));
      const dirChanged = !sameStamp(before, this.#loadedStamp);
      if (this.#dirty.size === 0 && !dirChanged && !this.#rewriteAll) return;
      Deno.mkdirSync(this.#indexDir, { recursive: true, mode: 0o700 });
      this.#removeStamp();
      if (this.#rewriteAll) {
        for (const entry of Deno.readDirSync(this.#indexDir)) {
          const bucket = /^b[0-9a-f]{2}$/.test(entry.name) ? parseInt(entry.name.slice(1), 16) : -1;
          if (bucket >= 0 && !this.#buckets.get(bucket)?.size) {
            Deno.removeSync(`${this.#indexDir}/${entry.name}`);
          }
        }
        for (const [bucket, map] of this.#buckets) if (map.size > 0) this.#dirty.add(bucket);
        this.#rewriteAll = false;
      }
      for (const bucket of this.#dirty) this.#writeBucket(bucket);
      this.#dirty.clear();
      let stamp = before;
      if (dirChanged) {
        const info = Deno.statSync(this.#leaseDir);
        const shifted = new Date(info.mtime!.getTime() - MTIME_SHIFT_MS);
        Deno.utimeSync(this.#leaseDir, info.atime ?? new Date(), shifted);
        stamp = stampOf(Deno.statSync(this.#leaseDir));
        if (stamp?.mtimeMs !== shifted.getTime()) {
          throw new Error("cannot stamp the lease directory");
        }
      }
      if (!stamp || !isOurStamp(stamp)) throw new Error("cannot stamp the lease directory");
      Deno.writeTextFileSync(`${this.#indexDir}/${STAMP}`, JSON.stringify(stamp), { mode: 0o600 });
      this.#loadedStamp = stamp;
    } catch {
      this.#removeStamp();
    }
  }

  #removeStamp(): void {
    try {
      Deno.removeSync(`${this.#indexDir}/${STAMP}`);
    } catch {
      // Nothing to remove, or cannot: then the stamp no longer matches anyway.
    }
  }

  #writeBucket(bucket: number): void {
    const path = `${this.#indexDir}/${bucketName(bucket)}`;
    const map = this.#buckets.get(bucket);
    if (!map || map.size === 0) {
      try {
        Deno.removeSync(path);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      return;
    }
    Deno.writeTextFileSync(path, JSON.stringify(Object.fromEntries(map)), { mode: 0o600 });
  }
}

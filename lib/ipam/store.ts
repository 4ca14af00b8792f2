/**
 * The host-local lease store, byte-compatible with the reference plugin's
 * `disk.Store` so either implementation can take over a node mid-life:
 *
 * ```
 * <dataDir>/<network>/                 0755
 *   10.77.0.2          "<containerID>\r\n<ifname>"  0600, created O_EXCL, no newline
 *   fd77::2            same
 *   last_reserved_ip.0 "10.77.0.2"  one per range-set index, rewritten on every reservation
 *   lock               empty, 0750, flock(LOCK_EX) for the whole operation
 * ```
 *
 * Files holding only a container id (written by old versions) are honoured
 * for lookup and release. Owner lookups go through a {@linkcode LeaseIndex},
 * so they do not scan the directory; every hit is verified against the lease
 * file before it is acted on.
 *
 * @module
 */

import { goJoinPath } from "../cni/_go.ts";
import type { Attachment } from "../cni/types.ts";
import { formatIp, type IpAddress, tryParseIp } from "../ip/cidr.ts";
import { goOsError } from "./_os_error.ts";
import { INDEX_ROOT, LeaseIndex, scanLeaseDir, type ScannedLease } from "./lease_index.ts";

/** The reference's default `dataDir`. */
export const DEFAULT_DATA_DIR = "/var/lib/cni/networks";
/** Separator between container id and interface name in a lease file. */
export const LINE_BREAK = "\r\n";
/** Prefix of the per-range-set round-robin files. */
export const LAST_IP_PREFIX = "last_reserved_ip.";

const encoder = new TextEncoder();

function writeAll(file: Deno.FsFile, text: string): void {
  const data = encoder.encode(text);
  let off = 0;
  while (off < data.length) off += file.writeSync(data.subarray(off));
}

/**
 * The lease directory of a network: `<dataDir or default>/<network>`,
 * cleaned like the reference's `filepath.Join` (lexically: `a/link/../b` is
 * `a/b`), so both implementations use the same directory.
 */
export function leaseDirOf(network: string, dataDir = ""): string {
  return goJoinPath(dataDir === "" ? DEFAULT_DATA_DIR : dataDir, network);
}

/** The content key of a lease owned by (id, ifname), as written and as matched. */
export function leaseKey(id: string, ifname: string): string {
  return `${id.trim()}${LINE_BREAK}${ifname}`;
}

/** One lease as found on disk. */
export interface Lease {
  ip: IpAddress;
  /** The file name. */
  name: string;
  containerId: string;
  /** Undefined for a legacy lease file that holds only the container id. */
  ifname?: string;
}

/** Splits a trimmed lease file content into owner fields. */
export function parseLeaseKey(key: string): { containerId: string; ifname?: string } {
  const at = key.indexOf(LINE_BREAK);
  return at < 0
    ? { containerId: key }
    : { containerId: key.slice(0, at), ifname: key.slice(at + 2) };
}

/**
 * Lists the leases of a lease directory without locking (a snapshot).
 * A missing directory has no leases.
 */
export function readLeases(leaseDir: string): Lease[] {
  return scanLeaseDir(leaseDir).map(({ name, key }) => ({
    ip: tryParseIp(name)!,
    name,
    ...parseLeaseKey(key),
  }));
}

/** Options for {@linkcode DiskStore.open}. */
export interface DiskStoreOptions {
  /** Root of the lease directories; empty means {@linkcode DEFAULT_DATA_DIR}. @default {""} */
  dataDir?: string;
  /** Use the owner index (false: scan every lease file per lookup, like the reference). @default {true} */
  index?: boolean;
}

/**
 * An open, locked lease directory. Open with `using store = await
 * DiskStore.open(...)`; the lock is held until the store is disposed.
 */
export class DiskStore implements Disposable {
  /** The lease directory. */
  readonly dir: string;
  readonly #lock: Deno.FsFile;
  readonly #useIndex: boolean;
  #index: LeaseIndex | undefined;
  #closed = false;

  private constructor(dir: string, lock: Deno.FsFile, useIndex: boolean) {
    this.dir = dir;
    this.#lock = lock;
    this.#useIndex = useIndex;
  }

  /**
   * Creates the lease directory if needed (0755, as the reference) and takes
   * its lock (flock on `<dir>/lock`, created 0750).
   * @throws {Error} Go-style `mkdir <dir>: permission denied` and the like.
   */
  static async open(network: string, options: DiskStoreOptions = {}): Promise<DiskStore> {
    const dir = leaseDirOf(network, options.dataDir);
    try {
      Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
    } catch (error) {
      throw goOsError("mkdir", dir, error);
    }
    const lockPath = `${dir}/lock`;
    let lock: Deno.FsFile;
    try {
      lock = Deno.openSync(lockPath, { read: true, write: true, create: true, mode: 0o750 });
    } catch (error) {
      throw goOsError("open", lockPath, error);
    }
    try {
      // Synchronous when uncontended; only a wait goes through Deno's thread pool.
      if (!lock.tryLockSync(true)) await lock.lock(true);
    } catch (error) {
      lock.close();
      throw goOsError("flock", lockPath, error);
    }
    return new DiskStore(dir, lock, options.index ?? true);
  }

  /** The index, opened (and if need be rebuilt) on first use. */
  get index(): LeaseIndex | undefined {
    if (!this.#useIndex) return undefined;
    this.#index ??= LeaseIndex.open(this.dir);
    return this.#index;
  }

  /** Rebuilds the index from a fresh scan and returns the scan (for whole-directory work such as GC). */
  #rescan(): ScannedLease[] {
    if (!this.#index) {
      this.#index = LeaseIndex.open(this.dir, { rebuild: true });
      return this.#index.lastScan;
    }
    return this.#index.rebuild();
  }

  #contentOf(name: string): string | undefined {
    try {
      return Deno.readTextFileSync(`${this.dir}/${name}`).trim();
    } catch {
      return undefined;
    }
  }

  /** Lease file names whose content is exactly one of `keys`, in the reference's (lexical) walk order. */
  #namesFor(...keys: string[]): string[] {
    const index = this.index;
    if (!index) {
      // One pass over the directory, as the reference walks it.
      return scanLeaseDir(this.dir).filter((l) => keys.includes(l.key)).map((l) => l.name).sort();
    }
    const found = keys.flatMap((key) => index.lookup(key).map((name) => ({ key, name })));
    if (found.some(({ key, name }) => this.#contentOf(name) !== key)) {
      // The index disagrees with the disk: something changed files in place.
      index.rebuild();
      return keys.flatMap((key) => index.lookup(key)).sort();
    }
    return found.map(({ name }) => name).sort();
  }

  /** Where a lease is staged before it is linked into place (outside the lease directory). */
  #scratchPath(): string {
    const slash = this.dir.lastIndexOf("/");
    return `${this.dir.slice(0, slash)}/${INDEX_ROOT}/${this.dir.slice(slash + 1)}/lease.tmp`;
  }

  #linkNewLease(path: string, key: string): "created" | "taken" | "unsupported" {
    const scratch = this.#scratchPath();
    try {
      // Unlink first: a scratch file left by a kill may still be a second name of a live lease.
      Deno.removeSync(scratch);
    } catch {
      // Absent, as it should be.
    }
    try {
      Deno.mkdirSync(scratch.slice(0, scratch.lastIndexOf("/")), { recursive: true, mode: 0o700 });
      const file = Deno.openSync(scratch, { write: true, createNew: true, mode: 0o600 });
      try {
        writeAll(file, key);
      } finally {
        file.close();
      }
    } catch {
      return "unsupported";
    }
    try {
      Deno.linkSync(scratch, path);
      return "created";
    } catch (error) {
      return error instanceof Deno.errors.AlreadyExists ? "taken" : "unsupported";
    } finally {
      try {
        Deno.removeSync(scratch);
      } catch {
        // Left for the next reservation, which unlinks it before use.
      }
    }
  }

  /** The reference's way: O_EXCL create, then write. False when the address is taken. */
  #createLeaseInPlace(path: string, key: string): boolean {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true, write: true, createNew: true, mode: 0o600 });
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) return false;
      throw goOsError("open", path, error);
    }
    try {
      writeAll(file, key);
    } catch (error) {
      file.close();
      try {
        Deno.removeSync(path);
      } catch {
        this.#index?.poison();
      }
      throw goOsError("write", path, error);
    }
    file.close();
    return true;
  }

  /**
   * Creates the lease file for `ip` (0600, never replacing an existing one)
   * and records it as the range set's last reservation. Returns false when
   * the address is taken.
   *
   * The reference creates the file with O_EXCL and then writes the owner, so
   * a kill between the two leaves an empty lease nobody can release by id.
   * Here the content is written to a scratch file first and hard-linked into
   * place: link(2) fails with EEXIST like O_EXCL, and the lease appears with
   * its owner or not at all. Where hard links are refused, the reference's
   * two-step way is used.
   */
  reserve(id: string, ifname: string, ip: IpAddress, rangeId: string): boolean {
    const name = formatIp(ip);
    const path = `${this.dir}/${name}`;
    const key = leaseKey(id, ifname);
    const linked = this.#linkNewLease(path, key);
    if (linked === "taken") return false;
    if (linked === "unsupported" && !this.#createLeaseInPlace(path, key)) return false;
    this.index?.add(key, name);
    const lastPath = `${this.dir}/${LAST_IP_PREFIX}${rangeId}`;
    try {
      // Mode applies on creation only, as Go's os.WriteFile.
      const last = Deno.openSync(lastPath, {
        write: true,
        create: true,
        truncate: true,
        mode: 0o600,
      });
      try {
        writeAll(last, name);
      } finally {
        last.close();
      }
    } catch (error) {
      throw goOsError("open", lastPath, error);
    }
    return true;
  }

  /** The address in `last_reserved_ip.<rangeId>`, if the file exists and parses. */
  lastReservedIp(rangeId: string): IpAddress | undefined {
    try {
      // No trimming: the reference parses the raw content.
      return tryParseIp(Deno.readTextFileSync(`${this.dir}/${LAST_IP_PREFIX}${rangeId}`));
    } catch {
      return undefined;
    }
  }

  /** Names of all entries in the lease directory (one directory read, no file reads). */
  fileNames(): Set<string> {
    const names = new Set<string>();
    for (const entry of Deno.readDirSync(this.dir)) names.add(entry.name);
    return names;
  }

  /** Addresses held by (id, ifname), or by a legacy id-only file of `id`. */
  getById(id: string, ifname: string): IpAddress[] {
    return this.#namesFor(leaseKey(id, ifname), id.trim()).map((name) => tryParseIp(name)!);
  }

  /** True when (id, ifname) or a legacy file of `id` holds any address. */
  findById(id: string, ifname: string): boolean {
    // The reference looks for exact matches first, then legacy ones: the answer is the same.
    return this.#namesFor(leaseKey(id, ifname), id.trim()).length > 0;
  }

  #releaseKey(key: string): boolean {
    let found = false;
    for (const name of this.#namesFor(key)) {
      try {
        Deno.removeSync(`${this.dir}/${name}`);
      } catch {
        continue; // The reference ignores removal errors and goes on.
      }
      this.index?.remove(key, name);
      found = true;
    }
    return found;
  }

  /**
   * Deletes the leases of (id, ifname); if there are none, deletes legacy
   * files holding just `id` (the reference's `ReleaseByID`).
   */
  releaseById(id: string, ifname: string): void {
    if (!this.#releaseKey(leaseKey(id, ifname))) this.#releaseKey(id.trim());
  }

  /**
   * Releases every lease whose owner is not among `valid` (CNI 1.1 GC). A
   * legacy id-only lease is kept when any valid attachment has its container
   * id. An empty lease file has no owner and is released. Files that are
   * not leases (lock, last_reserved_ip.N) are never touched. Returns the
   * released addresses.
   */
  gc(valid: readonly Attachment[]): IpAddress[] {
    const keep = new Set(valid.map((a) => leaseKey(a.containerID, a.ifname)));
    const keepIds = new Set(valid.map((a) => a.containerID.trim()));
    const leases = this.#useIndex ? this.#rescan() : scanLeaseDir(this.dir);
    const released: IpAddress[] = [];
    for (
      const { name, key } of leases.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    ) {
      // An empty lease is a writer killed between create and write (the
      // reference's two-step create); under the lock nobody is still writing it.
      const owner = parseLeaseKey(key);
      const alive = key !== "" &&
        (owner.ifname === undefined ? keepIds.has(owner.containerId) : keep.has(key));
      if (alive) continue;
      try {
        Deno.removeSync(`${this.dir}/${name}`);
      } catch {
        continue;
      }
      this.#index?.remove(key, name);
      released.push(tryParseIp(name)!);
    }
    return released;
  }

  /** Persists the index and releases the lock. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#index?.persist();
    } finally {
      this.#lock.close(); // closing the descriptor drops the flock
    }
  }

  /** Same as {@linkcode DiskStore.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

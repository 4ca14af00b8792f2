/**
 * Read-decide-apply for one table: read it once (`iptables -t <table> -S`), let
 * the caller plan against that listing, apply everything with one
 * `iptables-restore`. Two processes per family at most, none to apply when
 * nothing is missing.
 *
 * Concurrency: plugin runs for many containers may overlap. Three things
 * keep shared state right:
 * 1. Runs of this program take an exclusive `flock` on one lock file around
 *    read-decide-apply, so they never act on a stale listing of each other.
 * 2. Shared chains are never declared (that flushes them); they are created
 *    with `-N`, and jumps into them are added in the same batch. If anyone
 *    else (another CNI implementation, an admin) created the chain after our
 *    listing, `-N` fails, the kernel discards the whole batch, and we read
 *    again and re-plan. Deletions (`-D`) likewise fail the batch if the rule
 *    vanished, and are re-planned.
 * 3. iptables-nft-restore commits each table in one netlink transaction,
 *    so nobody ever sees half a batch.
 * The one unguarded case is a foreign tool inserting the very same jump
 * between our listing and our restore; that leaves a harmless duplicate,
 * the same race the reference plugins have among themselves.
 *
 * @module
 */
import { currentNetnsInode } from "../sys/netns_id.ts";
import type { Execer } from "./exec.ts";
import {
  applyRestore,
  type Family,
  IptablesError,
  readChains,
  readTable,
  RestoreBatch,
  type Table,
} from "./iptables.ts";
import { isBuiltinChain, TablePlan } from "./plan.ts";

/** Default lock file prefix; the netns inode is appended (`/run` if there is no `/run/lock`). */
export const DEFAULT_LOCK_PATH = "/run/lock/cnibox-iptables.lock";
const FALLBACK_LOCK_PATH = "/run/cnibox-iptables.lock";

/**
 * The lock path for the calling thread's network namespace: iptables state
 * is per namespace, so runs in different namespaces (podman in a private
 * one, tests, benchmarks) need not wait for each other. The host namespace
 * keeps one well-known file per namespace inode.
 */
function namespacedLockPath(path: string): string {
  const inode = currentNetnsInode();
  return inode ? path.replace(/\.lock$/, `-${inode}.lock`) : path;
}

/** Options for {@linkcode withLock}. */
export interface LockOptions {
  /** Lock file path; `""` disables locking. @default {DEFAULT_LOCK_PATH} */
  lockPath?: string;
}

/**
 * Runs `fn` holding an exclusive flock on the lock file. If the lock file
 * cannot be opened (read-only /run, no permission), runs without it: the
 * batch-level checks still keep shared chains intact.
 */
export async function withLock<T>(fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const paths = options.lockPath === undefined
    ? [DEFAULT_LOCK_PATH, FALLBACK_LOCK_PATH].map(namespacedLockPath)
    : [options.lockPath].filter(Boolean);
  let file: Deno.FsFile | undefined;
  for (const path of paths) {
    try {
      file = Deno.openSync(path, { create: true, write: true, mode: 0o600 });
      // The uncontended case stays synchronous: a blocking call goes through
      // Deno's thread pool and costs ~0.5-1 ms per transaction.
      if (!file.tryLockSync(true)) await file.lock(true);
      break;
    } catch {
      file?.close();
      file = undefined;
    }
  }
  try {
    return await fn();
  } finally {
    file?.close(); // closing drops the flock
  }
}

/** Options for {@linkcode transact}. */
export interface TransactOptions extends LockOptions {
  /** Families to work on, each with its own listing and batch. */
  families: readonly Family[];
  /** How to start iptables tools. */
  execer: Execer;
  /** Attempts per family when a batch is refused because the table changed. @default {3} */
  attempts?: number;
  /**
   * Report a family whose table cannot be listed (no ip6tables, no kernel
   * support) in its outcome instead of failing. @default {false}
   */
  tolerateUnusable?: boolean;
  /**
   * A cheaper first try: list only `chains` and plan with `build` (its plan
   * refuses to read other chains). If that batch is refused (e.g. a `-C`
   * guard found a shared rule missing), the family goes the normal way:
   * whole table, the main `build`.
   */
  scoped?: {
    chains: readonly string[];
    build: (plan: TablePlan, family: Family) => void;
  };
  /**
   * The cheapest first try, with no listing at all: `build` plans against
   * the chains `assume` returns for the family, as the caller expects them
   * (an assumed {@linkcode TablePlan}: owned chains it creates are `-N`,
   * shared rules it relies on are `-C` guards, rules it deletes must exist),
   * so the batch itself fails when the node is not as expected (a repeated
   * ADD, a node's first ADD, an operator's edit). Then the scoped and
   * whole-table tries follow. `assume` returning undefined skips this try.
   */
  unlisted?: {
    assume: (family: Family) => ReadonlyMap<string, readonly string[]> | undefined;
    build: (plan: TablePlan, family: Family) => void;
  };
}

/** What {@linkcode transact} did for one family. */
export interface FamilyOutcome {
  family: Family;
  /** The applied restore input, or "" when nothing needed changing. */
  applied: string;
  /** Why the table could not be listed (only with `tolerateUnusable`). */
  unusable?: IptablesError;
}

/**
 * Reads `table` once per family, calls `build(plan, family)` to plan
 * against it, and applies the plan with one restore per family (families in
 * parallel), all under the lock. A refused batch is re-read and re-planned
 * up to `attempts` times; the last error is thrown.
 *
 * @example Usage
 * ```ts ignore
 * await transact("filter", (plan) => plan.ensureChain("CNI-FORWARD"), {
 *   families: [4], execer: defaultExecer(),
 * });
 * ```
 */
export async function transact(
  table: Table,
  build: (plan: TablePlan, family: Family) => void,
  options: TransactOptions,
): Promise<FamilyOutcome[]> {
  const attempts = options.attempts ?? 3;
  const execer = options.execer;
  /** Applies a planned batch; a refused batch's IptablesError is returned, not thrown. */
  const apply = async (
    batch: RestoreBatch,
    family: Family,
  ): Promise<FamilyOutcome | IptablesError> => {
    if (batch.isEmpty) return { family, applied: "" };
    try {
      await applyRestore(batch, { family, execer });
      return { family, applied: batch.render() };
    } catch (error) {
      if (!(error instanceof IptablesError)) throw error;
      return error;
    }
  };
  const one = async (family: Family): Promise<FamilyOutcome> => {
    const assumed = options.unlisted?.assume(family);
    if (options.unlisted && assumed) {
      const batch = new RestoreBatch();
      const chains = new Map([...assumed].map(([name, rules]) => [name, [...rules]]));
      options.unlisted.build(new TablePlan({ table, chains }, batch, { assumed: true }), family);
      const outcome = await apply(batch, family);
      if (!(outcome instanceof IptablesError)) return outcome;
    }
    if (options.scoped) {
      const { chains, build: buildScoped } = options.scoped;
      const batch = new RestoreBatch();
      const snapshot = await readChains(table, chains, { family, execer });
      // A built-in chain that could not be listed means the table is unusable:
      // the whole-table path below reports that as it always does.
      if (chains.every((chain) => !isBuiltinChain(chain) || snapshot.chains.has(chain))) {
        buildScoped(new TablePlan(snapshot, batch, { listed: chains }), family);
        const outcome = await apply(batch, family);
        // Refused (a guard failed, or the table changed): the whole table below.
        if (!(outcome instanceof IptablesError)) return outcome;
      }
    }
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      let snapshot;
      try {
        snapshot = await readTable(table, { family, execer });
      } catch (error) {
        if (!(options.tolerateUnusable && error instanceof IptablesError)) throw error;
        return { family, applied: "", unusable: error };
      }
      const batch = new RestoreBatch();
      build(new TablePlan(snapshot, batch), family);
      const outcome = await apply(batch, family);
      if (!(outcome instanceof IptablesError)) return outcome;
      lastError = outcome;
    }
    throw lastError;
  };
  return await withLock(() => Promise.all(options.families.map(one)), options);
}

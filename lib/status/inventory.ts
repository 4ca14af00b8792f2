/**
 * One read-only pass over the machine's CNI state: network configs, host-local
 * leases and cached attachments, joined so that leaks stand out.
 *
 * A cached attachment is `stale` when its network namespace is gone (the
 * runtime never ran DEL). A lease is `stale` when no cached attachment owns it
 * (`no-attachment`) or its owner is stale (`netns-gone`). Both judgements are
 * relative to the one cache directory given: a runtime that keeps its cache
 * elsewhere makes its leases look stale here.
 *
 * @module
 */
import { join, resolve } from "@std/path";
import { type AttachmentInfo, type NetnsProbe, readAttachments } from "./attachments.ts";
import { isValidNetworkName, type Lease, listLeaseNetworks, readNetworkLeases } from "./leases.ts";
import { type ChainPlugin, type ConfigError, type NetworkInfo, scanNetworks } from "./networks.ts";
import { parseRangeSets, type RangeInfo } from "./ranges.ts";

/** host-local's default data directory. */
export const DEFAULT_HOST_LOCAL_DIR = "/var/lib/cni/networks";

/** Where to look; every path is only ever read. */
export interface StatusSources {
  /** Directories with network configs, in priority order. */
  configDirs: readonly string[];
  /** Plugin directories (`CNI_PATH`). */
  pluginDirs: readonly string[];
  /** libcni cache directory (holds `results/`). */
  cacheDir: string;
  /** Extra host-local data directories; each subdirectory is one network. */
  dataDirs: readonly string[];
  /** Netns existence test. @default {netnsExists from attachments.ts} */
  probe?: NetnsProbe;
  /** Clock in ms since the epoch. @default {Date.now} */
  now?: () => number;
  /** Whether a plugin binary is cnibox. @default {isCniboxBinary from networks.ts} */
  isCnibox?: (path: string) => Promise<boolean>;
}

/** Why something is stale. */
export type StaleReason = "netns-gone" | "no-attachment";

/** A range with its usage. */
export interface RangeUsage extends RangeInfo {
  used: number;
  free: number;
}

/** One host-local IPAM of a network's chain, with usage. */
export interface HostLocalUsage {
  /** The chain plugin that delegates to host-local (e.g. `bridge`). */
  plugin: string;
  dataDir: string;
  rangeSets: { index: number; ranges: RangeUsage[] }[];
  /** Leases in the directory that lie in no configured range. */
  outside: number;
  /** Config problems (the network is still listed). */
  errors: string[];
}

/** A network as listed (the parsed list itself stays internal). */
export interface NetworkSummary {
  name: string;
  file: string;
  cniVersion: string;
  disableGC: boolean;
  plugins: ChainPlugin[];
  shadowedBy?: string;
  hostLocal: HostLocalUsage[];
}

/** A lease with its owner's state. */
export interface LeaseStatus extends Lease {
  stale: boolean;
  staleReason?: StaleReason;
}

/** An attachment with its state. */
export interface AttachmentStatus extends AttachmentInfo {
  stale: boolean;
  staleReason?: StaleReason;
}

/** Everything one pass found. */
export interface Inventory {
  networks: NetworkSummary[];
  configErrors: ConfigError[];
  leases: LeaseStatus[];
  attachments: AttachmentStatus[];
  /** Problems reading the cache or data directories. */
  errors: string[];
  /** The parsed networks, for callers that run plugins (STATUS, GC). */
  lists: NetworkInfo[];
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function canonical(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    return resolve(path);
  }
}

interface HostLocalRef {
  plugin: string;
  dataDir: string;
  ipam: Record<string, unknown>;
}

/** The host-local IPAM objects of a chain. */
export function hostLocalOf(network: NetworkInfo): HostLocalRef[] {
  const refs: HostLocalRef[] = [];
  for (const plugin of network.list.plugins) {
    const ipam = plugin.conf.ipam as Record<string, unknown> | undefined;
    if (!ipam || ipam.type !== "host-local") continue;
    const dataDir = typeof ipam.dataDir === "string" && ipam.dataDir !== ""
      ? ipam.dataDir
      : DEFAULT_HOST_LOCAL_DIR;
    refs.push({ plugin: plugin.conf.type, dataDir, ipam });
  }
  return refs;
}

/** Options for {@linkcode collectInventory}. */
export interface CollectOptions {
  /** Read only this network's leases and attachments (its configs are still all scanned). */
  network?: string;
}

/**
 * Reads configs, leases and cached attachments and joins them. Never throws
 * for unreadable or malformed state: problems are listed in `errors` and
 * `configErrors`.
 *
 * @example Usage
 * ```ts ignore
 * const inv = await collectInventory({
 *   configDirs: ["/etc/cni/net.d"], pluginDirs: ["/opt/cni/bin"],
 *   cacheDir: "/var/lib/cni", dataDirs: ["/var/run/cni"],
 * });
 * inv.leases.filter((lease) => lease.stale);
 * ```
 */
export async function collectInventory(
  sources: StatusSources,
  options: CollectOptions = {},
): Promise<Inventory> {
  const only = options.network;
  const errors: string[] = [];
  const scan = await scanNetworks(sources.configDirs, {
    pluginDirs: sources.pluginDirs,
    ...(sources.isCnibox ? { isCnibox: sources.isCnibox } : {}),
  });

  // Which lease directories to read: those the configs name, then the extra data dirs.
  const dirs = new Map<string, { dataDir: string; network: string }>();
  const addDir = async (dataDir: string, network: string) => {
    if (!isValidNetworkName(network) || (only !== undefined && network !== only)) return;
    const key = await canonical(join(dataDir, network));
    if (!dirs.has(key)) dirs.set(key, { dataDir, network });
  };
  for (const network of scan.networks) {
    if (network.shadowedBy) continue;
    for (const ref of hostLocalOf(network)) await addDir(ref.dataDir, network.name);
  }
  for (const dataDir of sources.dataDirs) {
    for (
      const network of await listLeaseNetworks(dataDir).catch((error) => {
        errors.push(`Cannot list host-local data dir "${dataDir}": ${message(error)}`);
        return [] as string[];
      })
    ) {
      await addDir(dataDir, network);
    }
  }
  const leases: Lease[] = [];
  for (const { dataDir, network } of dirs.values()) {
    try {
      leases.push(...await readNetworkLeases(dataDir, network));
    } catch (error) {
      errors.push(`Cannot read leases in "${join(dataDir, network)}": ${message(error)}`);
    }
  }

  let attachments: AttachmentInfo[] = [];
  try {
    attachments = await readAttachments(sources.cacheDir, {
      ...(sources.probe ? { probe: sources.probe } : {}),
      ...(sources.now ? { now: sources.now } : {}),
      ...(only !== undefined ? { network: only } : {}),
    });
  } catch (error) {
    errors.push(`Cannot read the result cache in "${sources.cacheDir}": ${message(error)}`);
  }

  const attachmentStatus: AttachmentStatus[] = attachments.map((a) =>
    a.netnsExists === false
      ? { ...a, stale: true, staleReason: "netns-gone" }
      : { ...a, stale: false }
  );
  const owners = new Map<string, AttachmentStatus>();
  for (const a of attachmentStatus) {
    owners.set(`${a.network}\0${a.containerId}\0${a.ifname}`, a);
    // Legacy lease files record only the container ID.
    if (!owners.has(`${a.network}\0${a.containerId}\0`)) {
      owners.set(`${a.network}\0${a.containerId}\0`, a);
    }
  }
  const leaseStatus: LeaseStatus[] = leases.map((lease) => {
    const owner = owners.get(`${lease.network}\0${lease.containerId}\0${lease.ifname}`);
    if (!owner) return { ...lease, stale: true, staleReason: "no-attachment" };
    if (owner.stale) return { ...lease, stale: true, staleReason: "netns-gone" };
    return { ...lease, stale: false };
  });

  const networks: NetworkSummary[] = [];
  for (const network of scan.networks) {
    const summary: NetworkSummary = {
      name: network.name,
      file: network.file,
      cniVersion: network.cniVersion,
      disableGC: network.disableGC,
      plugins: network.plugins,
      hostLocal: [],
    };
    if (network.shadowedBy) summary.shadowedBy = network.shadowedBy;
    else summary.hostLocal = await usageOf(network, leases);
    networks.push(summary);
  }
  return {
    networks,
    configErrors: scan.errors,
    leases: leaseStatus,
    attachments: attachmentStatus,
    errors,
    lists: scan.networks,
  };
}

async function usageOf(network: NetworkInfo, leases: Lease[]): Promise<HostLocalUsage[]> {
  const out: HostLocalUsage[] = [];
  const dirOf = new Map<string, string>();
  for (const lease of leases) {
    if (lease.network === network.name && !dirOf.has(lease.dataDir)) {
      dirOf.set(lease.dataDir, await canonical(join(lease.dataDir, lease.network)));
    }
  }
  for (const ref of hostLocalOf(network)) {
    const sets = parseRangeSets(ref.ipam);
    const dir = await canonical(join(ref.dataDir, network.name));
    const mine = leases.filter((lease) =>
      lease.network === network.name && dirOf.get(lease.dataDir) === dir
    );
    const counts = sets.sets.map((set) => set.ranges.map(() => 0));
    let outside = 0;
    for (const lease of mine) {
      const where = sets.locate(lease.ip);
      if (where) counts[where.set][where.range]++;
      else outside++;
    }
    out.push({
      plugin: ref.plugin,
      dataDir: ref.dataDir,
      rangeSets: sets.sets.map((set, i) => ({
        index: set.index,
        ranges: set.ranges.map((range, j) => ({
          ...range,
          used: counts[i][j],
          free: Math.max(0, range.capacity - counts[i][j]),
        })),
      })),
      outside,
      errors: sets.errors,
    });
  }
  return out;
}

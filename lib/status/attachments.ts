/**
 * Cached attachments (libcni `cniCacheV1` files, written by Nomad, podman,
 * containerd and `cnibox exec`) as the status pages show them: who is
 * attached to which network, with which addresses and port mappings, and
 * whether the network namespace still exists.
 *
 * @module
 */
import { type CacheEntry, cacheFilePath, listCacheEntries } from "../runtime/cache.ts";

/** A port mapping from the cached `capabilityArgs.portMappings`. */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: string;
  hostIP?: string;
}

/** One cached attachment. */
export interface AttachmentInfo {
  network: string;
  containerId: string;
  ifname: string;
  /** `""` when the cache does not record one. */
  netns: string;
  /** `true`/`false`, or `null` when it cannot be told (no path, no permission). */
  netnsExists: boolean | null;
  /** Addresses from the cached result, e.g. `"10.1.0.5/24"`. */
  ips: string[];
  portMappings: PortMapping[];
  /** When the cache file was last written (ms since the epoch), if known. */
  cachedAt: number | null;
  /** Seconds since `cachedAt`, if known. */
  ageSeconds: number | null;
}

/** Tells whether a network namespace path exists: `null` when it cannot be told. */
export type NetnsProbe = (path: string) => boolean | null | Promise<boolean | null>;

let nsfsDev: number | undefined;

/**
 * Default {@linkcode NetnsProbe}: the path exists and is a namespace file
 * (its device is nsfs, like `/proc/self/ns/net`). A plain file left behind
 * after an unmount does not count.
 */
export function netnsExists(path: string): boolean | null {
  if (!path.startsWith("/")) return null;
  try {
    nsfsDev ??= Deno.statSync("/proc/self/ns/net").dev;
    const info = Deno.statSync(path);
    return info.dev === nsfsDev;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return false;
    }
    return null;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Reads a key case-insensitively: go-cni (Nomad) writes `HostPort`, podman writes `hostPort`. */
function field(obj: Record<string, unknown>, name: string): unknown {
  if (name in obj) return obj[name];
  const lower = name.toLowerCase();
  const key = Object.keys(obj).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : obj[key];
}

/** Port mappings from cached capability args, keys matched case-insensitively. */
export function portMappingsOf(capabilityArgs: Record<string, unknown> | undefined): PortMapping[] {
  const list = capabilityArgs ? field(capabilityArgs, "portMappings") : undefined;
  if (!Array.isArray(list)) return [];
  const out: PortMapping[] = [];
  for (const raw of list) {
    if (!isObject(raw)) continue;
    const hostPort = Number(field(raw, "hostPort"));
    const containerPort = Number(field(raw, "containerPort"));
    if (!Number.isInteger(hostPort) || !Number.isInteger(containerPort)) continue;
    const protocol = field(raw, "protocol");
    const hostIP = field(raw, "hostIP");
    const mapping: PortMapping = {
      hostPort,
      containerPort,
      protocol: typeof protocol === "string" && protocol !== "" ? protocol.toLowerCase() : "tcp",
    };
    if (typeof hostIP === "string" && hostIP !== "") mapping.hostIP = hostIP;
    out.push(mapping);
  }
  return out;
}

/** Addresses from a cached result of any version (1.x/0.3.x `ips`, 0.1/0.2 `ip4`/`ip6`). */
export function addressesOf(result: Record<string, unknown> | undefined): string[] {
  if (!result) return [];
  const out: string[] = [];
  if (Array.isArray(result.ips)) {
    for (const ip of result.ips) {
      if (isObject(ip) && typeof ip.address === "string") out.push(ip.address);
    }
  }
  for (const key of ["ip4", "ip6"]) {
    const block = result[key];
    if (isObject(block) && typeof block.ip === "string") out.push(block.ip);
  }
  return out;
}

/** Options for {@linkcode readAttachments}. */
export interface ReadAttachmentsOptions {
  /** How to tell whether a netns exists. @default {netnsExists} */
  probe?: NetnsProbe;
  /** The clock, in ms since the epoch. @default {Date.now} */
  now?: () => number;
  /** Only this network. */
  network?: string;
}

async function describe(
  cacheDir: string,
  entry: CacheEntry,
  options: { probe: NetnsProbe; now: number },
): Promise<AttachmentInfo> {
  let cachedAt: number | null = null;
  try {
    cachedAt = Deno.statSync(cacheFilePath(cacheDir, entry)).mtime?.getTime() ?? null;
  } catch {
    // The file went away after listing, or its name does not match its content.
  }
  const netns = entry.netns ?? "";
  return {
    network: entry.networkName,
    containerId: entry.containerId,
    ifname: entry.ifName,
    netns,
    netnsExists: netns === "" ? null : await options.probe(netns),
    ips: addressesOf(entry.result),
    portMappings: portMappingsOf(entry.capabilityArgs),
    cachedAt,
    ageSeconds: cachedAt === null ? null : Math.max(0, Math.floor((options.now - cachedAt) / 1000)),
  };
}

/**
 * Reads every cached attachment under `<cacheDir>/results`. Malformed cache
 * files are skipped (libcni skips them too).
 *
 * @example Usage
 * ```ts ignore
 * const attachments = await readAttachments("/var/lib/cni");
 * ```
 */
export async function readAttachments(
  cacheDir: string,
  options: ReadAttachmentsOptions = {},
): Promise<AttachmentInfo[]> {
  const entries = await listCacheEntries(
    cacheDir,
    options.network === undefined ? {} : { networkName: options.network },
  );
  const ctx = { probe: options.probe ?? netnsExists, now: (options.now ?? Date.now)() };
  return await Promise.all(entries.map((entry) => describe(cacheDir, entry, ctx)));
}

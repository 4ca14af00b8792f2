/**
 * Reading host-local's on-disk leases (cni-plugins.md 4.3): in
 * `<dataDir>/<network>/`, every file named by an IP address holds
 * `<containerID>\r\n<ifname>` (or just the container ID, in the legacy
 * format). Read-only: nothing here takes host-local's lock or changes a file.
 *
 * @module
 */
import { join } from "@std/path";
import { compareIps, tryParseIp } from "../ip/cidr.ts";

/** One leased address. */
export interface Lease {
  network: string;
  ip: string;
  containerId: string;
  /** `""` for a legacy lease file that holds only the container ID. */
  ifname: string;
  /** The host-local data directory the lease was found in (without the network part). */
  dataDir: string;
}

/** The regular expression CNI requires network names (and container IDs) to match. */
export const CNI_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

/** Whether `name` is a valid CNI network name (and so safe as one path component). */
export function isValidNetworkName(name: string): boolean {
  return name.length <= 255 && CNI_NAME.test(name);
}

// Lease files are a few dozen bytes; anything big is not ours and is not read.
const MAX_LEASE_BYTES = 4096;

/** Parses a lease file's content into container ID and ifname. */
export function parseLeaseContent(text: string): { containerId: string; ifname: string } {
  const trimmed = text.trim();
  const cut = trimmed.indexOf("\r\n");
  if (cut < 0) return { containerId: trimmed, ifname: "" };
  return { containerId: trimmed.slice(0, cut).trim(), ifname: trimmed.slice(cut + 2).trim() };
}

/**
 * Reads the leases of one network from `<dataDir>/<network>`, sorted by
 * address. Only regular files whose name is an IP address count (symlinks
 * are never followed). A missing directory yields `[]`.
 */
export function readNetworkLeases(dataDir: string, network: string): Lease[] {
  if (!isValidNetworkName(network)) {
    throw new RangeError(`Cannot read leases of network "${network}": invalid network name`);
  }
  const dir = join(dataDir, network);
  const leases: Lease[] = [];
  try {
    // Synchronous on purpose: thousands of tiny local files read one by one
    // cost about 10 µs each in sync calls and 10 times that as async ops
    // (each is a trip through the blocking thread pool).
    for (const entry of Deno.readDirSync(dir)) {
      if (!entry.isFile || !tryParseIp(entry.name)) continue;
      const path = join(dir, entry.name);
      let text: string;
      try {
        const info = Deno.lstatSync(path);
        if (!info.isFile || info.size > MAX_LEASE_BYTES) continue;
        text = Deno.readTextFileSync(path);
      } catch {
        continue; // released between listing and reading
      }
      leases.push({ network, ip: entry.name, dataDir, ...parseLeaseContent(text) });
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return [];
    }
    throw error;
  }
  return leases.sort(compareLeases);
}

function compareLeases(a: Lease, b: Lease): number {
  const x = tryParseIp(a.ip)!;
  const y = tryParseIp(b.ip)!;
  return x.family !== y.family ? x.family - y.family : compareIps(x, y);
}

/** Lists the network directories under a host-local data dir (valid names only, sorted). */
export async function listLeaseNetworks(dataDir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dataDir)) {
      if (entry.isDirectory && isValidNetworkName(entry.name)) names.push(entry.name);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return [];
    }
    throw error;
  }
  return names.sort();
}

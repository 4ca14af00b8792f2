/**
 * Reading host-local's on-disk leases (cni-plugins.md 4.3): in
 * `<dataDir>/<network>/`, every file named by an IP address holds
 * `<containerID>\r\n<ifname>` (or just the container ID, in the legacy
 * format). Read-only: nothing here takes host-local's lock or changes a file.
 *
 * @module
 */
import { join } from "@std/path";
import { compareIps, type IpAddress, tryParseIp } from "../ip/cidr.ts";

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
  // Each address is parsed once: re-parsing in the comparator cost 10 times the sort itself.
  const found: { lease: Lease; address: IpAddress }[] = [];
  const buffer = new Uint8Array(MAX_LEASE_BYTES + 1);
  const decoder = new TextDecoder();
  try {
    // Synchronous on purpose: thousands of tiny local files read one by one
    // cost about 6 µs each in sync calls and 10 times that as async ops
    // (each is a trip through the blocking thread pool).
    for (const entry of Deno.readDirSync(dir)) {
      // `isFile` comes from the directory entry (lstat where the file system gives no type),
      // so symlinks are never followed.
      if (!entry.isFile) continue;
      const address = tryParseIp(entry.name);
      if (address === undefined) continue;
      const text = readSmallFile(join(dir, entry.name), buffer, decoder);
      if (text === undefined) continue;
      found.push({
        lease: { network, ip: entry.name, dataDir, ...parseLeaseContent(text) },
        address,
      });
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return [];
    }
    throw error;
  }
  found.sort((a, b) =>
    a.address.family !== b.address.family
      ? a.address.family - b.address.family
      : compareIps(a.address, b.address)
  );
  return found.map(({ lease }) => lease);
}

/**
 * A file's text if it holds at most `buffer.length - 1` bytes; undefined when
 * it is bigger (not a lease) or was released between listing and reading.
 */
function readSmallFile(path: string, buffer: Uint8Array, decoder: TextDecoder): string | undefined {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path);
  } catch {
    return undefined;
  }
  try {
    let length = 0;
    while (length < buffer.length) {
      const read = file.readSync(buffer.subarray(length));
      if (read === null) break;
      length += read;
    }
    return length < buffer.length ? decoder.decode(buffer.subarray(0, length)) : undefined;
  } catch {
    return undefined;
  } finally {
    file.close();
  }
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

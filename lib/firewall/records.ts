/**
 * What the `firewall` plugin let through, per attachment: one small file per
 * (network, container, interface) naming the container addresses whose
 * `CNI-FORWARD` rules an ADD added. The reference plugin keeps nothing, so
 * a DEL without prevResult (the runtime crashed before caching the ADD's
 * result, or lost its cache) removes nothing and the rules stay forever.
 * With a record, such a DEL and a later GC still know which rules to remove.
 *
 * Layout: `<root>/<netns inode>/<network>/<containerID>@<ifname>` (each name
 * URI-encoded), content `{"addresses":["10.0.0.2/32", …]}`. The root is
 * `/run/cnibox/firewall` (tmpfs: rules and records both vanish at reboot)
 * or the plugin's `CNIBOX_FIREWALL_RECORDS` environment variable. Rules are per network namespace, so records
 * are too.
 *
 * The record is written before the rules are applied and removed after they
 * are deleted, so a kill at any point leaves either no rules or a record of
 * them. A record cut short by a kill is unreadable, which is fine: the kill
 * came before any rule was applied. Every operation is best effort: a
 * missing or read-only `/run` costs the improvement, never the plugin run.
 *
 * @module
 */

import { familyBits, inetNtop, tryParseCidr } from "../ip/cidr.ts";
import { currentNetnsInode } from "../sys/netns_id.ts";

/** Where records live unless `CNIBOX_FIREWALL_RECORDS` says otherwise. */
export const DEFAULT_RECORD_ROOT = "/run/cnibox/firewall";

/** One attachment's record. */
export interface AddressRecord {
  containerId: string;
  ifname: string;
  /** Container addresses in host form (`10.0.0.2/32`, `fd00::2/128`). */
  addresses: string[];
}

/** The record directory of a network in the calling thread's network namespace. */
export function recordDir(network: string, root = DEFAULT_RECORD_ROOT): string {
  // Without /proc, one shared directory.
  return `${root}/${currentNetnsInode() ?? "unknown"}/${encodeURIComponent(network)}`;
}

function fileName(containerId: string, ifname: string): string {
  return `${encodeURIComponent(containerId)}@${encodeURIComponent(ifname)}`;
}

/** Records `addresses` for (containerId, ifname), replacing an earlier record. Returns false if it could not. */
export function writeRecord(
  dir: string,
  containerId: string,
  ifname: string,
  addresses: readonly string[],
): boolean {
  const path = `${dir}/${fileName(containerId, ifname)}`;
  // A DEL of the network's last record may remove the directory between our
  // mkdir and our write (see removeRecord): then it is made again.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
      Deno.writeTextFileSync(path, JSON.stringify({ addresses }), { mode: 0o600 });
      return true;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) return false;
    }
  }
  return false;
}

/**
 * The addresses of a record's text, each re-parsed and re-rendered in host
 * form: they end up in rule text, and only validated values may.
 */
function parseAddresses(text: string): string[] | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text)?.addresses;
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  const addresses: string[] = [];
  for (const item of value) {
    const parsed = typeof item === "string" ? tryParseCidr(item, { keepMapped: true }) : undefined;
    if (!parsed) continue;
    const host = `${inetNtop(parsed.address)}/${familyBits(parsed.address.family)}`;
    if (host === item) addresses.push(host);
  }
  return addresses;
}

/** The recorded addresses of (containerId, ifname); empty when there is no readable record. */
export function readRecord(dir: string, containerId: string, ifname: string): string[] {
  try {
    return parseAddresses(Deno.readTextFileSync(`${dir}/${fileName(containerId, ifname)}`)) ?? [];
  } catch {
    return [];
  }
}

/**
 * Removes the record of (containerId, ifname) if there is one, then the
 * network's and the namespace's directories if they are empty (test and
 * benchmark namespaces come and go; their directories should not pile up).
 */
export function removeRecord(dir: string, containerId: string, ifname: string): void {
  try {
    Deno.removeSync(`${dir}/${fileName(containerId, ifname)}`);
  } catch {
    // Already gone.
  }
  try {
    Deno.removeSync(dir); // refused unless empty
    Deno.removeSync(dir.slice(0, dir.lastIndexOf("/")));
  } catch {
    // Other records live there.
  }
}

/** Every record of a network (unreadable ones with no addresses). */
export function listRecords(dir: string): AddressRecord[] {
  const records: AddressRecord[] = [];
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = Deno.readDirSync(dir);
  } catch {
    return records;
  }
  for (const entry of entries) {
    const at = entry.name.indexOf("@");
    if (!entry.isFile || at < 0) continue;
    let containerId: string, ifname: string;
    try {
      containerId = decodeURIComponent(entry.name.slice(0, at));
      ifname = decodeURIComponent(entry.name.slice(at + 1));
    } catch {
      continue; // not a name we wrote
    }
    let addresses: string[] = [];
    try {
      addresses = parseAddresses(Deno.readTextFileSync(`${dir}/${entry.name}`)) ?? [];
    } catch {
      // Vanished meanwhile: no addresses.
    }
    records.push({ containerId, ifname, addresses });
  }
  return records;
}

/**
 * The addresses recorded by the other networks of `dir`'s namespace (the
 * sibling directories): GC of one network must not remove rules another
 * network's attachment still needs, and the rules name addresses only.
 */
export function otherNetworksAddresses(dir: string): Set<string> {
  const addresses = new Set<string>();
  const parent = dir.slice(0, dir.lastIndexOf("/"));
  const own = dir.slice(dir.lastIndexOf("/") + 1);
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = Deno.readDirSync(parent);
  } catch {
    return addresses;
  }
  for (const entry of entries) {
    if (!entry.isDirectory || entry.name === own) continue;
    for (const record of listRecords(`${parent}/${entry.name}`)) {
      for (const address of record.addresses) addresses.add(address);
    }
  }
  return addresses;
}

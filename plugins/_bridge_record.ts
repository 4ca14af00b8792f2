/**
 * The record a successful bridge ADD leaves for a repeated ADD, kept in the
 * host veth's interface alias (`IFLA_IFALIAS`, at most 255 bytes): whose
 * attachment it is, and the parts of the result the kernel cannot tell us
 * again (IPAM's addresses with gateways, routes, IPAM's DNS). Interfaces and
 * MACs are read back from the kernel.
 *
 * Living on the veth, the record goes away with it, whoever deletes it (our
 * DEL, the reference's DEL, the namespace's end), so nothing is left on disk.
 * A record that would not fit is not written; a repeated ADD then redoes the
 * attachment instead of resuming it.
 *
 * @module
 */
import type { DNS, IPConfig, Result, Route } from "../lib/cni/types.ts";
import { sha512Hex } from "../lib/firewall/chain_name.ts";

/** Prefix that marks an alias as our record. */
export const ALIAS_PREFIX = "cnibox:";

/** The kernel's limit for an interface alias (IFALIASZ 256, with the NUL). */
export const MAX_ALIAS_BYTES = 255;

/** What a repeated ADD needs to answer with the same result. */
export interface AttachmentRecord {
  /** {@linkcode ownerTag} of the network and container id. */
  owner: string;
  /** Result addresses (without `interface`, which is always 2). */
  ips: IPConfig[];
  routes?: Route[];
  /** IPAM's DNS, when the config has none of its own. */
  dns?: DNS;
}

/** 16 hex digits of SHA-512 over network name + container id. */
export async function ownerTag(network: string, containerId: string): Promise<string> {
  return (await sha512Hex(`${network}\0${containerId}`)).slice(0, 16);
}

/** The record for a result (pure). */
export function recordOf(
  owner: string,
  result: Result,
  options: { keepDns: boolean },
): AttachmentRecord {
  const record: AttachmentRecord = {
    owner,
    ips: (result.ips ?? []).map(({ interface: _index, ...ip }) => ip),
  };
  if (result.routes?.length) record.routes = result.routes;
  if (options.keepDns && result.dns !== undefined) record.dns = result.dns;
  return record;
}

/** The alias text for a record, or undefined when it is longer than the kernel allows. */
export function encodeRecord(record: AttachmentRecord): string | undefined {
  const { owner, ...rest } = record;
  const text = `${ALIAS_PREFIX}${owner} ${JSON.stringify(rest)}`;
  return new TextEncoder().encode(text).length <= MAX_ALIAS_BYTES ? text : undefined;
}

/** Reads a record from an alias; undefined for anything else (or a damaged one). */
export function decodeRecord(alias: string | undefined): AttachmentRecord | undefined {
  if (alias === undefined || !alias.startsWith(ALIAS_PREFIX)) return undefined;
  const space = alias.indexOf(" ");
  if (space === -1) return undefined;
  try {
    const rest = JSON.parse(alias.slice(space + 1)) as Partial<AttachmentRecord>;
    if (!Array.isArray(rest.ips)) return undefined;
    return { owner: alias.slice(ALIAS_PREFIX.length, space), ...rest } as AttachmentRecord;
  } catch {
    return undefined;
  }
}

/**
 * host-local allocation semantics over a {@linkcode DiskStore}: one address
 * per range set (requested addresses first), release, check and GC,
 * with the reference plugin's messages.
 *
 * @module
 */

import type { IPConfig } from "../cni/types.ts";
import { formatIp, type IpAddress, ipsEqual } from "../ip/cidr.ts";
import type { IpamConfig } from "./config.ts";
import { findRange, formatRangeSet, type RangeSet, rangeSetCandidates } from "./range.ts";
import type { DiskStore } from "./store.ts";

/** Failed creates in a row after which the lease directory is listed instead. */
const CROWDED_AFTER = 16;

/** Who an allocation belongs to: `CNI_CONTAINERID` and `CNI_IFNAME`. */
export interface Owner {
  id: string;
  ifname: string;
}

/** Options for {@linkcode allocateFromSet}. */
export interface AllocateFromSetOptions extends Owner {
  /** The range set's position, naming its `last_reserved_ip.<rangeId>` file. */
  rangeId: string;
  /** An address the caller asked for; it must lie in the set. */
  requestedIp?: IpAddress;
}

function ipConfig(ip: IpAddress, prefixLength: number, gateway: IpAddress): IPConfig {
  return { address: `${formatIp(ip)}/${prefixLength}`, gateway: formatIp(gateway) };
}

/**
 * Allocates one address from a range set (the reference's `IPAllocator.Get`):
 * the requested one if given, else the next free one in round-robin order.
 * @throws {Error} e.g. `requested ip 10.0.0.1 is subnet's gateway`,
 * `10.0.0.2 has been allocated to c1, duplicate allocation is not allowed`,
 * `no IP addresses available in range set: 10.0.0.2-10.0.0.3`.
 */
export function allocateFromSet(
  store: DiskStore,
  set: RangeSet,
  options: AllocateFromSetOptions,
): IPConfig {
  const { id, ifname, rangeId, requestedIp } = options;
  if (requestedIp) {
    const range = findRange(set, requestedIp);
    if (!range) {
      throw new RangeError(`${formatIp(requestedIp)} not in range set ${formatRangeSet(set)}`);
    }
    if (ipsEqual(requestedIp, range.gateway)) {
      throw new RangeError(`requested ip ${formatIp(requestedIp)} is subnet's gateway`);
    }
    if (!store.reserve(id, ifname, requestedIp, rangeId)) {
      throw new Error(
        `requested IP address ${formatIp(requestedIp)} is not available in range set ${
          formatRangeSet(set)
        }`,
      );
    }
    return ipConfig(requestedIp, range.subnet.prefixLength, range.gateway);
  }
  // A second address for the same attachment in one range set is refused (spec: no duplicates).
  for (const held of store.getById(id, ifname)) {
    if (findRange(set, held)) {
      throw new Error(
        `${formatIp(held)} has been allocated to ${id}, duplicate allocation is not allowed`,
      );
    }
  }
  // Round robin usually succeeds at once. In a crowded range, stop paying a
  // failed O_EXCL create per taken address: list the directory once and only
  // try addresses without a file (the create still decides).
  const lastReserved = store.lastReservedIp(rangeId);
  let misses = 0;
  let taken: Set<string> | undefined;
  for (const { ip, range } of rangeSetCandidates(set, { lastReserved })) {
    if (taken?.has(formatIp(ip))) continue;
    if (store.reserve(id, ifname, ip, rangeId)) {
      return ipConfig(ip, range.subnet.prefixLength, range.gateway);
    }
    if (++misses === CROWDED_AFTER) taken = store.fileNames();
  }
  throw new Error(`no IP addresses available in range set: ${formatRangeSet(set)}`);
}

/**
 * Allocates one address per range set for an ADD (the reference's `cmdAdd`
 * loop). Each requested address goes to the first range set that holds it
 * (one per set); on any failure everything reserved so far is released.
 * @throws {Error} `failed to allocate for range <i>: <reason>` or
 * `failed to allocate all requested IPs: <ip> …`.
 */
export function allocate(store: DiskStore, conf: IpamConfig, owner: Owner): IPConfig[] {
  const requested = new Map<string, IpAddress>();
  for (const ip of conf.requestedIps) requested.set(formatIp(ip), ip);
  const ips: IPConfig[] = [];
  const undo = () => {
    // One release per allocator used, as the reference does (the second one
    // also sweeps legacy id-only files).
    for (let i = 0; i < ips.length; i++) store.releaseById(owner.id, owner.ifname);
  };
  conf.ranges.forEach((set, idx) => {
    let requestedIp: IpAddress | undefined;
    for (const [key, ip] of requested) {
      if (findRange(set, ip)) {
        requestedIp = ip;
        requested.delete(key);
        break;
      }
    }
    try {
      ips.push(allocateFromSet(store, set, { ...owner, rangeId: String(idx), requestedIp }));
    } catch (error) {
      undo();
      throw new Error(`failed to allocate for range ${idx}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  });
  if (requested.size > 0) {
    undo();
    throw new Error(`failed to allocate all requested IPs: ${[...requested.keys()].join(" ")}`);
  }
  return ips;
}

/** Releases the owner's addresses once per range set, as the reference's `cmdDel` does. */
export function release(store: DiskStore, conf: IpamConfig, owner: Owner): void {
  for (let i = 0; i < conf.ranges.length; i++) store.releaseById(owner.id, owner.ifname);
}

/**
 * Fails unless the owner holds at least one address (the reference's `cmdCheck`).
 * @throws {Error} `host-local: Failed to find address added by container <id>`.
 */
export function check(store: DiskStore, owner: Owner): void {
  if (!store.findById(owner.id, owner.ifname)) {
    throw new Error(`host-local: Failed to find address added by container ${owner.id}`);
  }
}

/**
 * `macspoofchk`: nftables rules in `table bridge nat` that drop frames from
 * the host veth whose source MAC is not the container's, laid out as the
 * reference's `pkg/link/spoofcheck.go` writes them (a `PREROUTING` jump per
 * interface, then `cni-br-iface-<id>` and `cni-br-iface-<id>-mac` chains,
 * every rule commented `macspoofchk-<id>`; `<id>` = `<containerID>-<ifname>`).
 *
 * @module
 */
import type { Execer } from "../lib/firewall/exec.ts";
import { applyNft, listNftTable, NftTransaction } from "../lib/firewall/nft.ts";

const FAMILY = "bridge";
const TABLE = "nat";
const BASE_CHAIN = "PREROUTING";

/** The names one interface's rules use. */
export interface SpoofNames {
  ifaceChain: string;
  macChain: string;
  comment: string;
}

/** Chain names and comment for a container interface. */
export function spoofNames(containerId: string, ifName: string): SpoofNames {
  const id = `${containerId}-${ifName}`;
  return {
    ifaceChain: `cni-br-iface-${id}`,
    macChain: `cni-br-iface-${id}-mac`,
    comment: `macspoofchk-${id}`,
  };
}

/** The setup transaction (pure, for tests): allow only `mac` from `hostVeth`. */
export function spoofSetupTransaction(
  names: SpoofNames,
  options: { hostVeth: string; mac: string },
): NftTransaction {
  const tx = new NftTransaction();
  const comment = { comment: names.comment };
  tx.addTable(FAMILY, TABLE);
  tx.addChain(FAMILY, TABLE, BASE_CHAIN, { type: "filter", hook: "prerouting", priority: -300 });
  tx.addChain(FAMILY, TABLE, names.ifaceChain);
  tx.flushChain(FAMILY, TABLE, names.ifaceChain);
  tx.addChain(FAMILY, TABLE, names.macChain);
  tx.flushChain(FAMILY, TABLE, names.macChain);
  tx.addRule(
    FAMILY,
    TABLE,
    BASE_CHAIN,
    `iifname "${options.hostVeth}" jump ${names.ifaceChain}`,
    comment,
  );
  tx.addRule(FAMILY, TABLE, names.ifaceChain, `jump ${names.macChain}`, comment);
  tx.addRule(FAMILY, TABLE, names.macChain, `ether saddr ${options.mac} return`, comment);
  tx.addRule(FAMILY, TABLE, names.macChain, "drop", comment);
  return tx;
}

/** Installs the MAC spoof check for one interface (one `nft -f`). */
export async function setupSpoofCheck(
  names: SpoofNames,
  options: { hostVeth: string; mac: string; execer: Execer },
): Promise<void> {
  await applyNft(spoofSetupTransaction(names, options), { execer: options.execer });
}

/**
 * Removes one interface's spoof-check rules: the `PREROUTING` jumps with its
 * comment and both chains. Missing rules or chains are fine (one listing,
 * then one `nft -f` if anything is there).
 */
export async function teardownSpoofCheck(
  names: SpoofNames,
  options: { execer: Execer },
): Promise<void> {
  const listing = await listNftTable(FAMILY, TABLE, options);
  if (!listing.exists) return;
  const tx = new NftTransaction();
  const chains = new Set(listing.chains);
  if (chains.has(names.ifaceChain)) tx.flushChain(FAMILY, TABLE, names.ifaceChain);
  if (chains.has(names.macChain)) tx.flushChain(FAMILY, TABLE, names.macChain);
  for (const rule of listing.rules) {
    if (rule.chain === BASE_CHAIN && rule.comment === names.comment) {
      tx.deleteRule(FAMILY, TABLE, BASE_CHAIN, rule.handle);
    }
  }
  if (chains.has(names.ifaceChain)) tx.deleteChain(FAMILY, TABLE, names.ifaceChain);
  if (chains.has(names.macChain)) tx.deleteChain(FAMILY, TABLE, names.macChain);
  await applyNft(tx, options);
}

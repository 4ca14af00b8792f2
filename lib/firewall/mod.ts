/**
 * The firewall layer as data: iptables rules as token lists planned against
 * one listing of the table and applied with one `iptables-restore`
 * ({@linkcode transact}), nftables transactions applied with one `nft -f -`,
 * the rule sets of the `firewall`, `portmap` and `bridge` (ipMasq) plugins,
 * chain-name hashing, input validation, and conntrack cleanup.
 *
 * Plugins import the modules they need directly (a plugin run pays for
 * every module it loads); this file is the map of the public surface.
 *
 * @module
 */
// conntrack.ts is left out on purpose: it loads libc through FFI; import it directly.
export * from "./chain_name.ts";
export * from "./exec.ts";
export * from "./firewalld.ts";
export * from "./forward.ts";
export * from "./hostport.ts";
export * from "./iptables.ts";
export * from "./ipmasq.ts";
export * from "./nft.ts";
export * from "./plan.ts";
export * from "./records.ts";
export * from "./transaction.ts";
export * from "./validate.ts";

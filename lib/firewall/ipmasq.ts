/**
 * The bridge plugin's `ipMasq` rules, for both backends, as the reference
 * writes them: iptables (a `CNI-<hash>` chain per container in the nat
 * table, jumped to from `POSTROUTING` per address) and nftables (table
 * `inet cni_plugins_masquerade`, one rule per address owned by an instance
 * hash comment).
 *
 * Teardown needs only the network name and container id: the chain and the
 * jumps into it are found by name, so masquerade rules go away even when the
 * container's netns (and with it its addresses) is already gone. Jumps whose
 * source another interface of the container still holds stay (its
 * interfaces on one network share the chain).
 *
 * @module
 */
import {
  cidrContains,
  cidrOf,
  inetNtop,
  type IpAddress,
  ipToBytes,
  networkAddress,
  tryParseCidr,
} from "../ip/cidr.ts";
import { formatChainName, nftInstanceHash, nftNetworkHash } from "./chain_name.ts";
import { defaultExecer, type Execer } from "./exec.ts";
import {
  commentOwners,
  type Family,
  nftFamilyOf,
  renderRule,
  type Rule,
  tokenizeRule,
  usesNftables,
} from "./iptables.ts";
import { applyNft, listNftTable, NftTransaction } from "./nft.ts";
import {
  ACCEPT,
  addressMatch,
  commentMatch,
  COUNTER,
  encodeExpressions,
  jumpTo,
  masquerade,
} from "./nft_expr.ts";
import type { TablePlan } from "./plan.ts";
import { transact, type TransactOptions } from "./transaction.ts";
import { validateAddress, validateCommentText } from "./validate.ts";

/** The nftables masquerade table (family `inet`). */
export const NFT_MASQ_TABLE = "cni_plugins_masquerade";

/** A container address with its prefix length, as in a CNI result (`10.0.0.2/24`). */
export interface MasqAddress {
  addr: IpAddress;
  prefix: number;
}

/** Parses `ip/len` from a result into a {@linkcode MasqAddress}; throws RangeError. */
export function parseMasqAddress(text: string): MasqAddress {
  const slash = text.indexOf("/");
  const addr = validateAddress(slash === -1 ? text : text.slice(0, slash), "address");
  const len = slash === -1 ? "" : text.slice(slash + 1);
  const prefix = Number(len);
  if (!/^[0-9]{1,3}$/.test(len) || prefix > (addr.family === 4 ? 32 : 128)) {
    throw new RangeError(`address must be "ip/prefix", got ${JSON.stringify(text)}`);
  }
  return { addr, prefix };
}

/** Go's `%q` for the ASCII names CNI allows (anything else is rejected). */
function goQuote(text: string): string {
  validateCommentText(text, "name");
  return `"${text.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** The rules' comment: `name: "<network>" id: "<containerId>"`. */
export function ipMasqComment(network: string, containerId: string): string {
  return `name: ${goQuote(network)} id: ${goQuote(containerId)}`;
}

/** The per-container chain name `CNI-<hash>` (shared by both families). */
export function ipMasqChainName(network: string, containerId: string): Promise<string> {
  return formatChainName(network, containerId);
}

/** The rules for one address: the chain's two rules and the `POSTROUTING` jump. */
export function ipMasqRules(
  address: MasqAddress,
  options: { chain: string; comment: string },
): { chain: Rule[]; postrouting: Rule } {
  const { addr, prefix } = address;
  const comment = ["-m", "comment", "--comment", options.comment];
  const host = `${inetNtop(addr)}/${addr.family === 4 ? 32 : 128}`;
  const subnet = `${inetNtop(networkAddress(cidrOf(addr, prefix)))}/${prefix}`;
  const multicast = addr.family === 4 ? "224.0.0.0/4" : "ff00::/8";
  return {
    chain: [
      ["-d", subnet, ...comment, "-j", "ACCEPT"],
      ["!", "-d", multicast, ...comment, "-j", "MASQUERADE"],
    ],
    postrouting: ["-s", host, ...comment, "-j", options.chain],
  };
}

/**
 * Plans ipMasq for the addresses of one family: the chain holds exactly the
 * rules for these addresses (rewritten whole), each address gets its
 * `POSTROUTING` jump appended unless present.
 */
export function planIpMasqAdd(
  plan: TablePlan,
  addresses: readonly MasqAddress[],
  options: { chain: string; comment: string },
): void {
  const chainRules: Rule[] = [];
  const jumps: Rule[] = [];
  for (const address of addresses) {
    const rules = ipMasqRules(address, options);
    for (const rule of rules.chain) {
      if (!chainRules.some((r) => r.join("\0") === rule.join("\0"))) chainRules.push(rule);
    }
    jumps.push(rules.postrouting);
  }
  if (chainRules.length === 0) return;
  plan.replaceChain(options.chain, chainRules);
  for (const jump of jumps) plan.ensureRule("POSTROUTING", jump);
}

/**
 * {@linkcode planIpMasqAdd}'s rules for a new container's chain as
 * iptables-nft encodes them: the chain's rules (each once) and then the
 * `POSTROUTING` jumps, for `nftAppendRules`.
 * @throws {RangeError} for what the encodings do not cover (a /0 subnet, a
 * comment iptables would refuse).
 */
export function nftIpMasqRules(
  addresses: readonly MasqAddress[],
  options: { chain: string; comment: string },
): { chain: string; expressions: Uint8Array }[] {
  const comment = commentMatch(options.comment);
  const chainRules = new Map<string, Uint8Array>();
  const jumps = new Map<string, Uint8Array>();
  for (const address of addresses) {
    const { addr, prefix } = address;
    const family = addr.family;
    const bytes = ipToBytes(addr);
    const rules = ipMasqRules(address, options);
    const multicast = family === 4
      ? Uint8Array.of(224, 0, 0, 0)
      : Uint8Array.of(0xff, ...new Uint8Array(15));
    const [accept, masq] = rules.chain.map(renderRule);
    const jump = renderRule(rules.postrouting);
    if (!chainRules.has(accept)) {
      chainRules.set(
        accept,
        encodeExpressions([
          ...addressMatch("destination", bytes, prefix),
          comment,
          COUNTER,
          ACCEPT,
        ]),
      );
    }
    if (!chainRules.has(masq)) {
      chainRules.set(
        masq,
        encodeExpressions([
          ...addressMatch("destination", multicast, family === 4 ? 4 : 8, { negate: true }),
          comment,
          COUNTER,
          masquerade(family),
        ]),
      );
    }
    // One jump per host address, as the tool's `ensureRule` and the reference's AppendUnique
    // leave it (an address can come twice, with two prefixes).
    if (!jumps.has(jump)) {
      jumps.set(
        jump,
        encodeExpressions([
          ...addressMatch("source", bytes, bytes.length * 8),
          comment,
          COUNTER,
          jumpTo(options.chain),
        ]),
      );
    }
  }
  return [
    ...[...chainRules.values()].map((expressions) => ({ chain: options.chain, expressions })),
    ...[...jumps.values()].map((expressions) => ({ chain: "POSTROUTING", expressions })),
  ];
}

/**
 * Plans removal of a container's masquerading: every `POSTROUTING` jump into
 * its chain except those whose source holds an address of `keep` (addresses
 * another interface of the container still has: its interfaces on one
 * network share the chain), and the chain once no jump leads to it.
 */
export function planIpMasqDel(
  plan: TablePlan,
  chain: string,
  keep: readonly IpAddress[] = [],
): boolean {
  if (keep.length === 0) return plan.removeChain(chain, { referencedFrom: ["POSTROUTING"] });
  let removed = false;
  for (const jump of plan.jumpsTo("POSTROUTING", chain)) {
    if (jumpSourceHolds(jump, keep)) continue;
    removed = plan.deleteRule("POSTROUTING", jump) || removed;
  }
  if (plan.jumpsTo("POSTROUTING", chain).length > 0) return removed;
  return plan.removeChain(chain) || removed;
}

/** Whether a listed jump's `-s` holds one of `addresses` (no `-s`: it matches every source). */
function jumpSourceHolds(jump: string, addresses: readonly IpAddress[]): boolean {
  const tokens = tokenizeRule(jump);
  const at = tokens.indexOf("-s");
  if (at < 0) return true;
  const source = tryParseCidr(tokens[at + 1] ?? "");
  return source !== undefined && addresses.some((address) => cidrContains(source, address));
}

/** Options for {@linkcode setupIpMasq} and {@linkcode teardownIpMasq}. */
export interface IpMasqOptions extends Partial<Omit<TransactOptions, "families">> {
  /** Container id (owner of the rules). */
  containerId: string;
  /** Interface name (nftables instance hash only). @default {"eth0"} */
  ifName?: string;
  /** `iptables` or `nftables`. @default {"iptables"} */
  backend?: "iptables" | "nftables";
  /** iptables teardown: the families to clean. @default {[4, 6]} */
  families?: readonly Family[];
  /**
   * iptables teardown: the attachment's addresses (`ip/len`) as far as known.
   * A family with known addresses first tries deleting exactly their jumps and
   * the chain without listing anything; `-X` refuses that batch if any other
   * jump still leads to the chain, and POSTROUTING is listed after all.
   * @default {[]}
   */
  addresses?: readonly string[];
  /**
   * iptables teardown: addresses (`ip/len`) the container's other interfaces
   * hold; their jumps into the shared chain stay. @default {[]}
   */
  keep?: readonly string[];
}

/**
 * Installs masquerading for a container's addresses (`ip/len` as in the
 * result). iptables: a new container's chain, rules and jumps in one
 * nf_tables transaction of our own per family where iptables-nft has the
 * nat table, else one restore per family (listing `POSTROUTING` only when
 * the chain exists); nftables: one listing + one `nft -f`.
 *
 * @example Usage
 * ```ts ignore
 * await setupIpMasq("mynet", ["10.77.0.2/24"], { containerId: "abc123" });
 * ```
 */
export async function setupIpMasq(
  network: string,
  addresses: readonly string[],
  options: IpMasqOptions,
): Promise<void> {
  const parsed = addresses.map(parseMasqAddress);
  const execer = options.execer ?? defaultExecer();
  if (options.backend === "nftables") {
    await nftMasqApply(network, parsed, { ...options, execer });
    return;
  }
  const chain = await ipMasqChainName(network, options.containerId);
  const comment = ipMasqComment(network, options.containerId);
  const families = ([4, 6] as Family[]).filter((f) => parsed.some((a) => a.addr.family === f));
  const build = (plan: TablePlan, family: Family) =>
    planIpMasqAdd(plan, parsed.filter((a) => a.addr.family === family), { chain, comment });
  // A new container's chain, its rules and its jumps go in one nf_tables transaction of our own
  // (no tool to start); where the chain exists (a repeated ADD) the kernel refuses it whole.
  const rest = families.filter((family) => {
    if (!usesNftables(family)) return true;
    const own = parsed.filter((a) => a.addr.family === family);
    let rules;
    try {
      rules = nftIpMasqRules(own, { chain, comment });
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      return true; // a rule these encodings do not cover (a /0, a long comment): the tool's
    }
    return execer.nftAppendRules?.({
      family: nftFamilyOf(family),
      table: "nat",
      newChains: [chain],
      rules,
    }) !== true;
  });
  if (rest.length === 0) return;
  await transact("nat", build, {
    ...options,
    execer,
    families: rest,
    // A new container has no chain yet, so nothing needs reading: the chain's `-N` fails the
    // batch when it exists (a repeated ADD), and POSTROUTING is listed after all.
    unlisted: { assume: () => new Map([["POSTROUTING", []]]), build },
    // POSTROUTING is all a masquerade ADD reads; the rest of the nat table grows with containers.
    scoped: { chains: ["POSTROUTING"], build },
  });
}

/**
 * Removes a container's masquerading (iptables: the jumps into its chain
 * but those `keep` holds, and the chain once unused; nftables: the rules of
 * the instance hash). Missing rules are fine.
 *
 * @example Usage
 * ```ts ignore
 * await teardownIpMasq("mynet", { containerId: "abc123", addresses: ["10.77.0.2/24"] });
 * ```
 */
export async function teardownIpMasq(network: string, options: IpMasqOptions): Promise<void> {
  const execer = options.execer ?? defaultExecer();
  if (options.backend === "nftables") {
    await nftMasqApply(network, [], { ...options, execer });
    return;
  }
  // iptables-nft creates a table to list it. Where nf_tables says the nat table is missing,
  // the family has nothing to remove and is left without one.
  const families = (options.families ?? [4, 6]).filter((family) =>
    !usesNftables(family) || execer.nftTableExists?.(nftFamilyOf(family), "nat") !== false
  );
  if (families.length === 0) return;
  const chain = await ipMasqChainName(network, options.containerId);
  const comment = ipMasqComment(network, options.containerId);
  const known = (options.addresses ?? []).flatMap((text) => {
    try {
      return [parseMasqAddress(text)];
    } catch {
      return []; // an unreadable address only costs the listing
    }
  });
  const keep = (options.keep ?? []).flatMap((text) => {
    const cidr = tryParseCidr(text);
    return cidr ? [cidr.address] : [];
  });
  // Where the node is as ADD left it (its jumps, none that must stay), the jumps and the chain go
  // in one nf_tables transaction of our own: no tool to start.
  const jumpsByFamily = new Map<Family, Set<string>>();
  const ownJumps = (family: Family) => {
    let jumps = jumpsByFamily.get(family);
    if (jumps === undefined) {
      jumps = new Set(
        known.filter((a) => a.addr.family === family)
          .map((a) => renderRule(ipMasqRules(a, { chain, comment }).postrouting)),
      );
      jumpsByFamily.set(family, jumps);
    }
    return jumps;
  };
  // Addresses other links keep matter only where one of them jumps into this chain (a link on
  // the same network); the drop declines then and the tool keeps that jump.
  const dropped = families.filter((family) =>
    usesNftables(family) && ownJumps(family).size > 0 &&
    execer.nftDropChain?.({
        family: nftFamilyOf(family),
        table: "nat",
        chain,
        jumpsFrom: ["POSTROUTING"],
        jumps: ownJumps(family).size,
        keep: keep.filter((a) => a.family === family).map(ipToBytes),
      }) === true
  );
  const rest = families.filter((family) => !dropped.includes(family));
  if (rest.length === 0) return;
  const build = (plan: TablePlan) => void planIpMasqDel(plan, chain, keep);
  await transact("nat", build, {
    ...options,
    execer,
    families: rest,
    unlisted: {
      assume: (family) => {
        const jumps = ownJumps(family);
        if (jumps.size === 0) return undefined;
        return new Map([["POSTROUTING", [...jumps]], [chain, []]]);
      },
      build,
    },
    scoped: { chains: ["POSTROUTING"], build },
  });
}

/** The nft rule comment: `<instance hash>, net: <net>, if: <if>, id: <id>` (quotes removed, max 128). */
export function nftMasqComment(
  hash: string,
  network: string,
  options: { ifName: string; containerId: string },
): string {
  const clean = (s: string) => s.replaceAll('"', "");
  const text = `${hash}, net: ${clean(network)}, if: ${clean(options.ifName)}, id: ${
    clean(options.containerId)
  }`;
  return text.slice(0, 128);
}

/**
 * Adds the nftables masquerade objects and one rule per address to `tx`
 * (the layout of the reference's `ipmasq_nftables_linux.go`).
 */
export function nftMasqAdd(
  tx: NftTransaction,
  addresses: readonly MasqAddress[],
  options: { comment: string; existingHandles?: readonly number[] },
): void {
  const t = NFT_MASQ_TABLE;
  tx.addTable("inet", t, {
    comment: "Masquerading for plugins from github.com/containernetworking/plugins",
  });
  tx.addChain("inet", t, "masq_checks", {
    comment: "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet",
  });
  tx.addChain("inet", t, "postrouting", { type: "nat", hook: "postrouting", priority: 100 });
  tx.flushChain("inet", t, "postrouting");
  tx.addRule("inet", t, "postrouting", "ip daddr == 224.0.0.0/4  return");
  tx.addRule("inet", t, "postrouting", "ip6 daddr == ff00::/8  return");
  tx.addRule("inet", t, "postrouting", "goto masq_checks");
  for (const handle of options.existingHandles ?? []) {
    tx.deleteRule("inet", t, "masq_checks", handle);
  }
  for (const { addr, prefix } of addresses) {
    const ipX = addr.family === 4 ? "ip" : "ip6";
    const subnet = `${inetNtop(networkAddress(cidrOf(addr, prefix)))}/${prefix}`;
    tx.addRule(
      "inet",
      t,
      "masq_checks",
      `${ipX} saddr == ${inetNtop(addr)} ${ipX} daddr != ${subnet} masquerade`,
      { comment: options.comment },
    );
  }
}

async function nftMasqApply(
  network: string,
  addresses: readonly MasqAddress[],
  options: IpMasqOptions & { execer: Execer },
): Promise<void> {
  const ifName = options.ifName ?? "eth0";
  const hash = await nftInstanceHash(network, { ifName, containerId: options.containerId });
  const listing = await listNftTable("inet", NFT_MASQ_TABLE, { execer: options.execer });
  const handles = listing.rules
    .filter((r) => r.chain === "masq_checks" && r.comment?.startsWith(hash))
    .map((r) => r.handle);
  const tx = new NftTransaction();
  if (addresses.length > 0) {
    const comment = nftMasqComment(hash, network, { ifName, containerId: options.containerId });
    nftMasqAdd(tx, addresses, { comment, existingHandles: handles });
  } else {
    for (const handle of handles) tx.deleteRule("inet", NFT_MASQ_TABLE, "masq_checks", handle);
  }
  await applyNft(tx, { execer: options.execer });
}

/** An attachment that GC must keep (CNI 1.1 `cni.dev/valid-attachments`). */
export interface ValidAttachment {
  containerID: string;
  ifname: string;
}

const IPMASQ_CHAIN = /^CNI-[0-9a-f]{24}$/;

/**
 * CNI 1.1 GC for masquerading: removes this network's rules whose container
 * is not among `valid`. iptables: every `POSTROUTING` jump whose owner
 * comment names the network and an unknown container, with the chain it
 * jumps to (one transaction per family). nftables: the `masq_checks` rules
 * whose comment carries the network hash and an unknown (id, ifname), as
 * upstream's GC helper selects them. Returns the container ids cleaned up.
 */
export async function gcIpMasq(
  network: string,
  valid: readonly ValidAttachment[],
  options: Partial<Omit<TransactOptions, "families">> & { backend?: "iptables" | "nftables" } = {},
): Promise<string[]> {
  const execer = options.execer ?? defaultExecer();
  const removed = new Set<string>();
  if (options.backend === "nftables") {
    const prefix = await nftNetworkHash(network);
    const keep = new Set(valid.map((a) => `if: ${a.ifname}, id: ${a.containerID}`));
    const listing = await listNftTable("inet", NFT_MASQ_TABLE, { execer });
    const tx = new NftTransaction();
    for (const rule of listing.rules) {
      if (rule.chain !== "masq_checks" || !rule.comment?.startsWith(prefix)) continue;
      const owner = /if: (.*), id: (.*)$/.exec(rule.comment);
      if (!owner || keep.has(`if: ${owner[1]}, id: ${owner[2]}`)) continue;
      tx.deleteRule("inet", NFT_MASQ_TABLE, "masq_checks", rule.handle);
      removed.add(owner[2]);
    }
    if (removed.size > 0) await applyNft(tx, { execer });
    return [...removed];
  }
  const keep = new Set(valid.map((a) => a.containerID));
  await transact("nat", (plan) => {
    for (const rule of plan.rules("POSTROUTING")) {
      const [id] = commentOwners([rule], network);
      if (id === undefined || keep.has(id)) continue;
      const tokens = tokenizeRule(rule);
      const chain = tokens[tokens.indexOf("-j") + 1] ?? "";
      // Only chains of the reference's shape: a foreign rule with a look-alike comment is left alone.
      if (IPMASQ_CHAIN.test(chain) && planIpMasqDel(plan, chain)) removed.add(id);
    }
  }, { ...options, execer, families: [4, 6], tolerateUnusable: true });
  return [...removed];
}

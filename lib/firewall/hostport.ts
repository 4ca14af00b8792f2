/**
 * The nat rules of the `portmap` plugin, as data and as plans, for both
 * backends: iptables (`CNI-HOSTPORT-DNAT`, one `CNI-DN-<hash>` chain per
 * container, the masquerade mark chains) and nftables (`cni_hostport`
 * tables, rules owned by container id comments). Texts, positions and
 * comments are those of the reference plugin (v1.9.1).
 *
 * @module
 */
import { cidrOf, formatIp, inetNtop, type IpAddress, networkAddress } from "../ip/cidr.ts";
import { nftFamilyOf, type Rule } from "./iptables.ts";
import type { NftTransaction } from "./nft.ts";
import { sameRule, TablePlan } from "./plan.ts";
import type { PortProtocol } from "./validate.ts";

/** Top-level DNAT chain every container chain hangs off. */
export const HOSTPORT_DNAT_CHAIN = "CNI-HOSTPORT-DNAT";
/** Chain that sets the masquerade mark. */
export const HOSTPORT_SETMARK_CHAIN = "CNI-HOSTPORT-SETMARK";
/** Chain that masquerades marked packets. */
export const HOSTPORT_MASQ_CHAIN = "CNI-HOSTPORT-MASQ";
/** Entry chain of pre-0.7 per-container SNAT chains (torn down only). */
export const OLD_HOSTPORT_SNAT_CHAIN = "CNI-HOSTPORT-SNAT";
/** The nftables table (in families `ip` and `ip6`). */
export const NFT_HOSTPORT_TABLE = "cni_hostport";

/** One validated port mapping. */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: PortProtocol;
  /** Host address to match; undefined means every address. */
  hostIp?: IpAddress;
}

/** Everything that shapes one container's rules in one family. */
export interface HostportSpec {
  network: string;
  containerId: string;
  /** Per-container chain (`CNI-DN-<hash>`). */
  chain: string;
  /** Container address and prefix length of this family. */
  container: { addr: IpAddress; prefix: number };
  /** All mappings, in the order given (entry rules use all of them). */
  mappings: readonly PortMapping[];
  snat: boolean;
  masqAll: boolean;
  /** Mark chain the hairpin/localhost rules jump to. */
  setMarkChain: string;
  /** Extra match tokens for the entry rules (iptables style). */
  conditions: readonly string[];
}

/** `0x2000/0x2000` for bit 13 (Go's `%#x/%#x`). */
export function markValue(bit: number): string {
  const value = `0x${(2 ** bit).toString(16)}`;
  return `${value}/${value}`;
}

/** The one rule of `CNI-HOSTPORT-SETMARK`. */
export function setMarkRule(bit: number): Rule {
  return [
    "-m",
    "comment",
    "--comment",
    "CNI portfwd masquerade mark",
    "-j",
    "MARK",
    "--set-xmark",
    markValue(bit),
  ];
}

/** The one rule of `CNI-HOSTPORT-MASQ`. */
export function masqRule(bit: number): Rule {
  return ["-m", "mark", "--mark", markValue(bit), "-j", "MASQUERADE"];
}

/** `POSTROUTING` → `CNI-HOSTPORT-MASQ` (inserted at the top). */
export function masqJumpRule(): Rule {
  return [
    "-m",
    "comment",
    "--comment",
    "CNI portfwd requiring masquerade",
    "-j",
    HOSTPORT_MASQ_CHAIN,
  ];
}

/** `PREROUTING`/`OUTPUT` → `CNI-HOSTPORT-DNAT` (appended). */
export function dnatJumpRule(): Rule {
  return ["-m", "addrtype", "--dst-type", "LOCAL", "-j", HOSTPORT_DNAT_CHAIN];
}

/** The entry rules' comment, trimmed like the reference (253 characters and `...`). */
export function dnatComment(network: string, containerId: string): string {
  const comment = `dnat name: "${network}" id: "${containerId}"`;
  return comment.length <= 255 ? comment : `${comment.slice(0, 253)}...`;
}

/**
 * The entry rules' port lists: per protocol (sorted), the host ports of all
 * mappings in chunks of at most 15 (multiport's limit), comma-joined.
 */
function entryPortLists(mappings: readonly PortMapping[]): { protocol: string; ports: string }[] {
  const groups = new Map<string, number[]>();
  for (const m of mappings) groups.set(m.protocol, [...groups.get(m.protocol) ?? [], m.hostPort]);
  return [...groups.keys()].sort().flatMap((protocol) => {
    const ports = groups.get(protocol)!;
    const lists = [];
    for (let i = 0; i < ports.length; i += 15) {
      lists.push({ protocol, ports: ports.slice(i, i + 15).join(",") });
    }
    return lists;
  });
}

/** Entry rules into the container chain, one per protocol and port list (see `entryPortLists`). */
export function dnatEntryRules(spec: HostportSpec): Rule[] {
  const comment = dnatComment(spec.network, spec.containerId);
  return entryPortLists(spec.mappings).map(({ protocol, ports }) => [
    ...["-p", protocol, "-m", "comment", "--comment", comment, "-m", "multiport"],
    ...["--dports", ports, ...spec.conditions, "-j", spec.chain],
  ]);
}

function hostPortTarget(addr: IpAddress, port: number): string {
  return addr.family === 4 ? `${inetNtop(addr)}:${port}` : `[${inetNtop(addr)}]:${port}`;
}

/**
 * The container chain's rules: per mapping of this family, the hairpin mark
 * (and for IPv4 the localhost mark) when `snat`, then the DNAT. Mappings
 * whose host IP is of the other family are skipped.
 */
export function dnatRules(spec: HostportSpec): Rule[] {
  const { addr, prefix } = spec.container;
  const bits = addr.family === 4 ? 32 : 128;
  const rules: Rule[] = [];
  for (const m of spec.mappings) {
    if (m.hostIp && m.hostIp.family !== addr.family) continue;
    const dst = m.hostIp && m.hostIp.value !== 0n ? ["-d", `${inetNtop(m.hostIp)}/${bits}`] : [];
    const match = ["-p", m.protocol, "-m", m.protocol, "--dport", String(m.hostPort)];
    if (spec.snat) {
      // -s 0.0.0.0/0 (masqAll) matches everything, and iptables-save drops it.
      const source = spec.masqAll
        ? []
        : ["-s", `${inetNtop(networkAddress(cidrOf(addr, prefix)))}/${prefix}`];
      rules.push([...source, ...dst, ...match, "-j", spec.setMarkChain]);
      if (addr.family === 4 && !spec.masqAll) {
        rules.push(["-s", "127.0.0.1/32", ...dst, ...match, "-j", spec.setMarkChain]);
      }
    }
    rules.push([
      ...dst,
      ...match,
      "-j",
      "DNAT",
      "--to-destination",
      hostPortTarget(addr, m.containerPort),
    ]);
  }
  // The reference appends each rule only if the chain lacks it: a repeated mapping adds nothing.
  const seen = new Set<string>();
  return rules.filter((rule) => {
    const key = rule.join("\0");
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Options for {@linkcode planHostportAdd}. */
export interface HostportAddOptions {
  /** Mark bit for the shared mark chains; undefined when an external mark chain is used. */
  markBit?: number;
}

/**
 * Plans a portmap ADD for one family in the reference's order: the mark
 * chains and the `POSTROUTING` jump (when `snat` without an external mark
 * chain), `CNI-HOSTPORT-DNAT` with its `PREROUTING`/`OUTPUT` jumps, then the
 * container chain (rewritten whole) and its entry rules. Stale entry rules
 * into the container chain (from an earlier ADD) are replaced.
 */
export function planHostportAdd(
  plan: TablePlan,
  spec: HostportSpec,
  options: HostportAddOptions = {},
): void {
  if (spec.snat && options.markBit !== undefined) {
    plan.ensureChain(HOSTPORT_SETMARK_CHAIN);
    plan.ensureRule(HOSTPORT_SETMARK_CHAIN, setMarkRule(options.markBit));
    plan.ensureChain(HOSTPORT_MASQ_CHAIN);
    plan.ensureRule(HOSTPORT_MASQ_CHAIN, masqRule(options.markBit));
    plan.ensureRule("POSTROUTING", masqJumpRule(), { position: "first" });
  }
  plan.ensureChain(HOSTPORT_DNAT_CHAIN);
  plan.ensureRule("PREROUTING", dnatJumpRule());
  plan.ensureRule("OUTPUT", dnatJumpRule());
  planContainerDnat(plan, spec);
}

/** The container chain (rewritten whole) and its entry rules in `CNI-HOSTPORT-DNAT`. */
function planContainerDnat(plan: TablePlan, spec: HostportSpec): void {
  plan.replaceChain(spec.chain, dnatRules(spec));
  const entries = dnatEntryRules(spec);
  for (const rule of plan.jumpsTo(HOSTPORT_DNAT_CHAIN, spec.chain)) {
    if (!entries.some((entry) => sameRule(rule, entry))) plan.deleteRule(HOSTPORT_DNAT_CHAIN, rule);
  }
  for (const entry of entries) plan.ensureRule(HOSTPORT_DNAT_CHAIN, entry);
}

/** The only chain {@linkcode planHostportAddScoped} needs listed. */
export const SCOPED_ADD_CHAINS: readonly string[] = [HOSTPORT_DNAT_CHAIN];

/**
 * The same ADD as {@linkcode planHostportAdd}, planned against a listing of
 * `CNI-HOSTPORT-DNAT` alone, so its cost does not grow with the rest of the
 * nat table (every container's masquerade and DNAT chains): the shared
 * rules are not read but guarded with `-C`, so the batch fails, and the
 * caller falls back to the full plan, when one is missing. When
 * `CNI-HOSTPORT-DNAT` does not exist (the node's first ADD), nothing of the
 * shared setup can (a jump needs its target chain), so the full plan is
 * made against the empty listing: `-N` fails the batch if that was wrong.
 */
export function planHostportAddScoped(
  plan: TablePlan,
  spec: HostportSpec,
  options: HostportAddOptions = {},
): void {
  if (!plan.hasChain(HOSTPORT_DNAT_CHAIN)) {
    planHostportAdd(new TablePlan({ table: "nat", chains: new Map() }, plan.batch), spec, options);
    return;
  }
  const guard = (chain: string, rule: Rule) => plan.batch.check("nat", chain, rule);
  if (spec.snat && options.markBit !== undefined) {
    guard(HOSTPORT_SETMARK_CHAIN, setMarkRule(options.markBit));
    guard(HOSTPORT_MASQ_CHAIN, masqRule(options.markBit));
    guard("POSTROUTING", masqJumpRule());
  }
  guard("PREROUTING", dnatJumpRule());
  guard("OUTPUT", dnatJumpRule());
  planContainerDnat(plan, spec);
}

/**
 * Leaves one copy of each shared rule that a racing writer (the reference's
 * check-then-insert) doubled; adds nothing that is missing. For plans that
 * listed the whole table but do not ensure the shared rules (DEL).
 */
export function planSharedRepair(
  plan: TablePlan,
  options: HostportAddOptions & { snat: boolean },
): void {
  const shared: [string, Rule][] = [["PREROUTING", dnatJumpRule()], ["OUTPUT", dnatJumpRule()]];
  if (options.snat && options.markBit !== undefined) {
    shared.push(
      [HOSTPORT_SETMARK_CHAIN, setMarkRule(options.markBit)],
      [HOSTPORT_MASQ_CHAIN, masqRule(options.markBit)],
      ["POSTROUTING", masqJumpRule()],
    );
  }
  for (const [chain, rule] of shared) plan.dropExtraCopies(chain, rule);
}

/** What nf_tables shows of the shared places' rules: counts only (see {@linkcode sharedRulesSingle}). */
export interface SharedRuleView {
  /** How many rules of `chain` jump or go to `target`. */
  jumps(chain: string, target: string): number;
  /** How many rules `chain` holds. */
  rules(chain: string): number;
}

/**
 * Whether each shared rule {@linkcode planSharedRepair} repairs is there at
 * most once, judged from where the rules of each shared place jump. Then a
 * DEL can skip the listing that the repair needs. The mark chains hold one
 * rule each when intact; more rules of any kind count as a possible copy.
 */
export function sharedRulesSingle(
  view: SharedRuleView,
  options: HostportAddOptions & { snat: boolean },
): boolean {
  if (view.jumps("PREROUTING", HOSTPORT_DNAT_CHAIN) > 1) return false;
  if (view.jumps("OUTPUT", HOSTPORT_DNAT_CHAIN) > 1) return false;
  if (options.snat && options.markBit !== undefined) {
    if (view.jumps("POSTROUTING", HOSTPORT_MASQ_CHAIN) > 1) return false;
    if (view.rules(HOSTPORT_SETMARK_CHAIN) > 1) return false;
    if (view.rules(HOSTPORT_MASQ_CHAIN) > 1) return false;
  }
  return true;
}

/** What a teardown found in the chains it removed. */
export interface HostportTeardown {
  /** Whether a container chain (current or legacy) existed. */
  removed: boolean;
  /** UDP host ports the removed DNAT rules forwarded (for conntrack cleanup). */
  udpPorts: number[];
}

function udpPortsOf(rules: readonly string[]): number[] {
  const ports = new Set<number>();
  for (const rule of rules) {
    const match = / -p udp -m udp --dport (\d+) -j DNAT /.exec(` ${rule} `);
    if (match) ports.add(Number(match[1]));
  }
  return [...ports];
}

/**
 * Plans removal of a container's chains for one family: entry rules in
 * `CNI-HOSTPORT-DNAT` (found by their `-j <chain>` target), the chain, and
 * the legacy `CNI-SN-<hash>` chain with its `CNI-HOSTPORT-SNAT` entries.
 */
export function planHostportDel(
  plan: TablePlan,
  chains: { chain: string; legacyChain: string },
): HostportTeardown {
  const udpPorts = udpPortsOf(plan.rules(chains.chain));
  const removed = plan.removeChain(chains.chain, { referencedFrom: [HOSTPORT_DNAT_CHAIN] });
  const legacy = plan.removeChain(chains.legacyChain, {
    referencedFrom: [OLD_HOSTPORT_SNAT_CHAIN],
  });
  return { removed: removed || legacy, udpPorts };
}

function goRules(rules: readonly Rule[]): string {
  return `[${rules.map((rule) => `[${rule.join(" ")}]`).join(" ")}]`;
}

/**
 * The container chain's rules as the reference generates them, before
 * iptables normalises them (`-s` with the container's own address, no `-m
 * tcp`, a bare host IP, addresses as Go prints them): what its CHECK prints
 * when one is missing.
 */
function referenceDnatRules(spec: HostportSpec): Rule[] {
  const { addr, prefix } = spec.container;
  const rules: Rule[] = [];
  for (const m of spec.mappings) {
    if (m.hostIp && m.hostIp.family !== addr.family) continue;
    const base = ["-p", m.protocol, "--dport", String(m.hostPort)];
    if (m.hostIp && m.hostIp.value !== 0n) base.push("-d", formatIp(m.hostIp));
    if (spec.snat) {
      const all = addr.family === 4 ? "0.0.0.0/0" : "::/0";
      const source = spec.masqAll ? all : `${formatIp(addr)}/${prefix}`;
      rules.push([...base, "-s", source, "-j", spec.setMarkChain]);
      if (addr.family === 4 && !spec.masqAll) {
        rules.push([...base, "-s", "127.0.0.1", "-j", spec.setMarkChain]);
      }
    }
    rules.push([
      ...base,
      "-j",
      "DNAT",
      "--to-destination",
      addr.family === 4
        ? `${formatIp(addr)}:${m.containerPort}`
        : `[${formatIp(addr)}]:${m.containerPort}`,
    ]);
  }
  return rules;
}

/** The entry rules as the reference generates them (without their `-j`), for CHECK's messages. */
function referenceEntryRules(spec: HostportSpec): Rule[] {
  const comment = dnatComment(spec.network, spec.containerId);
  return entryPortLists(spec.mappings).map(({ protocol, ports }) => [
    ...["-m", "comment", "--comment", comment, "-m", "multiport", "-p", protocol],
    ...["--destination-ports", ports, ...spec.conditions],
  ]);
}

/**
 * Checks one family like the reference CHECK: the chain exists, each of its
 * rules (last first) and each entry rule is present. Returns the error
 * message (naming the rules as the reference generates them), or undefined.
 */
export function checkHostport(plan: TablePlan, spec: HostportSpec): string | undefined {
  if (!plan.hasChain(spec.chain)) return `chain ${spec.chain} not found in iptables table nat`;
  const rules = dnatRules(spec);
  for (let i = rules.length - 1; i >= 0; i--) {
    if (!plan.hasRule(spec.chain, rules[i])) {
      return `rule ${
        goRules(referenceDnatRules(spec))
      } in chain ${spec.chain} not found in table nat`;
    }
  }
  const entries = dnatEntryRules(spec);
  for (let i = entries.length - 1; i >= 0; i--) {
    if (!plan.hasRule(HOSTPORT_DNAT_CHAIN, entries[i])) {
      return `rule ${
        goRules(referenceEntryRules(spec))
      } in chain ${HOSTPORT_DNAT_CHAIN} not found in table nat`;
    }
  }
  return undefined;
}

/** Options for {@linkcode nftHostportAdd}. */
export interface NftHostportSpec {
  containerId: string;
  container: { addr: IpAddress };
  mappings: readonly PortMapping[];
  snat: boolean;
  masqAll: boolean;
  /** Extra nft match text for the prerouting/output rules (already validated tokens). */
  conditions: readonly string[];
  /** Handles of this container's existing rules (deleted first, so a repeated ADD does not duplicate). */
  existing?: readonly { chain: string; handle: number }[];
}

/**
 * Adds one family's portmap objects and this container's rules to `tx`, in
 * the layout of the reference's nftables backend: `hostports`,
 * `hostip_hostports` (legacy, kept empty), `hostports_all`, base chains
 * `prerouting`/`output` (nat, priority -100) and `masquerading` (srcnat).
 */
export function nftHostportAdd(tx: NftTransaction, spec: NftHostportSpec): void {
  const family = nftFamilyOf(spec.container.addr.family);
  const t = NFT_HOSTPORT_TABLE;
  const ipX = family;
  const ip = inetNtop(spec.container.addr);
  const cond = spec.conditions.length ? `${spec.conditions.join(" ")} ` : "";
  tx.addTable(family, t, { comment: "CNI portmap plugin" });
  tx.addChain(family, t, "hostports");
  tx.addChain(family, t, "hostip_hostports");
  tx.addChain(family, t, "hostports_all");
  tx.flushChain(family, t, "hostports_all");
  tx.addRule(family, t, "hostports_all", "jump hostip_hostports");
  tx.addRule(family, t, "hostports_all", "jump hostports");
  for (const [chain, hook] of [["prerouting", "prerouting"], ["output", "output"]]) {
    tx.addChain(family, t, chain, { type: "nat", hook, priority: -100 });
    tx.flushChain(family, t, chain);
    tx.addRule(family, t, chain, `${cond}fib daddr type local jump hostports_all`);
  }
  if (spec.snat) {
    tx.addChain(family, t, "masquerading", { type: "nat", hook: "postrouting", priority: 100 });
  }
  for (const rule of spec.existing ?? []) tx.deleteRule(family, t, rule.chain, rule.handle);
  for (const m of spec.mappings) {
    if (m.hostIp && m.hostIp.family !== spec.container.addr.family) continue;
    const daddr = m.hostIp && m.hostIp.value !== 0n ? `${ipX} daddr ${inetNtop(m.hostIp)} ` : "";
    tx.addRule(
      family,
      t,
      "hostports",
      `${daddr}${m.protocol} dport ${m.hostPort} dnat to ${
        hostPortTarget(spec.container.addr, m.containerPort)
      }`,
      { comment: spec.containerId },
    );
  }
  if (spec.snat) {
    const any = family === "ip" ? "0.0.0.0/0" : "::/0";
    const sources = spec.masqAll ? [any] : family === "ip" ? [ip, "127.0.0.1"] : [ip];
    for (const source of sources) {
      tx.addRule(
        family,
        t,
        "masquerading",
        `${ipX} saddr ${source} ${ipX} daddr ${ip} masquerade`,
        {
          comment: spec.containerId,
        },
      );
    }
  }
}

/** Rules of `cni_hostport` chains that a container owns (comment = container id). */
export const NFT_OWNED_CHAINS = ["hostports", "hostip_hostports", "masquerading"] as const;

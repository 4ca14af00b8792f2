/**
 * The filter-table rules of the `firewall` plugin's iptables backend, as
 * data and as plans: `CNI-FORWARD` with its `FORWARD` jump, the admin chain
 * jump, two rules per container address, and the ingress-policy isolation
 * chains. Texts, positions and comments are those of the reference plugin
 * (containernetworking/plugins v1.9.1).
 *
 * @module
 */
import { ipToBytes, parseCidr } from "../ip/cidr.ts";
import {
  ACCEPT,
  addressMatch,
  commentMatch,
  COUNTER,
  encodeExpressions,
  jumpTo,
  sameExpressions,
  xtMatch,
} from "./nft_expr.ts";
import { renderRule, type Rule } from "./iptables.ts";
import { jumpRules, payloadHolds, ruleExpressionList } from "./nfnetlink.ts";
import type { TablePlan } from "./plan.ts";

/** The shared chain holding per-container accept rules. */
export const FORWARD_CHAIN = "CNI-FORWARD";
/** The default admin override chain. */
export const DEFAULT_ADMIN_CHAIN = "CNI-ADMIN";
/** First isolation stage: per-bridge "leaving this bridge" rules. */
export const ISOLATION_STAGE_1 = "CNI-ISOLATION-STAGE-1";
/** Second isolation stage: per-bridge "entering this bridge" drops. */
export const ISOLATION_STAGE_2 = "CNI-ISOLATION-STAGE-2";

/** Ingress policies the reference knows. */
export type IngressPolicy = "open" | "same-bridge" | "isolated";

const SHARED_ISOLATION_COMMENT = "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)";

/** `FORWARD` → `CNI-FORWARD` jump (inserted at the top). */
export function forwardJumpRule(): Rule {
  return ["-m", "comment", "--comment", "CNI firewall plugin rules", "-j", FORWARD_CHAIN];
}

/** `CNI-FORWARD` → admin chain jump (inserted at the top). */
export function adminJumpRule(adminChain: string): Rule {
  return ["-m", "comment", "--comment", "CNI firewall plugin admin overrides", "-j", adminChain];
}

/**
 * The two `CNI-FORWARD` rules of one container address, given in host form
 * (`10.0.0.2/32`, `fd00::2/128`): replies in, anything out.
 *
 * @example Usage
 * ```ts
 * import { assertEquals } from "@std/assert";
 * assertEquals(containerRules("10.0.0.2/32")[1], ["-s", "10.0.0.2/32", "-j", "ACCEPT"]);
 * ```
 */
export function containerRules(hostAddress: string): Rule[] {
  return [
    ["-d", hostAddress, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
    ["-s", hostAddress, "-j", "ACCEPT"],
  ];
}

/** The isolation rules of one bridge, by chain and position. */
export interface IsolationRules {
  /** `FORWARD` → stage 1, inserted at the top (above the `CNI-FORWARD` jump). */
  forwardJump: Rule;
  /** Inserted at the top of stage 1, in this order (so the last ends first). */
  stage1First: Rule[];
  /** Appended to stage 1. */
  stage1Return: Rule;
  /** Inserted at the top of stage 2. */
  stage2First: Rule;
  /** Appended to stage 2. */
  stage2Return: Rule;
}

/**
 * The isolation rules for `bridge` under `same-bridge` or `isolated`.
 * Shared rules carry the combined comment, per-bridge stage-1 rules name the policy.
 */
export function isolationRules(bridge: string, policy: "same-bridge" | "isolated"): IsolationRules {
  const own = [
    "-m",
    "comment",
    "--comment",
    `CNI firewall plugin rules (ingressPolicy: ${policy})`,
  ];
  const shared = ["-m", "comment", "--comment", SHARED_ISOLATION_COMMENT];
  const stage1First: Rule[] = [["-i", bridge, "!", "-o", bridge, ...own, "-j", ISOLATION_STAGE_2]];
  if (policy === "isolated") stage1First.push(["-i", bridge, "-o", bridge, ...own, "-j", "DROP"]);
  return {
    forwardJump: [...shared, "-j", ISOLATION_STAGE_1],
    stage1First,
    stage1Return: [...shared, "-j", "RETURN"],
    stage2First: ["-o", bridge, ...shared, "-j", "DROP"],
    stage2Return: [...shared, "-j", "RETURN"],
  };
}

/** What one family of a firewall ADD installs. */
export interface ForwardSetup {
  /** Admin chain name (already validated). */
  adminChain: string;
  /** Container addresses of this family in host form (`/32`, `/128`). */
  addresses: readonly string[];
  /** Ingress isolation, if the policy is not `open`. */
  isolation?: { bridge: string; policy: "same-bridge" | "isolated" };
}

/**
 * Plans a firewall ADD for one family, in the reference's order: chains,
 * `FORWARD` jump at the top, admin jump at the top of `CNI-FORWARD`, the
 * address rules appended unless present, then the isolation rules.
 */
export function planForwardAdd(plan: TablePlan, setup: ForwardSetup): void {
  if (setup.addresses.length > 0) {
    plan.ensureChain(FORWARD_CHAIN);
    plan.ensureChain(setup.adminChain);
    plan.ensureRule("FORWARD", forwardJumpRule(), { position: "first" });
    plan.ensureRule(FORWARD_CHAIN, adminJumpRule(setup.adminChain), { position: "first" });
    for (const address of setup.addresses) {
      for (const rule of containerRules(address)) plan.ensureRule(FORWARD_CHAIN, rule);
    }
  }
  if (setup.isolation) {
    const rules = isolationRules(setup.isolation.bridge, setup.isolation.policy);
    plan.ensureChain(ISOLATION_STAGE_1);
    plan.ensureChain(ISOLATION_STAGE_2);
    plan.ensureRule("FORWARD", rules.forwardJump, { position: "first" });
    for (const rule of rules.stage1First) {
      plan.ensureRule(ISOLATION_STAGE_1, rule, { position: "first" });
    }
    plan.ensureRule(ISOLATION_STAGE_1, rules.stage1Return);
    plan.ensureRule(ISOLATION_STAGE_2, rules.stage2First, { position: "first" });
    plan.ensureRule(ISOLATION_STAGE_2, rules.stage2Return);
  }
}

/**
 * What nf_tables shows of one family's filter table, for an ADD that skips
 * the listing (answers may be pessimistic, never optimistic).
 */
export interface ForwardRuleView {
  /** How many rules of `chain` jump to `target`. */
  jumps(chain: string, target: string): number;
  /** Whether some rule of `chain` may match `address` (host form, `10.0.0.2/32`). */
  mayMention(chain: string, address: string): boolean;
}

/**
 * Whether an ADD can plan against {@linkcode assumedForwardChains} instead
 * of a listing: the shared jumps are each there exactly once (so there is
 * no doubled copy for the listed path to repair), and no `CNI-FORWARD` rule
 * mentions the container's addresses (an earlier container's leftover rules
 * would otherwise be appended a second time, where the reference keeps one).
 * Ingress isolation always takes the listed path.
 */
export function unlistedAddReady(view: ForwardRuleView, setup: ForwardSetup): boolean {
  if (setup.isolation || setup.addresses.length === 0) return false;
  if (view.jumps("FORWARD", FORWARD_CHAIN) !== 1) return false;
  if (view.jumps(FORWARD_CHAIN, setup.adminChain) !== 1) return false;
  return !setup.addresses.some((address) => view.mayMention(FORWARD_CHAIN, address));
}

/** The chains an unlisted ADD takes as given: the shared jumps, and the admin chain. */
export function assumedForwardChains(adminChain: string): Map<string, string[]> {
  return new Map([
    ["FORWARD", [renderRule(forwardJumpRule())]],
    [FORWARD_CHAIN, [renderRule(adminJumpRule(adminChain))]],
    [adminChain, []],
  ]);
}

/**
 * Plans an ADD against {@linkcode assumedForwardChains}: `-C` guards for
 * both shared jumps (the whole batch is refused if either is missing, or if
 * the admin chain is gone), then the address rules.
 */
export function planForwardAddUnlisted(plan: TablePlan, setup: ForwardSetup): void {
  plan.batch.check("filter", "FORWARD", forwardJumpRule());
  plan.batch.check("filter", FORWARD_CHAIN, adminJumpRule(setup.adminChain));
  planForwardAdd(plan, setup);
}

/**
 * Plans a firewall DEL for one family: one copy of each address rule, if
 * present. Chains, jumps and isolation rules stay (they are shared).
 */
export function planForwardDel(plan: TablePlan, addresses: readonly string[]): void {
  for (const address of addresses) {
    for (const rule of containerRules(address)) plan.deleteRule(FORWARD_CHAIN, rule);
  }
}

function goList(rule: Rule): string {
  return `[${rule.join(" ")}]`;
}

/**
 * Checks one family as the reference CHECK does (jumps, then each address
 * rule); returns the reference's error message for the first missing rule.
 */
export function checkForward(
  plan: TablePlan,
  setup: Pick<ForwardSetup, "adminChain" | "addresses">,
): string | undefined {
  if (setup.addresses.length === 0) return undefined;
  const forwardJump = forwardJumpRule();
  if (!plan.hasChain(FORWARD_CHAIN) || !plan.hasRule("FORWARD", forwardJump)) {
    return `expected FORWARD rule ${goList(forwardJump)} not found`;
  }
  const adminJump = adminJumpRule(setup.adminChain);
  if (!plan.hasChain(setup.adminChain) || !plan.hasRule(FORWARD_CHAIN, adminJump)) {
    return `expected ${FORWARD_CHAIN} rule ${goList(adminJump)} not found`;
  }
  for (const address of setup.addresses) {
    for (const rule of containerRules(address)) {
      if (!plan.hasRule(FORWARD_CHAIN, rule)) return `expected rule ${goList(rule)} not found`;
    }
  }
  return undefined;
}

/**
 * `-m conntrack --ctstate RELATED,ESTABLISHED` as iptables-nft hands it to
 * the kernel: revision 3 of the xt match, `struct xt_conntrack_mtinfo3`
 * (168 bytes on 64-bit) with `match_flags` = XT_CONNTRACK_STATE (offset
 * 146) and `state_mask` = RELATED | ESTABLISHED (offset 150), all else 0.
 */
const CONNTRACK_REV = 3;
const CONNTRACK_INFO = (() => {
  const info = new Uint8Array(168);
  info[146] = 1;
  info[150] = 6;
  return info;
})();

/**
 * The `CNI-FORWARD` rules of container `addresses` (host form) among a
 * chain's rules as nf_tables holds them (`NFT_MSG_NEWRULE` payloads), in
 * iptables-nft's encoding: per address exactly one `-d <a> -m conntrack
 * ... -j ACCEPT` and one `-s <a> -j ACCEPT`. Undefined when the chain
 * holds anything else for an address (a copy, a missing rule, another
 * shape): then the tool deletes them by rule text.
 */
export function nftContainerRules(
  rules: readonly Uint8Array[],
  addresses: readonly string[],
): Uint8Array[] | undefined {
  const picked: Uint8Array[] = [];
  for (const text of addresses) {
    const address = ipToBytes(parseCidr(text, KEEP_MAPPED).address);
    const [reply, outgoing] = nftContainerRuleExpressions(text);
    // Only rules whose bytes hold the address are compared (the chain has two per container);
    // any rule of those that is neither of the two is not the node ADD left.
    const mentions = rules.filter((payload) => payloadHolds(payload, address));
    const equal = (expressions: Uint8Array) =>
      mentions.filter((payload) => sameExpressions(ruleExpressionList(payload), expressions));
    const [replies, outgoings] = [equal(reply), equal(outgoing)];
    if (replies.length !== 1 || outgoings.length !== 1 || mentions.length !== 2) return undefined;
    picked.push(replies[0], outgoings[0]);
  }
  return picked;
}

/** An IPv4-mapped address stays 16 bytes: ip6tables matches it as an IPv6 address. */
const KEEP_MAPPED = { keepMapped: true } as const;

/**
 * The two `CNI-FORWARD` rules of one container address (host form), in
 * {@linkcode containerRules}' order, encoded as iptables-nft encodes them:
 * what `nftAppendRules` appends so that `iptables-save`, `iptables -D` and
 * {@linkcode nftContainerRules} see the rules the reference would have made.
 */
export function nftContainerRuleExpressions(hostAddress: string): Uint8Array[] {
  const { address: parsed, prefixLength } = parseCidr(hostAddress, KEEP_MAPPED);
  const address = ipToBytes(parsed);
  if (prefixLength !== address.length * 8) {
    throw new RangeError(`Not a host address: "${hostAddress}"`);
  }
  return [
    encodeExpressions([
      ...addressMatch("destination", address, prefixLength),
      xtMatch("conntrack", CONNTRACK_REV, CONNTRACK_INFO),
      COUNTER,
      ACCEPT,
    ]),
    encodeExpressions([...addressMatch("source", address, prefixLength), COUNTER, ACCEPT]),
  ];
}

/**
 * Whether the two shared jumps an ADD relies on are each there once and
 * exactly as the reference makes them (comment included), in nf_tables'
 * view (`rulesOf` gives a chain's `NFT_MSG_NEWRULE` payloads): what the
 * tool's `-C` guards check. A jump an operator reshaped (another comment, an
 * `-i` match) is not the reference's: the listed ADD puts the reference's
 * back, as the reference's ADD does.
 */
export function nftSharedJumpsAsMade(
  rulesOf: (chain: string) => readonly Uint8Array[],
  adminChain: string,
): boolean {
  const exact = (chain: string, target: string, comment: string) => {
    const jumps = jumpRules(rulesOf(chain), target);
    return jumps.length === 1 &&
      sameExpressions(
        ruleExpressionList(jumps[0]),
        encodeExpressions([commentMatch(comment), COUNTER, jumpTo(target)]),
      );
  };
  // The texts of forwardJumpRule() and adminJumpRule().
  return exact("FORWARD", FORWARD_CHAIN, forwardJumpRule()[3]) &&
    exact(FORWARD_CHAIN, adminChain, adminJumpRule(adminChain)[3]);
}

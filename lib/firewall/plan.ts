/**
 * Idempotent operations on one table, decided against one listing of it
 * (`iptables -S`: the same rule text as `iptables-save`) and collected into
 * a {@linkcode RestoreBatch}: "ensure this chain", "ensure this rule at the
 * top", "append unless present", "replace my own chain", "delete if
 * present". The plan keeps its own copy of the listing up to date, so later
 * steps see earlier ones. A listing may hold only some chains (`listed`);
 * the plan then refuses to read any other.
 *
 * @module
 */
import {
  renderRule,
  type RestoreBatch,
  type Rule,
  type SaveTable,
  tokenizeRule,
} from "./iptables.ts";

/** Where {@linkcode TablePlan.ensureRule} puts a missing rule. */
export type RulePosition = "first" | "last";

const BUILTIN_CHAINS = new Set(["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]);

/** True for the kernel's built-in chains, which exist in every usable table. */
export function isBuiltinChain(chain: string): boolean {
  return BUILTIN_CHAINS.has(chain);
}

/**
 * True if a listed rule and a planned rule are the same: equal text, or the
 * same tokens in another order (`iptables-save` moves `-s`/`-d`/`-i`/`-o`/`-p`
 * ahead of matches that users give in a different order, e.g. conditions).
 */
export function sameRule(listed: string, rule: Rule | string): boolean {
  const text = typeof rule === "string" ? rule : renderRule(rule);
  if (listed === text) return true;
  const x = optionGroups(listed);
  const y = optionGroups(text);
  return x.length === y.length && x.every((group, i) => group === y[i]);
}

/** A rule as sorted option groups (`! -o br`, `-s 10.0.0.2/32`), so order does not matter but pairing does. */
function optionGroups(text: string): string[] {
  const groups: string[][] = [];
  let negate = false;
  for (const token of tokenizeRule(text)) {
    if (token === "!") {
      negate = true;
    } else if (token.startsWith("-") || groups.length === 0) {
      groups.push(negate ? ["!", token] : [token]);
      negate = false;
    } else {
      groups[groups.length - 1].push(token);
    }
  }
  return groups.map((group) => JSON.stringify(group)).sort();
}

/**
 * Plans changes to one table of one family. Decisions are made against the
 * snapshot; the batch holds only what is missing or present-and-unwanted.
 *
 * @example Usage
 * ```ts
 * import { assertEquals } from "@std/assert";
 * import { parseSave, RestoreBatch } from "./iptables.ts";
 * const batch = new RestoreBatch();
 * const plan = new TablePlan(parseSave("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n", "filter"), batch);
 * plan.ensureChain("CNI-FORWARD");
 * plan.ensureRule("FORWARD", ["-j", "CNI-FORWARD"], { position: "first" });
 * plan.ensureRule("FORWARD", ["-j", "CNI-FORWARD"], { position: "first" });
 * assertEquals(batch.render(), "*filter\n-N CNI-FORWARD\n-I FORWARD 1 -j CNI-FORWARD\nCOMMIT\n");
 * ```
 */
export class TablePlan {
  readonly #chains: Map<string, string[]>;
  readonly #batch: RestoreBatch;
  readonly #table: SaveTable["table"];
  /** When the snapshot lists only some chains: those. Undefined: the whole table. */
  readonly #listed: ReadonlySet<string> | undefined;
  /** The snapshot is assumed, not listed (see the constructor). */
  readonly #assumed: boolean;

  /**
   * @param options.listed The chains the snapshot lists, when it is not the
   * whole table: reading any other chain's rules is then a programming
   * error, and owned chains outside it are handled without knowing whether
   * they exist.
   * @param options.assumed The snapshot is what the caller expects rather
   * than a listing (its chains are the only ones the plan may read): an
   * owned chain it does not hold is taken to be absent and is created with
   * `-N`, which refuses the whole batch if it exists after all. Shared rules
   * the plan relies on must be guarded with `-C` by the caller.
   */
  constructor(
    snapshot: SaveTable,
    batch: RestoreBatch,
    options: { listed?: readonly string[]; assumed?: boolean } = {},
  ) {
    this.#table = snapshot.table;
    this.#chains = new Map([...snapshot.chains].map(([name, rules]) => [name, [...rules]]));
    this.#batch = batch;
    this.#assumed = options.assumed ?? false;
    const listed = options.listed ?? (this.#assumed ? [...snapshot.chains.keys()] : undefined);
    this.#listed = listed ? new Set(listed) : undefined;
  }

  #requireListed(chain: string): void {
    if (this.#listed && !this.#listed.has(chain)) {
      throw new Error(`plan reads chain ${chain}, which its listing does not hold`);
    }
  }

  /** The batch this plan writes to. */
  get batch(): RestoreBatch {
    return this.#batch;
  }

  /** True if the chain exists (or is built in). */
  hasChain(chain: string): boolean {
    if (BUILTIN_CHAINS.has(chain)) return true;
    this.#requireListed(chain);
    return this.#chains.has(chain);
  }

  /** The chain's rules as `iptables-save` prints them (empty if it does not exist). */
  rules(chain: string): readonly string[] {
    this.#requireListed(chain);
    return this.#chains.get(chain) ?? [];
  }

  /** Index of `rule` in `chain` (see {@linkcode sameRule}), or -1. */
  indexOf(chain: string, rule: Rule | string): number {
    const text = typeof rule === "string" ? rule : renderRule(rule);
    const rules = this.rules(chain);
    const exact = rules.indexOf(text);
    return exact !== -1 ? exact : rules.findIndex((r) => sameRule(r, text));
  }

  /** True if `chain` holds `rule` (the `-C` question, answered from the listing). */
  hasRule(chain: string, rule: Rule | string): boolean {
    return this.indexOf(chain, rule) !== -1;
  }

  /** Creates a shared chain with `-N` if it is missing. Never flushes. */
  ensureChain(chain: string): void {
    if (this.hasChain(chain)) return;
    this.#batch.createChain(this.#table, chain);
    this.#chains.set(chain, []);
  }

  /** Indexes of every copy of `rule` in `chain` (see {@linkcode sameRule}). */
  #copiesOf(chain: string, rule: Rule): number[] {
    const text = renderRule(rule);
    const copies: number[] = [];
    this.rules(chain).forEach((listed, i) => {
      if (listed === text || sameRule(listed, text)) copies.push(i);
    });
    return copies;
  }

  /**
   * Inserts (at the top) or appends `rule` unless `chain` already holds it
   * anywhere. Extra copies (left by another writer's check-then-insert race)
   * are removed, keeping the first copy where it stands.
   */
  ensureRule(chain: string, rule: Rule, options: { position?: RulePosition } = {}): void {
    const copies = this.#copiesOf(chain, rule);
    if (copies.length > 1) {
      this.#keepFirstCopy(chain, copies);
      return;
    }
    if (copies.length === 1) return;
    const text = renderRule(rule);
    const rules = this.#chains.get(chain) ?? [];
    this.#chains.set(chain, rules);
    if (options.position === "first") {
      this.#batch.insert(this.#table, chain, rule);
      rules.unshift(text);
    } else {
      this.#batch.append(this.#table, chain, rule);
      rules.push(text);
    }
  }

  /** Leaves one copy of `rule` in `chain` when there are several; adds nothing. */
  dropExtraCopies(chain: string, rule: Rule): void {
    const copies = this.#copiesOf(chain, rule);
    if (copies.length > 1) this.#keepFirstCopy(chain, copies);
  }

  /**
   * `-D <rule>` removes the first match, so every copy is deleted and one is
   * inserted back at the first copy's position: no rule number is trusted
   * across the listing and the restore, and the order around it stays.
   */
  #keepFirstCopy(chain: string, copies: number[]): void {
    const rules = this.#chains.get(chain)!;
    const first = rules[copies[0]];
    for (const i of copies) this.#batch.delete(this.#table, chain, rules[i]);
    this.#batch.insert(this.#table, chain, first, { position: copies[0] + 1 });
    this.#chains.set(chain, rules.filter((_, i) => !copies.includes(i) || i === copies[0]));
  }

  /** Deletes one copy of `rule` from `chain` if present; returns whether it did. */
  deleteRule(chain: string, rule: Rule | string): boolean {
    const index = this.indexOf(chain, rule);
    if (index === -1) return false;
    const rules = this.#chains.get(chain)!;
    this.#batch.delete(this.#table, chain, rules[index]);
    rules.splice(index, 1);
    return true;
  }

  /** Rules of `chain` whose target is `target` (`... -j target`), as listed. */
  jumpsTo(chain: string, target: string): string[] {
    return this.rules(chain).filter((rule) =>
      rule === `-j ${target}` || rule.endsWith(` -j ${target}`)
    );
  }

  /**
   * Makes an owned (per-container) chain hold exactly `rules`: declares it
   * (creating or flushing it) and appends them, unless it already holds
   * exactly those rules.
   */
  replaceChain(chain: string, rules: readonly Rule[]): void {
    const wanted = rules.map(renderRule);
    // Not listed: unknown, so rewritten (declaring creates or flushes it).
    const have = this.#listed && !this.#listed.has(chain) ? undefined : this.#chains.get(chain);
    if (have && have.length === wanted.length && have.every((r, i) => r === wanted[i])) return;
    if (this.#assumed && !this.#chains.has(chain)) this.#batch.createChain(this.#table, chain);
    else this.#batch.declareChain(this.#table, chain);
    for (const rule of rules) this.#batch.append(this.#table, chain, rule);
    this.#chains.set(chain, wanted);
  }

  /**
   * Removes an owned chain if it exists: deletes every rule jumping to it
   * from `referencedFrom`, flushes it and deletes it. Returns whether it existed.
   */
  removeChain(chain: string, options: { referencedFrom?: readonly string[] } = {}): boolean {
    for (const from of options.referencedFrom ?? []) {
      for (const rule of this.jumpsTo(from, chain)) this.deleteRule(from, rule);
    }
    if (this.#listed && !this.#listed.has(chain)) {
      // Not listed: declare it (creating it if it is missing), then delete it.
      this.#batch.declareChain(this.#table, chain);
      this.#batch.deleteChain(this.#table, chain);
      return true;
    }
    if (!this.#chains.has(chain)) return false;
    this.#batch.flushChain(this.#table, chain);
    this.#batch.deleteChain(this.#table, chain);
    this.#chains.delete(chain);
    return true;
  }
}

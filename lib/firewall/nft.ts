/**
 * nftables as data: an {@linkcode NftTransaction} collects `add`/`flush`/
 * `delete` commands, renders them as an `nft -f` script (the layout of
 * knftables' `Transaction.String()`), and {@linkcode applyNft} runs it with
 * one `nft -f -`: the kernel applies all of it or none.
 *
 * @module
 */
import { type Execer, FirewallToolError } from "./exec.ts";
import { validateCommentText } from "./validate.ts";

/** nftables address families used here. */
export type NftFamily = "ip" | "ip6" | "inet" | "bridge";

/** Base-chain settings for {@linkcode NftTransaction.addChain}. */
export interface NftChainOptions {
  /** `nat`, `filter` or `route`. */
  type?: string;
  /** `prerouting`, `input`, `forward`, `output` or `postrouting`. */
  hook?: string;
  /** Numeric or named priority (`-100`, `dstnat`). */
  priority?: string | number;
  /** Chain comment. */
  comment?: string;
}

/** A failed `nft` run. */
export class NftError extends FirewallToolError {
  override name = "NftError";
}

// deno-lint-ignore no-control-regex -- a control character would end the nft command early.
const UNSAFE = /[\x00-\x1f\x7f;#]/;
const NAME = /^[A-Za-z_][A-Za-z0-9_.\-]*$/;

function name(value: string, what: string): string {
  if (!NAME.test(value)) throw new RangeError(`Invalid nft ${what} name ${JSON.stringify(value)}`);
  return value;
}

function comment(text: string): string {
  return `comment "${validateCommentText(text, "nft comment", { nft: true })}"`;
}

/**
 * One nft transaction. Rule bodies are nft statements; they are checked for
 * characters that would end the command (`;`, `#`, control characters).
 *
 * @example Usage
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const tx = new NftTransaction();
 * tx.addTable("ip", "cni_hostport", { comment: "CNI portmap plugin" });
 * tx.addRule("ip", "cni_hostport", "hostports", "tcp dport 8080 dnat to 10.0.0.2:80", { comment: "id" });
 * assertEquals(tx.render(), [
 *   'add table ip cni_hostport { comment "CNI portmap plugin" ; }',
 *   'add rule ip cni_hostport hostports tcp dport 8080 dnat to 10.0.0.2:80 comment "id"',
 *   "",
 * ].join("\n"));
 * ```
 */
export class NftTransaction {
  readonly #lines: string[] = [];

  /** `add table` (no-op if it exists). */
  addTable(family: NftFamily, table: string, options: { comment?: string } = {}): this {
    const body = options.comment === undefined ? "" : ` { ${comment(options.comment)} ; }`;
    this.#lines.push(`add table ${family} ${name(table, "table")}${body}`);
    return this;
  }

  /** `add chain` (no-op if it exists); base chains get `{ type ... hook ... priority ... ; }`. */
  addChain(family: NftFamily, table: string, chain: string, options: NftChainOptions = {}): this {
    const parts: string[] = [];
    if (options.type !== undefined) {
      const priority = String(options.priority ?? 0);
      if (!/^(-?[0-9]+|[a-z]+)$/.test(priority)) {
        throw new RangeError(`Invalid nft chain priority ${JSON.stringify(priority)}`);
      }
      const hook = name(options.hook ?? "", "hook");
      parts.push(`type ${name(options.type, "chain type")} hook ${hook} priority ${priority} ;`);
    }
    if (options.comment !== undefined) parts.push(`${comment(options.comment)} ;`);
    const body = parts.length ? ` { ${parts.join(" ")} }` : "";
    this.#lines.push(`add chain ${family} ${name(table, "table")} ${name(chain, "chain")}${body}`);
    return this;
  }

  /** `flush chain`. */
  flushChain(family: NftFamily, table: string, chain: string): this {
    this.#lines.push(`flush chain ${family} ${name(table, "table")} ${name(chain, "chain")}`);
    return this;
  }

  /** `delete chain`. */
  deleteChain(family: NftFamily, table: string, chain: string): this {
    this.#lines.push(`delete chain ${family} ${name(table, "table")} ${name(chain, "chain")}`);
    return this;
  }

  /** `add rule ... <rule> [comment "..."]`. */
  addRule(
    family: NftFamily,
    table: string,
    chain: string,
    rule: string,
    options: { comment?: string } = {},
  ): this {
    if (UNSAFE.test(rule)) {
      throw new RangeError(
        `Cannot add nft rule ${JSON.stringify(rule)}: ";", "#" or control character`,
      );
    }
    const tail = options.comment === undefined ? "" : ` ${comment(options.comment)}`;
    this.#lines.push(
      `add rule ${family} ${name(table, "table")} ${name(chain, "chain")} ${rule}${tail}`,
    );
    return this;
  }

  /** `delete rule ... handle N`. */
  deleteRule(family: NftFamily, table: string, chain: string, handle: number): this {
    if (!Number.isInteger(handle) || handle < 1) {
      throw new RangeError(`Invalid nft rule handle ${handle}`);
    }
    this.#lines.push(
      `delete rule ${family} ${name(table, "table")} ${name(chain, "chain")} handle ${handle}`,
    );
    return this;
  }

  /** True when there is nothing to apply. */
  get isEmpty(): boolean {
    return this.#lines.length === 0;
  }

  /** The `nft -f` script, one command per line. */
  render(): string {
    return this.#lines.map((line) => `${line}\n`).join("");
  }
}

/**
 * Applies a transaction with one `nft -f -`. Does nothing if it is empty.
 * Throws {@linkcode NftError} with nft's message.
 *
 * @example Usage
 * ```ts ignore
 * await applyNft(tx, { execer: defaultExecer() });
 * ```
 */
export async function applyNft(tx: NftTransaction, options: { execer: Execer }): Promise<void> {
  if (tx.isEmpty) return;
  // nft commits the whole file as one batch.
  const out = await options.execer.run("nft", ["-f", "-"], { stdin: tx.render(), commits: 1 });
  if (out.code !== 0) {
    const stderr = out.stderr.trim();
    throw new NftError(`nft -f failed: ${stderr || `exit ${out.code}`}`, {
      code: out.code,
      stderr,
    });
  }
}

/** A rule as listed by nft, enough to find and delete it. */
export interface NftRuleRef {
  chain: string;
  handle: number;
  comment?: string;
}

/** What {@linkcode listNftTable} found. */
export interface NftTableListing {
  /** False when the table does not exist. */
  exists: boolean;
  chains: string[];
  rules: NftRuleRef[];
}

/**
 * Lists a table's chains and rules (handles and comments) with one
 * `nft -j list table` process. A missing table is not an error.
 *
 * @example Usage
 * ```ts ignore
 * const listing = await listNftTable("ip", "cni_hostport", { execer: defaultExecer() });
 * ```
 */
export async function listNftTable(
  family: NftFamily,
  table: string,
  options: { execer: Execer },
): Promise<NftTableListing> {
  if (options.execer.nftTableExists?.(family, table) === false) {
    return { exists: false, chains: [], rules: [] };
  }
  const out = await options.execer.run("nft", [
    "-j",
    "list",
    "table",
    family,
    name(table, "table"),
  ]);
  if (out.code !== 0) {
    if (/No such file or directory/.test(out.stderr)) {
      return { exists: false, chains: [], rules: [] };
    }
    const stderr = out.stderr.trim();
    throw new NftError(
      `nft list table ${family} ${table} failed: ${stderr || `exit ${out.code}`}`,
      {
        code: out.code,
        stderr,
      },
    );
  }
  return parseNftListing(out.stdout);
}

/** Parses `nft -j list table` output into chains and rule references. */
export function parseNftListing(json: string): NftTableListing {
  const items = (JSON.parse(json) as { nftables?: Record<string, Record<string, unknown>>[] })
    .nftables ?? [];
  const listing: NftTableListing = { exists: false, chains: [], rules: [] };
  for (const item of items) {
    if (item.table) listing.exists = true;
    if (item.chain) listing.chains.push(String(item.chain.name));
    if (item.rule) {
      const rule: NftRuleRef = { chain: String(item.rule.chain), handle: Number(item.rule.handle) };
      if (typeof item.rule.comment === "string") rule.comment = item.rule.comment;
      listing.rules.push(rule);
    }
  }
  return listing;
}

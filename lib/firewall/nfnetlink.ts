/**
 * What the firewall layer asks of nf_tables directly, over nfnetlink,
 * instead of starting a tool: whether a table exists, what a chain's rules
 * jump to (or whether they may mention some bytes), when a process (an
 * `iptables-restore` or `nft` we started) has committed its batches; and
 * the transactions it makes itself where the node is as expected: removing
 * a container's rules (DEL) and appending them (firewall and masquerade
 * ADD), each one batch the kernel refuses whole: if the ruleset (any table)
 * changed since it was read (DEL, firewall ADD), or if the container's
 * chain already exists (masquerade ADD).
 *
 * nf_tables announces every commit to the `NFNLGRP_NFTABLES` multicast group
 * as `NFT_MSG_NEWGEN`, with the committing process's pid.
 *
 * Why: an `iptables-restore` that deleted rules exits 12-16 ms after its
 * commit, because closing its nfnetlink socket waits for nf_tables' deferred
 * cleanup (measured: the commit is announced 1.6 ms after the spawn, the exit
 * comes at 16 ms). Once the kernel has announced the commit, the rules are in
 * place and the plugin can go on with its next step while the tool exits.
 *
 * @module
 */
import { decodeRawAttrs, encodeRawAttrs, type RawAttr } from "../netlink/codec.ts";
import {
  NETLINK_NETFILTER,
  NLA_F_NESTED,
  NLA_TYPE_MASK,
  NLM_F_APPEND,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
} from "../netlink/consts.ts";
import { NetlinkError } from "../netlink/error.ts";
import { NetlinkSocket } from "../netlink/socket.ts";
import { Errno } from "../sys/errno.ts";
import { currentNetnsInode } from "../sys/netns_id.ts";

// include/uapi/linux/netfilter/nfnetlink.h, nf_tables.h
const NFNLGRP_NFTABLES = 7;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_GETTABLE = 1;
const NFT_MSG_NEWCHAIN = 3;
const NFT_MSG_GETCHAIN = 4;
const NFT_MSG_DELCHAIN = 5;
const NFT_MSG_NEWRULE = 6;
const NFT_MSG_GETRULE = 7;
const NFT_MSG_DELRULE = 8;
const NFT_MSG_NEWGEN = 15;
const NFT_MSG_GETGEN = 16;
const NFNL_MSG_BATCH_BEGIN = 16; // NLMSG_MIN_TYPE
const NFNL_MSG_BATCH_END = 17;
const NFNL_BATCH_GENID = 1;
const NFTA_GEN_ID = 1;
const NFTA_RULE_HANDLE = 3;
const NFTA_TABLE_NAME = 1;
const NFTA_CHAIN_TABLE = 1;
const NFTA_CHAIN_NAME = 3;
const NFTA_RULE_TABLE = 1;
const NFTA_RULE_CHAIN = 2;
const NFTA_RULE_EXPRESSIONS = 4;
const NFTA_LIST_ELEM = 1;
const NFTA_EXPR_NAME = 1;
const NFTA_EXPR_DATA = 2;
const NFTA_IMMEDIATE_DATA = 2;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT_CODE = 1;
const NFTA_VERDICT_CHAIN = 2;
const NFT_JUMP = -3;
const NFT_GOTO = -4;
const NFTA_GEN_PROC_PID = 2;
/** nft's family names and their `NFPROTO_*` numbers. */
const NFPROTO: Record<string, number> = { inet: 1, ip: 2, arp: 3, netdev: 5, bridge: 7, ip6: 10 };

/** The `NFPROTO_*` number of an nft family name. */
function nfproto(family: string): number {
  const proto = NFPROTO[family];
  if (proto === undefined) throw new RangeError(`Unknown nftables family "${family}"`);
  return proto;
}

// Closing an nfnetlink socket waits for nf_tables' deferred cleanup (an RCU grace period)
// whenever a deletion was committed shortly before, by anyone, e.g. the `iptables-restore`
// that bridge DEL runs next to its nftables check: 15-28 ms per close, measured. The query
// socket of the namespace the process started in is therefore kept for the process's life.
// Elsewhere (inside `withNetns`) a socket is used once: a kept one would pin its namespace.
const homeNetns = currentNetnsInode();
// A reply that never comes (it should not) fails the call instead of hanging the plugin.
const QUERY_SOCKET = { protocol: NETLINK_NETFILTER, receiveTimeoutMs: 5000 };
let homeSocket: NetlinkSocket | undefined;

/** Runs `fn` with a NETLINK_NETFILTER socket of the calling thread's namespace. */
function withQuerySocket<T>(fn: (socket: NetlinkSocket) => T): T {
  const here = currentNetnsInode();
  if (homeNetns !== undefined && here === homeNetns) {
    homeSocket ??= NetlinkSocket.open(QUERY_SOCKET);
    return fn(homeSocket);
  }
  using socket = NetlinkSocket.open(QUERY_SOCKET);
  return fn(socket);
}

/**
 * Whether nftables table `family table` exists in the calling thread's
 * network namespace: the question `nft list table` answers, without a
 * process (one request; ENOENT means no).
 */
export function nftTableExists(family: string, table: string): boolean {
  return nftObjectExists(family, NFT_MSG_GETTABLE, [
    { type: NFTA_TABLE_NAME, data: cstr(table) },
  ], `get nftables table ${family} ${table}`);
}

/**
 * Whether chain `chain` of nftables table `family table` exists in the
 * calling thread's network namespace (one request; ENOENT, for the table or
 * the chain, means no). Sees what `iptables-nft` made, not the legacy
 * backend's chains.
 */
export function nftChainExists(family: string, table: string, chain: string): boolean {
  return nftObjectExists(family, NFT_MSG_GETCHAIN, [
    { type: NFTA_CHAIN_TABLE, data: cstr(table) },
    { type: NFTA_CHAIN_NAME, data: cstr(chain) },
  ], `get nftables chain ${family} ${table} ${chain}`);
}

/** One non-dump `GET` request: true when answered, false for ENOENT. */
function nftObjectExists(family: string, type: number, attrs: RawAttr[], op: string): boolean {
  const proto = nfproto(family);
  try {
    withQuerySocket((socket) => socket.request({ ...command(proto, type, attrs), op }));
    return true;
  } catch (error) {
    if (error instanceof NetlinkError && error.errno === Errno.ENOENT) return false;
    throw error;
  }
}

/**
 * The rules of `family table chain` as nf_tables holds them (rules that
 * `iptables-nft` wrote, not those of the legacy backend): one
 * `NFT_MSG_NEWRULE` payload (nfgenmsg + attributes) per rule, in rule order.
 * `[]` when the table or chain does not exist.
 */
export function nftRulePayloads(family: string, table: string, chain: string): Uint8Array[] {
  const proto = nfproto(family);
  const encoder = new TextEncoder();
  let messages;
  try {
    messages = withQuerySocket((socket) =>
      socket.request({
        type: (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE,
        flags: NLM_F_DUMP,
        payload: Uint8Array.of(
          proto,
          0,
          0,
          0,
          ...encodeRawAttrs([
            { type: NFTA_RULE_TABLE, data: encoder.encode(table + "\0") },
            { type: NFTA_RULE_CHAIN, data: encoder.encode(chain + "\0") },
          ]),
        ),
        op: `list nftables rules of ${family} ${table} ${chain}`,
      })
    );
  } catch (error) {
    if (error instanceof NetlinkError && error.errno === Errno.ENOENT) return [];
    throw error;
  }
  return messages
    .filter((m) => m.header.type === ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE))
    .map((m) => m.payload);
}

/**
 * {@linkcode nftRulePayloads} of one table, each chain dumped at most once
 * however often it is asked about.
 */
export function nftTableRules(family: string, table: string): (chain: string) => Uint8Array[] {
  const dumped = new Map<string, Uint8Array[]>();
  return (chain) => {
    let rules = dumped.get(chain);
    if (rules === undefined) {
      rules = nftRulePayloads(family, table, chain);
      dumped.set(chain, rules);
    }
    return rules;
  };
}

/** nf_tables' current ruleset generation (`NFT_MSG_GETGEN`) in the calling thread's namespace. */
function nftGeneration(socket: NetlinkSocket): number {
  const [reply] = socket.request({
    type: (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN,
    payload: Uint8Array.of(0, 0, 0, 0),
    op: "get nftables generation",
  });
  const id = attrOf(reply?.payload.subarray(4), NFTA_GEN_ID)?.data;
  if (id === undefined || id.length !== 4) throw new Error("nftables generation: no NFTA_GEN_ID");
  return new DataView(id.buffer, id.byteOffset, 4).getUint32(0); // big endian
}

/** The handle (`NFTA_RULE_HANDLE`, u64 big endian) of one `NFT_MSG_NEWRULE` payload. */
export function ruleHandle(payload: Uint8Array): bigint | undefined {
  const handle = attrOf(payload.subarray(4), NFTA_RULE_HANDLE)?.data;
  if (handle === undefined || handle.length !== 8) return undefined;
  return new DataView(handle.buffer, handle.byteOffset, 8).getBigUint64(0);
}

/** What {@linkcode nftDropChain} is to remove. */
export interface DropChainSpec {
  /** nft family of the iptables-nft table: `ip` or `ip6`. */
  family: string;
  /** The iptables table, e.g. `nat`. */
  table: string;
  /** The chain to flush and delete; it must exist. */
  chain: string;
  /** The chains whose rules may jump to `chain`: every such rule goes. */
  jumpsFrom: readonly string[];
  /**
   * How many jumps to `chain` the caller expects in `jumpsFrom` all told:
   * another number means the node is not as expected. @default {undefined} (any)
   */
  jumps?: number;
  /** Chains that must not exist (a legacy chain the caller would have to handle). @default {[]} */
  absent?: readonly string[];
  /**
   * Bytes (e.g. addresses) no jump may hold: such a jump must stay, and the
   * chain with it, which the caller's tool plans. @default {[]}
   */
  keep?: readonly Uint8Array[];
}

/**
 * Removes an iptables-nft chain and every jump to it in one nf_tables
 * transaction, without a tool: what `iptables-restore` does with `-D` of the
 * jumps, `-F` and `-X`, about 2 ms sooner (no process to start). The jumps
 * are found in a dump and deleted by handle, in a batch that carries the
 * generation the dump was read at, so the kernel refuses the whole batch if
 * anything changed in between.
 *
 * Returns false, having changed nothing, where the caller's tool must do it
 * instead: the chain is not in nf_tables (legacy backend, or gone), a chain
 * of `absent` exists, the jumps are not as many as `jumps`, or the batch was
 * refused (a concurrent change). Throws only for failures of the socket itself.
 */
export function nftDropChain(spec: DropChainSpec): boolean {
  const proto = nfproto(spec.family);
  return withQuerySocket((socket) => {
    const generation = nftGeneration(socket);
    if (!nftChainExists(spec.family, spec.table, spec.chain)) return false;
    if ((spec.absent ?? []).some((chain) => nftChainExists(spec.family, spec.table, chain))) {
      return false;
    }
    const handles: [string, bigint][] = [];
    for (const from of spec.jumpsFrom) {
      for (const payload of jumpRules(nftRulePayloads(spec.family, spec.table, from), spec.chain)) {
        if ((spec.keep ?? []).some((bytes) => payloadHolds(payload, bytes))) return false;
        const handle = ruleHandle(payload);
        if (handle === undefined) return false;
        handles.push([from, handle]);
      }
    }
    if (spec.jumps !== undefined && handles.length !== spec.jumps) return false;
    return commitBatch(socket, generation, [
      ...handles.map(([chain, handle]) => deleteRule(proto, spec.table, chain, handle)),
      // A DELRULE without a handle flushes the chain; then the empty chain goes.
      deleteRule(proto, spec.table, spec.chain),
      command(proto, NFT_MSG_DELCHAIN, [
        { type: NFTA_CHAIN_TABLE, data: cstr(spec.table) },
        { type: NFTA_CHAIN_NAME, data: cstr(spec.chain) },
      ]),
    ], `remove nftables chain ${spec.family} ${spec.table} ${spec.chain}`);
  });
}

/** What {@linkcode nftDeleteRules} is to remove. */
export interface DeleteRulesSpec {
  /** nft family of the iptables-nft table: `ip` or `ip6`. */
  family: string;
  /** The iptables table, e.g. `filter`. */
  table: string;
  /** The chain holding the rules. */
  chain: string;
  /**
   * Picks the rules to delete from the chain's rules (`NFT_MSG_NEWRULE`
   * payloads, in order); undefined when the chain is not as the caller
   * expects (then nothing changes).
   */
  pick: (rules: readonly Uint8Array[]) => readonly Uint8Array[] | undefined;
}

/**
 * Deletes the rules `pick` chooses from one iptables-nft chain, by handle,
 * in one nf_tables transaction guarded by the generation the chain was read
 * at (see {@linkcode nftDropChain}). False, having changed nothing, when the
 * chain is missing or `pick` declines, or when the batch was refused.
 */
export function nftDeleteRules(spec: DeleteRulesSpec): boolean {
  const proto = nfproto(spec.family);
  return withQuerySocket((socket) => {
    const generation = nftGeneration(socket);
    if (!nftChainExists(spec.family, spec.table, spec.chain)) return false;
    const picked = spec.pick(nftRulePayloads(spec.family, spec.table, spec.chain));
    if (picked === undefined) return false;
    const handles = picked.map(ruleHandle);
    if (handles.some((handle) => handle === undefined)) return false;
    if (handles.length === 0) return true;
    return commitBatch(
      socket,
      generation,
      handles.map((handle) => deleteRule(proto, spec.table, spec.chain, handle)),
      `delete nftables rules of ${spec.family} ${spec.table} ${spec.chain}`,
    );
  });
}

/** What {@linkcode nftAppendRules} is to add. */
export interface AppendRulesSpec {
  /** nft family of the iptables-nft table: `ip` or `ip6`. */
  family: string;
  /** The iptables table, e.g. `filter`. */
  table: string;
  /** User chains to create first (`-N`): the batch is refused if one exists. @default {[]} */
  newChains?: readonly string[];
  /** The rules to append (`-A`), in order, each as `encodeExpressions` made it. */
  rules: readonly { chain: string; expressions: Uint8Array }[];
  /**
   * Whether the table, as read at the generation the batch then carries, is
   * as the caller needs it (e.g. shared jumps in place, no copy of the rules
   * yet); false: nothing changes. `rulesOf` gives a chain's rules
   * (`NFT_MSG_NEWRULE` payloads, in order), each chain dumped once.
   * @default {always}
   */
  ready?: (rulesOf: (chain: string) => readonly Uint8Array[]) => boolean;
}

/**
 * Creates chains and appends rules in one nf_tables transaction, without a
 * tool: what `iptables-restore` does with `-N` and `-A`, without a process
 * to start and without the tool's fetch of the table. The kernel refuses the
 * batch whole when a chain to create exists or a chain to append to does
 * not; with `spec.ready`, also when the ruleset (any table) changed since it was read
 * (the batch carries that generation; a stale read is tried again, twice).
 *
 * Returns false, having changed nothing, where the caller's tool must do it
 * instead: `spec.ready` declines or the batch was refused. Callers ask only
 * where iptables-nft is the backend (the legacy backend's tables are not in
 * nf_tables). Throws only for failures of the socket itself.
 */
export function nftAppendRules(spec: AppendRulesSpec): boolean {
  const proto = nfproto(spec.family);
  return withQuerySocket((socket) => {
    const commands = [
      ...(spec.newChains ?? []).map((chain) => ({
        ...command(proto, NFT_MSG_NEWCHAIN, [
          { type: NFTA_CHAIN_TABLE, data: cstr(spec.table) },
          { type: NFTA_CHAIN_NAME, data: cstr(chain) },
        ]),
        flags: NLM_F_CREATE | NLM_F_EXCL,
      })),
      ...spec.rules.map((rule) => ({
        ...command(proto, NFT_MSG_NEWRULE, [
          { type: NFTA_RULE_TABLE, data: cstr(spec.table) },
          { type: NFTA_RULE_CHAIN, data: cstr(rule.chain) },
          { type: NFTA_RULE_EXPRESSIONS | NLA_F_NESTED, data: rule.expressions },
        ]),
        flags: NLM_F_CREATE | NLM_F_APPEND,
      })),
    ];
    if (commands.length === 0) return true;
    const op = `add nftables rules to ${spec.family} ${spec.table}`;
    // Without a readiness check the kernel's own checks (a chain to create must not exist, one
    // to append to must) decide alone; with one, the table must still be as it was read. Other
    // containers' ADDs change the table all the time: a stale read is tried again.
    if (!spec.ready) return sendBatch(socket, undefined, commands, op) === "committed";
    for (let attempt = 0; attempt < 3; attempt++) {
      const generation = nftGeneration(socket);
      if (!spec.ready(nftTableRules(spec.family, spec.table))) return false;
      const outcome = sendBatch(socket, generation, commands, op);
      if (outcome !== "stale") return outcome === "committed";
    }
    return false;
  });
}

const cstr = (text: string) => new TextEncoder().encode(text + "\0");

/** The `NFTA_RULE_EXPRESSIONS` list of one `NFT_MSG_NEWRULE` payload (nfgenmsg + attributes). */
export function ruleExpressionList(payload: Uint8Array): Uint8Array {
  return attrOf(payload.subarray(4), NFTA_RULE_EXPRESSIONS)?.data ?? new Uint8Array();
}

function command(proto: number, type: number, attrs: RawAttr[]) {
  return {
    type: (NFNL_SUBSYS_NFTABLES << 8) | type,
    payload: Uint8Array.of(proto, 0, 0, 0, ...encodeRawAttrs(attrs)),
  };
}

/** `NFT_MSG_DELRULE` of one rule by handle, or of every rule of the chain without one. */
function deleteRule(proto: number, table: string, chain: string, handle?: bigint) {
  const attrs: RawAttr[] = [
    { type: NFTA_RULE_TABLE, data: cstr(table) },
    { type: NFTA_RULE_CHAIN, data: cstr(chain) },
  ];
  if (handle !== undefined) {
    const data = new Uint8Array(8);
    new DataView(data.buffer).setBigUint64(0, handle); // big endian
    attrs.push({ type: NFTA_RULE_HANDLE, data });
  }
  return command(proto, NFT_MSG_DELRULE, attrs);
}

/**
 * Sends `commands` as one batch that the kernel refuses whole if the
 * ruleset is no longer at `generation`; false when refused (or failed).
 */
function commitBatch(
  socket: NetlinkSocket,
  generation: number,
  commands: { type: number; flags?: number; payload: Uint8Array }[],
  op: string,
): boolean {
  return sendBatch(socket, generation, commands, op) === "committed";
}

/**
 * Sends `commands` as one batch, refused whole by the kernel if the ruleset
 * is no longer at `generation` (when given): "stale" then, "refused" for any
 * other error.
 */
function sendBatch(
  socket: NetlinkSocket,
  generation: number | undefined,
  commands: { type: number; flags?: number; payload: Uint8Array }[],
  op: string,
): "committed" | "stale" | "refused" {
  const begin: RawAttr[] = [];
  if (generation !== undefined) {
    const genid = new Uint8Array(4);
    new DataView(genid.buffer).setUint32(0, generation); // big endian
    begin.push({ type: NFNL_BATCH_GENID, data: genid });
  }
  // nfgenmsg of the batch markers: AF_UNSPEC, version 0, res_id = the subsystem (big endian).
  const marker = (type: number, attrs: RawAttr[]) => ({
    type,
    ack: false,
    payload: Uint8Array.of(0, 0, 0, NFNL_SUBSYS_NFTABLES, ...encodeRawAttrs(attrs)),
  });
  // Only the last command asks for an ACK: the kernel answers every failing message anyway
  // (a stale generation on the begin marker), and hundreds of ACKs would overflow the socket's
  // receive buffer after the commit.
  try {
    socket.batch([
      marker(NFNL_MSG_BATCH_BEGIN, begin),
      ...commands.map((c, i) => ({ ...c, ack: i === commands.length - 1 })),
      marker(NFNL_MSG_BATCH_END, []),
    ], op);
  } catch (error) {
    if (!(error instanceof NetlinkError)) throw error;
    // The kernel's answer to a batch whose generation is no longer current.
    return error.errno === Errno.ERESTART ? "stale" : "refused";
  }
  return "committed";
}

/**
 * Whether `bytes` occur anywhere in `payload`. A rule that jumps to a chain
 * holds its name, and a rule that matches an address holds the address's
 * bytes, so this filters rules before the (much slower) attribute decoding;
 * a hit may be a coincidence, a miss is certain.
 */
export function payloadHolds(payload: Uint8Array, bytes: Uint8Array): boolean {
  if (bytes.length === 0) return true;
  for (let at = payload.indexOf(bytes[0]); at !== -1; at = payload.indexOf(bytes[0], at + 1)) {
    if (at + bytes.length > payload.length) return false;
    let i = 1;
    while (i < bytes.length && payload[at + i] === bytes[i]) i++;
    if (i === bytes.length) return true;
  }
  return false;
}

/** How many rules of `payloads` jump or go to `target` (name filter first, then decoding). */
export function jumpsTo(payloads: readonly Uint8Array[], target: string): number {
  return jumpRules(payloads, target).length;
}

/** The rules of `payloads` that jump or go to `target` (name filter first, then decoding). */
export function jumpRules(payloads: readonly Uint8Array[], target: string): Uint8Array[] {
  const name = new TextEncoder().encode(target + "\0");
  return payloads.filter((payload) =>
    payloadHolds(payload, name) && ruleTargets(payload).includes(target)
  );
}

const attrType = (attr: RawAttr) => attr.type & NLA_TYPE_MASK;
/** The first attribute of `type` among those encoded in `data`. */
const attrOf = (data: Uint8Array | undefined, type: number): RawAttr | undefined =>
  decodeRawAttrs(data ?? new Uint8Array()).find((attr) => attrType(attr) === type);
const IMMEDIATE = new TextEncoder().encode("immediate\0");
const textDecoder = new TextDecoder();
/** A NUL-terminated string attribute's text. */
const cString = (data: Uint8Array): string => {
  const end = data.indexOf(0);
  return textDecoder.decode(end === -1 ? data : data.subarray(0, end));
};
const isImmediate = (name: Uint8Array) =>
  name.length === IMMEDIATE.length && name.every((byte, i) => byte === IMMEDIATE[i]);

/** The jump and goto targets of one `NFT_MSG_NEWRULE` payload (nfgenmsg + attributes). */
export function ruleTargets(payload: Uint8Array): string[] {
  const targets: string[] = [];
  const expressions = attrOf(payload.subarray(4), NFTA_RULE_EXPRESSIONS);
  for (const element of decodeRawAttrs(expressions?.data ?? new Uint8Array())) {
    if (attrType(element) !== NFTA_LIST_ELEM) continue;
    // Only `immediate` expressions carry verdicts; matches and targets are skipped unread.
    const name = attrOf(element.data, NFTA_EXPR_NAME);
    if (name === undefined || !isImmediate(name.data)) continue;
    const value = attrOf(attrOf(element.data, NFTA_EXPR_DATA)?.data, NFTA_IMMEDIATE_DATA);
    const verdict = attrOf(value?.data, NFTA_DATA_VERDICT)?.data;
    const code = attrOf(verdict, NFTA_VERDICT_CODE);
    const target = attrOf(verdict, NFTA_VERDICT_CHAIN);
    if (code === undefined || code.data.length !== 4 || target === undefined) continue;
    const verdictCode = new DataView(code.data.buffer, code.data.byteOffset, 4).getInt32(0); // BE
    if (verdictCode === NFT_JUMP || verdictCode === NFT_GOTO) targets.push(cString(target.data));
  }
  return targets;
}

/** The pid a `NFT_MSG_NEWGEN` payload (nfgenmsg + attributes) names, if any. */
export function newgenPid(payload: Uint8Array): number | undefined {
  const pid = attrOf(payload.subarray(4), NFTA_GEN_PROC_PID);
  if (pid === undefined || pid.data.length !== 4) return undefined;
  return new DataView(pid.data.buffer, pid.data.byteOffset, 4).getUint32(0); // big endian
}

/** `/proc/self/ns/pid` in the initial PID namespace (`PROC_PID_INIT_INO`). */
const INITIAL_PID_NAMESPACE = "pid:[4026531836]";
let initialPidNamespace: boolean | undefined;

/**
 * Whether this process runs in the initial PID namespace. Commit
 * announcements carry the committing pid as that namespace sees it, so only
 * there do they name our children by the pids we know (in a container's PID
 * namespace, a pid of ours could even be another process's out there).
 */
export function inInitialPidNamespace(): boolean {
  initialPidNamespace ??= (() => {
    try {
      return Deno.readLinkSync("/proc/self/ns/pid") === INITIAL_PID_NAMESPACE;
    } catch {
      return false;
    }
  })();
  return initialPidNamespace;
}

/** A socket that hears of nf_tables commits in the calling thread's network namespace. */
export class CommitWatch implements Disposable {
  #socket: NetlinkSocket;

  private constructor(socket: NetlinkSocket) {
    this.#socket = socket;
  }

  /** Starts listening; commits before this call are not heard of. */
  static open(): CommitWatch {
    return new CommitWatch(
      NetlinkSocket.open({ protocol: NETLINK_NETFILTER, groups: 1 << (NFNLGRP_NFTABLES - 1) }),
    );
  }

  /** The fd to poll for readability. */
  get fd(): number {
    return this.#socket.fd;
  }

  /** Reads the waiting notifications (never blocks); returns how many commits by `pid` they announce. */
  commitsBy(pid: number): number {
    let count = 0;
    for (const { header, payload } of this.#socket.receive()) {
      if (header.type !== ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN)) continue;
      if (newgenPid(payload) === pid) count++;
    }
    return count;
  }

  /** Stops listening. */
  close(): void {
    this.#socket.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

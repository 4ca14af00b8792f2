/**
 * Rule pieces as iptables-nft (1.8) hands them to nf_tables, for the rules
 * cnibox appends without starting a tool. A kernel dump of a rule built from
 * these equals the dump of the rule `iptables` makes from the same text, so
 * `iptables-save`, `iptables -D` and `-C` (ours, the reference's, an
 * operator's) see the rules the reference would have made. Tests compare
 * the dumps byte for byte against rules made by `iptables` itself.
 *
 * nf_tables wants its numbers big endian; xt match and target infos are
 * the kernel's structs, in host order.
 *
 * @module
 */
import { decodeRawAttrs, encodeRawAttrs, type RawAttr } from "../netlink/codec.ts";
import { NLA_F_NESTED, NLA_TYPE_MASK } from "../netlink/consts.ts";

// include/uapi/linux/netfilter/nf_tables.h
const NFTA_LIST_ELEM = 1;
const NFTA_EXPR_NAME = 1;
const NFTA_EXPR_DATA = 2;
const NFTA_PAYLOAD_DREG = 1;
const NFTA_PAYLOAD_BASE = 2;
const NFTA_PAYLOAD_OFFSET = 3;
const NFTA_PAYLOAD_LEN = 4;
const NFT_PAYLOAD_NETWORK_HEADER = 1;
const NFTA_BITWISE_SREG = 1;
const NFTA_BITWISE_DREG = 2;
const NFTA_BITWISE_LEN = 3;
const NFTA_BITWISE_MASK = 4;
const NFTA_BITWISE_XOR = 5;
const NFTA_BITWISE_OP = 6;
const NFTA_CMP_SREG = 1;
const NFTA_CMP_OP = 2;
const NFTA_CMP_DATA = 3;
const NFT_CMP_EQ = 0;
const NFT_CMP_NEQ = 1;
const NFTA_DATA_VALUE = 1;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT_CODE = 1;
const NFTA_VERDICT_CHAIN = 2;
const NFTA_COUNTER_BYTES = 1;
const NFTA_COUNTER_PACKETS = 2;
const NFTA_IMMEDIATE_DREG = 1;
const NFTA_IMMEDIATE_DATA = 2;
const NFTA_MATCH_NAME = 1;
const NFTA_MATCH_REV = 2;
const NFTA_MATCH_INFO = 3;
const NFTA_TARGET_NAME = 1;
const NFTA_TARGET_REV = 2;
const NFTA_TARGET_INFO = 3;
const NFT_REG_VERDICT = 0;
const NFT_REG_1 = 1;
const NF_ACCEPT = 1;
const NFT_JUMP = -3;
/** `XT_MAX_COMMENT_LEN`: the comment match's info is this many bytes, NUL padded. */
const COMMENT_INFO_SIZE = 256;

/** One expression of a rule to encode: its name and its attributes (`NFTA_EXPR_DATA`). */
export interface ExpressionSpec {
  name: string;
  attrs: RawAttr[];
}

/**
 * The `NFTA_RULE_EXPRESSIONS` content of a rule made of `expressions`, in
 * order (nests flagged as libnftnl flags them).
 */
export function encodeExpressions(expressions: readonly ExpressionSpec[]): Uint8Array {
  return encodeRawAttrs(expressions.map((expression) => ({
    type: NFTA_LIST_ELEM | NLA_F_NESTED,
    data: encodeRawAttrs([
      { type: NFTA_EXPR_NAME, data: cstr(expression.name) },
      { type: NFTA_EXPR_DATA | NLA_F_NESTED, data: encodeRawAttrs(expression.attrs) },
    ]),
  })));
}

const encoder = new TextEncoder();
const cstr = (text: string) => encoder.encode(text + "\0");
const u32 = (value: number) => {
  const data = new Uint8Array(4);
  new DataView(data.buffer).setUint32(0, value >>> 0); // big endian, as nf_tables wants
  return data;
};
const nested = (type: number, attrs: RawAttr[]): RawAttr => ({
  type: type | NLA_F_NESTED,
  data: encodeRawAttrs(attrs),
});
const value = (type: number, data: Uint8Array) => nested(type, [{ type: NFTA_DATA_VALUE, data }]);

/**
 * `-s`/`-d <address>/<prefix>` (`!` with `negate`), as iptables-nft's
 * `add_addr` encodes it: a byte-aligned prefix loads only its bytes, any
 * other prefix loads the whole address and masks it. `address` is the raw
 * address (4 or 16 bytes); its host bits are cleared here, as iptables does.
 * @throws {RangeError} for prefix 0 (iptables writes no match at all then).
 */
export function addressMatch(
  field: "source" | "destination",
  address: Uint8Array,
  prefixLength: number,
  options: { negate?: boolean } = {},
): ExpressionSpec[] {
  const size = address.length;
  if (size !== 4 && size !== 16) throw new RangeError(`Not an IP address: ${size} bytes`);
  if (!Number.isInteger(prefixLength) || prefixLength < 1 || prefixLength > size * 8) {
    throw new RangeError(`Cannot match prefix length ${prefixLength} of a ${size}-byte address`);
  }
  const mask = new Uint8Array(size).map((_, i) =>
    0xff & (0xff << Math.max(0, 8 - Math.max(0, prefixLength - 8 * i)))
  );
  const network = address.map((byte, i) => byte & mask[i]);
  const bitwise = prefixLength % 8 !== 0;
  const length = bitwise ? size : prefixLength / 8;
  const offset = (size === 4 ? { source: 12, destination: 16 } : { source: 8, destination: 24 })[
    field
  ];
  const expressions: ExpressionSpec[] = [{
    name: "payload",
    attrs: [
      { type: NFTA_PAYLOAD_DREG, data: u32(NFT_REG_1) },
      { type: NFTA_PAYLOAD_BASE, data: u32(NFT_PAYLOAD_NETWORK_HEADER) },
      { type: NFTA_PAYLOAD_OFFSET, data: u32(offset) },
      { type: NFTA_PAYLOAD_LEN, data: u32(length) },
    ],
  }];
  if (bitwise) {
    expressions.push({
      name: "bitwise",
      attrs: [
        { type: NFTA_BITWISE_SREG, data: u32(NFT_REG_1) },
        { type: NFTA_BITWISE_DREG, data: u32(NFT_REG_1) },
        { type: NFTA_BITWISE_LEN, data: u32(size) },
        value(NFTA_BITWISE_MASK, mask),
        value(NFTA_BITWISE_XOR, new Uint8Array(size)),
      ],
    });
  }
  expressions.push({
    name: "cmp",
    attrs: [
      { type: NFTA_CMP_SREG, data: u32(NFT_REG_1) },
      { type: NFTA_CMP_OP, data: u32(options.negate ? NFT_CMP_NEQ : NFT_CMP_EQ) },
      value(NFTA_CMP_DATA, network.subarray(0, length)),
    ],
  });
  return expressions;
}

/** An xt match (`-m <name> …`) by revision and info struct. */
export function xtMatch(name: string, revision: number, info: Uint8Array): ExpressionSpec {
  return {
    name: "match",
    attrs: [
      { type: NFTA_MATCH_NAME, data: cstr(name) },
      { type: NFTA_MATCH_REV, data: u32(revision) },
      { type: NFTA_MATCH_INFO, data: info },
    ],
  };
}

/** An xt target (`-j <NAME> …`) by revision and info struct. */
function xtTarget(name: string, revision: number, info: Uint8Array): ExpressionSpec {
  return {
    name: "target",
    attrs: [
      { type: NFTA_TARGET_NAME, data: cstr(name) },
      { type: NFTA_TARGET_REV, data: u32(revision) },
      { type: NFTA_TARGET_INFO, data: info },
    ],
  };
}

/**
 * `-m comment --comment <text>`: revision 0 of the xt match, the text NUL
 * padded to 256 bytes.
 * @throws {RangeError} for a text iptables would refuse (255 bytes at most).
 */
export function commentMatch(text: string): ExpressionSpec {
  const bytes = encoder.encode(text);
  if (bytes.length >= COMMENT_INFO_SIZE || bytes.includes(0)) {
    throw new RangeError(`Cannot use comment of ${bytes.length} bytes: "${text}"`);
  }
  const info = new Uint8Array(COMMENT_INFO_SIZE);
  info.set(bytes);
  return xtMatch("comment", 0, info);
}

/** The counter iptables-nft gives every rule, starting at zero. */
export const COUNTER: ExpressionSpec = {
  name: "counter",
  attrs: [
    { type: NFTA_COUNTER_BYTES, data: new Uint8Array(8) },
    { type: NFTA_COUNTER_PACKETS, data: new Uint8Array(8) },
  ],
};

function verdict(code: number, chain?: string): ExpressionSpec {
  const attrs: RawAttr[] = [{ type: NFTA_VERDICT_CODE, data: u32(code) }];
  if (chain !== undefined) attrs.push({ type: NFTA_VERDICT_CHAIN, data: cstr(chain) });
  return {
    name: "immediate",
    attrs: [
      { type: NFTA_IMMEDIATE_DREG, data: u32(NFT_REG_VERDICT) },
      nested(NFTA_IMMEDIATE_DATA, [nested(NFTA_DATA_VERDICT, attrs)]),
    ],
  };
}

/** `-j ACCEPT`. */
export const ACCEPT: ExpressionSpec = verdict(NF_ACCEPT);

/** `-j <chain>` to a user chain. */
export function jumpTo(chain: string): ExpressionSpec {
  return verdict(NFT_JUMP, chain);
}

/** A u32 in host byte order, as the kernel's xt structs hold it. */
function hostU32(value: number): Uint8Array {
  return new Uint8Array(Uint32Array.of(value).buffer);
}

/**
 * `-j MASQUERADE` without options, revision 0: IPv4's
 * `nf_nat_ipv4_multi_range_compat` (one empty range, 24 bytes aligned),
 * IPv6's `nf_nat_range` (40 bytes, all zero).
 */
export function masquerade(family: 4 | 6): ExpressionSpec {
  if (family === 6) return xtTarget("MASQUERADE", 0, new Uint8Array(40));
  const info = new Uint8Array(24);
  info.set(hostU32(1)); // rangesize
  return xtTarget("MASQUERADE", 0, info);
}

// Comparison with what nf_tables dumps.

/** One decoded expression: its name and its attributes (`NFTA_EXPR_DATA`), by type. */
export interface DecodedExpression {
  name: string;
  attrs: Map<number, Uint8Array>;
}

/** The expressions of an `NFTA_RULE_EXPRESSIONS` list, in order. */
export function decodeExpressions(list: Uint8Array): DecodedExpression[] {
  return decodeRawAttrs(list).filter((element) => attrType(element) === NFTA_LIST_ELEM).map(
    (element) => {
      const attrs = new Map(decodeRawAttrs(element.data).map((a) => [attrType(a), a.data]));
      const name = attrs.get(NFTA_EXPR_NAME) ?? new Uint8Array();
      const end = name.indexOf(0);
      return {
        name: new TextDecoder().decode(end === -1 ? name : name.subarray(0, end)),
        attrs: new Map(
          decodeRawAttrs(attrs.get(NFTA_EXPR_DATA) ?? new Uint8Array()).map((a) => [
            attrType(a),
            a.data,
          ]),
        ),
      };
    },
  );
}

const attrType = (attr: RawAttr) => attr.type & NLA_TYPE_MASK;

/**
 * The nested attributes of the expressions cnibox writes, by expression and
 * attribute type: how many levels of nests each holds (cmp's data holds a
 * value; immediate's data holds a verdict, which holds code and chain).
 */
const NEST_LEVELS: Record<string, Record<number, number>> = {
  cmp: { [NFTA_CMP_DATA]: 1 },
  bitwise: { [NFTA_BITWISE_MASK]: 1, [NFTA_BITWISE_XOR]: 1 },
  immediate: { [NFTA_IMMEDIATE_DATA]: 2 },
};

/**
 * Whether a dumped rule's expressions are those of `encoded`: the same
 * expressions with the same attributes, counters' values aside, the known
 * nests compared whatever their `NLA_F_NESTED` flags, and a bitwise
 * operation the kernel reports as the default (`NFT_BITWISE_BOOL`) taken as
 * unsent. Everything else is compared byte for byte.
 */
export function sameExpressions(dumped: Uint8Array, encoded: Uint8Array): boolean {
  const a = decodeExpressions(dumped);
  const b = decodeExpressions(encoded);
  return a.length === b.length && a.every((x, i) => {
    const y = b[i];
    if (x.name !== y.name) return false;
    if (x.name === "counter") return true;
    const keys = (e: DecodedExpression) =>
      [...e.attrs.keys()].filter((k) =>
        !(e.name === "bitwise" && k === NFTA_BITWISE_OP && sameBytes(e.attrs.get(k)!, u32(0)))
      ).sort();
    const [kx, ky] = [keys(x), keys(y)];
    const levels = NEST_LEVELS[x.name] ?? {};
    return kx.length === ky.length &&
      kx.every((k, j) => k === ky[j] && sameNest(x.attrs.get(k)!, y.attrs.get(k)!, levels[k] ?? 0));
  });
}

const sameBytes = (x: Uint8Array, y: Uint8Array) =>
  x.length === y.length && x.every((byte, i) => byte === y[i]);

/** Equal nests `levels` deep (attribute types up to their flags), bytes below. */
function sameNest(x: Uint8Array, y: Uint8Array, levels: number): boolean {
  if (levels === 0) return sameBytes(x, y);
  let ax, ay;
  try {
    [ax, ay] = [decodeRawAttrs(x), decodeRawAttrs(y)];
  } catch {
    return false;
  }
  return ax.length === ay.length &&
    ax.every((attr, i) =>
      attrType(attr) === attrType(ay[i]) && sameNest(attr.data, ay[i].data, levels - 1)
    );
}

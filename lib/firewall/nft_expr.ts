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
export function xtTarget(name: string, revision: number, info: Uint8Array): ExpressionSpec {
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

// The rest: iptables rule text (the `Rule` tokens the planners make) to expressions, for the
// shapes portmap's rules take, and a comparison with what nf_tables dumps.

const NFTA_META_DREG = 1;
const NFTA_META_KEY = 2;
const NFT_META_MARK = 3;
const NFT_META_L4PROTO = 16;
const NFT_PAYLOAD_TRANSPORT_HEADER = 2;
const PROTOCOLS: Record<string, number> = { tcp: 6, udp: 17 };
/** `XT_ADDRTYPE_LOCAL`. */
const ADDRTYPE_LOCAL = 1 << 2;
/** `NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED`. */
const NAT_RANGE_IPS_AND_PORTS = 3;
/** `XT_MULTIPORT_DESTINATION`, and the most ports one multiport match holds. */
const MULTIPORT_DESTINATION = 1;
const MULTIPORT_MAX = 15;

/** A rule's expressions, and its layer-4 protocol (`-p`) for `NFTA_RULE_COMPAT`. */
export interface EncodedRule {
  expressions: Uint8Array;
  protocol?: number;
}

const hostU16 = (value: number) => new Uint8Array(Uint16Array.of(value).buffer);
const u16be = (value: number) => Uint8Array.of(value >> 8, value & 0xff);

/** `-p tcp|udp`: `meta l4proto` into reg 1, compared as one byte. */
function protocolMatch(protocol: number): ExpressionSpec[] {
  return [
    {
      name: "meta",
      attrs: [
        { type: NFTA_META_KEY, data: u32(NFT_META_L4PROTO) },
        { type: NFTA_META_DREG, data: u32(NFT_REG_1) },
      ],
    },
    {
      name: "cmp",
      attrs: [
        { type: NFTA_CMP_SREG, data: u32(NFT_REG_1) },
        { type: NFTA_CMP_OP, data: u32(NFT_CMP_EQ) },
        value(NFTA_CMP_DATA, Uint8Array.of(protocol)),
      ],
    },
  ];
}

/** `-m tcp|udp --dport N`, which iptables-nft matches natively on the transport header. */
function destinationPortMatch(port: number): ExpressionSpec[] {
  return [
    {
      name: "payload",
      attrs: [
        { type: NFTA_PAYLOAD_DREG, data: u32(NFT_REG_1) },
        { type: NFTA_PAYLOAD_BASE, data: u32(NFT_PAYLOAD_TRANSPORT_HEADER) },
        { type: NFTA_PAYLOAD_OFFSET, data: u32(2) },
        { type: NFTA_PAYLOAD_LEN, data: u32(2) },
      ],
    },
    {
      name: "cmp",
      attrs: [
        { type: NFTA_CMP_SREG, data: u32(NFT_REG_1) },
        { type: NFTA_CMP_OP, data: u32(NFT_CMP_EQ) },
        value(NFTA_CMP_DATA, u16be(port)),
      ],
    },
  ];
}

/** `-m mark --mark V/M`, native: the mark (host order) masked and compared. */
function markMatch(mark: number, mask: number): ExpressionSpec[] {
  return [
    {
      name: "meta",
      attrs: [
        { type: NFTA_META_KEY, data: u32(NFT_META_MARK) },
        { type: NFTA_META_DREG, data: u32(NFT_REG_1) },
      ],
    },
    {
      name: "bitwise",
      attrs: [
        { type: NFTA_BITWISE_SREG, data: u32(NFT_REG_1) },
        { type: NFTA_BITWISE_DREG, data: u32(NFT_REG_1) },
        { type: NFTA_BITWISE_LEN, data: u32(4) },
        value(NFTA_BITWISE_MASK, hostU32(mask)),
        value(NFTA_BITWISE_XOR, new Uint8Array(4)),
      ],
    },
    {
      name: "cmp",
      attrs: [
        { type: NFTA_CMP_SREG, data: u32(NFT_REG_1) },
        { type: NFTA_CMP_OP, data: u32(NFT_CMP_EQ) },
        value(NFTA_CMP_DATA, hostU32(mark & mask)),
      ],
    },
  ];
}

/** `-m multiport --dports p1,p2,…`: revision 1, `struct xt_multiport_v1` (48 bytes). */
function multiportMatch(ports: number[]): ExpressionSpec {
  const info = new Uint8Array(48);
  info[0] = MULTIPORT_DESTINATION;
  info[1] = ports.length;
  ports.forEach((port, i) => info.set(hostU16(port), 2 + 2 * i));
  return xtMatch("multiport", 1, info);
}

/**
 * `-j DNAT --to-destination ip:port`: revision 2, `struct nf_nat_range2`
 * (one address and one port, 48 bytes aligned).
 */
function dnatTarget(address: Uint8Array, port: number): ExpressionSpec {
  const info = new Uint8Array(48);
  info.set(hostU32(NAT_RANGE_IPS_AND_PORTS));
  info.set(address, 4);
  info.set(address, 20);
  info.set(u16be(port), 36);
  info.set(u16be(port), 38);
  return xtTarget("DNAT", 2, info);
}

/** `V/M` as iptables prints marks (`0x2000/0x2000`); undefined otherwise. */
function parseMark(text: string | undefined): [number, number] | undefined {
  const match = /^0x([0-9a-f]{1,8})\/0x([0-9a-f]{1,8})$/.exec(text ?? "");
  return match ? [parseInt(match[1], 16), parseInt(match[2], 16)] : undefined;
}

/** A port 1-65535 in decimal; undefined otherwise. */
function parsePort(text: string | undefined): number | undefined {
  if (!/^[1-9][0-9]{0,4}$/.test(text ?? "")) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

/** `ip` or `ip/len` of `family` as raw bytes and a prefix; undefined otherwise. */
function parseAddress(
  text: string | undefined,
  family: 4 | 6,
): { bytes: Uint8Array; prefix: number } | undefined {
  const [ip, len, extra] = (text ?? "").split("/");
  const size = family === 4 ? 4 : 16;
  if (extra !== undefined || !ip) return undefined;
  const bytes = ipBytes(ip, family);
  if (!bytes) return undefined;
  if (len === undefined) return { bytes, prefix: size * 8 };
  if (!/^[0-9]{1,3}$/.test(len) || Number(len) > size * 8) return undefined;
  return { bytes, prefix: Number(len) };
}

/** A dotted-quad IPv4 or a (possibly `::`-shortened) IPv6 address's bytes; undefined otherwise. */
function ipBytes(ip: string, family: 4 | 6): Uint8Array | undefined {
  if (family === 4) {
    const parts = ip.split(".");
    if (parts.length !== 4 || parts.some((p) => !/^(0|[1-9][0-9]{0,2})$/.test(p) || +p > 255)) {
      return undefined;
    }
    return Uint8Array.from(parts.map(Number));
  }
  if (ip.includes(".")) return undefined; // a mapped or embedded IPv4 form: left to the tool
  const halves = ip.split("::");
  if (halves.length > 2) return undefined;
  const groups = halves.map((half) => (half === "" ? [] : half.split(":")));
  const count = groups.reduce((n, g) => n + g.length, 0);
  if (halves.length === 1 ? count !== 8 : count > 7) return undefined;
  const all = halves.length === 1
    ? groups[0]
    : [...groups[0], ...Array(8 - count).fill("0"), ...groups[1]];
  if (all.some((g) => !/^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => bytes.set(u16be(parseInt(g, 16)), 2 * i));
  return bytes;
}

/**
 * The expressions iptables-nft makes of one rule's tokens (`-s`, `! -d`,
 * `-p tcp|udp`, `-m tcp|udp --dport`, `-m comment`, `-m multiport --dports`,
 * `-m addrtype --dst-type LOCAL`, `-m mark --mark`, and `-j` to a chain,
 * `ACCEPT`, `MASQUERADE`, `DNAT --to-destination ip:port` or `MARK
 * --set-xmark`), in its order: protocol, source, destination, the matches
 * as given, counter, verdict or target. Undefined for anything else: the
 * caller's tool writes such a rule.
 */
export function encodeIptablesRule(
  rule: readonly string[],
  family: 4 | 6,
): EncodedRule | undefined {
  let protocol: number | undefined;
  const addresses: { source?: ExpressionSpec[]; destination?: ExpressionSpec[] } = {};
  const matches: ExpressionSpec[] = [];
  let verdict: ExpressionSpec | undefined;
  let i = 0;
  const next = () => rule[++i];
  for (; i < rule.length && verdict === undefined; i++) {
    const token = rule[i];
    const negate = token === "!";
    const option = negate ? next() : token;
    if (option === "-s" || option === "-d") {
      const field = option === "-s" ? "source" : "destination";
      const address = parseAddress(next(), family);
      if (!address || address.prefix === 0 || addresses[field]) return undefined;
      addresses[field] = addressMatch(field, address.bytes, address.prefix, { negate });
    } else if (negate) {
      return undefined;
    } else if (option === "-p") {
      protocol = PROTOCOLS[next() ?? ""];
      if (protocol === undefined) return undefined;
    } else if (option === "-m") {
      const name = next();
      const [flag, argument] = [next(), next()];
      if ((name === "tcp" || name === "udp") && flag === "--dport") {
        const port = parsePort(argument);
        if (port === undefined || protocol !== PROTOCOLS[name]) return undefined;
        matches.push(...destinationPortMatch(port));
      } else if (name === "comment" && flag === "--comment" && argument !== undefined) {
        try {
          matches.push(commentMatch(argument));
        } catch {
          return undefined;
        }
      } else if (name === "multiport" && flag === "--dports" && protocol !== undefined) {
        const ports = (argument ?? "").split(",").map(parsePort);
        if (ports.length > MULTIPORT_MAX || ports.some((p) => p === undefined)) return undefined;
        matches.push(multiportMatch(ports as number[]));
      } else if (name === "addrtype" && flag === "--dst-type" && argument === "LOCAL") {
        matches.push(
          xtMatch(
            "addrtype",
            1,
            Uint8Array.of(...hostU16(0), ...hostU16(ADDRTYPE_LOCAL), 0, 0, 0, 0),
          ),
        );
      } else if (name === "mark" && flag === "--mark" && parseMark(argument)) {
        matches.push(...markMatch(...parseMark(argument)!));
      } else {
        return undefined;
      }
    } else if (option === "-j") {
      const target = next();
      const rest = rule.slice(i + 1);
      if (target === undefined) return undefined;
      if (target === "ACCEPT" && rest.length === 0) verdict = ACCEPT;
      else if (target === "MASQUERADE" && rest.length === 0) verdict = masquerade(family);
      else if (target === "MARK" && rest.length === 2 && rest[0] === "--set-xmark") {
        const mark = parseMark(rest[1]);
        if (!mark) return undefined;
        verdict = xtTarget("MARK", 2, Uint8Array.of(...hostU32(mark[0]), ...hostU32(mark[1])));
      } else if (target === "DNAT" && rest.length === 2 && rest[0] === "--to-destination") {
        const match = family === 4
          ? /^([0-9.]+):([0-9]+)$/.exec(rest[1])
          : /^\[([0-9a-fA-F:]+)\]:([0-9]+)$/.exec(rest[1]);
        const address = match ? ipBytes(match[1], family) : undefined;
        const port = parsePort(match?.[2]);
        if (!address || port === undefined) return undefined;
        verdict = dnatTarget(address, port);
      } else if (
        // A user chain: no built-in verdict or xt target has a dash in its name.
        /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,27}$/.test(target) && target.includes("-") &&
        rest.length === 0
      ) {
        verdict = jumpTo(target);
      } else {
        return undefined;
      }
      i = rule.length;
    } else {
      return undefined;
    }
  }
  if (verdict === undefined) return undefined;
  const expressions = [
    ...(protocol === undefined ? [] : protocolMatch(protocol)),
    ...(addresses.source ?? []),
    ...(addresses.destination ?? []),
    ...matches,
    COUNTER,
    verdict,
  ];
  return { expressions: encodeExpressions(expressions), protocol };
}

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
const NFTA_BITWISE_OP = 6;

/**
 * Whether a dumped rule's expressions are those of `encoded`: the same
 * expressions with the same attributes, counters' values aside, nests
 * compared whatever their `NLA_F_NESTED` flags, and a bitwise operation
 * the kernel reports as the default (`NFT_BITWISE_BOOL`) taken as unsent.
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
        !(e.name === "bitwise" && k === NFTA_BITWISE_OP && sameData(e.attrs.get(k)!, u32(0)))
      ).sort();
    const [kx, ky] = [keys(x), keys(y)];
    return kx.length === ky.length &&
      kx.every((k, j) => k === ky[j] && sameData(x.attrs.get(k)!, y.attrs.get(k)!));
  });
}

/** Byte equality, or equal attribute lists up to `NLA_F_*` flags (a nest either way). */
function sameData(x: Uint8Array, y: Uint8Array, depth = 0): boolean {
  if (x.length === y.length && x.every((byte, i) => byte === y[i])) return true;
  if (depth > 3) return false;
  const [ax, ay] = [tlvs(x), tlvs(y)];
  return ax !== undefined && ay !== undefined && ax.length === ay.length &&
    ax.every((attr, i) =>
      attrType(attr) === attrType(ay[i]) && sameData(attr.data, ay[i].data, depth + 1)
    );
}

/** `data` as an attribute list that covers it exactly; undefined when it is not one. */
function tlvs(data: Uint8Array): RawAttr[] | undefined {
  let attrs;
  try {
    attrs = decodeRawAttrs(data);
  } catch {
    return undefined; // plain data
  }
  const size = attrs.reduce((n, a) => n + ((4 + a.data.length + 3) & ~3), 0);
  return attrs.length > 0 && size === data.length ? attrs : undefined;
}

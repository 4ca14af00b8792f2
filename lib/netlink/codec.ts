/**
 * Netlink wire format: `nlmsghdr` framing, `rtattr`/`nlattr` lists, 4-byte
 * alignment, nested attributes, and typed attribute tables that decode to
 * `{ kind, value }` unions. Unknown attributes are kept as
 * `{ kind: "unknown", type, data }` so a decoded message encodes back to the
 * same bytes.
 *
 * Byte order: netlink uses host order; this code targets little-endian hosts
 * (x86_64, aarch64) and says so once here. Malformed input throws
 * `SyntaxError` (framing) or `RangeError` (a value of the wrong size), never
 * `NetlinkError`, which is for errors the kernel reports.
 *
 * @module
 */
import { NLA_F_NESTED, NLA_TYPE_MASK } from "./consts.ts";
import { formatIp, formatMac, parseIp, parseMac } from "./_ip.ts";

/** Little-endian host order (see the module doc). */
export const LE = true;
/** `NLMSG_HDRLEN`: size of `struct nlmsghdr`. */
export const NLMSG_HDRLEN = 16;
/** `NLA_HDRLEN`: size of `struct nlattr` / `struct rtattr`. */
export const NLA_HDRLEN = 4;

/** `NLMSG_ALIGN` / `NLA_ALIGN`: rounds up to a multiple of 4. */
export function align4(length: number): number {
  return (length + 3) & ~3;
}

/** `struct nlmsghdr`. */
export interface NlMsgHeader {
  /** `nlmsg_len`: total length including this header. */
  len: number;
  /** `nlmsg_type` */
  type: number;
  /** `nlmsg_flags` */
  flags: number;
  /** `nlmsg_seq` */
  seq: number;
  /** `nlmsg_pid`: sender port id (0 from the kernel; ours in replies). */
  pid: number;
}

/** One framed netlink message: header plus payload (the bytes after the header). */
export interface NlMessage {
  header: NlMsgHeader;
  payload: Uint8Array;
}

/** Frames `payload` with an `nlmsghdr`; `len` is computed, the result is 4-byte padded. */
export function encodeNlMessage(
  header: Omit<NlMsgHeader, "len">,
  payload: Uint8Array,
): Uint8Array {
  const len = NLMSG_HDRLEN + payload.length;
  const out = new Uint8Array(align4(len));
  const view = new DataView(out.buffer);
  view.setUint32(0, len, LE);
  view.setUint16(4, header.type, LE);
  view.setUint16(6, header.flags, LE);
  view.setUint32(8, header.seq, LE);
  view.setUint32(12, header.pid, LE);
  out.set(payload, NLMSG_HDRLEN);
  return out;
}

/** Splits a datagram into messages. Payloads are views into `data` (copy to keep them). */
export function decodeNlMessages(data: Uint8Array): NlMessage[] {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: NlMessage[] = [];
  let offset = 0;
  while (offset + NLMSG_HDRLEN <= data.length) {
    const len = view.getUint32(offset, LE);
    if (len < NLMSG_HDRLEN || offset + len > data.length) {
      throw new SyntaxError(
        `Cannot decode netlink message at offset ${offset}: length ${len} exceeds ${
          data.length - offset
        } bytes left`,
      );
    }
    out.push({
      header: {
        len,
        type: view.getUint16(offset + 4, LE),
        flags: view.getUint16(offset + 6, LE),
        seq: view.getUint32(offset + 8, LE),
        pid: view.getUint32(offset + 12, LE),
      },
      payload: data.subarray(offset + NLMSG_HDRLEN, offset + len),
    });
    offset += align4(len);
  }
  return out;
}

/** An attribute as it is on the wire; `type` keeps the NLA_F_* flag bits. */
export interface RawAttr {
  type: number;
  data: Uint8Array;
}

/** Encodes attributes, each padded to 4 bytes. */
export function encodeRawAttrs(attrs: readonly RawAttr[]): Uint8Array {
  let size = 0;
  for (const attr of attrs) size += align4(NLA_HDRLEN + attr.data.length);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const attr of attrs) {
    const len = NLA_HDRLEN + attr.data.length;
    if (len > 0xffff) throw new RangeError(`Cannot encode attribute ${attr.type}: ${len} bytes`);
    view.setUint16(offset, len, LE);
    view.setUint16(offset + 2, attr.type, LE);
    out.set(attr.data, offset + NLA_HDRLEN);
    offset += align4(len);
  }
  return out;
}

/** Decodes an attribute list. Data are views into `data`. */
export function decodeRawAttrs(data: Uint8Array): RawAttr[] {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: RawAttr[] = [];
  let offset = 0;
  while (offset + NLA_HDRLEN <= data.length) {
    const len = view.getUint16(offset, LE);
    if (len < NLA_HDRLEN || offset + len > data.length) {
      throw new SyntaxError(
        `Cannot decode attribute at offset ${offset}: length ${len} exceeds ${
          data.length - offset
        } bytes left`,
      );
    }
    out.push({
      type: view.getUint16(offset + 2, LE),
      data: data.subarray(offset + NLA_HDRLEN, offset + len),
    });
    offset += align4(len);
  }
  return out;
}

/** Converts one attribute value to and from its payload bytes. */
export interface ValueCodec<T> {
  encode(value: T): Uint8Array;
  decode(data: Uint8Array): T;
}

function fixed(size: number, data: Uint8Array, what: string): DataView {
  if (data.length !== size) {
    throw new RangeError(`Cannot decode ${what}: ${data.length} bytes, expected ${size}`);
  }
  return new DataView(data.buffer, data.byteOffset, size);
}

function build(size: number, fill: (view: DataView) => void): Uint8Array {
  const out = new Uint8Array(size);
  fill(new DataView(out.buffer));
  return out;
}

/** `u8` attribute. */
export const u8: ValueCodec<number> = {
  encode: (v) => build(1, (d) => d.setUint8(0, v)),
  decode: (b) => fixed(1, b, "u8").getUint8(0),
};

/** `u16` attribute (host order). */
export const u16: ValueCodec<number> = {
  encode: (v) => build(2, (d) => d.setUint16(0, v, LE)),
  decode: (b) => fixed(2, b, "u16").getUint16(0, LE),
};

/** `__be16` attribute (network order, e.g. a VLAN protocol). */
export const be16: ValueCodec<number> = {
  encode: (v) => build(2, (d) => d.setUint16(0, v, false)),
  decode: (b) => fixed(2, b, "be16").getUint16(0, false),
};

/** `u32` attribute (host order). */
export const u32: ValueCodec<number> = {
  encode: (v) => build(4, (d) => d.setUint32(0, v, LE)),
  decode: (b) => fixed(4, b, "u32").getUint32(0, LE),
};

/** `s32` attribute (host order). */
export const i32: ValueCodec<number> = {
  encode: (v) => build(4, (d) => d.setInt32(0, v, LE)),
  decode: (b) => fixed(4, b, "s32").getInt32(0, LE),
};

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

/** NUL-terminated string; decoding stops at the first NUL (or the end). */
export const strz: ValueCodec<string> = {
  encode: (v) => ENCODER.encode(v + "\0"),
  decode: (b) => {
    const nul = b.indexOf(0);
    return DECODER.decode(nul === -1 ? b : b.subarray(0, nul));
  },
};

/** Opaque bytes (copied on decode so values outlive receive buffers). */
export const bytes: ValueCodec<Uint8Array> = {
  encode: (v) => v,
  decode: (b) => b.slice(),
};

/** Hardware address as "aa:bb:cc:dd:ee:ff". */
export const mac: ValueCodec<string> = {
  encode: parseMac,
  decode: formatMac,
};

/** IPv4 (4 bytes) or IPv6 (16 bytes) address as a string. */
export const ip: ValueCodec<string> = {
  encode: parseIp,
  decode: formatIp,
};

/** An attribute the tables do not know; kept byte for byte. */
export interface UnknownAttr {
  kind: "unknown";
  /** Full 16-bit type, flag bits included. */
  type: number;
  data: Uint8Array;
}

/** Shape every typed attribute union member has. */
export interface KindValue {
  kind: string;
  value: unknown;
}

/** How one attribute kind is numbered and encoded. */
export interface AttrSpec<V> {
  /** Kernel attribute number (without flag bits). */
  type: number;
  codec: ValueCodec<V>;
  /** Set `NLA_F_NESTED` when encoding (decoding ignores flag bits). */
  nestedFlag?: boolean;
}

/** Maps each kind of the union `A` to its number and codec. */
export type AttrTable<A extends KindValue> = {
  readonly [K in A["kind"]]?: AttrSpec<Extract<A, { kind: K }>["value"]>;
};

type AnySpec = AttrSpec<unknown>;
const REVERSE = new WeakMap<object, Map<number, [string, AnySpec]>>();

function reverse(table: object): Map<number, [string, AnySpec]> {
  let map = REVERSE.get(table);
  if (map === undefined) {
    map = new Map();
    for (const [kind, spec] of Object.entries(table) as [string, AnySpec | undefined][]) {
      if (spec !== undefined) map.set(spec.type, [kind, spec]);
    }
    REVERSE.set(table, map);
  }
  return map;
}

/** Encodes typed attributes with `table`; unknown ones are written as they are. */
export function encodeAttrs<A extends KindValue>(
  table: AttrTable<A>,
  attrs: readonly (A | UnknownAttr)[],
): Uint8Array {
  const raw: RawAttr[] = attrs.map((attr) => {
    if (attr.kind === "unknown") {
      const unknown = attr as UnknownAttr;
      return { type: unknown.type, data: unknown.data };
    }
    const known = attr as A;
    const spec = (table as Record<string, AnySpec | undefined>)[known.kind];
    if (spec === undefined) {
      throw new TypeError(`Cannot encode attribute kind "${known.kind}": not in this table`);
    }
    return {
      type: spec.type | (spec.nestedFlag ? NLA_F_NESTED : 0),
      data: spec.codec.encode(known.value),
    };
  });
  return encodeRawAttrs(raw);
}

/** Decodes attributes with `table`; numbers it lacks become {@linkcode UnknownAttr}. */
export function decodeAttrs<A extends KindValue>(
  table: AttrTable<A>,
  data: Uint8Array,
): (A | UnknownAttr)[] {
  const map = reverse(table);
  return decodeRawAttrs(data).map((attr) => {
    const entry = map.get(attr.type & NLA_TYPE_MASK);
    if (entry === undefined) return { kind: "unknown", type: attr.type, data: attr.data.slice() };
    const [kind, spec] = entry;
    let value: unknown;
    try {
      value = spec.codec.decode(attr.data);
    } catch (error) {
      if (error instanceof RangeError || error instanceof SyntaxError) {
        throw new RangeError(`Cannot decode attribute "${kind}" (${spec.type}): ${error.message}`, {
          cause: error,
        });
      }
      throw error;
    }
    return { kind, value } as A;
  });
}

/** A codec whose value is a nested attribute list described by `table`. */
export function nested<A extends KindValue>(
  table: AttrTable<A>,
): ValueCodec<(A | UnknownAttr)[]> {
  return {
    encode: (attrs) => encodeAttrs(table, attrs),
    decode: (data) => decodeAttrs(table, data),
  };
}

/** Finds the value of the first attribute of `kind` in a decoded list. */
export function attrValue<A extends KindValue, K extends A["kind"]>(
  attrs: readonly (A | UnknownAttr)[],
  kind: K,
): Extract<A, { kind: K }>["value"] | undefined {
  for (const attr of attrs) {
    if (attr.kind === kind) return (attr as Extract<A, { kind: K }>).value;
  }
  return undefined;
}

import { assertEquals, assertThrows } from "@std/assert";
import {
  align4,
  type AttrTable,
  attrValue,
  decodeAttrs,
  decodeNlMessages,
  decodeRawAttrs,
  encodeAttrs,
  encodeNlMessage,
  encodeRawAttrs,
  ip,
  mac,
  nested,
  strz,
  u16,
  u32,
  u8,
  type UnknownAttr,
} from "./codec.ts";
import { formatIp, parseIp } from "./_ip.ts";

Deno.test("align4() rounds up to a multiple of 4", () => {
  assertEquals([0, 1, 2, 3, 4, 5, 8, 9].map(align4), [0, 4, 4, 4, 4, 8, 8, 12]);
});

Deno.test("encodeNlMessage() writes nlmsghdr and pads the message", () => {
  const raw = encodeNlMessage(
    { type: 16, flags: 0x605, seq: 0x01020304, pid: 7 },
    new Uint8Array([0xaa, 0xbb, 0xcc]),
  );
  assertEquals(
    raw,
    new Uint8Array([
      ...[19, 0, 0, 0], // nlmsg_len 16 + 3 (unpadded length)
      ...[16, 0], // nlmsg_type
      ...[0x05, 0x06], // nlmsg_flags
      ...[4, 3, 2, 1], // nlmsg_seq
      ...[7, 0, 0, 0], // nlmsg_pid
      ...[0xaa, 0xbb, 0xcc, 0], // payload + 1 byte padding
    ]),
  );
});

Deno.test("decodeNlMessages() splits a datagram with several messages", () => {
  const a = encodeNlMessage({ type: 16, flags: 2, seq: 1, pid: 9 }, new Uint8Array([1, 2, 3]));
  const b = encodeNlMessage({ type: 3, flags: 2, seq: 1, pid: 9 }, new Uint8Array([0, 0, 0, 0]));
  const both = new Uint8Array([...a, ...b]);
  const messages = decodeNlMessages(both);
  assertEquals(messages.map((m) => m.header), [
    { len: 19, type: 16, flags: 2, seq: 1, pid: 9 },
    { len: 20, type: 3, flags: 2, seq: 1, pid: 9 },
  ]);
  assertEquals(messages[0].payload, new Uint8Array([1, 2, 3]));
});

Deno.test("decodeNlMessages() rejects a length beyond the data", () => {
  const raw = encodeNlMessage({ type: 16, flags: 0, seq: 1, pid: 0 }, new Uint8Array(4));
  new DataView(raw.buffer).setUint32(0, 64, true);
  assertThrows(() => decodeNlMessages(raw), SyntaxError, "length 64 exceeds 20 bytes");
});

Deno.test("encodeRawAttrs() pads each attribute and decodeRawAttrs() reads it back", () => {
  const attrs = [
    { type: 3, data: new Uint8Array([0x65, 0x30, 0]) },
    { type: 0x8000 | 12, data: new Uint8Array([5, 0, 4, 0, 1, 0, 0, 0]) },
    { type: 7, data: new Uint8Array() },
  ];
  const raw = encodeRawAttrs(attrs);
  assertEquals(
    raw,
    new Uint8Array([
      ...[7, 0, 3, 0, 0x65, 0x30, 0, 0], // len 7, type 3, "e0\0", 1 pad
      ...[12, 0, 12, 0x80, 5, 0, 4, 0, 1, 0, 0, 0], // nested flag kept in the type
      ...[4, 0, 7, 0], // empty attribute
    ]),
  );
  assertEquals(decodeRawAttrs(raw), attrs);
});

Deno.test("decodeRawAttrs() rejects a truncated attribute", () => {
  assertThrows(
    () => decodeRawAttrs(new Uint8Array([12, 0, 3, 0, 1, 2])),
    SyntaxError,
    "length 12 exceeds 6 bytes",
  );
  assertThrows(() => decodeRawAttrs(new Uint8Array([2, 0, 3, 0])), SyntaxError);
});

type TestAttr =
  | { kind: "name"; value: string }
  | { kind: "count"; value: number }
  | { kind: "small"; value: number }
  | { kind: "inner"; value: ({ kind: "flag"; value: number } | UnknownAttr)[] };

const INNER: AttrTable<{ kind: "flag"; value: number }> = { flag: { type: 1, codec: u8 } };
const TABLE: AttrTable<TestAttr> = {
  name: { type: 1, codec: strz },
  count: { type: 2, codec: u32 },
  small: { type: 3, codec: u16 },
  inner: { type: 4, codec: nested(INNER), nestedFlag: true },
};

Deno.test("decodeAttrs() types known attributes and keeps unknown ones", () => {
  const raw = new Uint8Array([
    ...[8, 0, 1, 0, 0x61, 0x62, 0x63, 0], // name "abc"
    ...[8, 0, 99, 0, 1, 2, 3, 4], // unknown type 99
    ...[8, 0, 2, 0, 0xe8, 3, 0, 0], // count 1000
    ...[12, 0, 4, 0x80, 5, 0, 1, 0, 1, 0, 0, 0], // inner (NLA_F_NESTED) { flag 1 }
  ]);
  const attrs = decodeAttrs(TABLE, raw);
  assertEquals(attrs, [
    { kind: "name", value: "abc" },
    { kind: "unknown", type: 99, data: new Uint8Array([1, 2, 3, 4]) },
    { kind: "count", value: 1000 },
    { kind: "inner", value: [{ kind: "flag", value: 1 }] },
  ]);
  assertEquals(encodeAttrs(TABLE, attrs), raw);
  assertEquals(attrValue(attrs, "count"), 1000);
  assertEquals(attrValue(attrs, "small"), undefined);
});

Deno.test("decodeAttrs() reports a value of the wrong size as RangeError", () => {
  const raw = new Uint8Array([6, 0, 2, 0, 1, 2, 0, 0]); // count (u32) with 2 bytes
  assertThrows(() => decodeAttrs(TABLE, raw), RangeError, `"count" (2): Cannot decode u32`);
});

Deno.test("encodeAttrs() rejects a kind the table lacks", () => {
  const bad = [{ kind: "other", value: 1 }] as unknown as TestAttr[];
  assertThrows(() => encodeAttrs(TABLE, bad), TypeError, `kind "other"`);
});

Deno.test("strz decodes up to the first NUL and encodes with one", () => {
  assertEquals(strz.decode(new Uint8Array([0x76, 0x65, 0x74, 0x68])), "veth");
  assertEquals(strz.decode(new Uint8Array([0x76, 0, 0x41])), "v");
  assertEquals(strz.encode("br0"), new Uint8Array([0x62, 0x72, 0x30, 0]));
});

Deno.test("mac converts between bytes and lowercase colon text", () => {
  assertEquals(mac.decode(new Uint8Array([0x02, 0xab, 0, 0, 0, 1])), "02:ab:00:00:00:01");
  assertEquals(mac.encode("02:AB:00:00:00:01"), new Uint8Array([0x02, 0xab, 0, 0, 0, 1]));
  assertThrows(() => mac.encode("02:ab:0:00:00:01"), SyntaxError, "hardware address");
});

Deno.test("ip codec takes the family from the length", () => {
  assertEquals(ip.decode(new Uint8Array([10, 1, 2, 3])), "10.1.2.3");
  assertEquals(ip.encode("fd00::1").length, 16);
  assertThrows(() => ip.decode(new Uint8Array(5)), RangeError, "5 bytes");
});

Deno.test("formatIp() prints IPv6 like inet_ntop", () => {
  const cases: [string, string][] = [
    ["0000:0000:0000:0000:0000:0000:0000:0000", "::"],
    ["0000:0000:0000:0000:0000:0000:0000:0001", "::1"],
    ["fd00:0000:0000:0000:0000:0000:0000:0001", "fd00::1"],
    ["2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"],
    ["2001:0db8:0000:0001:0000:0000:0000:0000", "2001:db8:0:1::"],
    ["2001:0db8:0001:0000:0001:0001:0001:0001", "2001:db8:1:0:1:1:1:1"],
    ["0000:0000:0000:0000:0000:ffff:0102:0304", "::ffff:1.2.3.4"],
    ["0000:0000:0000:0000:0000:0000:0102:0304", "::1.2.3.4"],
    ["fe80:0000:0000:0000:d8dc:1fff:fe5b:4074", "fe80::d8dc:1fff:fe5b:4074"],
  ];
  for (const [full, expected] of cases) {
    const bytes = new Uint8Array(
      full.split(":").flatMap((g) => [parseInt(g.slice(0, 2), 16), parseInt(g.slice(2), 16)]),
    );
    assertEquals(formatIp(bytes), expected, full);
    assertEquals(parseIp(expected), bytes, expected);
  }
});

Deno.test("parseIp() rejects malformed addresses", () => {
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.256",
      "01.2.3.4",
      "1.2.3.4.5",
      "fd00:::1",
      "1::2::3",
      "g::1",
      "1:2:3:4:5:6:7:8:9",
      "::1%eth0",
      "12345::",
    ]
  ) {
    assertThrows(() => parseIp(bad), SyntaxError, `Cannot parse IP address "${bad}"`);
  }
  assertEquals(parseIp("1:2:3:4:5:6:7:8").length, 16);
  assertEquals(
    parseIp("::ffff:10.0.0.1"),
    new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]),
  );
});

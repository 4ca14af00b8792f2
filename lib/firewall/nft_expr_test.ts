import { assertEquals, assertThrows } from "@std/assert";
import { decodeRawAttrs, encodeRawAttrs } from "../netlink/codec.ts";
import {
  ACCEPT,
  addressMatch,
  commentMatch,
  COUNTER,
  decodeExpressions,
  encodeExpressions,
  type ExpressionSpec,
  jumpTo,
  masquerade,
  sameExpressions,
} from "./nft_expr.ts";

const hex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");

/** `name attr=hex …` per expression, nests decoded one level: how `nft --debug` reads them. */
function show(expressions: ExpressionSpec[]): string[] {
  return expressions.map((e) =>
    `${e.name} ${
      e.attrs.map((a) => {
        const type = a.type & 0x3fff;
        const inner = (a.type & 0x8000)
          ? decodeRawAttrs(a.data).map((n) => `${n.type & 0x3fff}:${hex(n.data)}`).join(",")
          : hex(a.data);
        return `${type}=${inner}`;
      }).join(" ")
    }`
  );
}

Deno.test("addressMatch() loads only a byte-aligned prefix's bytes, as iptables-nft's add_addr", () => {
  // -d 10.77.0.0/24: three bytes, no mask.
  assertEquals(show(addressMatch("destination", Uint8Array.of(10, 77, 0, 9), 24)), [
    "payload 1=00000001 2=00000001 3=00000010 4=00000003",
    "cmp 1=00000001 2=00000000 3=1:0a4d00",
  ]);
  // -s fd77::/64 on IPv6: eight bytes at the source offset 8.
  const v6 = new Uint8Array(16);
  v6.set([0xfd, 0x77]);
  v6[15] = 3;
  assertEquals(show(addressMatch("source", v6, 64)), [
    "payload 1=00000001 2=00000001 3=00000008 4=00000008",
    "cmp 1=00000001 2=00000000 3=1:fd77000000000000",
  ]);
});

Deno.test("addressMatch() masks any other prefix over the whole address, host bits cleared", () => {
  // ! -d 224.0.0.0/4
  assertEquals(
    show(addressMatch("destination", Uint8Array.of(224, 0, 0, 0), 4, { negate: true })),
    [
      "payload 1=00000001 2=00000001 3=00000010 4=00000004",
      "bitwise 1=00000001 2=00000001 3=00000004 4=1:f0000000 5=1:00000000",
      "cmp 1=00000001 2=00000001 3=1:e0000000",
    ],
  );
  // -d 172.26.64.9/20 matches 172.26.64.0/20.
  assertEquals(
    show(addressMatch("destination", Uint8Array.of(172, 26, 79, 9), 20))[2],
    "cmp 1=00000001 2=00000000 3=1:ac1a4000",
  );
});

Deno.test("addressMatch() refuses prefix 0 and lengths that are no address", () => {
  assertThrows(() => addressMatch("source", new Uint8Array(4), 0), RangeError, "prefix length 0");
  assertThrows(() => addressMatch("source", new Uint8Array(4), 33), RangeError, "33");
  assertThrows(() => addressMatch("source", new Uint8Array(5), 8), RangeError, "5 bytes");
});

Deno.test("commentMatch() pads the text to 256 bytes and refuses what iptables refuses", () => {
  const [name, revision, info] = commentMatch('name: "n" id: "c"').attrs.map((a) => a.data);
  assertEquals(new TextDecoder().decode(name), "comment\0");
  assertEquals(hex(revision), "00000000");
  assertEquals(info.length, 256);
  assertEquals(new TextDecoder().decode(info.subarray(0, 17)), 'name: "n" id: "c"');
  assertEquals(info.subarray(17).every((b) => b === 0), true);
  assertThrows(() => commentMatch("x".repeat(256)), RangeError, "256 bytes");
  commentMatch("x".repeat(255));
});

Deno.test("jumpTo() and masquerade() are the verdict and xt target iptables-nft writes", () => {
  // Verdict code -3 (jump) and the chain's name, as a kernel dump shows them.
  assertEquals(show([jumpTo("CNI-x1")]), [
    "immediate 1=00000000 2=2:08000100fffffffd0b000200434e492d78310000",
  ]);
  const [, , v4] = masquerade(4).attrs.map((a) => a.data);
  assertEquals(hex(v4), "01000000" + "00".repeat(20)); // rangesize 1 (little endian host)
  assertEquals(masquerade(6).attrs[2].data, new Uint8Array(40));
  // The whole rule list round-trips through the attribute codec.
  const list = decodeRawAttrs(encodeExpressions([jumpTo("A"), masquerade(6)]));
  assertEquals(list.map((a) => a.type), [0x8001, 0x8001]);
});

Deno.test("sameExpressions() ignores counter values, nest flags and a default bitwise op, nothing else", () => {
  const rule = (comment: string) =>
    encodeExpressions([
      ...addressMatch("destination", Uint8Array.of(10, 77, 0, 0), 20),
      commentMatch(comment),
      COUNTER,
      jumpTo("CNI-x"),
    ]);
  const ours = rule("c");
  // What a dump shows: counters counting, no NLA_F_NESTED, bitwise op 0 (NFT_BITWISE_BOOL).
  const strip = (data: Uint8Array): Uint8Array =>
    encodeRawAttrs(decodeRawAttrs(data).map((a) => ({ type: a.type & 0x3fff, data: a.data })));
  const dumped = encodeExpressions(
    decodeExpressions(ours).map((e) => ({
      name: e.name,
      attrs: [
        ...[...e.attrs].map(([type, data]) => ({
          type,
          data: e.name === "counter"
            ? Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 9)
            : e.name === "immediate" && type === 2
            ? strip(data)
            : data,
        })),
        ...(e.name === "bitwise" ? [{ type: 6, data: new Uint8Array(4) }] : []),
      ],
    })),
  );
  assertEquals(sameExpressions(dumped, ours), true);
  assertEquals(sameExpressions(rule("d"), ours), false);
  // Addresses whose bytes happen to read as an attribute header are still compared byte for
  // byte (4.0.0.65 once passed for 4.0.0.1 when any data was tried as a nest).
  const source = (last: number) =>
    encodeExpressions([...addressMatch("source", Uint8Array.of(4, 0, 0, last), 32), ACCEPT]);
  assertEquals(sameExpressions(source(65), source(1)), false);
  assertEquals(sameExpressions(source(1), source(1)), true);
  assertEquals(sameExpressions(encodeExpressions([COUNTER, jumpTo("CNI-x")]), ours), false);
});

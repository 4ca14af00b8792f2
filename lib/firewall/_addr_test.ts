import { assertEquals } from "@std/assert";
import {
  formatAddr,
  isUnspecified,
  isV4Mapped,
  networkOf,
  parseAddr,
  parsePrefixed,
} from "./_addr.ts";

function roundTrip(text: string): string | undefined {
  const addr = parseAddr(text);
  return addr && formatAddr(addr);
}

Deno.test("formatAddr() prints IPv6 like glibc inet_ntop (as iptables-save does)", () => {
  assertEquals(roundTrip("FD77:0:0:0:0:0:0:3"), "fd77::3");
  assertEquals(roundTrip("2001:db8:0:1:0:0:0:1"), "2001:db8:0:1::1");
  assertEquals(roundTrip("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1");
  assertEquals(roundTrip("1:0:2:3:4:5:6:7"), "1:0:2:3:4:5:6:7");
  assertEquals(roundTrip("::"), "::");
  assertEquals(roundTrip("::1"), "::1");
  assertEquals(roundTrip("2001:db8::"), "2001:db8::");
  assertEquals(roundTrip("::ffff:10.0.0.1"), "::ffff:10.0.0.1");
  assertEquals(roundTrip("::10.0.0.1"), "::10.0.0.1");
});

Deno.test("parseAddr() rejects malformed and ambiguous literals", () => {
  for (
    const bad of [
      "010.0.0.1",
      "1.2.3",
      "1.2.3.256",
      "1::2::3",
      "fe80::1%eth0",
      "[::1]",
      "",
      " 1.2.3.4",
      "1.2.3.4/32",
      ":::",
    ]
  ) {
    assertEquals(parseAddr(bad), undefined, bad);
  }
  assertEquals(parseAddr("10.1.2.3")?.family, 4);
  assertEquals(parseAddr("1:2:3:4:5:6:7:8")?.family, 6);
});

Deno.test("parsePrefixed() and networkOf() clear host bits", () => {
  const v4 = parsePrefixed("10.77.0.3/24")!;
  assertEquals(formatAddr(networkOf(v4.addr, v4.prefix)), "10.77.0.0");
  const v6 = parsePrefixed("fd77::3/64")!;
  assertEquals(formatAddr(networkOf(v6.addr, v6.prefix)), "fd77::");
  const odd = parsePrefixed("172.26.70.5/20")!;
  assertEquals(formatAddr(networkOf(odd.addr, odd.prefix)), "172.26.64.0");
  assertEquals(parsePrefixed("10.0.0.1/33"), undefined);
  assertEquals(parsePrefixed("10.0.0.1"), undefined);
});

Deno.test("isUnspecified() and isV4Mapped() classify special addresses", () => {
  assertEquals(isUnspecified(parseAddr("0.0.0.0")!), true);
  assertEquals(isUnspecified(parseAddr("::")!), true);
  assertEquals(isUnspecified(parseAddr("::1")!), false);
  assertEquals(isV4Mapped(parseAddr("::ffff:1.2.3.4")!), true);
  assertEquals(isV4Mapped(parseAddr("1.2.3.4")!), false);
});

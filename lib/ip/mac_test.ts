import { assertEquals } from "@std/assert";
import { formatMac, tryParseMac } from "./mac.ts";

Deno.test("tryParseMac() reads Go's three notations", () => {
  const bytes = [0x0a, 0x58, 0x0a, 0x01, 0x00, 0x05];
  for (const text of ["0A:58:0a:01:00:05", "0a-58-0a-01-00-05", "0a58.0A01.0005"]) {
    assertEquals(Array.from(tryParseMac(text) ?? []), bytes, text);
  }
  assertEquals(tryParseMac("00:00:00:00:fe:80:00:00")?.length, 8);
  const ib = "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01";
  assertEquals(tryParseMac(ib)?.length, 20);
});

Deno.test("tryParseMac() rejects lengths and separators Go rejects", () => {
  for (
    const bad of [
      "",
      "0a:58:0a:01:00", // 5 bytes
      "0a:58:0a:01:00:05:06", // 7 bytes
      "0a:58-0a:01:00:05", // mixed separators
      "0a:58:0a:01:00:5",
      "0a:58:0a:01:00:0g",
      "0a580a010005",
      "0a58.0a01.005",
      " 0a:58:0a:01:00:05",
    ]
  ) {
    assertEquals(tryParseMac(bad), undefined, bad);
  }
});

Deno.test("formatMac() prints lower-case pairs of any length", () => {
  assertEquals(formatMac(new Uint8Array([0x0a, 0xbc, 0, 1, 2, 0xff])), "0a:bc:00:01:02:ff");
  assertEquals(formatMac(new Uint8Array([1, 2, 3, 4])), "01:02:03:04");
});

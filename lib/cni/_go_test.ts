import { assertEquals, assertThrows } from "@std/assert";
import { goAtoi, goField, goJsonEscape, goJsonSyntaxError, goQuote, goQuoteList } from "./_go.ts";

const syntax = (text: string) => goJsonSyntaxError(new TextEncoder().encode(text));

Deno.test("goQuote() matches Go's strconv.Quote", () => {
  assertEquals(goQuote('a"b\\c'), '"a\\"b\\\\c"');
  assertEquals(goQuote("line\nnext\ttab\r\x07\x08\x0b\x0c"), '"line\\nnext\\ttab\\r\\a\\b\\v\\f"');
  assertEquals(goQuote("\x00\x1f\x7f"), '"\\x00\\x1f\\x7f"');
  assertEquals(goQuote("héllo ✓"), '"héllo ✓"');
  assertEquals(goQuote("\u00a0\u00ad\u200b"), '"\\u00a0\\u00ad\\u200b"');
  assertEquals(goQuoteList(["0.1.0", "1.1.0"]), '["0.1.0" "1.1.0"]');
});

Deno.test("goJsonEscape() escapes what Go's encoder escapes", () => {
  assertEquals(goJsonEscape('"<a>&\u2028\u2029"'), '"\\u003ca\\u003e\\u0026\\u2028\\u2029"');
});

Deno.test("goJsonSyntaxError() accepts what Go accepts", () => {
  for (const ok of ['{"a":[1,2.5e-3,true,false,null,"\\u00e9"]}', " 1 ", "-0", '""']) {
    assertEquals(syntax(ok), undefined, ok);
  }
});

Deno.test("goJsonSyntaxError() words errors like Go's scanner", () => {
  const cases: [string, string][] = [
    ["[]]", "invalid character ']' after top-level value"],
    ['{"a":[1,]}', "invalid character ']' looking for beginning of value"],
    ["01", "invalid character '1' after top-level value"],
    ["1e5x", "invalid character 'x' after top-level value"],
    ["[", "unexpected end of JSON input"],
    ['{"a":', "unexpected end of JSON input"],
    ['"abc', "unexpected end of JSON input"],
    ["nul", "invalid character ' ' in literal null (expecting 'l')"],
    ["fax", "invalid character 'x' in literal false (expecting 'l')"],
    ["\x00", "invalid character '\\x00' looking for beginning of value"],
  ];
  for (const [text, want] of cases) assertEquals(syntax(text), want, text);
});

Deno.test("goField() matches names case-insensitively, last key winning", () => {
  assertEquals(goField({ Name: "a", NAME: "b" }, "name"), "b");
  assertEquals(goField({ name: "a" }, "Name"), "a");
  assertEquals(goField({ "\u212Aey": 1 }, "key"), 1); // Kelvin sign folds to k
  assertEquals(goField({ other: 1 }, "name"), undefined);
});

Deno.test("goAtoi() accepts a sign and rejects the rest", () => {
  assertEquals(goAtoi("+7"), 7);
  assertEquals(goAtoi("-007"), -7);
  assertThrows(() => goAtoi("1_000"), SyntaxError, 'parsing "1_000": invalid syntax');
  assertThrows(() => goAtoi("9223372036854775808"), RangeError, "value out of range");
});

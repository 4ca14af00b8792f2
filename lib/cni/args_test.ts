import { assertEquals, assertThrows } from "@std/assert";
import { argBool, argIp, argString, parseCniArgs, parseMac } from "./args.ts";

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("expected a throw");
}

const HOST_LOCAL = { IP: argIp };

Deno.test("parseCniArgs() returns nothing for an empty string", () => {
  assertEquals(parseCniArgs("", HOST_LOCAL), {});
});

Deno.test("parseCniArgs() parses known keys case-sensitively", () => {
  assertEquals(parseCniArgs("IP=10.1.0.5", HOST_LOCAL), { IP: "10.1.0.5" });
  assertEquals(
    message(() => parseCniArgs("ip=1.2.3.4;X=1", HOST_LOCAL)),
    'ARGS: unknown args ["ip=1.2.3.4" "X=1"]',
  );
});

Deno.test("parseCniArgs() requires exactly one '=' per pair", () => {
  assertEquals(message(() => parseCniArgs("K8S=1;", HOST_LOCAL)), 'ARGS: invalid pair ""');
  assertEquals(message(() => parseCniArgs("FOO=a=b", HOST_LOCAL)), 'ARGS: invalid pair "FOO=a=b"');
  assertEquals(message(() => parseCniArgs("FOO", HOST_LOCAL)), 'ARGS: invalid pair "FOO"');
});

Deno.test("parseCniArgs() ignores unknown keys when IgnoreUnknown is true anywhere", () => {
  assertEquals(parseCniArgs("K8S_POD_NAME=x;IgnoreUnknown=1", HOST_LOCAL), {
    IgnoreUnknown: true,
  });
  assertEquals(parseCniArgs("IgnoreUnknown=TRUE;K=2;IP=10.0.0.9/24", HOST_LOCAL), {
    IgnoreUnknown: true,
    IP: "10.0.0.9",
  });
  assertEquals(
    message(() => parseCniArgs("IgnoreUnknown=0;K=2", HOST_LOCAL)),
    'ARGS: unknown args ["K=2"]',
  );
});

Deno.test("parseCniArgs() wraps value errors with the pair", () => {
  assertEquals(
    message(() => parseCniArgs("IgnoreUnknown=YES", HOST_LOCAL)),
    'ARGS: error parsing value of pair "IgnoreUnknown=YES": boolean unmarshal error: invalid input yes',
  );
  assertEquals(
    message(() => parseCniArgs("IgnoreUnknown=tRuE;IP=10.9.0.300", HOST_LOCAL)),
    'ARGS: error parsing value of pair "IP=10.9.0.300": invalid IP address 10.9.0.300',
  );
  // Value errors are reported as they come, before unknown keys.
  assertEquals(
    message(() => parseCniArgs("X=1;IP=foo", HOST_LOCAL)),
    'ARGS: error parsing value of pair "IP=foo": invalid IP address foo',
  );
});

Deno.test("parseCniArgs() refuses the embedded CommonArgs field like Go", () => {
  assertEquals(
    message(() => parseCniArgs("CommonArgs=x", HOST_LOCAL)),
    "ARGS: cannot unmarshal into field 'CommonArgs' - type '*types.CommonArgs' does not implement encoding.TextUnmarshaler",
  );
});

Deno.test("parseCniArgs() lets later pairs override earlier ones", () => {
  assertEquals(parseCniArgs("MAC=a;MAC=b", { MAC: argString }), { MAC: "b" });
});

Deno.test("argBool() accepts 1/true/0/false in any case", () => {
  assertEquals(argBool("1"), true);
  assertEquals(argBool("True"), true);
  assertEquals(argBool("0"), false);
  assertEquals(argBool("FALSE"), false);
  assertThrows(() => argBool(""), SyntaxError, "boolean unmarshal error: invalid input ");
});

Deno.test("argIp() accepts an address with an ignored prefix and canonicalises it", () => {
  assertEquals(argIp("10.1.2.3"), "10.1.2.3");
  assertEquals(argIp("10.1.2.3/24"), "10.1.2.3");
  assertEquals(argIp("2001:DB8::0:1"), "2001:db8::1");
  assertEquals(argIp("::ffff:10.1.2.3"), "10.1.2.3");
  for (const bad of ["", "10.1.2", "10.01.2.3", "10.1.2.3/33", "1::2::3", "fe80::1%eth0"]) {
    assertEquals(message(() => argIp(bad)), `invalid IP address ${bad}`, bad);
  }
});

Deno.test("parseMac() accepts Go's MAC formats and lower-cases them", () => {
  assertEquals(parseMac("0A:58:0A:01:00:05"), "0a:58:0a:01:00:05");
  assertEquals(parseMac("0a-58-0a-01-00-05"), "0a:58:0a:01:00:05");
  assertEquals(parseMac("0a58.0a01.0005"), "0a:58:0a:01:00:05");
  assertEquals(parseMac("00:00:00:00:fe:80:00:00"), "00:00:00:00:fe:80:00:00");
  for (const bad of ["0a:58:0a:01:00", "0a:58-0a:01:00:05", "0a:58:0a:01:00:zz", "x"]) {
    assertEquals(message(() => parseMac(bad)), `address ${bad}: invalid MAC address`, bad);
  }
});

import { assert, assertEquals } from "@std/assert";
import { formatCidr, formatIp, isV4, parseCidr, parseIp, parseMacAddress } from "./_ip.ts";

// The Go text rules themselves are tested in lib/ip; these pin the CNI names.

Deno.test("parseIp() and formatIp() round-trip Go's text, undefined when invalid", () => {
  assertEquals(formatIp(parseIp("FE80::A")!), "fe80::a");
  assertEquals(formatIp(parseIp("::ffff:1.2.3.4")!), "1.2.3.4");
  assertEquals(parseIp("fe80::1%eth0"), undefined);
  assertEquals(parseIp(""), undefined);
});

Deno.test("parseCidr() keeps the written address as ip and formats like IPNet.String", () => {
  const cidr = parseCidr("10.0.0.1/08")!;
  assertEquals(formatIp(cidr.ip), "10.0.0.1");
  assertEquals(formatCidr(cidr), "10.0.0.1/8");
  assertEquals(formatCidr(parseCidr("::ffff:1.2.3.4/120")!), "1.2.3.4/24");
  assertEquals(parseCidr("10.0.0.1"), undefined);
  assertEquals(parseCidr("::1/129"), undefined);
});

Deno.test("isV4() is Go's To4() != nil", () => {
  assert(isV4(parseCidr("::ffff:1.2.3.4/120")!.ip));
  assert(isV4(parseIp("10.0.0.1")!));
  assert(!isV4(parseIp("::1.2.3.4")!));
});

Deno.test("parseMacAddress() is ParseMAC then HardwareAddr.String", () => {
  assertEquals(parseMacAddress("0A-58-0A-01-00-05"), "0a:58:0a:01:00:05");
  assertEquals(parseMacAddress("0a58.0a01.0005"), "0a:58:0a:01:00:05");
  assertEquals(parseMacAddress("0a:58:0a:01:00"), undefined);
});

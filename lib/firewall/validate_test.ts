import { formatIp } from "../ip/cidr.ts";
import { assertEquals, assertThrows } from "@std/assert";
import {
  conditionsBackend,
  validateAddress,
  validateChainName,
  validateCommentText,
  validateConditions,
  validateInterfaceName,
  validatePort,
  validateProtocol,
} from "./validate.ts";

Deno.test("validateChainName() accepts names iptables accepts", () => {
  for (
    const name of [
      "CNI-ADMIN",
      "NOMAD-ADMIN",
      "KUBE-MARK-MASQ",
      "a",
      "x.y_z+1",
      "A".repeat(28),
      // Accepted by iptables and by the reference plugins (a side-by-side review found these).
      ".X",
      "+X",
      "X!",
      "cni@admin",
      "ADMIN:1",
      "é".repeat(14),
    ]
  ) {
    assertEquals(validateChainName(name, "chain"), name);
  }
});

Deno.test("validateChainName() rejects spaces, quotes, long names, options and built-ins", () => {
  for (
    const name of [
      "MY ADMIN",
      'A"B',
      "A'B",
      "A\nB",
      "A\\B",
      "A\tB",
      "A".repeat(29),
      "é".repeat(15), // 30 bytes
      "",
      "-X",
      "!A",
      "FORWARD",
      "ACCEPT",
    ]
  ) {
    assertThrows(
      () => validateChainName(name, "iptablesAdminChainName"),
      RangeError,
      "iptablesAdminChainName",
    );
  }
  assertThrows(() => validateChainName(7, "chain"), TypeError);
});

Deno.test("validatePort() accepts 1-65535 only", () => {
  assertEquals(validatePort(1, "p"), 1);
  assertEquals(validatePort(65535, "p"), 65535);
  for (const bad of [0, -1, 65536, 70000, 1.5, NaN]) {
    assertThrows(() => validatePort(bad, "hostPort"), RangeError, "hostPort");
  }
  assertThrows(() => validatePort("80", "hostPort"), TypeError);
});

Deno.test("validateProtocol() accepts tcp, udp and sctp in any case", () => {
  assertEquals(validateProtocol("UDP", "protocol"), "udp");
  assertEquals(validateProtocol("sctp", "protocol"), "sctp");
  for (const bad of ["icmp", "", "tcp ", "all"]) {
    assertThrows(() => validateProtocol(bad, "protocol"), RangeError);
  }
  assertThrows(() => validateProtocol(6, "protocol"), TypeError);
});

Deno.test("validateAddress() takes literals only, never CIDRs or mapped addresses", () => {
  assertEquals(validateAddress("192.0.2.10", "hostIP").family, 4);
  assertEquals(validateAddress("2001:db8::10", "hostIP").family, 6);
  for (const bad of ["192.0.2.10/32", "192.0.2", "::ffff:192.0.2.10", "localhost", "1.2.3.4\n"]) {
    assertThrows(() => validateAddress(bad, "hostIP"), RangeError, "hostIP");
  }
});

Deno.test("validateAddress() unwraps an IPv4-mapped address only when asked to", () => {
  const addr = validateAddress("::ffff:192.0.2.10", "hostIP", { unwrapMapped: true });
  assertEquals([addr.family, formatIp(addr)], [4, "192.0.2.10"]);
  assertThrows(() => validateAddress("::ffff:192.0.2.10", "hostIP"), RangeError, "use 192.0.2.10");
});

Deno.test("validateInterfaceName() follows the kernel's rules", () => {
  assertEquals(validateInterfaceName("cni-podman0", "bridge"), "cni-podman0");
  for (const bad of ["", "a".repeat(16), "a b", "a/b", "a:b", ".", "..", "-x", "!x", 'a"b']) {
    assertThrows(() => validateInterfaceName(bad, "bridge"), RangeError);
  }
});

Deno.test("validateCommentText() refuses line breaks, and quotes for nft", () => {
  assertEquals(validateCommentText('dnat name: "n"', "c"), 'dnat name: "n"');
  assertThrows(() => validateCommentText("a\nb", "c"), RangeError);
  assertThrows(() => validateCommentText('a"b', "c", { nft: true }), RangeError);
});

Deno.test("conditionsBackend() decides by the first token like the reference", () => {
  assertEquals(conditionsBackend([]), undefined);
  assertEquals(conditionsBackend(["-d", "1.2.3.4"]), "iptables");
  assertEquals(conditionsBackend(["!", "-d", "1.2.3.4"]), "iptables");
  assertEquals(conditionsBackend(["ip", "daddr", "1.2.3.4"]), "nftables");
});

Deno.test("validateConditions() blocks tokens that could start a new rule or command", () => {
  assertEquals(validateConditions(["-m", "comment", "--comment", "two words"], "c"), [
    "-m",
    "comment",
    "--comment",
    "two words",
  ]);
  assertThrows(
    () => validateConditions(["-d", "1.2.3.4\n-A FORWARD -j ACCEPT"], "conditionsV4"),
    RangeError,
    "control",
  );
  assertThrows(
    () => validateConditions(["ip", "daddr", "1.2.3.4;", "flush", "ruleset"], "conditionsV4"),
    RangeError,
  );
  assertThrows(() => validateConditions(["ip", "#"], "conditionsV4"), RangeError);
  assertThrows(() => validateConditions(["-d", ""], "conditionsV4"), RangeError, "empty");
  assertThrows(() => validateConditions("-d 1.2.3.4", "conditionsV4"), TypeError);
});

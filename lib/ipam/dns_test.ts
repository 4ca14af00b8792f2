import { assertEquals, assertThrows } from "@std/assert";
import { parseResolvConf, parseResolvConfText } from "./dns.ts";

Deno.test("parseResolvConf() reads the fixture as the reference does", () => {
  const dns = parseResolvConf(new URL("../../testdata/ipam/resolv.conf", import.meta.url).pathname);
  assertEquals(dns, {
    nameservers: ["10.1.1.1", "fd00::53", "10.2.2.2"],
    domain: "example.com",
    search: ["a.example", "b.example"],
    options: ["ndots:2", "timeout:1"],
  });
});

Deno.test("parseResolvConfText() skips comments and short lines, last domain wins", () => {
  assertEquals(parseResolvConfText(""), {});
  assertEquals(
    parseResolvConfText("#nameserver 1.1.1.1\n;x y\nnameserver\ndomain a\ndomain b\r\n"),
    { domain: "b" },
  );
  assertEquals(parseResolvConfText("search x\nsearch y z\n"), { search: ["x", "y", "z"] });
});

Deno.test("parseResolvConf() fails with Go's open error text", () => {
  assertThrows(
    () => parseResolvConf("/nonexistent/resolv.conf"),
    Error,
    "open /nonexistent/resolv.conf: no such file or directory",
  );
});

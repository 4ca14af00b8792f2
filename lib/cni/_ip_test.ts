import { assertEquals } from "@std/assert";
import { formatCidr, formatIp, parseCidr, parseIp } from "./_ip.ts";

const ip = (text: string) => {
  const parsed = parseIp(text);
  return parsed ? formatIp(parsed) : undefined;
};
const cidr = (text: string) => {
  const parsed = parseCidr(text);
  return parsed ? formatCidr(parsed) : undefined;
};

Deno.test("parseIp() and formatIp() follow Go's net.ParseIP and IP.String", () => {
  const cases: [string, string | undefined][] = [
    ["1.2.3.4", "1.2.3.4"],
    ["0.0.0.0", "0.0.0.0"],
    ["1.2.3", undefined],
    ["1.2.3.4.5", undefined],
    ["01.2.3.4", undefined],
    ["256.1.1.1", undefined],
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["1:0:0:0:0:0:0:8", "1::8"],
    ["1:0:0:1:0:0:0:1", "1:0:0:1::1"],
    ["1:0:0:0:1:0:0:1", "1::1:0:0:1"],
    ["0:0:1:0:0:1:0:0", "::1:0:0:1:0:0"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
    ["1:2:3:4:5:6:7:8::", undefined],
    ["1:2:3:4:5:6:7:8:9", undefined],
    ["1:2:3:4:5:6:7", undefined],
    ["::ffff:1.2.3.4", "1.2.3.4"],
    ["::1.2.3.4", "::102:304"],
    ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"],
    ["1:2:3:4:5:6:7:1.2.3.4", undefined],
    ["::ffff:01.2.3.4", undefined],
    [":1", undefined],
    ["1:", undefined],
    ["1::2::3", undefined],
    ["12345::", undefined],
    ["g::", undefined],
    ["FE80::A", "fe80::a"],
    ["fe80::1%eth0", undefined],
    ["", undefined],
  ];
  for (const [text, want] of cases) assertEquals(ip(text), want, text);
});

Deno.test("parseCidr() and formatCidr() follow Go's ParseCIDR and IPNet.String", () => {
  const cases: [string, string | undefined][] = [
    ["10.0.0.1/24", "10.0.0.1/24"],
    ["10.0.0.1/08", "10.0.0.1/8"],
    ["10.0.0.1/+8", undefined],
    ["10.0.0.1/", undefined],
    ["10.0.0.1/33", undefined],
    ["10.0.0.1", undefined],
    ["::/0", "::/0"],
    ["2001:DB8::1/128", "2001:db8::1/128"],
    ["::1/129", undefined],
    ["::ffff:1.2.3.4/120", "1.2.3.4/24"],
    ["::ffff:1.2.3.4/96", "1.2.3.4/0"],
    ["::ffff:1.2.3.4/64", "1.2.3.4/0"],
  ];
  for (const [text, want] of cases) assertEquals(cidr(text), want, text);
});

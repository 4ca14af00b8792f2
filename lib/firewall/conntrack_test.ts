import { assertEquals } from "@std/assert";
import { createNetns, mustSh, ROOT } from "../testing/netns.ts";

const MODULE = new URL("./conntrack.ts", import.meta.url).href;

Deno.test({
  name: "deleteConntrackByDstPort() deletes only matching UDP flows of one family (kernel)",
  ignore: !ROOT,
  async fn() {
    await using ns = await createNetns("cbx-fw");
    const inNs = (cmd: string, args: string[]) =>
      mustSh("ip", ["netns", "exec", ns.name, cmd, ...args]);
    const flow = (src: string, dst: string, proto: string, dport: number) =>
      inNs("conntrack", [
        ...["-I", "-s", src, "-d", dst, "-p", proto, "--sport", "1000", "--dport", String(dport)],
        ...["--timeout", "100", ...(proto === "tcp" ? ["--state", "ESTABLISHED"] : [])],
      ]);
    await flow("10.1.1.1", "10.2.2.2", "udp", 5353);
    await flow("10.1.1.1", "10.2.2.2", "udp", 53);
    await flow("10.1.1.1", "10.2.2.2", "tcp", 5353);
    await flow("fd00::1", "fd00::2", "udp", 5353);
    const script = `import { deleteConntrackByDstPort } from "${MODULE}";
      console.log(deleteConntrackByDstPort([5353, 9999], { family: 4 }));`;
    assertEquals((await inNs(Deno.execPath(), ["eval", script])).trim(), "1");
    const left = await inNs("conntrack", ["-L", "-o", "extended"]);
    const flows = left.trim().split("\n")
      .map((line) => `${line.split(/\s+/).slice(0, 3).join(" ")} ${/dport=(\d+)/.exec(line)![1]}`)
      .sort();
    assertEquals(flows, ["ipv4 2 tcp 5353", "ipv4 2 udp 53", "ipv6 10 udp 5353"]);
  },
});

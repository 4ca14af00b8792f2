import { assertEquals } from "@std/assert";
import { createNetns, mustSh, ROOT } from "../testing/netns.ts";

const LOOKUP = new URL("./route_lookup.ts", import.meta.url).href;

Deno.test({
  name:
    "routingLinkName() follows policy rules and other tables, and has no answer for a blackhole (kernel)",
  ignore: !ROOT,
  async fn() {
    await using ns = await createNetns("cbx-rtl");
    const sh = (script: string) => mustSh("ip", ["netns", "exec", ns.name, "sh", "-c", script]);
    await sh(
      "ip link add cbxa type bridge && ip link set cbxa up && ip addr add 10.61.0.1/24 dev cbxa && " +
        "ip link add cbxb type bridge && ip link set cbxb up && " +
        "ip route add 10.62.0.0/24 dev cbxb table 100 && ip rule add to 10.62.0.0/24 table 100 && " +
        "ip route add blackhole 10.63.0.0/24",
    );
    const script = `import { routingLinkName } from "${LOOKUP}";
      console.log(JSON.stringify(["10.61.0.9", "10.62.0.9", "10.63.0.9", "10.64.0.9"].map(routingLinkName)));`;
    const out = await mustSh("ip", ["netns", "exec", ns.name, Deno.execPath(), "eval", script]);
    assertEquals(JSON.parse(out), ["cbxa", "cbxb", null, null]);
  },
});

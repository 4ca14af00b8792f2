import { assertEquals } from "@std/assert";
import { encodeRawAttrs } from "../netlink/codec.ts";
import { createNetns, mustSh, ROOT } from "../testing/netns.ts";
import { jumpsTo, newgenPid, payloadHolds, ruleTargets } from "./nfnetlink.ts";

const NFNETLINK = new URL("./nfnetlink.ts", import.meta.url).href;
const EXEC = new URL("./exec.ts", import.meta.url).href;
const SPAWN = new URL("../sys/spawn.ts", import.meta.url).href;
const NETNS = new URL("../sys/netns.ts", import.meta.url).href;

const u32be = (n: number) => new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);

/** Runs a command inside the named network namespace and returns its stdout. */
function inNetns(name: string) {
  return (cmd: string, args: string[]) => mustSh("ip", ["netns", "exec", name, cmd, ...args]);
}

Deno.test("newgenPid() reads NFTA_GEN_PROC_PID (big endian) from a NEWGEN payload", () => {
  const attrs = encodeRawAttrs([
    { type: 1, data: u32be(77) }, // NFTA_GEN_ID
    { type: 2, data: u32be(70000) }, // NFTA_GEN_PROC_PID
    { type: 3, data: new TextEncoder().encode("iptables-restor\0") },
  ]);
  assertEquals(newgenPid(Uint8Array.of(0, 0, 0, 0, ...attrs)), 70000);
  assertEquals(
    newgenPid(Uint8Array.of(0, 0, 0, 0, ...encodeRawAttrs([{ type: 1, data: u32be(77) }]))),
    undefined,
  );
});

Deno.test({
  name: "nftTableExists() answers as nft list table would (kernel)",
  ignore: !ROOT,
  async fn() {
    await using ns = await createNetns("cbx-nfnl");
    const inNs = inNetns(ns.name);
    const script = `import { nftTableExists } from "${NFNETLINK}";
      console.log(["inet", "ip"].map((f) => nftTableExists(f, "cbx_probe")).join(" "));`;
    assertEquals((await inNs(Deno.execPath(), ["eval", script])).trim(), "false false");
    await inNs("nft", ["add", "table", "inet", "cbx_probe"]);
    assertEquals((await inNs(Deno.execPath(), ["eval", script])).trim(), "true false");
  },
});

Deno.test({
  name: "nftChainExists() sees the chains iptables-nft made, per family (kernel)",
  ignore: !ROOT,
  async fn() {
    await using ns = await createNetns("cbx-nfnl");
    const inNs = inNetns(ns.name);
    const script = `import { nftChainExists } from "${NFNETLINK}";
      console.log([["ip", "CNI-DN-x"], ["ip6", "CNI-DN-x"], ["ip", "CNI-DN-y"]]
        .map(([f, c]) => nftChainExists(f, "nat", c)).join(" "));`;
    // No nat table at all: ENOENT for the table is a no too.
    assertEquals((await inNs(Deno.execPath(), ["eval", script])).trim(), "false false false");
    await inNs("iptables", ["-t", "nat", "-N", "CNI-DN-x"]);
    assertEquals((await inNs(Deno.execPath(), ["eval", script])).trim(), "true false false");
  },
});

Deno.test({
  name: "nftTableExists() keeps no answers and asks the calling thread's namespace (kernel)",
  ignore: !ROOT,
  async fn() {
    await using a = await createNetns("cbx-nfnl");
    await using b = await createNetns("cbx-nfnl");
    // One process: its query socket is reused, so it must not return old answers or
    // answer for the namespace it was first opened in.
    const script = `import { nftTableExists } from "${NFNETLINK}";
      import { withNetns } from "${NETNS}";
      const exists = () => nftTableExists("inet", "cbx_probe");
      const seen = [exists()];
      const made = new Deno.Command("nft", { args: ["add", "table", "inet", "cbx_probe"] }).outputSync();
      seen.push(made.code === 0 && exists());
      seen.push(withNetns("${b.path}", exists));
      seen.push(exists());
      console.log(seen.join(" "));`;
    assertEquals(
      (await inNetns(a.name)(Deno.execPath(), ["eval", script])).trim(),
      "false true false true",
    );
  },
});

Deno.test({
  name:
    "SpawnExecer returns at the announced commit of a deleting restore and settles it later (kernel)",
  ignore: !ROOT,
  async fn() {
    await using ns = await createNetns("cbx-nfnl");
    const inNs = inNetns(ns.name);
    const script = `import { SpawnExecer } from "${EXEC}";
      import { settleChildren } from "${SPAWN}";
      // Children not yet reaped (zombies included) are listed in .../children.
      const children = () => [...Deno.readDirSync("/proc/self/task")]
        .flatMap((t) => Deno.readTextFileSync("/proc/self/task/" + t.name + "/children").trim().split(" "))
        .filter(Boolean).length;
      const execer = new SpawnExecer();
      const del = await execer.run("iptables-restore", ["--noflush"], {
        stdin: "*filter\\n-F CBX-T1\\n-X CBX-T1\\nCOMMIT\\n", commits: 1 });
      const gone = (await execer.run("iptables", ["-S", "CBX-T1"])).code !== 0;
      const pending = children();
      settleChildren();
      const bad = await execer.run("iptables-restore", ["--noflush"], {
        stdin: "*filter\\n-X CBX-NONE\\nCOMMIT\\n", commits: 1 });
      console.log(JSON.stringify([del.code, gone, pending, children(), bad.code, bad.stderr.trim()]));`;
    const chain = async () => {
      await inNs("iptables", ["-N", "CBX-T1"]);
      await inNs("iptables", ["-A", "CBX-T1", "-j", "ACCEPT"]);
    };
    await chain();
    const [code, gone, pending, after, badCode, badStderr] = JSON.parse(
      await inNs(Deno.execPath(), ["eval", script]),
    );
    assertEquals([code, gone, pending, after], [0, true, 1, 0]);
    // No commit announced: the exit and its message decide, as without the watch.
    assertEquals(badCode, 1);
    assertEquals(badStderr, "iptables-restore: line 2 failed: No chain/target/match by that name.");
    // In a PID namespace of its own the announced pids are not ours: the execer does not use
    // them (nothing is left to settle) and waits for exits, with the same results.
    await chain();
    const isolated = JSON.parse(
      await inNs("unshare", ["--pid", "--fork", Deno.execPath(), "eval", script]),
    );
    assertEquals(isolated.slice(0, 4), [0, true, 0, 0]);
    const where = `import { inInitialPidNamespace } from "${NFNETLINK}";
      console.log(inInitialPidNamespace());`;
    assertEquals((await inNs(Deno.execPath(), ["eval", where])).trim(), "true");
    assertEquals(
      (await inNs("unshare", ["--pid", "--fork", Deno.execPath(), "eval", where])).trim(),
      "false",
    );
  },
});

/** An `NFT_MSG_NEWRULE` payload whose expressions are `exprs` ([name, data attributes]). */
function ruleMessage(exprs: [string, Uint8Array][]): Uint8Array {
  const text = (value: string) => new TextEncoder().encode(value + "\0");
  const nested = 0x8000;
  const list = exprs.map(([name, data]) => ({
    type: 1 | nested, // NFTA_LIST_ELEM
    data: encodeRawAttrs([{ type: 1, data: text(name) }, { type: 2 | nested, data }]),
  }));
  return Uint8Array.of(
    2,
    0,
    0,
    0,
    ...encodeRawAttrs([
      { type: 1, data: text("nat") }, // NFTA_RULE_TABLE
      { type: 2, data: text("PREROUTING") }, // NFTA_RULE_CHAIN
      { type: 4 | nested, data: encodeRawAttrs(list) }, // NFTA_RULE_EXPRESSIONS
    ]),
  );
}

/** `immediate` expression data holding a verdict (code, and chain for jump/goto). */
function verdict(code: number, chain?: string): Uint8Array {
  const nested = 0x8000;
  const fields = [{ type: 1, data: u32be(code >>> 0) }];
  if (chain) fields.push({ type: 2, data: new TextEncoder().encode(chain + "\0") });
  const data = encodeRawAttrs([{ type: 2 | nested, data: encodeRawAttrs(fields) }]); // NFTA_DATA_VERDICT
  return encodeRawAttrs([
    { type: 1, data: u32be(0) }, // NFTA_IMMEDIATE_DREG: the verdict register
    { type: 2 | nested, data }, // NFTA_IMMEDIATE_DATA
  ]);
}

Deno.test("ruleTargets() reads the chains a rule jumps or goes to, and nothing else", () => {
  const match = new Uint8Array(8); // an `xt match` expression's data: not a verdict
  assertEquals(ruleTargets(ruleMessage([["match", match], ["immediate", verdict(-3, "CNI-A")]])), [
    "CNI-A",
  ]);
  assertEquals(ruleTargets(ruleMessage([["immediate", verdict(-4, "CNI-B")]])), ["CNI-B"]);
  // ACCEPT (1), DROP (0), RETURN (-5) carry no chain; a `target` expression is not a jump.
  assertEquals(ruleTargets(ruleMessage([["immediate", verdict(1)]])), []);
  assertEquals(ruleTargets(ruleMessage([["immediate", verdict(-5)]])), []);
  assertEquals(ruleTargets(ruleMessage([["target", match]])), []);
  assertEquals(ruleTargets(Uint8Array.of(2, 0, 0, 0)), []);
});

Deno.test({
  name:
    "nftRulePayloads() returns the rules iptables-nft wrote, whose targets ruleTargets() reads (kernel)",
  ignore: !ROOT,
  async fn() {
    await using ns = await createNetns("cbx-nfnl");
    const inNs = inNetns(ns.name);
    await mustSh("ip", [
      "netns",
      "exec",
      ns.name,
      "sh",
      "-c",
      [
        "iptables -t nat -N CBX-A",
        "iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j CBX-A",
        "iptables -t nat -A PREROUTING -p tcp -j ACCEPT",
        "iptables -t nat -A PREROUTING -g CBX-A",
      ].join(" && "),
    ]);
    const script = `import { jumpsTo, nftRulePayloads, ruleTargets } from "${NFNETLINK}";
      const targets = (family, chain) => nftRulePayloads(family, "nat", chain).map(ruleTargets);
      console.log(JSON.stringify([
        targets("ip", "PREROUTING"), targets("ip", "OUTPUT"), targets("ip", "CBX-NONE"),
        targets("ip6", "PREROUTING"), jumpsTo(nftRulePayloads("ip", "nat", "PREROUTING"), "CBX-A"),
      ]));`;
    assertEquals(
      JSON.parse(await inNs(Deno.execPath(), ["eval", script])),
      [[["CBX-A"], [], ["CBX-A"]], [], [], [], 2],
    );
  },
});

Deno.test("payloadHolds() finds a byte run anywhere, also at the end and after a near miss", () => {
  const payload = Uint8Array.of(1, 2, 9, 1, 2, 3, 4);
  assertEquals(payloadHolds(payload, Uint8Array.of(1, 2, 3)), true);
  assertEquals(payloadHolds(payload, Uint8Array.of(3, 4)), true);
  assertEquals(payloadHolds(payload, Uint8Array.of(4, 5)), false);
  assertEquals(payloadHolds(payload, Uint8Array.of(2, 3, 9)), false);
  assertEquals(payloadHolds(payload, new Uint8Array()), true);
});

Deno.test("jumpsTo() counts the rules jumping or going to a chain, not those naming it otherwise", () => {
  const comment = new TextEncoder().encode("CNI-ADMIN\0"); // the name in a match's data
  const rules = [
    ruleMessage([["immediate", verdict(-3, "CNI-ADMIN")]]),
    ruleMessage([["match", comment], ["immediate", verdict(1)]]),
    ruleMessage([["immediate", verdict(-4, "CNI-ADMIN")]]),
    ruleMessage([["immediate", verdict(-3, "CNI-ADMINS")]]),
  ];
  assertEquals(jumpsTo(rules, "CNI-ADMIN"), 2);
  assertEquals(jumpsTo(rules, "CNI-ADMINS"), 1);
  assertEquals(jumpsTo(rules, "CNI-FORWARD"), 0);
  assertEquals(jumpsTo([], "CNI-ADMIN"), 0);
});

Deno.test({
  name:
    "nftDropChain() removes an iptables-nft chain and every jump to it in one transaction (kernel)",
  ignore: !ROOT,
  async fn() {
    await using ns = await createNetns("cbx-nfnl");
    const inNs = inNetns(ns.name);
    const setup = [
      "iptables -t nat -N CNI-DN-x && iptables -t nat -A CNI-DN-x -p tcp --dport 80 -j DNAT --to-destination 10.0.0.2:80",
      "iptables -t nat -N CNI-HOSTPORT-DNAT && iptables -t nat -A CNI-HOSTPORT-DNAT -p tcp -m multiport --dports 80 -j CNI-DN-x",
      "iptables -t nat -A CNI-HOSTPORT-DNAT -p udp -j ACCEPT && iptables -t nat -A CNI-HOSTPORT-DNAT -p tcp -m multiport --dports 81 -j CNI-DN-x",
      "iptables -t nat -N CNI-DN-y && iptables -t nat -A CNI-HOSTPORT-DNAT -j CNI-DN-y",
    ].join(" && ");
    await inNs("sh", ["-c", setup]);
    // Without the "# Generated ... on <time>" comments.
    const save = async () =>
      (await inNs("iptables-save", ["-t", "nat"])).split("\n").filter((l) => !l.startsWith("#"));
    const before = await save();
    const drop = (extra: string) =>
      inNs(Deno.execPath(), [
        "eval",
        `import { nftDropChain } from "${NFNETLINK}";
        console.log(nftDropChain({ family: "ip", table: "nat", chain: "CNI-DN-x", jumpsFrom: ["CNI-HOSTPORT-DNAT"], ${extra} }));`,
      ]);
    // Not as expected: nothing changes.
    assertEquals((await drop("jumps: 1")).trim(), "false");
    assertEquals((await drop('jumps: 2, absent: ["CNI-DN-y"]')).trim(), "false");
    assertEquals(await save(), before);
    assertEquals((await drop("jumps: 2")).trim(), "true");
    const after = await save();
    assertEquals(
      after.filter((l) => l.startsWith("-A") || l.startsWith(":CNI")),
      [
        ":CNI-DN-y - [0:0]",
        ":CNI-HOSTPORT-DNAT - [0:0]",
        "-A CNI-HOSTPORT-DNAT -p udp -j ACCEPT",
        "-A CNI-HOSTPORT-DNAT -j CNI-DN-y",
      ],
    );
    // Gone already: false, nothing to do.
    assertEquals((await drop("")).trim(), "false");
  },
});

Deno.test({
  name:
    "nftDropChain() removes hundreds of jumps in one batch (one ACK, not one per rule) (kernel)",
  ignore: !ROOT,
  async fn() {
    await using ns = await createNetns("cbx-nfnl");
    const inNs = inNetns(ns.name);
    const jumps = Array.from(
      { length: 600 },
      (_, i) => `-A CNI-HOSTPORT-DNAT -p tcp -m tcp --dport ${10000 + i} -j CNI-DN-x`,
    );
    const input = [
      "*nat",
      ":CNI-DN-x - [0:0]",
      ":CNI-HOSTPORT-DNAT - [0:0]",
      ...jumps,
      "COMMIT",
      "",
    ]
      .join("\n");
    const restore = new Deno.Command("ip", {
      args: ["netns", "exec", ns.name, "iptables-restore", "--noflush"],
      stdin: "piped",
    }).spawn();
    const writer = restore.stdin.getWriter();
    await writer.write(new TextEncoder().encode(input));
    await writer.close();
    assertEquals((await restore.status).code, 0);
    const out = await inNs(Deno.execPath(), [
      "eval",
      `import { nftDropChain } from "${NFNETLINK}";
      console.log(nftDropChain({ family: "ip", table: "nat", chain: "CNI-DN-x", jumpsFrom: ["CNI-HOSTPORT-DNAT"], jumps: 600 }));`,
    ]);
    assertEquals(out.trim(), "true");
    const save = await inNs("iptables-save", ["-t", "nat"]);
    assertEquals(save.includes("CNI-DN-x"), false);
  },
});

Deno.test({
  name:
    "nftAppendRules() appends in one transaction, tries a stale read again, and changes nothing when the kernel refuses (kernel)",
  ignore: !ROOT,
  async fn() {
    await using ns = await createNetns("cbx-nfnl");
    const inNs = inNetns(ns.name);
    await inNs("iptables", ["-N", "CBX-A"]);
    const EXPR = new URL("./nft_expr.ts", import.meta.url).href;
    const script = `import { nftAppendRules } from "${NFNETLINK}";
      import { ACCEPT, addressMatch, COUNTER, encodeExpressions } from "${EXPR}";
      const rule = (chain, last) => ({ chain, expressions: encodeExpressions([
        ...addressMatch("source", Uint8Array.of(10, 0, 0, last), 32), COUNTER, ACCEPT]) });
      let reads = 0;
      const out = [];
      // Another writer commits after the first read: that batch is stale, the second read wins.
      out.push(nftAppendRules({ family: "ip", table: "filter", rules: [rule("CBX-A", 1)],
        ready: () => {
          if (reads++ === 0) new Deno.Command("iptables", { args: ["-N", "CBX-OTHER"] }).outputSync();
          return true;
        } }), reads);
      // A chain to create exists: refused whole, so its rule in CBX-A is not added either.
      out.push(nftAppendRules({ family: "ip", table: "filter", newChains: ["CBX-OTHER"],
        rules: [rule("CBX-A", 2), rule("CBX-OTHER", 2)] }));
      // A declined readiness check changes nothing.
      out.push(nftAppendRules({ family: "ip", table: "filter", rules: [rule("CBX-A", 3)],
        ready: (rulesOf) => rulesOf("CBX-A").length === 0 }));
      out.push(nftAppendRules({ family: "ip", table: "filter", newChains: ["CBX-NEW"],
        rules: [rule("CBX-NEW", 4), rule("CBX-A", 4)] }));
      console.log(out.join(" "));`;
    assertEquals((await inNs(Deno.execPath(), ["eval", script])).trim(), "true 2 false false true");
    const rules = (await inNs("iptables", ["-S"])).split("\n").filter((l) => l.startsWith("-A"));
    assertEquals(rules, [
      "-A CBX-A -s 10.0.0.1/32 -j ACCEPT",
      "-A CBX-A -s 10.0.0.4/32 -j ACCEPT",
      "-A CBX-NEW -s 10.0.0.4/32 -j ACCEPT",
    ]);
  },
});

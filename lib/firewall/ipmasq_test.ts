import { assertEquals, assertMatch, assertThrows } from "@std/assert";
import { parseIp } from "../ip/cidr.ts";
import { createNetns, ROOT, sh, type TestNetns } from "../testing/netns.ts";
import { nftTableDump } from "../testing/nft_dump.ts";
import { type Execer, RecordingExecer } from "./exec.ts";
import { parseSave, RestoreBatch, usesNftables } from "./iptables.ts";
import {
  ipMasqChainName,
  ipMasqComment,
  nftMasqAdd,
  nftMasqComment,
  parseMasqAddress,
  planIpMasqAdd,
  planIpMasqDel,
  setupIpMasq,
  teardownIpMasq,
} from "./ipmasq.ts";
import { NftTransaction } from "./nft.ts";
import { TablePlan } from "./plan.ts";

const golden = (name: string) =>
  Deno.readTextFileSync(new URL(`../../testdata/firewall/${name}`, import.meta.url));
const EMPTY = "*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n";
// The reference bridge's rules (cni-plugins.md §3.4, VERIFIED).
const REFERENCE = [
  "*nat",
  ":POSTROUTING ACCEPT [0:0]",
  ":CNI-70a29d9dc18bc4d652ea5d59 - [0:0]",
  '-A POSTROUTING -s 10.77.0.2/32 -m comment --comment "name: \\"mynet\\" id: \\"abc123\\"" -j CNI-70a29d9dc18bc4d652ea5d59',
  '-A CNI-70a29d9dc18bc4d652ea5d59 -d 10.77.0.0/24 -m comment --comment "name: \\"mynet\\" id: \\"abc123\\"" -j ACCEPT',
  '-A CNI-70a29d9dc18bc4d652ea5d59 ! -d 224.0.0.0/4 -m comment --comment "name: \\"mynet\\" id: \\"abc123\\"" -j MASQUERADE',
  "COMMIT",
].join("\n");

Deno.test("planIpMasqAdd() renders the reference bridge's rules", async () => {
  const batch = new RestoreBatch();
  const chain = await ipMasqChainName("mynet", "abc123");
  planIpMasqAdd(new TablePlan(parseSave(EMPTY, "nat"), batch), [parseMasqAddress("10.77.0.2/24")], {
    chain,
    comment: ipMasqComment("mynet", "abc123"),
  });
  assertEquals(batch.render(), golden("ipmasq_add_v4.rules"));
});

Deno.test("planIpMasqAdd() finds the reference's rules already present", () => {
  const batch = new RestoreBatch();
  planIpMasqAdd(new TablePlan(parseSave(REFERENCE, "nat"), batch), [
    parseMasqAddress("10.77.0.2/24"),
  ], {
    chain: "CNI-70a29d9dc18bc4d652ea5d59",
    comment: ipMasqComment("mynet", "abc123"),
  });
  assertEquals(batch.isEmpty, true);
});

Deno.test("planIpMasqDel() removes the chain and its jump by name alone", () => {
  const batch = new RestoreBatch();
  assertEquals(
    planIpMasqDel(
      new TablePlan(parseSave(REFERENCE, "nat"), batch),
      "CNI-70a29d9dc18bc4d652ea5d59",
    ),
    true,
  );
  assertEquals(batch.render().split("\n").slice(1, 4).map((l) => l.slice(0, 2)), [
    "-D",
    "-F",
    "-X",
  ]);
});

Deno.test("planIpMasqDel() keeps the jumps of addresses the container's other links hold", () => {
  const chain = "CNI-70a29d9dc18bc4d652ea5d59";
  // A second interface of the container (10.77.0.3) on the same network shares the chain.
  const second =
    `-A POSTROUTING -s 10.77.0.3/32 -m comment --comment "name: \\"mynet\\" id: \\"abc123\\"" -j ${chain}`;
  const both = REFERENCE.replace("COMMIT", `${second}\nCOMMIT`);
  // DEL of the second: eth0 still holds 10.77.0.2, so its jump and the chain stay.
  const batch = new RestoreBatch();
  planIpMasqDel(new TablePlan(parseSave(both, "nat"), batch), chain, [parseIp("10.77.0.2")]);
  assertEquals(batch.render(), `*nat\n${second.replace("-A", "-D")}\nCOMMIT\n`);
  // Nothing holds 10.77.0.3 any more (its link was deleted by hand): its jump goes, and with
  // the last jump the chain. An address of another network (10.99.0.5) keeps nothing here.
  const onlySecond = new RestoreBatch();
  planIpMasqDel(
    new TablePlan(parseSave(REFERENCE.replace("10.77.0.2/32", "10.77.0.3/32"), "nat"), onlySecond),
    chain,
    [parseIp("10.99.0.5")],
  );
  assertEquals(onlySecond.render().split("\n").slice(1, 4).map((l) => l.split(" ").slice(0, 2)), [
    ["-D", "POSTROUTING"],
    ["-F", chain],
    ["-X", chain],
  ]);
});

Deno.test("parseMasqAddress() needs ip/prefix", () => {
  assertEquals(parseMasqAddress("fd77::2/64").prefix, 64);
  assertThrows(() => parseMasqAddress("10.0.0.2"), RangeError);
  assertThrows(() => parseMasqAddress("10.0.0.2/33"), RangeError);
});

Deno.test("nftMasqAdd() renders the reference's nftables fixture", () => {
  const tx = new NftTransaction();
  nftMasqAdd(tx, [parseMasqAddress("192.168.1.1/24"), parseMasqAddress("2001:db8::2/64")], {
    comment: nftMasqComment("6fd94d501e58f0aa-287fc69eff0574a2", "unit-test", {
      ifName: "eth0",
      containerId: "one",
    }),
  });
  assertEquals(tx.render(), golden("ipmasq_add.nft"));
});

Deno.test("setupIpMasq() lists nothing for a new container: one restore per family, guarded by -N", async () => {
  const execer = new RecordingExecer(() => ({ code: 0, stdout: "", stderr: "" }));
  await setupIpMasq("mynet", ["10.77.0.2/24", "fd77::2/64"], {
    containerId: "abc123",
    execer,
    lockPath: "",
  });
  assertEquals(execer.calls.map((c) => c.cmd).sort(), ["ip6tables-restore", "iptables-restore"]);
  const v4 = execer.calls.find((c) => c.cmd === "iptables-restore")!.stdin!;
  // `-N` (not a `:CHAIN` declaration, which would flush an existing chain) is what refuses
  // the batch on a repeated ADD.
  assertMatch(v4, /^\*nat\n-N CNI-[0-9a-f]{24}\n-A CNI-/);
  assertMatch(v4, /\n-A POSTROUTING -s 10\.77\.0\.2\/32 .*-j CNI-[0-9a-f]{24}\nCOMMIT\n$/);
});

Deno.test("setupIpMasq() lists only POSTROUTING when the container's chain exists, and teardownIpMasq() restores once per family", async () => {
  const execer = new RecordingExecer((call) => {
    if (call.args.includes("-S")) {
      return { code: 0, stdout: call.cmd.startsWith("ip6") ? EMPTY : REFERENCE, stderr: "" };
    }
    // A repeated ADD: the chain exists, so the unlisted batch's -N is refused.
    if (/\n-N CNI-/.test(call.stdin ?? "")) {
      return {
        code: 1,
        stdout: "",
        stderr: "iptables-restore: line 2 failed: Chain already exists.\n",
      };
    }
    return { code: 0, stdout: "", stderr: "" };
  });
  await setupIpMasq("mynet", ["10.77.0.2/24", "fd77::2/64"], {
    containerId: "abc123",
    execer,
    lockPath: "",
  });
  // Only POSTROUTING is listed: the container's own chain is rewritten whole (the same rules),
  // the jump that is already there is left alone.
  assertEquals(execer.calls.filter((c) => c.args.includes("-S")).map((c) => c.args.at(-1)), [
    "POSTROUTING",
    "POSTROUTING",
  ]);
  const v4 = execer.calls.filter((c) => c.cmd === "iptables-restore").at(-1)!.stdin!;
  assertEquals(v4.includes("-A POSTROUTING"), false);
  assertEquals(v4.startsWith("*nat\n:CNI-"), true);
  const del = new RecordingExecer((call) => ({
    code: 0,
    stdout: call.args.includes("-S") ? REFERENCE : "",
    stderr: "",
  }));
  await teardownIpMasq("mynet", {
    containerId: "abc123",
    execer: del,
    lockPath: "",
  });
  assertEquals(del.calls.filter((c) => c.cmd.endsWith("restore")).length, 2);
});

Deno.test({
  name:
    "setupIpMasq() leaves the reference bridge's exact rules and teardownIpMasq() removes them (kernel)",
  ignore: !ROOT,
  async fn() {
    await using ns = await createNetns("cbx-fw");
    const execer: Execer = {
      run: (cmd, args, options) => sh("ip", ["netns", "exec", ns.name, cmd, ...args], options),
    };
    await setupIpMasq("mynet", ["10.77.0.2/24", "fd77::2/64"], { containerId: "abc123", execer });
    await setupIpMasq("mynet", ["10.77.0.2/24", "fd77::2/64"], { containerId: "abc123", execer });
    const v4 = (await ns.exec("iptables-save", ["-t", "nat"])).stdout.split("\n").filter((l) =>
      l.startsWith("-A") || l.startsWith(":CNI")
    );
    assertEquals(
      v4,
      REFERENCE.split("\n").filter((l) => l.startsWith("-A") || l.startsWith(":CNI")),
    );
    const v6 = (await ns.exec("ip6tables-save", ["-t", "nat"])).stdout;
    assertEquals(v6.includes("-A CNI-70a29d9dc18bc4d652ea5d59 ! -d ff00::/8 -m comment"), true);
    assertEquals(v6.includes("-A POSTROUTING -s fd77::2/128 -m comment"), true);
    await teardownIpMasq("mynet", { containerId: "abc123", execer });
    for (const tool of ["iptables-save", "ip6tables-save"]) {
      assertEquals((await ns.exec(tool, ["-t", "nat"])).stdout.includes("CNI-"), false);
    }
  },
});

Deno.test("teardownIpMasq() with the container's addresses deletes their jumps and the chain without listing", async () => {
  const execer = new RecordingExecer(() => ({ code: 0, stdout: "", stderr: "" }));
  await teardownIpMasq("mynet", {
    containerId: "abc123",
    families: [4],
    // The interface's address and prevResult's: the same jump is deleted once.
    addresses: ["10.77.0.2/24", "10.77.0.2/24"],
    execer,
    lockPath: "",
  });
  assertEquals(execer.calls.map((c) => c.cmd), ["iptables-restore"]);
  const chain = await ipMasqChainName("mynet", "abc123");
  assertEquals(
    execer.calls[0].stdin,
    `*nat\n-D POSTROUTING -s 10.77.0.2/32 -m comment --comment "name: \\"mynet\\" id: \\"abc123\\"" -j ${chain}\n` +
      `-F ${chain}\n-X ${chain}\nCOMMIT\n`,
  );
});

Deno.test({
  name:
    "teardownIpMasq() of an intact attachment needs no tool: one nf_tables transaction per family; a jump another link keeps stays (kernel)",
  ignore: !ROOT,
  async fn() {
    await using ns = await createNetns("cbx-fw");
    const here = (file: string) => new URL(file, import.meta.url).href;
    const script = (teardown: string) =>
      `import { setupIpMasq, teardownIpMasq } from "${here("./ipmasq.ts")}";
      import { defaultExecer, RecordingExecer } from "${here("./exec.ts")}";
      const addresses = ["10.77.0.2/24", "fd77::2/64"];
      await setupIpMasq("mynet", addresses, { containerId: "abc123" });
      await setupIpMasq("mynet", ["10.77.0.9/24"], { containerId: "other" });
      const execer = new RecordingExecer(defaultExecer());
      await teardownIpMasq("mynet", { containerId: "abc123", execer, ${teardown} });
      console.log(JSON.stringify(execer.calls.map((c) => c.cmd)));`;
    const run = async (teardown: string) => {
      const out = await sh("ip", [
        "netns",
        "exec",
        ns.name,
        Deno.execPath(),
        "eval",
        script(teardown),
      ]);
      assertEquals(out.code, 0, out.stderr);
      return JSON.parse(out.stdout);
    };
    const saves = async () =>
      (await ns.exec("iptables-save", ["-t", "nat"])).stdout +
      (await ns.exec("ip6tables-save", ["-t", "nat"])).stdout;
    assertEquals(await run("addresses"), []);
    const after = await saves();
    assertEquals(after.includes('id: \\"abc123\\"'), false, after);
    assertMatch(after, /-A POSTROUTING -s 10\.77\.0\.9\/32 .*id: \\"other\\"/);
    // The container's other link (same network) holds 10.77.0.2: its jump into the chain stays.
    // IPv4: the drop declines and the tool's plan changes nothing (no process at all); IPv6
    // keeps nothing, so its jump and chain go without a tool.
    assertEquals(await run('addresses, keep: ["10.77.0.2/24"]'), []);
    assertEquals((await ns.exec("ip6tables-save", ["-t", "nat"])).stdout.includes("abc123"), false);
    assertMatch(await saves(), /-A POSTROUTING -s 10\.77\.0\.2\/32 .*id: \\"abc123\\"/);
    await ns.exec("iptables", ["-t", "nat", "-F"]);
    await ns.exec("iptables", ["-t", "nat", "-X"]);
    await ns.exec("ip6tables", ["-t", "nat", "-F"]);
    await ns.exec("ip6tables", ["-t", "nat", "-X"]);
    // A link on another network keeps 10.99.0.5, whose jump goes into another chain: no tool.
    assertEquals(await run('addresses, keep: ["10.99.0.5/24"]'), []);
    assertEquals((await saves()).includes('id: \\"abc123\\"'), false);
  },
});

Deno.test({
  name:
    "setupIpMasq() of a new container needs no tool where the nat tables exist, byte for byte the rules iptables makes; a repeated ADD goes to the tool (kernel)",
  ignore: !ROOT,
  async fn() {
    // Byte-aligned and other prefixes, both families, two containers.
    const containers: [string, string[]][] = [
      ["abc123", ["10.77.0.2/24", "fd77::2/64"]],
      ["other", ["172.26.64.5/20", "fd78:0:0:10::5/60"]],
      // One address twice, with two prefixes: two ACCEPT rules, one jump.
      ["twice", ["10.1.2.11/24", "10.1.2.11/16"]],
    ];
    const here = (file: string) => new URL(file, import.meta.url).href;
    const setup = async (ns: TestNetns, toolOnly: boolean) => {
      const calls: string[][] = [];
      // The node's first container (its ADD makes the nat tables), two more, one ADD repeated.
      const first: [string, string[]] = ["first", ["10.77.0.9/24", "fd77::9/64"]];
      for (const [id, addresses] of [first, ...containers, containers[0]]) {
        const out = await sh("ip", [
          ...["netns", "exec", ns.name, Deno.execPath(), "eval"],
          `import { setupIpMasq } from "${here("./ipmasq.ts")}";
          import { defaultExecer, RecordingExecer } from "${here("./exec.ts")}";
          // Tool only: an execer that can start tools and nothing else.
          const execer = new RecordingExecer(${
            toolOnly ? "{ run: (c, a, o) => defaultExecer().run(c, a, o) }" : "defaultExecer()"
          });
          await setupIpMasq("mynet", ${
            JSON.stringify(addresses)
          }, { containerId: "${id}", execer });
          console.log(JSON.stringify(execer.calls.map((c) => c.cmd)));`,
        ]);
        assertEquals(out.code, 0, out.stderr);
        calls.push(JSON.parse(out.stdout));
      }
      const save = (await ns.exec("iptables-save", ["-t", "nat"])).stdout +
        (await ns.exec("ip6tables-save", ["-t", "nat"])).stdout;
      return { calls, dump: await nftTableDump(ns, "nat"), save: save.replace(/^#.*\n/gm, "") };
    };
    await using oursNs = await createNetns("cbx-fw");
    await using toolNs = await createNetns("cbx-fw");
    const ours = await setup(oursNs, false);
    const tool = await setup(toolNs, true);
    const restores = (calls: string[]) => calls.filter((c) => c.endsWith("-restore")).length;
    assertEquals(restores(ours.calls[0]), 2); // no nat tables yet: the tool makes them
    if (usesNftables(4) && usesNftables(6)) {
      // Two new containers without a tool; the repeated ADD's chain exists: the tool's path
      // (per family, its unlisted batch is refused on `-N`, then POSTROUTING is listed).
      assertEquals(ours.calls.slice(1, 4), [[], [], []]);
      assertEquals(restores(ours.calls[4]), 4);
    }
    assertEquals(tool.calls[0].sort(), ["ip6tables-restore", "iptables-restore"]);
    assertEquals(ours.dump, tool.dump);
    assertEquals(ours.save, tool.save);
    assertMatch(ours.save, /-A CNI-\w+ -d 172\.26\.64\.0\/20 -m comment .* -j ACCEPT/);
    // The reference's teardown deletes by rule text: iptables finds ours.
    const chain = await ipMasqChainName("mynet", "other");
    const jump = ["-s", "172.26.64.5/32", "-m", "comment", "--comment"];
    const deleted = await oursNs.exec("iptables", [
      ...["-t", "nat", "-D", "POSTROUTING", ...jump, ipMasqComment("mynet", "other")],
      ...["-j", chain],
    ]);
    assertEquals(deleted.code, 0, deleted.stderr);
  },
});

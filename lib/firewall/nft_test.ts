import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { RecordingExecer } from "./exec.ts";
import { applyNft, listNftTable, NftError, NftTransaction, parseNftListing } from "./nft.ts";

Deno.test("NftTransaction.render() writes one command per line", () => {
  const tx = new NftTransaction()
    .addTable("ip", "t", { comment: "c" })
    .addChain("ip", "t", "pre", { type: "nat", hook: "prerouting", priority: -100 })
    .addChain("ip", "t", "plain", { comment: "x y" })
    .flushChain("ip", "t", "pre")
    .addRule("ip", "t", "pre", "tcp dport 80 accept")
    .deleteRule("ip", "t", "pre", 12)
    .deleteChain("ip", "t", "plain");
  assertEquals(
    tx.render(),
    [
      'add table ip t { comment "c" ; }',
      "add chain ip t pre { type nat hook prerouting priority -100 ; }",
      'add chain ip t plain { comment "x y" ; }',
      "flush chain ip t pre",
      "add rule ip t pre tcp dport 80 accept",
      "delete rule ip t pre handle 12",
      "delete chain ip t plain",
      "",
    ].join("\n"),
  );
});

Deno.test("NftTransaction refuses text that would end a command or add another", () => {
  const tx = new NftTransaction();
  assertThrows(() => tx.addRule("ip", "t", "c", "accept; flush ruleset"), RangeError);
  assertThrows(() => tx.addRule("ip", "t", "c", "accept\nflush ruleset"), RangeError);
  assertThrows(
    () => tx.addRule("ip", "t", "c", "accept", { comment: 'x" ; flush ruleset ; "' }),
    RangeError,
  );
  assertThrows(() => tx.addChain("ip", "t", "bad name"), RangeError);
  assertThrows(
    () => tx.addChain("ip", "t", "c", { type: "nat", hook: "output", priority: "1;" }),
    RangeError,
  );
  assertThrows(() => tx.deleteRule("ip", "t", "c", 0), RangeError);
  assertEquals(tx.isEmpty, true);
});

Deno.test("parseNftListing() finds chains, handles and comments", () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { json_schema_version: 1 } },
      { table: { family: "ip", name: "cni_hostport", handle: 3 } },
      { chain: { family: "ip", table: "cni_hostport", name: "hostports", handle: 1 } },
      {
        rule: {
          family: "ip",
          table: "cni_hostport",
          chain: "hostports",
          handle: 9,
          comment: "abc",
          expr: [],
        },
      },
      { rule: { family: "ip", table: "cni_hostport", chain: "hostports", handle: 10, expr: [] } },
    ],
  });
  assertEquals(parseNftListing(json), {
    exists: true,
    chains: ["hostports"],
    rules: [{ chain: "hostports", handle: 9, comment: "abc" }, { chain: "hostports", handle: 10 }],
  });
});

Deno.test("listNftTable() treats a missing table as empty", async () => {
  const execer = new RecordingExecer(() => ({
    code: 1,
    stdout: "",
    stderr: "Error: No such file or directory\nlist table ip cni_hostport",
  }));
  assertEquals(await listNftTable("ip", "cni_hostport", { execer }), {
    exists: false,
    chains: [],
    rules: [],
  });
  assertEquals(execer.calls[0].args, ["-j", "list", "table", "ip", "cni_hostport"]);
});

Deno.test("applyNft() runs one nft -f - and reports nft's error", async () => {
  const tx = new NftTransaction().addTable("ip", "t");
  const execer = new RecordingExecer(() => ({
    code: 1,
    stdout: "",
    stderr: "Error: syntax error",
  }));
  await assertRejects(() => applyNft(tx, { execer }), NftError, "syntax error");
  assertEquals(execer.calls, [{ cmd: "nft", args: ["-f", "-"], stdin: "add table ip t\n" }]);
  const none = new RecordingExecer(() => ({ code: 0, stdout: "", stderr: "" }));
  await applyNft(new NftTransaction(), { execer: none });
  assertEquals(none.calls.length, 0);
});

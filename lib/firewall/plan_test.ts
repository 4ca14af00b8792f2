import { assertEquals, assertThrows } from "@std/assert";
import { parseSave, RestoreBatch } from "./iptables.ts";
import { sameRule, TablePlan } from "./plan.ts";

const LISTING = [
  "*filter",
  ":INPUT ACCEPT [0:0]",
  ":FORWARD ACCEPT [0:0]",
  ":OUTPUT ACCEPT [0:0]",
  ":CNI-FORWARD - [0:0]",
  ":OWN - [0:0]",
  '-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
  "-A FORWARD -j OWN",
  "-A CNI-FORWARD -s 10.0.0.2/32 -j ACCEPT",
  "-A CNI-FORWARD -s 10.0.0.2/32 -j ACCEPT",
  "-A OWN -j ACCEPT",
  "COMMIT",
].join("\n");

function fresh(): { plan: TablePlan; batch: RestoreBatch } {
  const batch = new RestoreBatch();
  return { plan: new TablePlan(parseSave(LISTING, "filter"), batch), batch };
}

Deno.test("TablePlan.ensureChain() creates missing chains with -N only", () => {
  const { plan, batch } = fresh();
  plan.ensureChain("CNI-FORWARD");
  plan.ensureChain("FORWARD");
  plan.ensureChain("CNI-ADMIN");
  plan.ensureChain("CNI-ADMIN");
  assertEquals(batch.render(), "*filter\n-N CNI-ADMIN\nCOMMIT\n");
});

Deno.test("TablePlan.ensureRule() inserts or appends only what is missing", () => {
  const { plan, batch } = fresh();
  plan.ensureRule("FORWARD", [
    "-m",
    "comment",
    "--comment",
    "CNI firewall plugin rules",
    "-j",
    "CNI-FORWARD",
  ], {
    position: "first",
  });
  plan.ensureRule("CNI-FORWARD", ["-s", "10.0.0.3/32", "-j", "ACCEPT"]);
  plan.ensureRule("CNI-FORWARD", ["-s", "10.0.0.3/32", "-j", "ACCEPT"]);
  plan.ensureRule("FORWARD", ["-j", "X"], { position: "first" });
  assertEquals(
    batch.render(),
    "*filter\n-A CNI-FORWARD -s 10.0.0.3/32 -j ACCEPT\n-I FORWARD 1 -j X\nCOMMIT\n",
  );
  assertEquals(plan.rules("FORWARD")[0], "-j X");
});

Deno.test("TablePlan.ensureRule() leaves one copy of a doubled rule, where the first stood", () => {
  const listing = LISTING.replace(
    "-A FORWARD -j OWN",
    '-A FORWARD -j OWN\n-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
  );
  const batch = new RestoreBatch();
  const plan = new TablePlan(parseSave(listing, "filter"), batch);
  const jump = ["-m", "comment", "--comment", "CNI firewall plugin rules", "-j", "CNI-FORWARD"];
  plan.ensureRule("FORWARD", jump, { position: "first" });
  plan.ensureRule("FORWARD", jump, { position: "first" });
  plan.ensureRule("CNI-FORWARD", ["-s", "10.0.0.2/32", "-j", "ACCEPT"]);
  assertEquals(
    batch.render(),
    [
      "*filter",
      '-D FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
      '-D FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
      '-I FORWARD 1 -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
      "-D CNI-FORWARD -s 10.0.0.2/32 -j ACCEPT",
      "-D CNI-FORWARD -s 10.0.0.2/32 -j ACCEPT",
      "-I CNI-FORWARD 1 -s 10.0.0.2/32 -j ACCEPT",
      "COMMIT",
      "",
    ].join("\n"),
  );
  assertEquals(plan.rules("FORWARD"), [
    '-m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
    "-j OWN",
  ]);
  assertEquals(plan.rules("CNI-FORWARD"), ["-s 10.0.0.2/32 -j ACCEPT"]);
});

Deno.test("TablePlan.deleteRule() deletes one listed copy per call and nothing missing", () => {
  const { plan, batch } = fresh();
  assertEquals(plan.deleteRule("CNI-FORWARD", ["-s", "10.0.0.2/32", "-j", "ACCEPT"]), true);
  assertEquals(plan.hasRule("CNI-FORWARD", ["-s", "10.0.0.2/32", "-j", "ACCEPT"]), true);
  assertEquals(plan.deleteRule("CNI-FORWARD", ["-s", "10.0.0.2/32", "-j", "ACCEPT"]), true);
  assertEquals(plan.deleteRule("CNI-FORWARD", ["-s", "10.0.0.2/32", "-j", "ACCEPT"]), false);
  assertEquals(plan.deleteRule("NOPE", ["-j", "ACCEPT"]), false);
  assertEquals(
    batch.render(),
    "*filter\n-D CNI-FORWARD -s 10.0.0.2/32 -j ACCEPT\n-D CNI-FORWARD -s 10.0.0.2/32 -j ACCEPT\nCOMMIT\n",
  );
});

Deno.test("TablePlan.replaceChain() rewrites an owned chain only when it differs", () => {
  const same = fresh();
  same.plan.replaceChain("OWN", [["-j", "ACCEPT"]]);
  assertEquals(same.batch.isEmpty, true);
  const other = fresh();
  other.plan.replaceChain("OWN", [["-j", "DROP"]]);
  assertEquals(other.batch.render(), "*filter\n:OWN - [0:0]\n-A OWN -j DROP\nCOMMIT\n");
});

Deno.test("TablePlan.removeChain() drops jumps into the chain, then the chain", () => {
  const { plan, batch } = fresh();
  assertEquals(plan.removeChain("OWN", { referencedFrom: ["FORWARD"] }), true);
  assertEquals(batch.render(), "*filter\n-D FORWARD -j OWN\n-F OWN\n-X OWN\nCOMMIT\n");
  assertEquals(plan.hasChain("OWN"), false);
  assertEquals(plan.removeChain("OWN", { referencedFrom: ["FORWARD"] }), false);
});

Deno.test("sameRule() ignores option order but not pairing or negation", () => {
  assertEquals(
    sameRule(
      "-d 1.2.3.4/32 -p tcp -m tcp --dport 80 -j X",
      "-p tcp -m tcp --dport 80 -d 1.2.3.4/32 -j X",
    ),
    true,
  );
  assertEquals(
    sameRule("-s 1.1.1.1/32 -d 2.2.2.2/32 -j X", "-s 2.2.2.2/32 -d 1.1.1.1/32 -j X"),
    false,
  );
  assertEquals(sameRule("-i br ! -o br -j X", "! -i br -o br -j X"), false);
  assertEquals(
    sameRule('-m comment --comment "a b" -j X', ["-m", "comment", "--comment", "a b", "-j", "X"]),
    true,
  );
});

Deno.test("TablePlan with a partial listing refuses to read other chains and removes owned ones blind", () => {
  const batch = new RestoreBatch();
  const listing = parseSave(
    "-P POSTROUTING ACCEPT\n-A POSTROUTING -s 10.0.0.2/32 -j CNI-OWN\n",
    "nat",
  );
  const plan = new TablePlan(listing, batch, { listed: ["POSTROUTING"] });
  assertThrows(() => plan.rules("CNI-HOSTPORT-DNAT"), Error, "does not hold");
  assertThrows(() => plan.hasChain("CNI-OWN"), Error, "does not hold");
  // Whether CNI-OWN exists is unknown: declaring creates it if need be, so -X always works.
  assertEquals(plan.removeChain("CNI-OWN", { referencedFrom: ["POSTROUTING"] }), true);
  assertEquals(
    batch.render(),
    "*nat\n:CNI-OWN - [0:0]\n-D POSTROUTING -s 10.0.0.2/32 -j CNI-OWN\n-X CNI-OWN\nCOMMIT\n",
  );
});

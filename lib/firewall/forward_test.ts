import { assertEquals, assertThrows } from "@std/assert";
import { encodeRawAttrs } from "../netlink/codec.ts";
import { NLA_F_NESTED } from "../netlink/consts.ts";
import { parseSave, RestoreBatch } from "./iptables.ts";
import { ruleExpressionList } from "./nfnetlink.ts";
import { commentMatch, COUNTER, decodeExpressions, encodeExpressions, jumpTo } from "./nft_expr.ts";
import { TablePlan } from "./plan.ts";
import {
  assumedForwardChains,
  checkForward,
  isolationRules,
  nftContainerRuleExpressions,
  nftContainerRules,
  nftSharedJumpsAsMade,
  planForwardAdd,
  planForwardAddUnlisted,
  planForwardDel,
  unlistedAddReady,
} from "./forward.ts";

const golden = (name: string) =>
  Deno.readTextFileSync(new URL(`../../testdata/firewall/${name}`, import.meta.url));
const EMPTY = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
// What the reference 1.1.1 left after one ADD (from nomad-and-podman.md, podman run).
const REFERENCE = [
  "*filter",
  ":INPUT ACCEPT [0:0]",
  ":FORWARD ACCEPT [0:0]",
  ":OUTPUT ACCEPT [0:0]",
  ":CNI-FORWARD - [0:0]",
  ":CNITEST-ADMIN - [0:0]",
  '-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
  '-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNITEST-ADMIN',
  "-A CNI-FORWARD -d 10.99.0.8/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
  "-A CNI-FORWARD -s 10.99.0.8/32 -j ACCEPT",
  "COMMIT",
].join("\n");

function plan(listing: string): { plan: TablePlan; batch: RestoreBatch } {
  const batch = new RestoreBatch();
  return { plan: new TablePlan(parseSave(listing, "filter"), batch), batch };
}

Deno.test("planForwardAdd() renders the reference's rules into an empty table", () => {
  const { plan: p, batch } = plan(EMPTY);
  planForwardAdd(p, {
    adminChain: "NOMAD-ADMIN",
    addresses: ["172.26.64.5/32"],
    isolation: { bridge: "nomad", policy: "isolated" },
  });
  assertEquals(batch.render(), golden("forward_add_isolated.rules"));
});

Deno.test("planForwardAdd() adds nothing the reference already added", () => {
  const { plan: p, batch } = plan(REFERENCE);
  planForwardAdd(p, { adminChain: "CNITEST-ADMIN", addresses: ["10.99.0.8/32"] });
  assertEquals(batch.isEmpty, true);
});

Deno.test("planForwardAdd() appends a second container behind the first", () => {
  const { plan: p, batch } = plan(REFERENCE);
  planForwardAdd(p, { adminChain: "CNITEST-ADMIN", addresses: ["10.99.0.9/32"] });
  assertEquals(
    batch.render(),
    "*filter\n-A CNI-FORWARD -d 10.99.0.9/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A CNI-FORWARD -s 10.99.0.9/32 -j ACCEPT\nCOMMIT\n",
  );
});

Deno.test("planForwardDel() removes only the container's two rules", () => {
  const { plan: p, batch } = plan(REFERENCE);
  planForwardDel(p, ["10.99.0.8/32", "10.99.0.77/32"]);
  assertEquals(
    batch.render(),
    "*filter\n-D CNI-FORWARD -d 10.99.0.8/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-D CNI-FORWARD -s 10.99.0.8/32 -j ACCEPT\nCOMMIT\n",
  );
});

Deno.test("checkForward() names the first missing rule like the reference", () => {
  assertEquals(
    checkForward(plan(REFERENCE).plan, {
      adminChain: "CNITEST-ADMIN",
      addresses: ["10.99.0.8/32"],
    }),
    undefined,
  );
  assertEquals(
    checkForward(plan(REFERENCE).plan, {
      adminChain: "CNITEST-ADMIN",
      addresses: ["10.78.0.2/32"],
    }),
    "expected rule [-d 10.78.0.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT] not found",
  );
  assertEquals(
    checkForward(plan(REFERENCE).plan, { adminChain: "CNI-ADMIN", addresses: ["10.99.0.8/32"] }),
    "expected CNI-FORWARD rule [-m comment --comment CNI firewall plugin admin overrides -j CNI-ADMIN] not found",
  );
  assertEquals(
    checkForward(plan(EMPTY).plan, { adminChain: "CNI-ADMIN", addresses: ["10.99.0.8/32"] }),
    "expected FORWARD rule [-m comment --comment CNI firewall plugin rules -j CNI-FORWARD] not found",
  );
});

Deno.test("isolationRules() adds the same-bridge DROP only for isolated", () => {
  assertEquals(isolationRules("br0", "same-bridge").stage1First.length, 1);
  assertEquals(
    isolationRules("br0", "isolated").stage1First[1].join(" ").includes("-o br0 -m comment"),
    true,
  );
});

Deno.test("unlistedAddReady() wants each shared jump exactly once and no rule naming the address", () => {
  const setup = { adminChain: "NOMAD-ADMIN", addresses: ["10.99.0.8/32"] };
  const view = (counts: Record<string, number>, mentioned: string[] = []) => ({
    jumps: (chain: string, target: string) => counts[`${chain}>${target}`] ?? 0,
    mayMention: (chain: string, address: string) =>
      chain === "CNI-FORWARD" && mentioned.includes(address),
  });
  const intact = { "FORWARD>CNI-FORWARD": 1, "CNI-FORWARD>NOMAD-ADMIN": 1 };
  assertEquals(unlistedAddReady(view(intact), setup), true);
  // A node's first ADD, doubled jumps (left for the listed path to repair), leftover rules.
  assertEquals(unlistedAddReady(view({ "CNI-FORWARD>NOMAD-ADMIN": 1 }), setup), false);
  assertEquals(unlistedAddReady(view({ ...intact, "FORWARD>CNI-FORWARD": 2 }), setup), false);
  assertEquals(unlistedAddReady(view({ ...intact, "CNI-FORWARD>NOMAD-ADMIN": 2 }), setup), false);
  assertEquals(unlistedAddReady(view(intact, ["10.99.0.8/32"]), setup), false);
  // Another admin chain than the one in place, isolation, and no address at all.
  assertEquals(unlistedAddReady(view(intact), { ...setup, adminChain: "CNI-ADMIN" }), false);
  const isolation = { bridge: "nomad", policy: "same-bridge" as const };
  assertEquals(unlistedAddReady(view(intact), { ...setup, isolation }), false);
  assertEquals(unlistedAddReady(view(intact), { ...setup, addresses: [] }), false);
});

Deno.test("planForwardAddUnlisted() guards both shared jumps and appends the address rules", () => {
  const batch = new RestoreBatch();
  const assumed = { table: "filter" as const, chains: assumedForwardChains("NOMAD-ADMIN") };
  planForwardAddUnlisted(new TablePlan(assumed, batch, { assumed: true }), {
    adminChain: "NOMAD-ADMIN",
    addresses: ["10.99.0.8/32"],
  });
  // The batch of a second container on a node whose shared rules are in place.
  assertEquals(batch.render(), golden("forward_add_unlisted.rules"));
});

/** A `NFT_MSG_NEWRULE` payload (nfgenmsg + table, chain, expressions) around encoded expressions. */
function rulePayload(expressions: Uint8Array, family = 2): Uint8Array {
  const attrs = encodeRawAttrs([
    { type: 1, data: new TextEncoder().encode("filter\0") },
    { type: 2, data: new TextEncoder().encode("CNI-FORWARD\0") },
    { type: 4 | NLA_F_NESTED, data: expressions },
  ]);
  return Uint8Array.of(family, 0, 0, 0, ...attrs);
}

Deno.test("nftContainerRuleExpressions() encodes what nftContainerRules() recognises, per family", () => {
  for (const address of ["10.77.0.3/32", "fd77::3/128", "::ffff:10.77.0.3/128"]) {
    const [reply, outgoing] = nftContainerRuleExpressions(address).map((e) => rulePayload(e));
    assertEquals(nftContainerRules([outgoing, reply], [address]), [reply, outgoing]);
    // Decoded: address match, (conntrack match,) counter, accept.
    assertEquals(decodeExpressions(ruleExpressionList(reply)).map((e) => e.name), [
      "payload",
      "cmp",
      "match",
      "counter",
      "immediate",
    ]);
    assertEquals(decodeExpressions(ruleExpressionList(outgoing)).map((e) => e.name), [
      "payload",
      "cmp",
      "counter",
      "immediate",
    ]);
  }
  // A mapped address is matched as 16 bytes (ip6tables' view), not as its IPv4 form.
  const [mapped] = nftContainerRuleExpressions("::ffff:10.77.0.3/128").map((e) => rulePayload(e));
  assertEquals(nftContainerRules([mapped], ["10.77.0.3/32"]), undefined);
});

Deno.test("nftContainerRuleExpressions() refuses a network, which no container rule names", () => {
  assertThrows(() => nftContainerRuleExpressions("10.77.0.0/24"), RangeError, "10.77.0.0/24");
});

Deno.test("nftSharedJumpsAsMade() wants each shared jump once, with the reference's comment", () => {
  const jump = (comment: string | undefined, target: string) =>
    rulePayload(encodeExpressions([
      ...(comment === undefined ? [] : [commentMatch(comment)]),
      COUNTER,
      jumpTo(target),
    ]));
  const forward = jump("CNI firewall plugin rules", "CNI-FORWARD");
  const admin = jump("CNI firewall plugin admin overrides", "NOMAD-ADMIN");
  const view = (chains: Record<string, Uint8Array[]>) => (chain: string) => chains[chain] ?? [];
  assertEquals(
    nftSharedJumpsAsMade(view({ FORWARD: [forward], "CNI-FORWARD": [admin] }), "NOMAD-ADMIN"),
    true,
  );
  // Another admin chain than the config's, a bare jump, a doubled jump: not as made.
  assertEquals(
    nftSharedJumpsAsMade(view({ FORWARD: [forward], "CNI-FORWARD": [admin] }), "CNI-ADMIN"),
    false,
  );
  assertEquals(
    nftSharedJumpsAsMade(
      view({ FORWARD: [jump(undefined, "CNI-FORWARD")], "CNI-FORWARD": [admin] }),
      "NOMAD-ADMIN",
    ),
    false,
  );
  assertEquals(
    nftSharedJumpsAsMade(
      view({ FORWARD: [forward, forward], "CNI-FORWARD": [admin] }),
      "NOMAD-ADMIN",
    ),
    false,
  );
});

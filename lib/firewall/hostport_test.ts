import { assertEquals } from "@std/assert";
import { parseIp } from "../ip/cidr.ts";
import { parseSave, renderRule, RestoreBatch } from "./iptables.ts";
import { NftTransaction } from "./nft.ts";
import { TablePlan } from "./plan.ts";
import {
  checkHostport,
  dnatComment,
  dnatEntryRules,
  dnatRules,
  type HostportSpec,
  markValue,
  nftHostportAdd,
  planHostportAdd,
  planHostportDel,
  type PortMapping,
  sharedRulesSingle,
} from "./hostport.ts";

const golden = (name: string) =>
  Deno.readTextFileSync(new URL(`../../testdata/firewall/${name}`, import.meta.url));
const EMPTY =
  "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n";
const CHAIN = "CNI-DN-70a29d9dc18bc4d652ea5";

// The mappings of cni-plugins.md §6.3 (VERIFIED listing of the reference).
const MAPPINGS: PortMapping[] = [
  { hostPort: 8080, containerPort: 80, protocol: "tcp" },
  { hostPort: 5353, containerPort: 53, protocol: "udp" },
  { hostPort: 8443, containerPort: 443, protocol: "tcp", hostIp: parseIp("192.0.2.10") },
  { hostPort: 9000, containerPort: 9000, protocol: "tcp", hostIp: parseIp("2001:db8::10") },
];

function spec(addr: string, prefix: number, extra: Partial<HostportSpec> = {}): HostportSpec {
  return {
    network: "mynet",
    containerId: "abc123",
    chain: CHAIN,
    container: { addr: parseIp(addr), prefix },
    mappings: MAPPINGS,
    snat: true,
    masqAll: false,
    setMarkChain: "CNI-HOSTPORT-SETMARK",
    conditions: [],
    ...extra,
  };
}

function plan(listing: string): { plan: TablePlan; batch: RestoreBatch } {
  const batch = new RestoreBatch();
  return { plan: new TablePlan(parseSave(listing, "nat"), batch), batch };
}

Deno.test("planHostportAdd() renders the reference's IPv4 nat rules", () => {
  const { plan: p, batch } = plan(EMPTY);
  planHostportAdd(p, spec("10.77.0.3", 24), { markBit: 13 });
  assertEquals(batch.render(), golden("portmap_add_v4.rules"));
});

Deno.test("planHostportAdd() renders the reference's IPv6 nat rules", () => {
  const { plan: p, batch } = plan(EMPTY);
  planHostportAdd(p, spec("fd77::3", 64), { markBit: 13 });
  assertEquals(batch.render(), golden("portmap_add_v6.rules"));
});

Deno.test("planHostportAdd() finds every rule of a reference ADD already present (byte-exact text)", () => {
  for (
    const [file, addr, prefix] of [["portmap_reference_v4.save", "10.77.0.3", 24], [
      "portmap_reference_v6.save",
      "fd77::3",
      64,
    ]] as const
  ) {
    const { plan: p, batch } = plan(golden(file));
    planHostportAdd(p, spec(addr, prefix), { markBit: 13 });
    assertEquals(batch.render(), "", file);
  }
});

Deno.test("planHostportAdd() replaces stale entry rules of an earlier ADD", () => {
  const { plan: p, batch } = plan(golden("portmap_reference_v4.save"));
  planHostportAdd(p, spec("10.77.0.3", 24, { mappings: [MAPPINGS[0]] }), { markBit: 13 });
  const text = batch.render();
  assertEquals(text.includes(`:${CHAIN} - [0:0]`), true);
  assertEquals(text.includes("-D CNI-HOSTPORT-DNAT -p udp"), true);
  assertEquals(text.includes("-D CNI-HOSTPORT-DNAT -p tcp"), true);
  assertEquals(text.includes("--dports 8080 -j"), true);
});

Deno.test("planHostportDel() removes entry rules and the chain found in a listing", () => {
  const { plan: p, batch } = plan(golden("portmap_reference_v4.save"));
  const teardown = planHostportDel(p, {
    chain: CHAIN,
    legacyChain: "CNI-SN-70a29d9dc18bc4d652ea5",
  });
  assertEquals(teardown, { removed: true, udpPorts: [5353] });
  assertEquals(batch.render(), golden("portmap_del_v4.rules"));
});

Deno.test("planHostportDel() does nothing when the container has no chain", () => {
  const { plan: p, batch } = plan(EMPTY);
  assertEquals(planHostportDel(p, { chain: CHAIN, legacyChain: "CNI-SN-x" }), {
    removed: false,
    udpPorts: [],
  });
  assertEquals(batch.isEmpty, true);
});

Deno.test("dnatEntryRules() sorts protocols and splits at 15 ports", () => {
  const many: PortMapping[] = Array.from(
    { length: 17 },
    (_, i) => ({ hostPort: 9000 + i, containerPort: 80, protocol: "udp" }),
  );
  const rules = dnatEntryRules(
    spec("10.0.0.2", 24, {
      mappings: [...many, MAPPINGS[0]],
      conditions: ["-m", "addrtype", "--dst-type", "LOCAL"],
    }),
  );
  assertEquals(rules.map((r) => r[1]), ["tcp", "udp", "udp"]);
  assertEquals(rules[1][9].split(",").length, 15);
  assertEquals(rules[2][9], "9015,9016");
  assertEquals(
    renderRule(rules[0]).endsWith(
      "--dports 8080 -m addrtype --dst-type LOCAL -j CNI-DN-70a29d9dc18bc4d652ea5",
    ),
    true,
  );
});

Deno.test("dnatRules() drops the source for masqAll and skips marks without snat", () => {
  const masqAll = dnatRules(spec("10.0.0.2", 24, { mappings: [MAPPINGS[0]], masqAll: true }));
  assertEquals(masqAll.map(renderRule), [
    "-p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK",
    "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80",
  ]);
  const noSnat = dnatRules(spec("10.0.0.2", 24, { mappings: [MAPPINGS[0]], snat: false }));
  assertEquals(noSnat.map(renderRule), [
    "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80",
  ]);
  const unspecified = dnatRules(spec("10.0.0.2", 24, {
    mappings: [{ hostPort: 1, containerPort: 2, protocol: "sctp", hostIp: parseIp("0.0.0.0") }],
    snat: false,
  }));
  assertEquals(unspecified.map(renderRule), [
    "-p sctp -m sctp --dport 1 -j DNAT --to-destination 10.0.0.2:2",
  ]);
});

Deno.test("markValue() formats the mark like Go's %#x", () => {
  assertEquals(markValue(13), "0x2000/0x2000");
  assertEquals(markValue(0), "0x1/0x1");
  assertEquals(markValue(31), "0x80000000/0x80000000");
});

Deno.test("dnatComment() trims to 253 characters plus ... like the reference", () => {
  assertEquals(dnatComment("n", "id"), 'dnat name: "n" id: "id"');
  const long = dnatComment("n", "x".repeat(300));
  assertEquals([long.length, long.endsWith("...")], [256, true]);
});

Deno.test("checkHostport() accepts the reference's rules and names missing ones", () => {
  assertEquals(
    checkHostport(plan(golden("portmap_reference_v4.save")).plan, spec("10.77.0.3", 24)),
    undefined,
  );
  assertEquals(
    checkHostport(plan(EMPTY).plan, spec("10.77.0.3", 24)),
    `chain ${CHAIN} not found in iptables table nat`,
  );
  const wrongPort = checkHostport(
    plan(golden("portmap_reference_v4.save")).plan,
    spec("10.77.0.3", 24, { mappings: [{ hostPort: 1, containerPort: 1, protocol: "tcp" }] }),
  );
  // Rules are named as the reference generates them, not as iptables lists them.
  assertEquals(
    wrongPort,
    `rule [[-p tcp --dport 1 -s 10.77.0.3/24 -j CNI-HOSTPORT-SETMARK] [-p tcp --dport 1 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK] [-p tcp --dport 1 -j DNAT --to-destination 10.77.0.3:1]] in chain ${CHAIN} not found in table nat`,
  );
});

Deno.test("checkHostport() names the rules in the reference's argument order and forms", () => {
  const listing = golden("portmap_reference_v4.save");
  const without = (line: string) => {
    assertEquals(listing.includes(`${line}\n`), true, line);
    return plan(listing.replace(`${line}\n`, "")).plan;
  };
  const noDnat = without(
    `-A ${CHAIN} -p udp -m udp --dport 5353 -j DNAT --to-destination 10.77.0.3:53`,
  );
  assertEquals(
    checkHostport(noDnat, spec("10.77.0.3", 24)),
    "rule [" + [
      "[-p tcp --dport 8080 -s 10.77.0.3/24 -j CNI-HOSTPORT-SETMARK]",
      "[-p tcp --dport 8080 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK]",
      "[-p tcp --dport 8080 -j DNAT --to-destination 10.77.0.3:80]",
      "[-p udp --dport 5353 -s 10.77.0.3/24 -j CNI-HOSTPORT-SETMARK]",
      "[-p udp --dport 5353 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK]",
      "[-p udp --dport 5353 -j DNAT --to-destination 10.77.0.3:53]",
      "[-p tcp --dport 8443 -d 192.0.2.10 -s 10.77.0.3/24 -j CNI-HOSTPORT-SETMARK]",
      "[-p tcp --dport 8443 -d 192.0.2.10 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK]",
      "[-p tcp --dport 8443 -d 192.0.2.10 -j DNAT --to-destination 10.77.0.3:443]",
    ].join(" ") + `] in chain ${CHAIN} not found in table nat`,
  );
  const noEntry = without(
    `-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \\"mynet\\" id: \\"abc123\\"" -m multiport --dports 5353 -j ${CHAIN}`,
  );
  // Entry rules without their -j, all ports of a protocol (either family) in one.
  assertEquals(
    checkHostport(noEntry, spec("10.77.0.3", 24)),
    'rule [[-m comment --comment dnat name: "mynet" id: "abc123" -m multiport -p tcp --destination-ports 8080,8443,9000] [-m comment --comment dnat name: "mynet" id: "abc123" -m multiport -p udp --destination-ports 5353]] in chain CNI-HOSTPORT-DNAT not found in table nat',
  );
  // masqAll marks every source: 0.0.0.0/0, and no localhost rule.
  const masqAll = checkHostport(
    noDnat,
    spec("10.77.0.3", 24, { masqAll: true, mappings: MAPPINGS.slice(0, 1) }),
  );
  assertEquals(
    masqAll,
    `rule [[-p tcp --dport 8080 -s 0.0.0.0/0 -j CNI-HOSTPORT-SETMARK] [-p tcp --dport 8080 -j DNAT --to-destination 10.77.0.3:80]] in chain ${CHAIN} not found in table nat`,
  );
});

Deno.test("nftHostportAdd() renders the reference's nftables layout", () => {
  const tx = new NftTransaction();
  nftHostportAdd(tx, {
    containerId: "abc123",
    container: { addr: parseIp("10.77.0.3") },
    mappings: MAPPINGS,
    snat: true,
    masqAll: false,
    conditions: ["ip", "daddr", "!=", "127.0.0.0/8"],
  });
  nftHostportAdd(tx, {
    containerId: "abc123",
    container: { addr: parseIp("fd77::3") },
    mappings: MAPPINGS,
    snat: true,
    masqAll: true,
    conditions: [],
  });
  assertEquals(tx.render(), golden("portmap_add.nft"));
});

Deno.test("nftHostportAdd() deletes the container's earlier rules first", () => {
  const tx = new NftTransaction();
  nftHostportAdd(tx, {
    containerId: "c",
    container: { addr: parseIp("10.0.0.2") },
    mappings: [MAPPINGS[0]],
    snat: false,
    masqAll: false,
    conditions: [],
    existing: [{ chain: "hostports", handle: 7 }],
  });
  const lines = tx.render().split("\n");
  const del = lines.indexOf("delete rule ip cni_hostport hostports handle 7");
  const add = lines.findIndex((l) => l.startsWith("add rule ip cni_hostport hostports tcp"));
  assertEquals(del !== -1 && del < add, true);
  assertEquals(lines.some((l) => l.includes("masquerading")), false);
});

/** A view of chains given as each rule's jump targets. */
const viewOf = (chains: Record<string, string[][]>) => ({
  jumps: (chain: string, target: string) =>
    (chains[chain] ?? []).filter((targets) => targets.includes(target)).length,
  rules: (chain: string) => (chains[chain] ?? []).length,
});

Deno.test("sharedRulesSingle() is false as soon as one shared rule may be doubled", () => {
  const intact: Record<string, string[][]> = {
    PREROUTING: [["DOCKER"], ["CNI-HOSTPORT-DNAT"]],
    OUTPUT: [["CNI-HOSTPORT-DNAT"]],
    POSTROUTING: [["CNI-HOSTPORT-MASQ"], ["CNI-0123"], ["CNI-4567"], []],
    "CNI-HOSTPORT-SETMARK": [[]],
    "CNI-HOSTPORT-MASQ": [[]],
  };
  const single = (
    chains: Record<string, string[][]>,
    snat = true,
    markBit: number | undefined = 13,
  ) => sharedRulesSingle(viewOf(chains), { snat, markBit });
  assertEquals(single(intact), true);
  assertEquals(single({}), true); // a node without any of them
  const doubled = (chain: string, rule: string[]) => ({
    ...intact,
    [chain]: [...intact[chain], rule],
  });
  assertEquals(single(doubled("PREROUTING", ["CNI-HOSTPORT-DNAT"])), false);
  assertEquals(single(doubled("OUTPUT", ["CNI-HOSTPORT-DNAT"])), false);
  assertEquals(single(doubled("POSTROUTING", ["CNI-HOSTPORT-MASQ"])), false);
  assertEquals(single(doubled("CNI-HOSTPORT-SETMARK", [])), false);
  assertEquals(single(doubled("CNI-HOSTPORT-MASQ", [])), false);
  // Without snat, or with an external mark chain, the mark rules are not repaired: not looked at.
  assertEquals(single(doubled("CNI-HOSTPORT-MASQ", []), false), true);
  const external = doubled("POSTROUTING", ["CNI-HOSTPORT-MASQ"]);
  assertEquals(sharedRulesSingle(viewOf(external), { snat: true }), true);
});

import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { CniError } from "../lib/cni/error.ts";
import { parseNetConf } from "../lib/cni/config.ts";
import type { CmdArgs, Command, Result } from "../lib/cni/types.ts";
import { type ExecCall, RecordingExecer } from "../lib/firewall/exec.ts";
import { formatIp } from "../lib/ip/cidr.ts";
import type { Family } from "../lib/firewall/iptables.ts";
import { createNetns, ROOT } from "../lib/testing/netns.ts";
import {
  HAVE_REFERENCE,
  type PluginCall,
  runOurs,
  runReference,
  runScenario,
  saves,
  type Scenario,
} from "../testdata/firewall/harness.ts";
import { parsePortmapConf, type PortmapDeps, portmapFuncs } from "./portmap.ts";

const golden = (name: string) =>
  Deno.readTextFileSync(new URL(`../testdata/firewall/${name}`, import.meta.url));
const EMPTY_NAT =
  "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n";
const SANDBOX = "/var/run/netns/cbx-fw-container";

function prevResult(addresses: string[], version = "1.0.0"): Record<string, unknown> {
  return {
    cniVersion: version,
    interfaces: [{ name: "cni-test1" }, { name: "veth1" }, { name: "eth0", sandbox: SANDBOX }],
    ips: addresses.map((address) => ({
      interface: 2,
      address,
      ...(version === "0.4.0" ? { version: address.includes(":") ? "6" : "4" } : {}),
    })),
  };
}

const MAPPINGS = [
  { hostPort: 8080, containerPort: 80, protocol: "tcp" },
  { hostPort: 5353, containerPort: 53, protocol: "udp" },
  { hostPort: 8443, containerPort: 443, protocol: "tcp", hostIP: "192.0.2.10" },
  { hostPort: 9000, containerPort: 9000, protocol: "tcp", hostIP: "2001:db8::10" },
];

function conf(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion: "1.0.0", name: "mynet", type: "portmap", ...extra };
}

function cmdArgs(
  command: Command,
  config: Record<string, unknown>,
  containerId = "abc123",
): CmdArgs {
  const stdinData = new TextEncoder().encode(JSON.stringify(config));
  return {
    command,
    containerId,
    netns: SANDBOX,
    ifName: "eth0",
    args: "",
    path: ["/usr/lib/cni"],
    netnsOverride: false,
    stdinData,
    conf: parseNetConf(stdinData),
    env: {},
  };
}

/** A fake iptables: `iptables-save` prints `listings[family]`, restores succeed. */
function fakeDeps(listings: Partial<Record<Family, string>> = {}): PortmapDeps & {
  execer: RecordingExecer;
  flushed: [number[], Family][];
  localnet: string[];
} {
  const execer = new RecordingExecer((call: ExecCall) => {
    const family: Family = call.cmd.startsWith("ip6") ? 6 : 4;
    const listing = listings[family] ?? EMPTY_NAT;
    if (call.args.includes("-S")) return { code: 0, stdout: listing, stderr: "" };
    // Like the kernel: guards and appends into CNI-HOSTPORT-DNAT fail where it does not exist.
    const needsShared = /\n-(C|A) CNI-HOSTPORT-DNAT |\n-C (PREROUTING|OUTPUT) /.test(
      call.stdin ?? "",
    );
    const creates = (call.stdin ?? "").includes("\n-N CNI-HOSTPORT-DNAT\n");
    if (needsShared && !creates && !listing.includes("-N CNI-HOSTPORT-DNAT")) {
      return { code: 1, stdout: "", stderr: "iptables-restore: line 3 failed\n" };
    }
    return { code: 0, stdout: "", stderr: "" };
  });
  const flushed: [number[], Family][] = [];
  const localnet: string[] = [];
  return {
    execer,
    flushed,
    localnet,
    lockPath: "",
    probe: { iptables: () => true, nftables: () => true },
    // Not known to be single: DEL lists (each test that wants the unlisted DEL says so).
    sharedRulesSingle: () => false,
    // No chain of ours in a family prevResult does not name (tests that want one say so).
    chainsMayExist: () => false,
    // The tool does every teardown (tests of the in-process one say so).
    dropChain: () => false,
    flushConntrack: (ports, family) => {
      flushed.push([ports, family]);
      return Promise.resolve();
    },
    enableRouteLocalnet: (addr) => {
      localnet.push(formatIp(addr));
      return Promise.resolve();
    },
  };
}

async function cniError(promise: Promise<unknown>): Promise<CniError> {
  return await assertRejects(() => promise, CniError);
}

Deno.test("parsePortmapConf() reads Nomad's PascalCase mappings and empty HostIP", () => {
  const parsed = parsePortmapConf(
    parseNetConf(JSON.stringify(conf({
      runtimeConfig: {
        portMappings: [{ HostPort: 28080, ContainerPort: 8080, Protocol: "tcp", HostIP: "" }],
      },
    }))),
    { ifName: "eth0", probe: { iptables: () => true, nftables: () => true } },
  );
  assertEquals(parsed.mappings, [{ hostPort: 28080, containerPort: 8080, protocol: "tcp" }]);
  assertEquals([parsed.snat, parsed.markBit, parsed.backend], [true, 13, "iptables"]);
});

Deno.test("parsePortmapConf() picks the first address per family on CNI_IFNAME in a sandbox", () => {
  const result = {
    cniVersion: "1.0.0",
    interfaces: [{ name: "br0" }, { name: "eth0", sandbox: SANDBOX }, {
      name: "eth1",
      sandbox: SANDBOX,
    }],
    ips: [
      { interface: 0, address: "10.0.0.1/24" },
      { interface: 2, address: "10.0.1.2/24" },
      { interface: 1, address: "10.0.0.2/24" },
      { address: "fd00::2/64" },
      { interface: 1, address: "fd00::3/64" },
    ],
  };
  const parsed = parsePortmapConf(parseNetConf(JSON.stringify(conf({ prevResult: result }))), {
    ifName: "eth0",
  });
  assertEquals(formatIp(parsed.container[4]!.addr), "10.0.0.2");
  assertEquals(formatIp(parsed.container[6]!.addr), "fd00::2");
});

Deno.test("parsePortmapConf() keeps the reference's messages for its checks", () => {
  const probe = { iptables: () => true, nftables: () => true };
  const message = (extra: Record<string, unknown>, p = probe) => {
    try {
      parsePortmapConf(parseNetConf(JSON.stringify(conf(extra))), { ifName: "eth0", probe: p });
    } catch (error) {
      assert(error instanceof CniError);
      assertEquals(error.code, 7);
      return error.message;
    }
    throw new Error("no error");
  };
  assertEquals(message({ markMasqBit: 32 }), "MasqMarkBit must be between 0 and 31");
  assertEquals(
    message({ markMasqBit: 1, externalSetMarkChain: "X" }),
    "Cannot specify externalSetMarkChain and markMasqBit",
  );
  assertEquals(
    message({ backend: "iptables", conditionsV4: ["aaa", "bbbb"], conditionsV6: ["ccc"] }),
    "iptables backend was requested but configuration contains nftables-specific options [conditionsV4 conditionsV6]",
  );
  assertEquals(
    message({
      backend: "nftables",
      externalSetMarkChain: "KUBE-MARK-MASQ",
      conditionsV4: ["-a", "b"],
      conditionsV6: ["-c", "d"],
    }),
    "nftables backend was requested but configuration contains iptables-specific options [externalSetMarkChain conditionsV4 conditionsV6]",
  );
  assertEquals(message({ backend: "ebpf" }), 'unrecognized backend "ebpf"');
  assertEquals(
    message({
      runtimeConfig: { portMappings: [{ hostPort: 0, containerPort: 0, protocol: "tcp" }] },
    }),
    "Invalid container port number: 0",
  );
  assertEquals(
    message({
      runtimeConfig: { portMappings: [{ hostPort: 0, containerPort: 80, protocol: "tcp" }] },
    }),
    "Invalid host port number: 0",
  );
  assertEquals(
    message({
      runtimeConfig: { portMappings: [{ hostPort: 70000, containerPort: 80, protocol: "tcp" }] },
    }),
    "Invalid host port number: 70000",
  );
  assertStringIncludes(
    message({
      runtimeConfig: { portMappings: [{ hostPort: 80, containerPort: 80, protocol: "icmp" }] },
    }),
    'Invalid protocol: "icmp"',
  );
  assertStringIncludes(
    message({
      runtimeConfig: {
        portMappings: [{
          hostPort: 80,
          containerPort: 80,
          protocol: "tcp",
          hostIP: "192.0.2.1/24",
        }],
      },
    }),
    "Invalid host IP",
  );
  assertStringIncludes(
    message({ conditionsV4: ["-d", "1.2.3.4\n-A FORWARD -j ACCEPT"] }),
    "control characters",
  );
  assertStringIncludes(message({ externalSetMarkChain: "MARK ME" }), "externalSetMarkChain");
});

Deno.test("parsePortmapConf() falls back to nftables only when iptables is missing", () => {
  const pick = (iptables: boolean, nftables: boolean) =>
    parsePortmapConf(parseNetConf(JSON.stringify(conf())), {
      ifName: "eth0",
      probe: { iptables: () => iptables, nftables: () => nftables },
    }).backend;
  assertEquals([pick(true, true), pick(false, true), pick(false, false)], [
    "iptables",
    "nftables",
    "iptables",
  ]);
});

Deno.test("portmap ADD applies each family with one save and one restore", async () => {
  const deps = fakeDeps();
  const config = conf({
    runtimeConfig: { portMappings: MAPPINGS },
    prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]),
  });
  const result = await portmapFuncs(deps).add(cmdArgs("ADD", config));
  const byCmd = new Map(deps.execer.calls.map((c) => [c.cmd, c]));
  assertEquals([...byCmd.keys()].sort(), [
    "ip6tables",
    "ip6tables-restore",
    "iptables",
    "iptables-restore",
  ]);
  assertEquals(byCmd.get("iptables-restore")!.stdin, golden("portmap_add_v4.rules"));
  assertEquals(byCmd.get("ip6tables-restore")!.stdin, golden("portmap_add_v6.rules"));
  assertEquals((result as Result).ips?.map((ip) => ip.address), ["10.77.0.3/24", "fd77::3/64"]);
  assertEquals(deps.flushed.sort(), [[[5353], 4], [[5353], 6]]);
  assertEquals(deps.localnet, ["10.77.0.3"]);
});

Deno.test("portmap ADD for dual stack on a fresh node: a refused unlisted try, one listing and one restore per family; no route_localnet without snat", async () => {
  const deps = fakeDeps();
  const config = conf({
    snat: false,
    runtimeConfig: { portMappings: MAPPINGS },
    prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]),
  });
  await portmapFuncs(deps).add(cmdArgs("ADD", config));
  assertEquals(deps.execer.calls.map((c) => c.cmd).sort(), [
    "ip6tables",
    "ip6tables-restore",
    "ip6tables-restore",
    "iptables",
    "iptables-restore",
    "iptables-restore",
  ]);
  assertEquals(deps.localnet, []);
  assertEquals(deps.flushed.map(([, f]) => f).sort(), [4, 6]);
});

Deno.test("portmap ADD on a node that has the shared chains lists nothing: one guarded restore", async () => {
  const shared = "-P PREROUTING ACCEPT\n-N CNI-HOSTPORT-DNAT\n";
  const deps = fakeDeps({ 4: shared });
  const config = conf({
    runtimeConfig: { portMappings: MAPPINGS.slice(0, 3) },
    prevResult: prevResult(["10.77.0.3/24"]),
  });
  await portmapFuncs(deps).add(cmdArgs("ADD", config));
  assertEquals(deps.execer.calls.map((c) => c.cmd), ["iptables-restore"]);
  const batch = deps.execer.calls[0].stdin!;
  // The container chain is created with -N (refused if it exists), never declared (which flushes).
  assertMatch(batch, /^\*nat\n/);
  assertMatch(batch, /\n-N CNI-DN-[0-9a-f]{21}\n/);
  assert(!/\n:CNI-/.test(batch), batch);
  for (
    const guard of ["-C PREROUTING ", "-C OUTPUT ", "-C CNI-HOSTPORT-SETMARK ", "-C POSTROUTING "]
  ) {
    assertStringIncludes(batch, `\n${guard}`);
  }
  assertMatch(batch, /\n-A CNI-HOSTPORT-DNAT .*-j CNI-DN-[0-9a-f]{21}\n/);
});

Deno.test("portmap ADD rejects bad input before touching anything", async () => {
  for (
    const [mapping, code] of [
      [{ hostPort: 0, containerPort: 80, protocol: "tcp" }, 7],
      [{ hostPort: 70000, containerPort: 80, protocol: "tcp" }, 7],
      [{ hostPort: 80, containerPort: 80, protocol: "icmp" }, 7],
      [{ hostPort: 80, containerPort: 80, protocol: "tcp", hostIP: "192.0.2.300" }, 7],
    ] as const
  ) {
    const deps = fakeDeps();
    const config = conf({
      runtimeConfig: { portMappings: [mapping] },
      prevResult: prevResult(["10.77.0.3/24"]),
    });
    const error = await cniError(portmapFuncs(deps).add(cmdArgs("ADD", config)));
    assertEquals(error.code, code);
    assert(error.message.startsWith("failed to parse config: "), error.message);
    assertEquals(deps.execer.calls, []);
  }
});

Deno.test("portmap: a prevResult of the wrong version fails with upstream's doubled prefix (code 7, as every config error)", async () => {
  const config = conf({
    runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] },
    prevResult: prevResult(["10.77.0.3/24"], "0.4.0"),
  });
  const parseError =
    'could not parse prevResult: could not parse prevResult: result type supports [1.0.0 1.1.0] but unmarshalled CNIVersion is "0.4.0"';
  const deps = fakeDeps();
  const add = await cniError(portmapFuncs(deps).add(cmdArgs("ADD", config)));
  assertEquals([add.code, add.message], [7, `failed to parse config: ${parseError}`]);
  // Upstream's CHECK returns parseConfig's error without the ADD/DEL prefix.
  const check = await cniError(portmapFuncs(deps).check!(cmdArgs("CHECK", config)));
  assertEquals([check.code, check.message], [7, parseError]);
  assertEquals(deps.execer.calls, []);
});

Deno.test("portmap ADD skips a mapping whose hostIP is of a family the container lacks, as the reference does", async () => {
  const deps = fakeDeps();
  const config = conf({
    runtimeConfig: {
      portMappings: [
        { hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "0.0.0.0" },
        { hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "::" },
      ],
    },
    prevResult: prevResult(["10.77.0.3/24"]),
  });
  await portmapFuncs(deps).add(cmdArgs("ADD", config));
  const restores = deps.execer.calls.filter((c) => c.cmd.endsWith("restore"));
  // IPv4 only (a fresh node: the unlisted try is refused, then the scoped one applies).
  assertEquals(new Set(restores.map((c) => c.cmd)), new Set(["iptables-restore"]));
  const batch = restores.at(-1)?.stdin ?? "";
  // The entry rule names every mapping's port (the reference's `--dports 8080,8080`) ...
  assertMatch(batch, / -m multiport --dports 8080,8080 -j CNI-DN-/);
  // ... and only the IPv4 mapping is forwarded.
  assertEquals(batch.match(/ -j DNAT --to-destination /g)?.length, 1);
});

Deno.test("portmap DEL undoes an ADD that failed on a bad mapping; only a port below 1 fails it, as in the reference", async () => {
  for (
    const mapping of [
      { hostPort: 70000, containerPort: 80, protocol: "tcp" },
      { hostPort: 80, containerPort: 80, protocol: "icmp" },
      { hostPort: 80, containerPort: 80 },
      { hostPort: 80, containerPort: 80, protocol: "tcp", hostIP: "nope" },
    ]
  ) {
    const deps = fakeDeps({ 4: golden("portmap_reference_v4.save"), 6: EMPTY_NAT });
    const config = conf({
      runtimeConfig: { portMappings: [mapping] },
      prevResult: prevResult(["10.77.0.3/24"]),
    });
    await portmapFuncs(deps).del(cmdArgs("DEL", config));
    const restores = deps.execer.calls.filter((c) => c.cmd === "iptables-restore");
    assertMatch(
      restores.at(-1)?.stdin ?? "",
      /\n-X CNI-DN-[0-9a-f]{21}\n/,
      JSON.stringify(mapping),
    );
  }
  // Values that ADD refuses for rule text: DEL goes on without them (the reference checks types only).
  for (
    const extra of [
      { externalSetMarkChain: "MY CHAIN" },
      { conditionsV4: ["-s", ""] },
      { conditionsV4: ["-m", "x\ny"] },
    ]
  ) {
    const deps = fakeDeps({ 4: golden("portmap_reference_v4.save"), 6: EMPTY_NAT });
    await portmapFuncs(deps).del(cmdArgs("DEL", conf(extra)));
    const restores = deps.execer.calls.filter((c) => c.cmd === "iptables-restore");
    assertMatch(restores.at(-1)?.stdin ?? "", /\n-X CNI-DN-[0-9a-f]{21}\n/, JSON.stringify(extra));
    assert(restores.every((c) => !c.stdin?.includes("MY CHAIN") && !c.stdin?.includes("x\ny")));
  }
  const deps = fakeDeps();
  const zero = conf({
    runtimeConfig: { portMappings: [{ hostPort: 0, containerPort: 80, protocol: "tcp" }] },
  });
  const error = await cniError(portmapFuncs(deps).del(cmdArgs("DEL", zero)));
  assertEquals([error.code, error.message], [
    7,
    "failed to parse config: Invalid host port number: 0",
  ]);
  assertEquals(deps.execer.calls, []);
});

Deno.test("portmap reads conditionsV4 and externalSetMarkChain case-insensitively, as Go's JSON does", () => {
  const conf = parsePortmapConf({
    cniVersion: "1.0.0",
    name: "n",
    type: "portmap",
    ConditionsV4: ["-s", "10.0.0.0/8"],
    ExternalSetMarkChain: "MYMARK",
  }, { ifName: "eth0" });
  assertEquals([conf.conditionsV4, conf.externalSetMarkChain], [["-s", "10.0.0.0/8"], "MYMARK"]);
});

Deno.test("portmap ADD needs prevResult and passes it through when there is nothing to map", async () => {
  const deps = fakeDeps();
  await assertRejects(
    () => portmapFuncs(deps).add(cmdArgs("ADD", conf())),
    Error,
    "must be called as chained plugin",
  );
  const result = await portmapFuncs(deps).add(
    cmdArgs("ADD", conf({ prevResult: prevResult(["10.0.0.2/24"]) })),
  );
  assertEquals(result.ips?.length, 1);
  assertEquals(deps.execer.calls, []);
});

Deno.test("portmap DEL finds the chain by hash without portMappings or prevResult", async () => {
  const deps = fakeDeps({ 4: golden("portmap_reference_v4.save"), 6: EMPTY_NAT });
  await portmapFuncs(deps).del(cmdArgs("DEL", conf()));
  const restores = deps.execer.calls.filter((c) => c.cmd.endsWith("restore"));
  assertEquals(restores.map((c) => [c.cmd, c.stdin]), [[
    "iptables-restore",
    golden("portmap_del_v4.rules"),
  ]]);
  assertEquals(deps.flushed, [[[5353], 4]]);
});

Deno.test("portmap DEL with a v4-only prevResult reads only the IPv4 table", async () => {
  const deps = fakeDeps();
  await portmapFuncs(deps).del(cmdArgs("DEL", conf({ prevResult: prevResult(["10.0.0.2/24"]) })));
  assertEquals(deps.execer.calls.map((c) => c.cmd), ["iptables"]);
});

Deno.test("portmap DEL with a v4-only prevResult also tears down IPv6 where its chain may be", async () => {
  const asked: [Family, readonly string[]][] = [];
  const deps = {
    ...fakeDeps({ 6: golden("portmap_reference_v4.save").replace("-d 10.77.0.3", "-d fd77::3") }),
    chainsMayExist: (family: Family, chains: readonly string[]) => {
      asked.push([family, chains]);
      return family === 6;
    },
  };
  await portmapFuncs(deps).del(cmdArgs("DEL", conf({ prevResult: prevResult(["10.0.0.2/24"]) })));
  // Asked about the other family only, with the DNAT chain and the legacy SNAT chain.
  assertEquals(asked.map(([family]) => family), [6]);
  assertMatch(asked[0][1][0], /^CNI-DN-[0-9a-f]{21}$/);
  assertMatch(asked[0][1][1], /^CNI-SN-[0-9a-f]{21}$/);
  assertEquals(deps.execer.calls.map((c) => c.cmd), [
    "iptables",
    "ip6tables",
    "ip6tables-restore",
  ]);
});

Deno.test("portmap DEL on an intact node lists nothing: one restore removes what ADD made", async () => {
  const deps = { ...fakeDeps(), sharedRulesSingle: () => true };
  const config = conf({
    runtimeConfig: { portMappings: MAPPINGS.filter((m) => !m.hostIP?.includes(":")) },
    prevResult: prevResult(["10.77.0.3/24"]),
  });
  await portmapFuncs(deps).add(cmdArgs("ADD", config));
  const added = deps.execer.calls.find((c) => c.cmd === "iptables-restore")!.stdin!;
  deps.execer.calls.length = 0;
  deps.flushed.length = 0;
  await portmapFuncs(deps).del(cmdArgs("DEL", config));
  assertEquals(deps.execer.calls.map((c) => c.cmd), ["iptables-restore"]);
  const removed = deps.execer.calls[0].stdin!;
  // Every entry rule ADD appended to CNI-HOSTPORT-DNAT is deleted with the same text.
  const entries = (text: string, op: string) =>
    text.split("\n").filter((l) => l.startsWith(`${op} CNI-HOSTPORT-DNAT `)).map((l) => l.slice(3));
  assertEquals(entries(removed, "-D"), entries(added, "-A"));
  const chain = /^-A (CNI-DN-[0-9a-f]+) /m.exec(added)![1];
  assertStringIncludes(removed, `-F ${chain}\n-X ${chain}\n`);
  // The legacy chain is declared and deleted: the batch fails if a jump still leads to it.
  const legacy = chain.replace("CNI-DN-", "CNI-SN-");
  assertStringIncludes(removed, `:${legacy} - [0:0]\n`);
  assertStringIncludes(removed, `-X ${legacy}\n`);
  assertEquals(deps.flushed, [[[5353], 4]]);
});

Deno.test("portmap DEL removes an intact chain and its entry rules without a tool where it can", async () => {
  const asked: [Family, { chain: string; legacyChain: string; entries: number }][] = [];
  const deps = {
    ...fakeDeps(),
    sharedRulesSingle: () => true,
    dropChain: (
      family: Family,
      chains: { chain: string; legacyChain: string; entries: number },
    ) => {
      asked.push([family, chains]);
      return family === 4;
    },
  };
  const config = conf({
    runtimeConfig: { portMappings: MAPPINGS },
    prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]),
  });
  await portmapFuncs(deps).del(cmdArgs("DEL", config));
  // IPv4: two entry rules (tcp, udp) and the chain, no tool; IPv6 (refused): the restore.
  assertEquals(asked.map(([family, c]) => [family, c.entries]), [[4, 2], [6, 2]]);
  assertMatch(asked[0][1].chain, /^CNI-DN-/);
  assertMatch(asked[0][1].legacyChain, /^CNI-SN-/);
  assertEquals(deps.execer.calls.map((c) => c.cmd), ["ip6tables-restore"]);
  assertEquals(deps.flushed, [[[5353], 4], [[5353], 6]]);
});

Deno.test("portmap DEL lists the table after all when the unlisted batch is refused", async () => {
  const listing = golden("portmap_reference_v4.save");
  const deps = { ...fakeDeps({ 4: listing }), sharedRulesSingle: () => true };
  // Like the kernel when ADD ran with other mappings: the entry rules to delete are not there.
  const execer = new RecordingExecer((call: ExecCall) =>
    call.args.includes("-S")
      ? { code: 0, stdout: listing, stderr: "" }
      : /\n-D CNI-HOSTPORT-DNAT .*--dports 1234,/.test(call.stdin ?? "")
      ? { code: 1, stdout: "", stderr: "iptables-restore: line 2 failed\n" }
      : { code: 0, stdout: "", stderr: "" }
  );
  const config = conf({
    runtimeConfig: {
      portMappings: [{ hostPort: 1234, containerPort: 80, protocol: "tcp" }, ...MAPPINGS],
    },
    prevResult: prevResult(["10.77.0.3/24"]),
  });
  await portmapFuncs({ ...deps, execer }).del(cmdArgs("DEL", config));
  assertEquals(execer.calls.map((c) => c.cmd), [
    "iptables-restore",
    "iptables",
    "iptables-restore",
  ]);
  assertEquals(execer.calls[2].stdin, golden("portmap_del_v4.rules"));
});

Deno.test("portmap DEL flushes no conntrack for a family whose refused batch left it unlistable", async () => {
  const deps = { ...fakeDeps(), sharedRulesSingle: () => true };
  const execer = new RecordingExecer((call: ExecCall) => {
    if (call.cmd.endsWith("-restore")) return { code: 1, stdout: "", stderr: "line 2 failed\n" };
    if (call.cmd === "ip6tables") {
      return { code: 1, stdout: "", stderr: "table `nat' is incompatible" };
    }
    return { code: 0, stdout: EMPTY_NAT, stderr: "" }; // IPv4: no chain of ours
  });
  const config = conf({
    runtimeConfig: { portMappings: MAPPINGS.filter((m) => !m.hostIP) },
    prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]),
  });
  await portmapFuncs({ ...deps, execer }).del(cmdArgs("DEL", config));
  assertEquals(execer.calls.map((c) => c.cmd).sort(), [
    "ip6tables",
    "ip6tables-restore",
    "iptables",
    "iptables-restore",
  ]);
  assertEquals(deps.flushed, []);
});

Deno.test("portmap DEL lists the table where a shared rule may be doubled", async () => {
  const asked: Family[] = [];
  const deps = {
    ...fakeDeps(),
    sharedRulesSingle: (family: Family) => (asked.push(family), false),
  };
  const config = conf({
    runtimeConfig: { portMappings: MAPPINGS },
    prevResult: prevResult(["10.77.0.3/24"]),
  });
  await portmapFuncs(deps).del(cmdArgs("DEL", config));
  assertEquals(asked, [4]);
  assertEquals(deps.execer.calls.map((c) => c.cmd), ["iptables"]);
});

Deno.test("portmap DEL fails only when neither family can be listed", async () => {
  const execer = new RecordingExecer(() => ({ code: 3, stdout: "", stderr: "no kernel support" }));
  await assertRejects(
    () => portmapFuncs({ ...fakeDeps(), execer }).del(cmdArgs("DEL", conf())),
    Error,
    "neither iptables nor ip6tables is usable, (iptables) iptables -w 5 -t nat -S failed: no kernel support",
  );
});

Deno.test("portmap CHECK checks only the container's own families", async () => {
  const config = conf({
    runtimeConfig: { portMappings: MAPPINGS },
    prevResult: prevResult(["10.77.0.3/24"]),
  });
  const ok = fakeDeps({ 4: golden("portmap_reference_v4.save") });
  await portmapFuncs(ok).check!(cmdArgs("CHECK", config));
  assertEquals(ok.execer.calls.map((c) => c.cmd), ["iptables"]);
  await assertRejects(
    () => portmapFuncs(fakeDeps()).check!(cmdArgs("CHECK", config)),
    Error,
    "could not check ipv4 dnat: chain CNI-DN-70a29d9dc18bc4d652ea5 not found in iptables table nat",
  );
  await assertRejects(
    () => portmapFuncs(fakeDeps()).check!(cmdArgs("CHECK", conf())),
    Error,
    "Required prevResult missing",
  );
});

Deno.test("portmap GC removes chains of this network's containers that are not valid", async () => {
  const listing = golden("portmap_reference_v4.save")
    .replace(
      "COMMIT",
      [
        ":CNI-DN-keep0000000000000000000 - [0:0]",
        '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"mynet\\" id: \\"keep\\"" -m multiport --dports 1 -j CNI-DN-keep0000000000000000000',
        '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"other\\" id: \\"x\\"" -m multiport --dports 2 -j CNI-DN-keep0000000000000000000',
        "COMMIT",
      ].join("\n"),
    );
  const deps = fakeDeps({ 4: listing, 6: EMPTY_NAT });
  await portmapFuncs(deps).gc!(cmdArgs(
    "GC",
    conf({
      cniVersion: "1.1.0",
      "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }],
    }),
  ));
  const restore = deps.execer.calls.find((c) => c.cmd === "iptables-restore");
  assertEquals(restore?.stdin, golden("portmap_del_v4.rules"));
  assertEquals(deps.flushed, [[[5353], 4]]);
});

Deno.test("portmap GC without valid-attachments does nothing", async () => {
  const deps = fakeDeps({ 4: golden("portmap_reference_v4.save") });
  await portmapFuncs(deps).gc!(cmdArgs("GC", conf({ cniVersion: "1.1.0" })));
  assertEquals(deps.execer.calls, []);
});

Deno.test("portmap nftables backend adds in one transaction and deletes by comment", async () => {
  const listing = JSON.stringify({
    nftables: [
      { table: { family: "ip", name: "cni_hostport" } },
      { rule: { chain: "hostports", handle: 4, comment: "abc123" } },
      { rule: { chain: "hostports", handle: 5, comment: "other" } },
      { rule: { chain: "masquerading", handle: 6, comment: "abc123" } },
    ],
  });
  const execer = new RecordingExecer((call) =>
    call.args[0] === "-j"
      ? { code: 0, stdout: listing, stderr: "" }
      : { code: 0, stdout: "", stderr: "" }
  );
  const deps = { ...fakeDeps(), execer };
  const config = conf({
    backend: "nftables",
    runtimeConfig: { portMappings: MAPPINGS.slice(0, 1) },
    prevResult: prevResult(["10.77.0.3/24"]),
  });
  await portmapFuncs(deps).add(cmdArgs("ADD", config));
  const script = execer.calls.at(-1)!.stdin!;
  assertStringIncludes(script, "delete rule ip cni_hostport hostports handle 4\n");
  assertStringIncludes(
    script,
    'add rule ip cni_hostport hostports tcp dport 8080 dnat to 10.77.0.3:80 comment "abc123"\n',
  );
  assertEquals(script.includes("handle 5"), false);
  execer.calls.length = 0;
  await portmapFuncs(deps).del(cmdArgs("DEL", conf({ backend: "nftables" })));
  assertEquals(execer.calls.map((c) => c.args.join(" ")), [
    "-j list table ip cni_hostport",
    "-j list table ip6 cni_hostport",
    "-f -",
  ]);
  assertEquals(
    execer.calls[2].stdin,
    [4, 6].flatMap((
      h,
    ) => [`delete rule ip cni_hostport ${h === 4 ? "hostports" : "masquerading"} handle ${h}`])
      .concat(
        [4, 6].map((h) =>
          `delete rule ip6 cni_hostport ${h === 4 ? "hostports" : "masquerading"} handle ${h}`
        ),
      )
      .join("\n") + "\n",
  );
});

// ---------------------------------------------------------------- side by side with the reference (root)

const REF = HAVE_REFERENCE && ROOT;

function pmCall(
  command: PluginCall["command"],
  extra: Record<string, unknown>,
  containerId = "abc123",
): PluginCall {
  return { plugin: "portmap", command, containerId, conf: conf(extra) };
}

/** Four runs of a scenario: reference only, ours only, and both mixes. */
async function sideBySide(scenario: Scenario) {
  const pair = (adder: typeof runOurs, deleter: typeof runOurs) =>
    runScenario(scenario, { adder, deleter, createNetns });
  return {
    ref: await pair(runReference, runReference),
    ours: await pair(runOurs, runOurs),
    refThenOurs: await pair(runReference, runOurs),
    oursThenRef: await pair(runOurs, runReference),
  };
}

const SCENARIOS: Record<string, Record<string, unknown>> = {
  "single stack, one TCP mapping": {
    runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] },
    prevResult: prevResult(["10.77.0.3/24"]),
  },
  "dual stack, several mappings, UDP, host IPs of both families": {
    runtimeConfig: { portMappings: MAPPINGS },
    prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]),
  },
  "IPv4 only, the same port on 0.0.0.0 and :: (the IPv6 mapping is skipped)": {
    runtimeConfig: {
      portMappings: [
        { hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "0.0.0.0" },
        { hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "::" },
      ],
    },
    prevResult: prevResult(["10.77.0.3/24"]),
  },
  "an IPv4-mapped hostIP, which Go reads as IPv4": {
    runtimeConfig: {
      portMappings: [{
        hostPort: 8443,
        containerPort: 443,
        protocol: "tcp",
        hostIP: "::ffff:192.0.2.10",
      }],
    },
    prevResult: prevResult(["10.77.0.3/24"]),
  },
  "a repeated mapping and a second target for the same host port": {
    runtimeConfig: {
      portMappings: [
        { hostPort: 8080, containerPort: 80, protocol: "tcp" },
        { hostPort: 8080, containerPort: 80, protocol: "tcp" },
        { hostPort: 8080, containerPort: 81, protocol: "tcp" },
      ],
    },
    prevResult: prevResult(["10.77.0.3/24"]),
  },
  "snat off": {
    snat: false,
    runtimeConfig: { portMappings: MAPPINGS },
    prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]),
  },
  "Nomad: 0.4.0, PascalCase keys, empty HostIP, tcp+udp per port": {
    cniVersion: "0.4.0",
    name: "nomad",
    snat: true,
    runtimeConfig: {
      portMappings: [
        { HostPort: 28080, ContainerPort: 8080, Protocol: "tcp", HostIP: "" },
        { HostPort: 28080, ContainerPort: 8080, Protocol: "udp", HostIP: "" },
        { HostPort: 29999, ContainerPort: 29999, Protocol: "tcp", HostIP: "" },
        { HostPort: 29999, ContainerPort: 29999, Protocol: "udp", HostIP: "" },
      ],
    },
    prevResult: prevResult(["172.26.64.5/20"], "0.4.0"),
  },
  "conditionsV4, mark bit 5, 17 ports (two multiport chunks)": {
    markMasqBit: 5,
    conditionsV4: ["-m", "addrtype", "--dst-type", "LOCAL", "!", "-d", "127.0.0.0/8"],
    runtimeConfig: {
      portMappings: Array.from(
        { length: 17 },
        (_, i) => ({ hostPort: 20000 + i, containerPort: 80, protocol: "tcp" }),
      ),
    },
    prevResult: prevResult(["10.77.0.3/24"]),
  },
};

for (const [name, extra] of Object.entries(SCENARIOS)) {
  Deno.test({
    name: `portmap ADD/DEL leave the reference's exact rules: ${name} (kernel, reference)`,
    ignore: !REF,
    async fn() {
      const scenario: Scenario = { add: [pmCall("ADD", extra)], del: [pmCall("DEL", extra)] };
      const runs = await sideBySide(scenario);
      assertEquals(runs.ours.afterAdd, runs.ref.afterAdd);
      assertEquals(runs.ours.afterDel, runs.ref.afterDel);
      assertEquals(runs.refThenOurs.afterDel, runs.ref.afterDel);
      assertEquals(runs.oursThenRef.afterDel, runs.ref.afterDel);
      // At most 3 processes per family (the reference runs 19+): on this fresh node the
      // unlisted try is refused (no shared chains yet), then one listing and one restore.
      const families = (extra.prevResult as { ips: { address: string }[] }).ips.length;
      for (const p of runs.ours.processes) {
        assert(p.count <= 3 * families, `${p.command}: ${p.count} processes`);
      }
    },
  });
}

Deno.test({
  name:
    "portmap DEL whose prevResult lost the IPv6 address removes the IPv6 rules too, as the reference does (kernel, reference)",
  ignore: !REF,
  async fn() {
    const mappings = { runtimeConfig: { portMappings: MAPPINGS.slice(0, 2) } };
    const scenario: Scenario = {
      add: [pmCall("ADD", { ...mappings, prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]) })],
      del: [pmCall("DEL", { ...mappings, prevResult: prevResult(["10.77.0.3/24"]) })],
    };
    const runs = await sideBySide(scenario);
    assertEquals(runs.ours.afterAdd, runs.ref.afterAdd);
    assertEquals(runs.ours.afterDel, runs.ref.afterDel);
    assertEquals(runs.refThenOurs.afterDel, runs.ref.afterDel);
    assert(!runs.ours.afterDel.includes("CNI-DN-"), runs.ours.afterDel);
  },
});

for (
  const [name, sabotage] of [
    ["an intact node", undefined],
    ["a node whose mark rule an operator flushed", [
      "iptables",
      "-t",
      "nat",
      "-F",
      "CNI-HOSTPORT-SETMARK",
    ]],
    ["a node whose OUTPUT jump an operator deleted", [
      ...["iptables", "-t", "nat", "-D", "OUTPUT", "-m", "addrtype"],
      ...["--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"],
    ]],
  ] as [string, string[] | undefined][]
) {
  Deno.test({
    name:
      `portmap ADD of a second container lists nothing on ${name}, at most CNI-HOSTPORT-DNAT before the whole table (kernel, reference)`,
    ignore: !REF,
    async fn() {
      const extra = (port: number, address: string) => ({
        runtimeConfig: { portMappings: [{ hostPort: port, containerPort: 80, protocol: "tcp" }] },
        prevResult: prevResult([address]),
      });
      const first = pmCall("ADD", extra(8080, "10.77.0.3/24"), "first");
      const second = pmCall("ADD", extra(8081, "10.77.0.4/24"), "second");
      const run = async (secondBy: typeof runOurs) => {
        await using host = await createNetns("cbx-fw");
        assertEquals((await runReference(host, first)).code, 0);
        if (sabotage) assertEquals((await host.exec(sabotage[0], sabotage.slice(1))).code, 0);
        const out = await secondBy(host, second);
        assertEquals(out.code, 0, out.stderr);
        return { save: await saves(host), calls: out.calls };
      };
      const ref = await run(runReference);
      const ours = await run(runOurs);
      assertEquals(ours.save, ref.save);
      const calls = ours.calls.map((c) => [c.cmd, ...c.args]);
      if (!sabotage) {
        // The fast way: one restore whose `-N` and `-C` lines hold, nothing listed.
        assertEquals(calls, [["iptables-restore", "--noflush", "-w", "5"]]);
      } else {
        // A guard refuses the unlisted try, then the scoped one; the whole table repairs it.
        assertEquals(calls, [
          ["iptables-restore", "--noflush", "-w", "5"],
          ["iptables", "-w", "5", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT"],
          ["iptables-restore", "--noflush", "-w", "5"],
          ["iptables", "-w", "5", "-t", "nat", "-S"],
          ["iptables-restore", "--noflush", "-w", "5"],
        ]);
      }
    },
  });
}

Deno.test({
  name: "portmap with an external mark chain matches the reference (kernel, reference)",
  ignore: !REF,
  async fn() {
    const extra = {
      externalSetMarkChain: "KUBE-MARK-MASQ",
      runtimeConfig: { portMappings: MAPPINGS.slice(0, 2) },
      prevResult: prevResult(["10.77.0.3/24"]),
    };
    const setup = [["iptables", "-t", "nat", "-N", "KUBE-MARK-MASQ"], [
      "ip6tables",
      "-t",
      "nat",
      "-N",
      "KUBE-MARK-MASQ",
    ]];
    const scenario: Scenario = { setup, add: [pmCall("ADD", extra)], del: [pmCall("DEL", extra)] };
    const runs = await sideBySide(scenario);
    assertEquals(runs.ours.afterAdd, runs.ref.afterAdd);
    assertEquals(runs.ours.afterDel, runs.ref.afterDel);
  },
});

Deno.test({
  name:
    "portmap ADD by the reference, then ours, for two containers gives the same rules (kernel, reference)",
  ignore: !REF,
  async fn() {
    const one = {
      runtimeConfig: { portMappings: MAPPINGS.slice(0, 2) },
      prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]),
    };
    const two = {
      runtimeConfig: { portMappings: [{ hostPort: 7000, containerPort: 70, protocol: "udp" }] },
      prevResult: prevResult(["10.77.0.4/24"]),
    };
    const scenario: Scenario = {
      add: [pmCall("ADD", one, "c1"), pmCall("ADD", two, "c2")],
      del: [pmCall("DEL", one, "c1")],
    };
    const ref = await runScenario(scenario, {
      adder: runReference,
      deleter: runReference,
      createNetns,
    });
    const mixed = await runScenario({ ...scenario, add: [scenario.add[0]] }, {
      adder: runReference,
      deleter: runReference,
      createNetns,
    });
    assert(mixed.afterAdd.length < ref.afterAdd.length);
    const ours = await runScenario(scenario, { adder: runOurs, deleter: runOurs, createNetns });
    assertEquals(ours.afterAdd, ref.afterAdd);
    assertEquals(ours.afterDel, ref.afterDel);
  },
});

Deno.test({
  name: "portmap bad input fails with code 7 and changes no rule (kernel)",
  ignore: !ROOT,
  async fn() {
    await using host = await createNetns("cbx-fw");
    const good = {
      runtimeConfig: { portMappings: MAPPINGS.slice(0, 1) },
      prevResult: prevResult(["10.77.0.3/24"]),
    };
    assertEquals((await runOurs(host, pmCall("ADD", good))).code, 0);
    const before = await saves(host);
    const bad: Record<string, unknown>[] = [
      { runtimeConfig: { portMappings: [{ hostPort: 0, containerPort: 80, protocol: "tcp" }] } },
      {
        runtimeConfig: { portMappings: [{ hostPort: 70000, containerPort: 80, protocol: "tcp" }] },
      },
      { runtimeConfig: { portMappings: [{ hostPort: 80, containerPort: 80, protocol: "icmp" }] } },
      {
        runtimeConfig: {
          portMappings: [{
            hostPort: 80,
            containerPort: 80,
            protocol: "tcp",
            hostIP: "10.0.0.1/8",
          }],
        },
      },
      {
        conditionsV4: ["-d", "1.2.3.4\n-A PREROUTING -j ACCEPT"],
        runtimeConfig: good.runtimeConfig,
      },
      { externalSetMarkChain: 'X" -j ACCEPT', runtimeConfig: good.runtimeConfig },
    ];
    for (const extra of bad) {
      const out = await runOurs(
        host,
        pmCall("ADD", { prevResult: good.prevResult, ...extra }, "bad1"),
      );
      assertEquals([out.code, JSON.parse(out.stdout).code], [1, 7], out.stdout);
      assertEquals(out.calls, []);
      assertEquals(await saves(host), before);
    }
  },
});

Deno.test({
  name: "portmap ADD and DEL flush the stale UDP flows of mapped host ports, nothing else (kernel)",
  ignore: !ROOT,
  async fn() {
    await using host = await createNetns("cbx-fw");
    const flow = async (src: string, dst: string, proto: string, dport: number) => {
      const out = await host.exec("conntrack", [
        ...["-I", "-s", src, "-d", dst, "-p", proto, "--sport", "1000", "--dport", String(dport)],
        ...["--timeout", "100", ...(proto === "tcp" ? ["--state", "ESTABLISHED"] : [])],
      ]);
      assertEquals(out.code, 0, out.stderr);
    };
    const flows = async () => {
      const out = await host.exec("conntrack", ["-L", "-o", "extended"]);
      return out.stdout.trim().split("\n").filter(Boolean)
        .map((line) => {
          const [family, , proto] = line.split(/\s+/);
          return `${family} ${proto} ${/dport=(\d+)/.exec(line)![1]}`;
        }).sort();
    };
    // Flows the mapped UDP host port might still steer to an earlier container (both families).
    const stale = async () => {
      await flow("192.0.2.1", "10.77.0.1", "udp", 5353);
      await flow("2001:db8::1", "fd77::1", "udp", 5353);
    };
    // Flows it must not touch.
    await flow("192.0.2.1", "10.77.0.1", "udp", 53);
    await flow("192.0.2.1", "10.77.0.1", "tcp", 5353);
    const extra = {
      runtimeConfig: { portMappings: MAPPINGS.slice(0, 2) }, // 8080/tcp and 5353/udp
      prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]),
    };
    for (const command of ["ADD", "DEL"] as const) {
      await stale();
      assertEquals((await flows()).length, 4);
      const out = await runOurs(host, pmCall(command, extra));
      assertEquals(out.code, 0, out.stdout);
      assertEquals(await flows(), ["ipv4 tcp 5353", "ipv4 udp 53"], command);
    }
  },
});

/** A dual-stack container with all of {@linkcode MAPPINGS}. */
const dualStack = () => ({
  runtimeConfig: { portMappings: MAPPINGS },
  prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]),
});

Deno.test({
  name: "portmap CHECK passes for dual stack after ADD and fails after DEL (kernel)",
  ignore: !ROOT,
  async fn() {
    await using host = await createNetns("cbx-fw");
    const extra = dualStack();
    assertEquals((await runOurs(host, pmCall("ADD", extra))).code, 0);
    const check = await runOurs(host, pmCall("CHECK", extra));
    // The reference 1.1.1 fails here (it checks IPv4 rules in ip6tables, #819); upstream and ours pass.
    assertEquals([check.code, check.stdout], [0, ""]);
    assertEquals((await runOurs(host, pmCall("DEL", {}))).code, 0);
    const after = await runOurs(host, pmCall("CHECK", extra));
    assertEquals(after.code, 1);
    assertStringIncludes(
      JSON.parse(after.stdout).msg,
      "could not check ipv4 dnat: chain CNI-DN-70a29d9dc18bc4d652ea5 not found",
    );
  },
});

const DNAT_JUMP = "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT".split(" ");

Deno.test({
  name:
    "portmap DEL after ADD lists nothing where the shared rules are single, and repairs a doubled one (kernel)",
  ignore: !ROOT,
  async fn() {
    await using host = await createNetns("cbx-fw");
    const extra = dualStack();
    const before = await saves(host);
    const listings = (calls: ExecCall[]) =>
      calls.filter((c) => !c.cmd.endsWith("-restore")).map((c) => c.cmd);
    assertEquals((await runOurs(host, pmCall("ADD", extra))).code, 0);
    const shared = await saves(host);
    const del = await runOurs(host, pmCall("DEL", extra));
    assertEquals(del.code, 0, del.stderr);
    // No tool at all: in each family the chain and its entry rules go in one nf_tables
    // transaction of the plugin's own.
    assertEquals(del.calls, []);
    const after = await saves(host);
    assert(!/CNI-DN-|CNI-SN-|dnat name/.test(after), after);
    assert(after !== before, "the shared chains stay, as the reference leaves them");

    // A racing writer doubled PREROUTING's jump: the DEL lists IPv4 and leaves one copy.
    assertEquals((await runOurs(host, pmCall("ADD", extra))).code, 0);
    await host.exec("iptables", ["-t", "nat", ...DNAT_JUMP]);
    const repaired = await runOurs(host, pmCall("DEL", extra));
    assertEquals(repaired.code, 0, repaired.stderr);
    assertEquals(listings(repaired.calls), ["iptables"]);
    assertEquals(await saves(host), after);
    // The copy added by hand is the one the plugin made.
    assertStringIncludes(shared, `\n${DNAT_JUMP.join(" ")}\n`);
  },
});

Deno.test({
  name: "portmap ADDs running concurrently create each shared chain and jump once (kernel)",
  ignore: !ROOT,
  async fn() {
    await using host = await createNetns("cbx-fw");
    const ids = Array.from({ length: 6 }, (_, i) => `c${i}`);
    const outs = await Promise.all(ids.map((id, i) =>
      runOurs(
        host,
        pmCall("ADD", {
          runtimeConfig: {
            portMappings: [{ hostPort: 30000 + i, containerPort: 80, protocol: "tcp" }],
          },
          prevResult: prevResult([`10.77.0.${10 + i}/24`]),
        }, id),
      )
    ));
    assertEquals(outs.map((o) => o.code), ids.map(() => 0));
    const v4 = (await saves(host)).split("--- ip6tables ---")[0].split("\n");
    const count = (line: string) => v4.filter((l) => l === line).length;
    assertEquals(count("-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"), 1);
    assertEquals(count("-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"), 1);
    assertEquals(
      count(
        '-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ',
      ),
      1,
    );
    assertEquals(count("-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE"), 1);
    assertEquals(v4.filter((l) => l.startsWith("-A CNI-HOSTPORT-DNAT ")).length, 6);
    assertEquals(v4.filter((l) => /^:CNI-DN-/.test(l)).length, 6);
  },
});

Deno.test({
  name: "portmap GC removes exactly the chains of containers gone from the network (kernel)",
  ignore: !ROOT,
  async fn() {
    await using host = await createNetns("cbx-fw");
    for (const [id, ip] of [["keep", "10.77.0.3/24"], ["gone", "10.77.0.4/24"]]) {
      const out = await runOurs(
        host,
        pmCall("ADD", {
          runtimeConfig: {
            portMappings: [{
              hostPort: id === "keep" ? 81 : 82,
              containerPort: 80,
              protocol: "tcp",
            }],
          },
          prevResult: prevResult([ip]),
        }, id),
      );
      assertEquals(out.code, 0);
    }
    const gc = await runOurs(
      host,
      pmCall("GC", {
        cniVersion: "1.1.0",
        "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }],
      }, "unused"),
    );
    assertEquals([gc.code, gc.stdout], [0, ""]);
    const after = await saves(host);
    assertStringIncludes(after, 'id: \\"keep\\"');
    assertEquals(after.includes('id: \\"gone\\"'), false);
    assertEquals(after.includes("10.77.0.4:80"), false);
  },
});

Deno.test({
  name:
    "portmap ADD sets route_localnet on the interface routing to the container, by policy rules too, like the reference (kernel, reference)",
  ignore: !REF,
  async fn() {
    // cbxbr0 routes 10.77.0.0/24 in the main table; cbxbr1 routes 10.78.0.0/24 only in table
    // 100, which a rule selects; 10.79.0.0/24 is a blackhole.
    const setup = [
      "ip link add cbxbr0 type bridge && ip addr add 10.77.0.1/24 dev cbxbr0",
      "ip link set cbxbr0 up && ip link add cbxbr1 type bridge && ip link set cbxbr1 up",
      "ip route add 10.78.0.0/24 dev cbxbr1 table 100 && ip rule add to 10.78.0.0/24 table 100",
      "ip route add blackhole 10.79.0.0/24",
    ].join(" && ");
    const seen: Record<string, string[]> = {};
    for (const runner of [runReference, runOurs]) {
      await using host = await createNetns("cbx-fw");
      assertEquals((await host.exec("sh", ["-c", setup])).code, 0);
      const sysctl = async (dev: string) =>
        (await host.exec("cat", [`/proc/sys/net/ipv4/conf/${dev}/route_localnet`])).stdout.trim();
      for (const [i, address] of ["10.77.0.3/24", "10.78.0.3/24", "10.79.0.3/24"].entries()) {
        const out = await runner(
          host,
          pmCall("ADD", {
            runtimeConfig: { portMappings: MAPPINGS.slice(0, 1) },
            prevResult: prevResult([address]),
          }, `c${i}`),
        );
        assertEquals(out.code, 0, out.stdout);
      }
      seen[runner.name] = [await sysctl("cbxbr0"), await sysctl("cbxbr1")];
    }
    assertEquals(seen.runOurs, ["1", "1"]);
    assertEquals(seen.runOurs, seen.runReference);
  },
});

Deno.test({
  name:
    "portmap DEL on an iptables-legacy node uses the tool and leaves nf_tables alone, even a chain of the same name (kernel)",
  ignore: !ROOT,
  async fn() {
    await using host = await createNetns("cbx-fw");
    // A PATH whose iptables tools are the legacy backend, as on a node that chose it.
    const legacy = await Deno.makeTempDir({ prefix: "cbx-legacy-" });
    try {
      for (const tool of ["iptables", "ip6tables"]) {
        for (const suffix of ["", "-save", "-restore"]) {
          await Deno.symlink("/usr/sbin/xtables-legacy-multi", `${legacy}/${tool}${suffix}`);
        }
      }
      const extra = {
        runtimeConfig: { portMappings: MAPPINGS.slice(0, 2) },
        prevResult: prevResult(["10.77.0.3/24"]),
      };
      const call = (command: "ADD" | "DEL") => ({ ...pmCall(command, extra), pathFirst: legacy });
      // The same container's rules in nf_tables too (an ADD through iptables-nft): a perfect decoy.
      assertEquals((await runOurs(host, pmCall("ADD", extra))).code, 0);
      assertEquals((await runOurs(host, call("ADD"))).code, 0);
      const save = async (tool: string) => (await host.exec(tool, ["-t", "nat"])).stdout;
      const chain = /:(CNI-DN-[0-9a-f]+) /.exec(await save(`${legacy}/iptables-save`))![1];
      assertStringIncludes(await save("iptables-nft-save"), `:${chain} `);
      const del = await runOurs(host, call("DEL"));
      assertEquals(del.code, 0, del.stderr);
      assert(del.calls.some((c) => c.cmd === "iptables-restore"), JSON.stringify(del.calls));
      assertEquals((await save(`${legacy}/iptables-save`)).includes(chain), false);
      assertStringIncludes(await save("iptables-nft-save"), `:${chain} `);
    } finally {
      await Deno.remove(legacy, { recursive: true });
    }
  },
});

Deno.test({
  name: "portmap nftables backend installs and removes the container's rules (kernel)",
  ignore: !ROOT,
  async fn() {
    await using host = await createNetns("cbx-fw");
    const extra = {
      backend: "nftables",
      runtimeConfig: { portMappings: MAPPINGS },
      prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]),
    };
    for (let i = 0; i < 2; i++) {
      const out = await runOurs(host, pmCall("ADD", extra));
      assertEquals(out.code, 0, out.stdout);
      // Two listings and one transaction; tables that do not exist yet are not listed.
      assertEquals(out.calls.map((c) => c.args.slice(0, 2).join(" ")), [
        ...(i === 0 ? [] : ["-j list", "-j list"]),
        "-f -",
      ]);
    }
    const listed = (await host.exec("nft", ["list", "ruleset"])).stdout;
    // A repeated ADD replaces the container's rules instead of doubling them.
    assertEquals(
      listed.split("\n").filter((l) => l.includes('comment "abc123"')).length,
      3 + 2 + 3 + 1,
    );
    assertStringIncludes(
      listed,
      'ip daddr 192.0.2.10 tcp dport 8443 dnat to 10.77.0.3:443 comment "abc123"',
    );
    assertStringIncludes(
      listed,
      'ip6 daddr 2001:db8::10 tcp dport 9000 dnat to [fd77::3]:9000 comment "abc123"',
    );
    assertEquals((await runOurs(host, pmCall("CHECK", extra))).code, 0);
    assertEquals((await runOurs(host, pmCall("DEL", { backend: "nftables" }))).code, 0);
    assertEquals((await host.exec("nft", ["list", "ruleset"])).stdout.includes("abc123"), false);
    const check = await runOurs(host, pmCall("CHECK", extra));
    assertEquals(JSON.parse(check.stdout).msg, 'missing hostport rules in "hostports" chain');
  },
});

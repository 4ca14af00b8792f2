import { assert, assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { CniError } from "../lib/cni/error.ts";
import { parseNetConf } from "../lib/cni/config.ts";
import { runPlugin } from "../lib/cni/skel.ts";
import type { CmdArgs, Command } from "../lib/cni/types.ts";
import { type ExecCall, RecordingExecer } from "../lib/firewall/exec.ts";
import { type Family, usesNftables } from "../lib/firewall/iptables.ts";
import {
  listRecords,
  readRecord,
  recordDir,
  removeRecord,
  writeRecord,
} from "../lib/firewall/records.ts";
import { createNetns, ROOT } from "../lib/testing/netns.ts";
import { nftTableDump } from "../lib/testing/nft_dump.ts";
import {
  HAVE_REFERENCE,
  type PluginCall,
  runOurs,
  runReference,
  runScenario,
  saves,
  type Scenario,
} from "../testdata/firewall/harness.ts";
import { addressOwners, type FirewallDeps, firewallFuncs, parseFirewallConf } from "./firewall.ts";

const golden = (name: string) =>
  Deno.readTextFileSync(new URL(`../testdata/firewall/${name}`, import.meta.url));
const EMPTY_FILTER =
  "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
const SANDBOX = "/var/run/netns/cbx-fw-container";
// What the reference 1.1.1 left after ADD of 10.99.0.8 (nomad-and-podman.md, podman run).
const REFERENCE_FILTER = [
  "*filter",
  ":INPUT ACCEPT [0:0]",
  ":FORWARD ACCEPT [0:0]",
  ":OUTPUT ACCEPT [0:0]",
  ":CNI-FORWARD - [0:0]",
  ":NOMAD-ADMIN - [0:0]",
  '-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
  '-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j NOMAD-ADMIN',
  "-A CNI-FORWARD -d 10.99.0.8/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
  "-A CNI-FORWARD -s 10.99.0.8/32 -j ACCEPT",
  "COMMIT",
].join("\n");

function prevResult(addresses: string[], options: { version?: string; bridge?: string } = {}) {
  const version = options.version ?? "1.0.0";
  return {
    cniVersion: version,
    interfaces: [{ name: options.bridge ?? "cni-test1" }, { name: "veth1" }, {
      name: "eth0",
      sandbox: SANDBOX,
    }],
    ips: addresses.map((address) => ({
      interface: 2,
      address,
      ...(version === "0.4.0" ? { version: address.includes(":") ? "6" : "4" } : {}),
    })),
  };
}

function conf(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion: "1.0.0", name: "mynet", type: "firewall", ...extra };
}

function cmdArgs(command: Command, config: Record<string, unknown>): CmdArgs {
  const stdinData = new TextEncoder().encode(JSON.stringify(config));
  return {
    command,
    containerId: "abc123",
    netns: SANDBOX,
    ifName: "eth0",
    args: "",
    path: [],
    netnsOverride: false,
    stdinData,
    conf: parseNetConf(stdinData),
    env: {},
  };
}

function fakeDeps(
  listings: Partial<Record<string, string>> = {},
  firewalld = false,
  restoreExit: () => number = () => 0,
): FirewallDeps & { execer: RecordingExecer } {
  const execer = new RecordingExecer((call: ExecCall) => {
    const family: Family = call.cmd.startsWith("ip6") ? 6 : 4;
    if (call.args.includes("-S")) {
      return { code: 0, stdout: listings[`${family} ${call.args[3]}`] ?? EMPTY_FILTER, stderr: "" };
    }
    const code = call.cmd.endsWith("-restore") ? restoreExit() : 0;
    return { code, stdout: "", stderr: code === 0 ? "" : "iptables-restore: line 3 failed\n" };
  });
  const recordRoot = Deno.makeTempDirSync({ dir: recordBase(), prefix: "records-" });
  // The listed path unless a test says nf_tables shows the shared rules in place.
  return {
    execer,
    lockPath: "",
    firewalld: () => firewalld,
    recordRoot,
    unlistedAddReady: () => false,
  };
}

let recordBaseDir: string | undefined;

/** One scratch directory for this module's record roots, removed when the module's tests end. */
function recordBase(): string {
  if (recordBaseDir === undefined) {
    const dir = Deno.makeTempDirSync({ prefix: "cbx-fw-records-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    recordBaseDir = dir;
  }
  return recordBaseDir;
}

Deno.test("parseFirewallConf() defaults to CNI-ADMIN, open and auto-detection", () => {
  assertEquals(parseFirewallConf(parseNetConf(JSON.stringify(conf({ backend: "nope" })))), {
    adminChain: "CNI-ADMIN",
    ingressPolicy: "open",
    backend: undefined,
  });
});

Deno.test("parseFirewallConf() rejects admin chain names iptables would misread, with code 7", () => {
  for (const name of ["MY ADMIN", 'MY"ADMIN', "MY'ADMIN", "A".repeat(29), "-X", "FORWARD"]) {
    let error: unknown;
    try {
      parseFirewallConf(parseNetConf(JSON.stringify(conf({ iptablesAdminChainName: name }))));
    } catch (e) {
      error = e;
    }
    assert(error instanceof CniError, name);
    assertEquals(error.code, 7);
    assertStringIncludes(error.message, "iptablesAdminChainName");
  }
});

Deno.test("parseFirewallConf() rejects an unknown ingress policy with the reference's message", () => {
  try {
    parseFirewallConf(parseNetConf(JSON.stringify(conf({ ingressPolicy: "closed" }))));
    throw new Error("accepted");
  } catch (error) {
    assert(error instanceof CniError);
    assertEquals([error.code, error.message], [7, 'unknown ingress policy: "closed"']);
  }
});

Deno.test("parseFirewallConf() reads JSON null as an absent string, as Go does, and refuses other types", () => {
  const parse = (extra: Record<string, unknown>, options = {}) =>
    parseFirewallConf(parseNetConf(JSON.stringify(conf(extra))), options);
  assertEquals(
    parse({
      iptablesAdminChainName: null,
      ingressPolicy: null,
      backend: null,
      firewalldZone: null,
    }),
    { adminChain: "CNI-ADMIN", ingressPolicy: "open", backend: undefined },
  );
  for (
    const [key, value] of [
      ["backend", 5],
      ["firewalldZone", 5],
      ["iptablesAdminChainName", 5],
      ["ingressPolicy", true],
    ] as const
  ) {
    try {
      parse({ [key]: value });
      throw new Error(`${key} accepted`);
    } catch (error) {
      assert(error instanceof CniError, key);
      assertEquals([error.code, error.message], [7, `${key} must be a string, got ${value}`]);
    }
  }
  // CHECK does not read the policy (the reference's CHECK passes with any), DEL reads nothing.
  assertEquals(parse({ ingressPolicy: "bogus" }, { check: true }).ingressPolicy, "open");
  assertEquals(
    parse({ backend: 5, ingressPolicy: "bogus" }, { lenient: true }).ingressPolicy,
    "open",
  );
});

Deno.test("firewall ADD plans all rules of a family into one restore", async () => {
  const deps = fakeDeps();
  const config = conf({
    iptablesAdminChainName: "NOMAD-ADMIN",
    ingressPolicy: "isolated",
    prevResult: prevResult(["172.26.64.5/20"], { bridge: "nomad" }),
  });
  const result = await firewallFuncs(deps).add(cmdArgs("ADD", config));
  assertEquals(deps.execer.calls.map((c) => c.cmd), ["iptables", "iptables-restore"]);
  assertEquals(deps.execer.calls[1].stdin, golden("forward_add_isolated.rules"));
  assertEquals(result.ips?.[0].address, "172.26.64.5/20");
});

Deno.test("firewall ADD prints prevResult converted to 1.x, as upstream: 0.4.0 IP versions come from the addresses", async () => {
  const prev = prevResult(["10.99.0.8/24", "fd00::8/64"], { version: "0.4.0" });
  prev.ips[0].version = "6"; // wrong, and upstream's round trip through 1.x corrects it
  delete prev.ips[1].version;
  const deps = fakeDeps();
  const plugin = { name: "firewall", supportedVersions: ["0.4.0", "1.0.0", "1.1.0"] };
  let out = "";
  const stdin = new TextEncoder().encode(
    JSON.stringify(conf({ cniVersion: "0.4.0", prevResult: prev })),
  );
  const code = await runPlugin({ ...plugin, funcs: firewallFuncs(deps) }, {
    env: {
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "abc123",
      CNI_NETNS: SANDBOX,
      CNI_IFNAME: "eth0",
      CNI_PATH: "/usr/lib/cni",
      CNIBOX_JOURNAL: "",
    },
    readStdin: () => Promise.resolve(stdin),
    writeStdout: (text) => (out += text),
    writeStderr: () => {},
  });
  assertEquals(code, 0, out);
  const result = JSON.parse(out);
  assertEquals(result.cniVersion, "0.4.0");
  assertEquals(result.ips.map((ip: { version: string }) => ip.version), ["4", "6"]);
});

Deno.test("firewall: a prevResult of the wrong version fails with upstream's doubled prefix", async () => {
  const config = conf({ prevResult: prevResult(["10.99.0.8/24"], { version: "0.4.0" }) });
  const expected =
    'could not parse prevResult: could not parse prevResult: result type supports [1.0.0 1.1.0] but unmarshalled CNIVersion is "0.4.0"';
  for (const command of ["ADD", "CHECK"] as const) {
    const funcs = firewallFuncs(fakeDeps());
    const run = command === "ADD" ? funcs.add : funcs.check!;
    const error = await assertRejects(() => run(cmdArgs(command, config)));
    assert(error instanceof Error);
    assertEquals(error.message, expected);
  }
});

Deno.test("firewall ADD changes nothing when the reference's rules are there", async () => {
  const deps = fakeDeps({ "4 filter": REFERENCE_FILTER });
  await firewallFuncs(deps).add(
    cmdArgs(
      "ADD",
      conf({ iptablesAdminChainName: "NOMAD-ADMIN", prevResult: prevResult(["10.99.0.8/24"]) }),
    ),
  );
  assertEquals(deps.execer.calls.map((c) => c.cmd), ["iptables"]);
});

Deno.test("firewall ADD lists nothing where nf_tables shows the shared rules in place", async () => {
  const deps = fakeDeps();
  const asked: unknown[] = [];
  deps.unlistedAddReady = (family, setup) => (asked.push([family, setup.addresses]), true);
  const config = conf({
    iptablesAdminChainName: "NOMAD-ADMIN",
    prevResult: prevResult(["10.99.0.8/24", "fd99::8/64"]),
  });
  await firewallFuncs(deps).add(cmdArgs("ADD", config));
  assertEquals(asked, [[4, ["10.99.0.8/32"]], [6, ["fd99::8/128"]]]);
  assertEquals(deps.execer.calls.map((c) => c.cmd), ["iptables-restore", "ip6tables-restore"]);
  // The batch of a second container on a node whose shared rules are in place.
  assertEquals(deps.execer.calls[0].stdin, golden("forward_add_unlisted.rules"));
});

Deno.test("firewall ADD lists the table after all when its unlisted batch is refused", async () => {
  // A guard fails (say the admin chain was removed): the table is listed and planned in full.
  let restores = 0;
  const deps = fakeDeps({}, false, () => ++restores === 1 ? 1 : 0);
  deps.unlistedAddReady = () => true;
  await firewallFuncs(deps).add(
    cmdArgs("ADD", conf({ prevResult: prevResult(["10.99.0.8/24"]) })),
  );
  assertEquals(deps.execer.calls.map((c) => c.cmd), [
    "iptables-restore",
    "iptables",
    "iptables-restore",
  ]);
  assertStringIncludes(deps.execer.calls[2].stdin ?? "", "-N CNI-FORWARD\n");
});

Deno.test("firewall ADD needs prevResult, and interfaces for an ingress policy", async () => {
  const funcs = firewallFuncs(fakeDeps());
  await assertRejects(
    () => funcs.add(cmdArgs("ADD", conf())),
    Error,
    "missing prevResult from earlier plugin",
  );
  const noInterfaces = { cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24" }] };
  // Also without any address, as the reference (nothing to isolate, but the bridge is asked for).
  for (const prev of [noInterfaces, { cniVersion: "1.0.0" }]) {
    await assertRejects(
      () => funcs.add(cmdArgs("ADD", conf({ ingressPolicy: "same-bridge", prevResult: prev }))),
      Error,
      'interface needs to be set for ingress policy "same-bridge", make sure to chain "firewall" plugin with "bridge"',
    );
  }
});

Deno.test("firewall DEL removes the address rules it finds and starts nothing without prevResult", async () => {
  const deps = fakeDeps({ "4 filter": REFERENCE_FILTER });
  await firewallFuncs(deps).del(cmdArgs("DEL", conf()));
  assertEquals(deps.execer.calls, []);
  await firewallFuncs(deps).del(cmdArgs("DEL", conf({ prevResult: prevResult(["10.99.0.8/24"]) })));
  // The rules to delete are known, so nothing is listed: one restore.
  assertEquals(deps.execer.calls.map((c) => c.cmd), ["iptables-restore"]);
  assertEquals(
    deps.execer.calls[0].stdin,
    "*filter\n-D CNI-FORWARD -d 10.99.0.8/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-D CNI-FORWARD -s 10.99.0.8/32 -j ACCEPT\nCOMMIT\n",
  );
});

Deno.test("firewall DEL lists the table when a rule it would delete is gone, and deletes what is left", async () => {
  // The first restore (no listing) is refused, as iptables refuses -D of a missing rule.
  const listing = REFERENCE_FILTER.replace(
    /^-A CNI-FORWARD -s 10\.99\.0\.8\/32 -j ACCEPT\n/m,
    "",
  );
  assert(listing !== REFERENCE_FILTER, "the fixture holds the rule this test removes");
  let restores = 0;
  const deps = fakeDeps({ "4 filter": listing }, false, () => ++restores === 1 ? 1 : 0);
  await firewallFuncs(deps).del(cmdArgs("DEL", conf({ prevResult: prevResult(["10.99.0.8/24"]) })));
  assertEquals(deps.execer.calls.map((c) => c.cmd), [
    "iptables-restore",
    "iptables",
    "iptables-restore",
  ]);
  assertEquals(
    deps.execer.calls[2].stdin,
    "*filter\n-D CNI-FORWARD -d 10.99.0.8/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n",
  );
});

Deno.test("firewall CHECK reports the first missing rule and creates nothing", async () => {
  const deps = fakeDeps({ "4 filter": REFERENCE_FILTER });
  const funcs = firewallFuncs(deps);
  await funcs.check!(
    cmdArgs(
      "CHECK",
      conf({ iptablesAdminChainName: "NOMAD-ADMIN", prevResult: prevResult(["10.99.0.8/24"]) }),
    ),
  );
  await assertRejects(
    () => funcs.check!(cmdArgs("CHECK", conf({ prevResult: prevResult(["10.99.0.8/24"]) }))),
    Error,
    "expected CNI-FORWARD rule [-m comment --comment CNI firewall plugin admin overrides -j CNI-ADMIN] not found",
  );
  await assertRejects(
    () => funcs.check!(cmdArgs("CHECK", conf())),
    Error,
    "missing prevResult from earlier plugin", // upstream cmdCheck (portmap says "Required prevResult missing")
  );
  assertEquals(deps.execer.calls.every((c) => c.cmd === "iptables"), true);
});

Deno.test("firewall backend detection: firewalld is refused clearly, iptables is used otherwise", async () => {
  const config = (backend?: string) =>
    conf({ ...(backend ? { backend } : {}), prevResult: prevResult(["10.0.0.2/24"]) });
  await assertRejects(
    () => firewallFuncs(fakeDeps({}, false)).add(cmdArgs("ADD", config("firewalld"))),
    Error,
    'backend "firewalld" was requested but firewalld is not running',
  );
  const unsupported = await assertRejects(
    () => firewallFuncs(fakeDeps({}, true)).add(cmdArgs("ADD", config())),
    CniError,
  );
  assertEquals(unsupported.code, 2);
  const explicit = fakeDeps({}, true);
  await firewallFuncs(explicit).add(cmdArgs("ADD", config("iptables")));
  assertEquals(explicit.execer.calls.length, 2);
  // DEL still cleans up what iptables holds.
  await firewallFuncs(fakeDeps({}, true)).del(cmdArgs("DEL", config()));
});

const NAT_OWNERS = [
  "*nat",
  ":POSTROUTING ACCEPT [0:0]",
  ":CNI-HOSTPORT-DNAT - [0:0]",
  ":CNI-DN-1 - [0:0]",
  '-A POSTROUTING -s 10.99.0.8/32 -m comment --comment "name: \\"mynet\\" id: \\"gone\\"" -j CNI-aaa',
  '-A POSTROUTING -s 10.99.0.9/32 -m comment --comment "name: \\"mynet\\" id: \\"keep\\"" -j CNI-bbb',
  '-A POSTROUTING ! -s 10.99.0.7/32 -m comment --comment "name: \\"mynet\\" id: \\"odd\\"" -j CNI-ccc',
  '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"other\\" id: \\"x\\"" -m multiport --dports 80 -j CNI-DN-1',
  "-A CNI-DN-1 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.99.0.10:80",
  "COMMIT",
].join("\n");

Deno.test("addressOwners() reads owners from ipMasq and portmap rules", () => {
  const chains = new Map<string, string[]>();
  for (const line of NAT_OWNERS.split("\n")) {
    const m = /^-A (\S+) (.*)$/.exec(line);
    if (m) chains.set(m[1], [...(chains.get(m[1]) ?? []), m[2]]);
  }
  const owners = addressOwners(chains);
  assertEquals([...owners.keys()].sort(), ["10.99.0.10/32", "10.99.0.8/32", "10.99.0.9/32"]);
  assertEquals([...owners.get("10.99.0.10/32")!], ['{"net":"other","id":"x"}']);
});

Deno.test("firewall GC removes address rules only of this network's gone containers", async () => {
  const filter = REFERENCE_FILTER.replace(
    "COMMIT",
    "-A CNI-FORWARD -s 10.99.0.9/32 -j ACCEPT\n-A CNI-FORWARD -s 10.99.0.10/32 -j ACCEPT\nCOMMIT",
  );
  const deps = fakeDeps({ "4 nat": NAT_OWNERS, "4 filter": filter, "6 nat": "", "6 filter": "" });
  await firewallFuncs(deps).gc!(cmdArgs(
    "GC",
    conf({
      cniVersion: "1.1.0",
      "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }],
    }),
  ));
  const restore = deps.execer.calls.find((c) => c.cmd === "iptables-restore");
  assertEquals(
    restore?.stdin,
    "*filter\n-D CNI-FORWARD -d 10.99.0.8/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-D CNI-FORWARD -s 10.99.0.8/32 -j ACCEPT\nCOMMIT\n",
  );
});

Deno.test("firewall DEL without prevResult removes the rules its ADD recorded, then the record", async () => {
  const deps = fakeDeps();
  const config = { iptablesAdminChainName: "NOMAD-ADMIN" };
  await firewallFuncs(deps).add(
    cmdArgs("ADD", conf({ ...config, prevResult: prevResult(["10.99.0.8/24", "fd99::8/64"]) })),
  );
  const dir = recordDir("mynet", deps.recordRoot);
  assertEquals(readRecord(dir, "abc123", "eth0"), ["10.99.0.8/32", "fd99::8/128"]);

  // The runtime lost the ADD's result: DEL comes without prevResult.
  const after = fakeDeps({ "4 filter": REFERENCE_FILTER });
  after.recordRoot = deps.recordRoot;
  await firewallFuncs(after).del(cmdArgs("DEL", conf(config)));
  assertEquals(
    after.execer.calls.find((c) => c.cmd === "iptables-restore")?.stdin,
    "*filter\n-D CNI-FORWARD -d 10.99.0.8/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-D CNI-FORWARD -s 10.99.0.8/32 -j ACCEPT\nCOMMIT\n",
  );
  assertEquals(listRecords(dir), []);
  // The emptied network and namespace directories went with the last record.
  assertEquals([...Deno.readDirSync(deps.recordRoot!)], []);
  // A second DEL finds neither record nor prevResult: nothing to start.
  const again = fakeDeps({ "4 filter": REFERENCE_FILTER });
  again.recordRoot = deps.recordRoot;
  await firewallFuncs(again).del(cmdArgs("DEL", conf(config)));
  assertEquals(again.execer.calls, []);
});

Deno.test("firewall DEL without prevResult keeps the rules of a recorded address another attachment's record claims", async () => {
  const deps = fakeDeps();
  // abc123's result was lost and its address leased again to def456.
  await firewallFuncs(deps).add(cmdArgs("ADD", conf({ prevResult: prevResult(["10.99.0.8/24"]) })));
  const dir = recordDir("mynet", deps.recordRoot);
  writeRecord(dir, "def456", "eth0", ["10.99.0.8/32"]);
  const after = fakeDeps({ "4 filter": REFERENCE_FILTER });
  after.recordRoot = deps.recordRoot;
  await firewallFuncs(after).del(cmdArgs("DEL", conf()));
  assertEquals(after.execer.calls, []);
  // Its own record goes; the other attachment's stays.
  assertEquals(listRecords(dir).map((r) => r.containerId), ["def456"]);
  // With prevResult naming the address, DEL removes its rules, as the reference does.
  const withPrev = fakeDeps({ "4 filter": REFERENCE_FILTER });
  withPrev.recordRoot = deps.recordRoot;
  await firewallFuncs(withPrev).del(
    cmdArgs("DEL", conf({ prevResult: prevResult(["10.99.0.8/24"]) })),
  );
  assertEquals(withPrev.execer.calls.map((c) => c.cmd), ["iptables-restore"]);
});

Deno.test("firewall GC removes recorded rules of gone attachments unless a live one holds the address", async () => {
  const filter = REFERENCE_FILTER.replace(
    "COMMIT",
    "-A CNI-FORWARD -s 10.99.0.20/32 -j ACCEPT\n-A CNI-FORWARD -s 10.99.0.21/32 -j ACCEPT\nCOMMIT",
  );
  const deps = fakeDeps({ "4 nat": "", "4 filter": filter, "6 nat": "", "6 filter": "" });
  const dir = recordDir("mynet", deps.recordRoot);
  writeRecord(dir, "gone", "eth0", ["10.99.0.20/32"]);
  writeRecord(dir, "gone-reused", "eth0", ["10.99.0.21/32"]);
  writeRecord(dir, "keep", "eth0", ["10.99.0.21/32"]);
  writeRecord(dir, "keep", "eth1", ["10.99.0.22/32"]); // same container, interface gone
  // Only host-form addresses ever reach rule text, whatever a record file holds.
  writeRecord(dir, "forged", "eth0", ["10.99.0.23/32 -j DROP\n-A INPUT", "10.99.0.24/24", "x"]);
  assertEquals(readRecord(dir, "forged", "eth0"), []);
  await firewallFuncs(deps).gc!(cmdArgs(
    "GC",
    conf({
      cniVersion: "1.1.0",
      "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }],
    }),
  ));
  assertEquals(
    deps.execer.calls.find((c) => c.cmd === "iptables-restore")?.stdin,
    "*filter\n-D CNI-FORWARD -s 10.99.0.20/32 -j ACCEPT\nCOMMIT\n",
  );
  assertEquals(listRecords(dir).map((r) => `${r.containerId}@${r.ifname}`), ["keep@eth0"]);
});

Deno.test("firewall GC keeps the rules of an address another network's attachment recorded", async () => {
  const filter = REFERENCE_FILTER.replace(
    "COMMIT",
    "-A CNI-FORWARD -s 10.99.0.20/32 -j ACCEPT\n-A CNI-FORWARD -s 10.99.0.21/32 -j ACCEPT\nCOMMIT",
  );
  // The nat table says a gone container of this network masqueraded 10.99.0.21.
  const nat = '-A POSTROUTING -s 10.99.0.21/32 -m comment --comment "name: \\"mynet\\" id: ' +
    '\\"gone2\\"" -j CNI-0123456789abcdef01234567\n';
  const deps = fakeDeps({ "4 nat": nat, "4 filter": filter, "6 nat": "", "6 filter": "" });
  const dir = recordDir("mynet", deps.recordRoot);
  writeRecord(dir, "gone", "eth0", ["10.99.0.20/32"]);
  // Overlapping subnets on two bridges: the other network's live container has both addresses.
  writeRecord(recordDir("othernet", deps.recordRoot), "other", "eth0", [
    "10.99.0.20/32",
    "10.99.0.21/32",
  ]);
  await firewallFuncs(deps).gc!(cmdArgs(
    "GC",
    conf({ cniVersion: "1.1.0", "cni.dev/valid-attachments": [] }),
  ));
  assertEquals(deps.execer.calls.filter((c) => c.cmd === "iptables-restore"), []);
  assertEquals(listRecords(dir), []);
  removeRecord(recordDir("othernet", deps.recordRoot), "other", "eth0");
});

// ---------------------------------------------------------------- side by side with the reference (root)

const REF = HAVE_REFERENCE && ROOT;

function fwCall(
  command: PluginCall["command"],
  extra: Record<string, unknown>,
  containerId = "abc123",
): PluginCall {
  return { plugin: "firewall", command, containerId, conf: conf(extra) };
}

// Upstream (v1.9.1) comments the shared isolation rules "(ingressPolicy: same-bridge|isolated)";
// the reference binary here (1.1.1) predates "isolated" and says "(ingressPolicy: same-bridge)".
const asReference = (save: string) =>
  save.replaceAll("(ingressPolicy: same-bridge|isolated)", "(ingressPolicy: same-bridge)");

const SCENARIOS: Record<string, Record<string, unknown>> = {
  "single stack": { prevResult: prevResult(["10.77.0.3/24"]) },
  "dual stack, two addresses": { prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]) },
  "Nomad: 0.4.0 with NOMAD-ADMIN": {
    cniVersion: "0.4.0",
    name: "nomad",
    backend: "iptables",
    iptablesAdminChainName: "NOMAD-ADMIN",
    prevResult: prevResult(["172.26.64.5/20"], { version: "0.4.0", bridge: "nomad" }),
  },
  "ingressPolicy same-bridge": {
    ingressPolicy: "same-bridge",
    iptablesAdminChainName: "MY-ADMIN",
    prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]),
  },
  "an admin chain name with characters iptables accepts": {
    iptablesAdminChainName: "cni@admin:1!",
    prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]),
  },
};

Deno.test({
  name:
    "firewall DEL removes the rules whatever admin chain name or ingress policy DEL is given (kernel)",
  ignore: !ROOT,
  async fn() {
    // An ADD refused on its settings is followed by a DEL with the same settings: it must not
    // fail too (the runtime would stop its DEL chain there), and the rules of an earlier ADD go.
    await using host = await createNetns("cbx-fw");
    const prev = { prevResult: prevResult(["10.77.0.3/24"]) };
    assertEquals((await runOurs(host, fwCall("ADD", prev))).code, 0);
    const bad = { ...prev, iptablesAdminChainName: "MY ADMIN", ingressPolicy: "bogus" };
    const refused = await runOurs(host, fwCall("ADD", bad));
    assertEquals([refused.code, JSON.parse(refused.stdout).code], [1, 7]);
    const del = await runOurs(host, fwCall("DEL", bad));
    assertEquals(del.code, 0, del.stdout);
    assertEquals((await saves(host)).includes("10.77.0.3/32"), false);
  },
});

Deno.test({
  name:
    "firewall DEL removes intact rules without a tool, and a doubled one through the tool, as the reference does (kernel, reference)",
  ignore: !REF,
  async fn() {
    const extra = { prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]) };
    const run = async (deleter: typeof runOurs, double: boolean) => {
      await using host = await createNetns("cbx-fw");
      // The reference's ADD: its rules are what iptables makes, as on a node that switched.
      assertEquals((await runReference(host, fwCall("ADD", extra))).code, 0);
      if (double) {
        const copy = ["-t", "filter", "-A", "CNI-FORWARD", "-s", "10.77.0.3/32", "-j", "ACCEPT"];
        assertEquals((await host.exec("iptables", copy)).code, 0);
      }
      const del = await deleter(host, fwCall("DEL", extra));
      assertEquals(del.code, 0, del.stderr);
      return { save: await saves(host), calls: del.calls.map((c) => c.cmd) };
    };
    const intact = await run(runOurs, false);
    assertEquals(intact.calls, []);
    assertEquals(intact.save, (await run(runReference, false)).save);
    // A copy of one rule: not the node ADD left, so the tool deletes one copy of each, by text.
    const doubled = await run(runOurs, true);
    assertEquals(doubled.calls, ["iptables-restore"]);
    assertEquals(doubled.save, (await run(runReference, true)).save);
    assertStringIncludes(doubled.save, "-A CNI-FORWARD -s 10.77.0.3/32 -j ACCEPT");
    // An operator's rule in place of the reply rule (another --ctstate): not ours to delete.
    const swapped = async (deleter: typeof runOurs) => {
      await using host = await createNetns("cbx-fw");
      assertEquals((await runReference(host, fwCall("ADD", extra))).code, 0);
      const rule = ["-d", "10.77.0.3/32", "-m", "conntrack", "--ctstate"];
      await host.exec("iptables", [
        "-D",
        "CNI-FORWARD",
        ...rule,
        "RELATED,ESTABLISHED",
        "-j",
        "ACCEPT",
      ]);
      await host.exec("iptables", ["-A", "CNI-FORWARD", ...rule, "INVALID", "-j", "ACCEPT"]);
      const del = await deleter(host, fwCall("DEL", extra));
      return { save: await saves(host), code: del.code };
    };
    const ours = await swapped(runOurs);
    assertEquals(ours, await swapped(runReference));
    assertStringIncludes(ours.save, "--ctstate INVALID -j ACCEPT");
  },
});

Deno.test({
  name:
    "firewall ADD appends the rules without a tool where the shared rules are in place, byte for byte as iptables makes them (kernel, reference)",
  ignore: !REF,
  async fn() {
    const first = fwCall("ADD", { prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]) }, "c1");
    const secondConf = { prevResult: prevResult(["10.77.0.4/24", "fd77::4/64"]) };
    const run = async (adder: typeof runOurs) => {
      await using host = await createNetns("cbx-fw");
      assertEquals((await runReference(host, first)).code, 0);
      const add = await adder(host, fwCall("ADD", secondConf, "c2"));
      assertEquals(add.code, 0, add.stderr);
      const afterAdd = { save: await saves(host), dump: await nftTableDump(host, "filter") };
      // The reference's DEL finds and removes them (a node switching back).
      assertEquals((await runReference(host, fwCall("DEL", secondConf, "c2"))).code, 0);
      return { calls: add.calls.map((c) => c.cmd), afterAdd, afterDel: await saves(host) };
    };
    const ours = await run(runOurs);
    const reference = await run(runReference);
    assertEquals(ours.calls, []);
    assertEquals(ours.afterAdd, reference.afterAdd);
    assertStringIncludes(ours.afterAdd.save, "-A CNI-FORWARD -s 10.77.0.4/32 -j ACCEPT");
    assertEquals(ours.afterDel, reference.afterDel);
    assertEquals(ours.afterDel.includes("10.77.0.4"), false);
    // The node's first ADD has no shared rules to rely on: the tools list and make them.
    await using fresh = await createNetns("cbx-fw");
    const add = await runOurs(fresh, first);
    assertEquals(add.calls.map((c) => c.cmd), [
      "iptables",
      "ip6tables",
      "iptables-restore",
      "ip6tables-restore",
    ]);
  },
});

for (const [name, extra] of Object.entries(SCENARIOS)) {
  Deno.test({
    name: `firewall ADD/DEL leave the reference's exact rules: ${name} (kernel, reference)`,
    ignore: !REF,
    async fn() {
      const scenario: Scenario = { add: [fwCall("ADD", extra)], del: [fwCall("DEL", extra)] };
      const run = (adder: typeof runOurs, deleter: typeof runOurs) =>
        runScenario(scenario, { adder, deleter, createNetns });
      const ref = await run(runReference, runReference);
      const ours = await run(runOurs, runOurs);
      assertEquals(asReference(ours.afterAdd), ref.afterAdd);
      assertEquals(asReference(ours.afterDel), ref.afterDel);
      assertEquals((await run(runReference, runOurs)).afterDel, ref.afterDel);
      assertEquals(asReference((await run(runOurs, runReference)).afterDel), ref.afterDel);
      const families = new Set(
        (extra.prevResult as { ips: { address: string }[] }).ips.map((ip) =>
          ip.address.includes(":")
        ),
      );
      for (const p of ours.processes) {
        assert(p.count <= 2 * families.size, `${p.command}: ${p.count} processes`);
      }
    },
  });
}

/** ADD of c1 then c2, DEL of c1: cnibox leaves the reference's rules after each step. */
async function assertLikeReference(
  first: Record<string, unknown>,
  second: Record<string, unknown>,
): Promise<void> {
  const scenario: Scenario = {
    add: [fwCall("ADD", first, "c1"), fwCall("ADD", second, "c2")],
    del: [fwCall("DEL", first, "c1")],
  };
  const ref = await runScenario(scenario, {
    adder: runReference,
    deleter: runReference,
    createNetns,
  });
  const ours = await runScenario(scenario, { adder: runOurs, deleter: runOurs, createNetns });
  assertEquals(asReference(ours.afterAdd), ref.afterAdd);
  assertEquals(asReference(ours.afterDel), ref.afterDel);
}

Deno.test({
  name:
    "firewall ADD of a second container, without a listing, matches the reference (kernel, reference)",
  ignore: !REF,
  fn: () =>
    assertLikeReference(
      { prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]) },
      { prevResult: prevResult(["10.77.0.4/24", "fd77::4/64"]) },
    ),
});

Deno.test({
  name: "firewall ADD for a second bridge and container matches the reference (kernel, reference)",
  ignore: !REF,
  fn: () =>
    assertLikeReference(
      {
        ingressPolicy: "same-bridge",
        prevResult: prevResult(["10.77.0.3/24"], { bridge: "cni-test0" }),
      },
      {
        ingressPolicy: "same-bridge",
        prevResult: prevResult(["10.78.0.2/24"], { bridge: "cni-test1" }),
      },
    ),
});

Deno.test({
  name:
    "firewall ADD starts no tool once the shared rules are in place, and lists on a node's first ADD, a leftover address rule or a doubled jump (kernel)",
  ignore: !ROOT,
  async fn() {
    await using host = await createNetns("cbx-fw");
    // nf_tables can be asked only about what iptables-nft wrote; legacy always lists.
    const nft = usesNftables(4) && usesNftables(6);
    const add = async (id: string, addresses: string[]) => {
      const out = await runOurs(host, fwCall("ADD", { prevResult: prevResult(addresses) }, id));
      assertEquals(out.code, 0, out.stdout);
      return out.calls.map((c) => c.cmd).sort();
    };
    const v4Rules = async () =>
      (await saves(host)).split("--- ip6tables ---")[0].split("\n").filter((l) =>
        l.startsWith("-A ")
      );
    const count = (rules: string[], rule: string) => rules.filter((r) => r === rule).length;
    const listed = ["ip6tables", "ip6tables-restore", "iptables", "iptables-restore"];

    assertEquals(await add("c1", ["10.77.0.3/24", "fd77::3/64"]), listed);
    assertEquals(
      await add("c2", ["10.77.0.4/24", "fd77::4/64"]),
      nft ? [] : listed,
    );
    // A rule an earlier container left for the same address: listed, so not appended twice.
    await host.exec("iptables", ["-A", "CNI-FORWARD", "-s", "10.77.0.5/32", "-j", "ACCEPT"]);
    await host.exec("ip6tables", ["-A", "CNI-FORWARD", "-s", "fd77::5/128", "-j", "ACCEPT"]);
    assertEquals(await add("c3", ["10.77.0.5/24", "fd77::5/64"]), listed);
    assertEquals(count(await v4Rules(), "-A CNI-FORWARD -s 10.77.0.5/32 -j ACCEPT"), 1);
    const v6Rules = (await saves(host)).split("--- ip6tables ---")[1].split("\n");
    assertEquals(count(v6Rules, "-A CNI-FORWARD -s fd77::5/128 -j ACCEPT"), 1);
    // A doubled shared jump (the reference's check-then-insert race): listed and repaired.
    const jump = '-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD';
    await host.exec("iptables", [
      "-A",
      "FORWARD",
      ...["-m", "comment", "--comment", "CNI firewall plugin rules", "-j", "CNI-FORWARD"],
    ]);
    assertEquals(count(await v4Rules(), jump), 2);
    assertEquals(await add("c4", ["10.77.0.6/24"]), ["iptables", "iptables-restore"]);
    const rules = await v4Rules();
    assertEquals(count(rules, jump), 1);
    for (const address of ["10.77.0.3", "10.77.0.4", "10.77.0.6"]) {
      assertEquals(count(rules, `-A CNI-FORWARD -s ${address}/32 -j ACCEPT`), 1, address);
    }
  },
});

Deno.test({
  name: "firewall isolated policy drops traffic within the bridge too (kernel)",
  ignore: !ROOT,
  async fn() {
    await using host = await createNetns("cbx-fw");
    const out = await runOurs(
      host,
      fwCall("ADD", {
        ingressPolicy: "isolated",
        prevResult: prevResult(["10.77.0.3/24"], { bridge: "br-iso" }),
      }),
    );
    assertEquals(out.code, 0, out.stdout);
    const v4 = (await saves(host)).split("--- ip6tables ---")[0];
    const stage1 = v4.split("\n").filter((l) => l.startsWith("-A CNI-ISOLATION-STAGE-1"));
    assertEquals(stage1, [
      '-A CNI-ISOLATION-STAGE-1 -i br-iso -o br-iso -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP',
      '-A CNI-ISOLATION-STAGE-1 -i br-iso ! -o br-iso -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j CNI-ISOLATION-STAGE-2',
      '-A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN',
    ]);
    assertEquals(v4.indexOf("-j CNI-ISOLATION-STAGE-1") < v4.indexOf("-j CNI-FORWARD"), true);
  },
});

Deno.test({
  name: "firewall bad admin chain names fail with code 7 and change no rule (kernel)",
  ignore: !ROOT,
  async fn() {
    await using host = await createNetns("cbx-fw");
    assertEquals(
      (await runOurs(host, fwCall("ADD", { prevResult: prevResult(["10.77.0.3/24"]) }))).code,
      0,
    );
    const before = await saves(host);
    for (const name of ["MY ADMIN", 'MY"ADMIN', "MY-ADMIN\n-A FORWARD", "A".repeat(29)]) {
      const out = await runOurs(
        host,
        fwCall(
          "ADD",
          { iptablesAdminChainName: name, prevResult: prevResult(["10.77.0.4/24"]) },
          "bad",
        ),
      );
      assertEquals([out.code, JSON.parse(out.stdout).code], [1, 7], out.stdout);
      assertEquals(out.calls, []);
      assertEquals(await saves(host), before);
    }
  },
});

Deno.test({
  name: "firewall CHECK passes after ADD and names the missing rule after DEL (kernel)",
  ignore: !ROOT,
  async fn() {
    await using host = await createNetns("cbx-fw");
    const extra = { prevResult: prevResult(["10.77.0.3/24", "fd77::3/64"]) };
    assertEquals((await runOurs(host, fwCall("ADD", extra))).code, 0);
    assertEquals((await runOurs(host, fwCall("CHECK", extra))).code, 0);
    assertEquals((await runOurs(host, fwCall("DEL", extra))).code, 0);
    const check = await runOurs(host, fwCall("CHECK", extra));
    assertEquals(
      JSON.parse(check.stdout).msg,
      "expected rule [-d 10.77.0.3/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT] not found",
    );
  },
});

Deno.test({
  name: "firewall GC removes address rules of gone containers, known from portmap's DNAT (kernel)",
  ignore: !ROOT,
  async fn() {
    await using host = await createNetns("cbx-fw");
    for (
      const [id, ip, port] of [["keep", "10.77.0.3/24", 81], ["gone", "10.77.0.4/24", 82]] as const
    ) {
      const prev = prevResult([ip]);
      assertEquals((await runOurs(host, fwCall("ADD", { prevResult: prev }, id))).code, 0);
      const pm: PluginCall = {
        plugin: "portmap",
        command: "ADD",
        containerId: id,
        conf: {
          ...conf({ type: "portmap" }),
          prevResult: prev,
          runtimeConfig: { portMappings: [{ hostPort: port, containerPort: 80, protocol: "tcp" }] },
        },
      };
      assertEquals((await runOurs(host, pm)).code, 0);
    }
    const gc = await runOurs(
      host,
      fwCall("GC", {
        cniVersion: "1.1.0",
        "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }],
      }),
    );
    assertEquals([gc.code, gc.stdout], [0, ""]);
    const v4 = (await saves(host)).split("--- ip6tables ---")[0];
    assertStringIncludes(v4, "-A CNI-FORWARD -s 10.77.0.3/32 -j ACCEPT");
    assertEquals(v4.includes("10.77.0.4/32"), false);
  },
});

Deno.test({
  name:
    "firewall ADD after an operator reshaped the shared jumps puts the reference's back, as the reference does (kernel, reference)",
  ignore: !REF,
  async fn() {
    const conf = (address: string) => ({ prevResult: prevResult([address]) });
    const run = async (adder: typeof runOurs) => {
      await using host = await createNetns("cbx-fw");
      assertEquals((await runReference(host, fwCall("ADD", conf("10.77.0.3/24"), "c1"))).code, 0);
      // Jumps an operator replaced: another shape, so not the reference's.
      for (const args of [["FORWARD", "1", "-i", "cbxbr0"], ["CNI-FORWARD", "1"]]) {
        const target = args[0] === "FORWARD" ? "CNI-FORWARD" : "CNI-ADMIN";
        assertEquals((await host.exec("iptables", ["-R", ...args, "-j", target])).code, 0);
      }
      const add = await adder(host, fwCall("ADD", conf("10.77.0.4/24"), "c2"));
      assertEquals(add.code, 0, add.stderr);
      const check = await runReference(host, fwCall("CHECK", conf("10.77.0.4/24"), "c2"));
      return { save: await saves(host), check: check.code };
    };
    const ours = await run(runOurs);
    assertEquals(ours, await run(runReference));
    assertEquals(ours.check, 0);
    assertStringIncludes(
      ours.save,
      '-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
    );
  },
});

Deno.test({
  name:
    "firewall ADD and DEL with a read-only /run (no lock, no records) leave what the reference leaves (kernel, reference)",
  ignore: !REF,
  async fn() {
    const conf = (address: string) => ({ prevResult: prevResult([address, "fd77::3/64"]) });
    const run = async (runner: typeof runOurs, readOnlyRun: boolean) => {
      await using host = await createNetns("cbx-fw");
      // Ids of this run alone: records of an earlier namespace with the same inode may be left.
      const [c1, c2] = [crypto.randomUUID(), crypto.randomUUID()];
      const steps: PluginCall[] = [
        fwCall("ADD", conf("10.77.0.3/24"), c1), // the node's first ADD: the tool's path
        fwCall("ADD", conf("10.77.0.4/24"), c2), // an intact node: the plugin's own batch
        fwCall("DEL", conf("10.77.0.4/24"), c2),
      ];
      for (const step of steps) {
        const out = await runner(host, { ...step, readOnlyRun });
        assertEquals(out.code, 0, out.stdout + out.stderr);
      }
      if (readOnlyRun) {
        // The read-only /run is the host's, so a record written there would show here.
        const record = `/run/cnibox/firewall/${Deno.statSync(host.path).ino}/mynet/${c1}@eth0`;
        assertEquals(await Deno.stat(record).then(() => true, () => false), false);
      }
      return await saves(host);
    };
    const ours = await run(runOurs, true);
    assertEquals(ours, await run(runReference, false));
    assertStringIncludes(ours, "-A CNI-FORWARD -s 10.77.0.3/32 -j ACCEPT");
  },
});

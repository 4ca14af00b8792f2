/**
 * Nomad-shaped runs: cnibox's plugins driven through `cnibox exec` (our
 * libcni-like runtime) with exactly the inputs Nomad produces — its default
 * bridge conflist byte for byte, CNI_ARGS with `IgnoreUnknown` and `NOMAD_*`
 * on ADD and CHECK and none on DEL, go-cni's PascalCase port mappings (tcp
 * and udp, `HostIP: ""`), an allocation UUID as container ID, `eth0` — in a
 * private "host" namespace. Also the `cni/<name>` configurations operators
 * run: an existing LAN bridge, and macvlan chained with our portmap.
 *
 * Run as root: `deno test -A e2e/nomad_test.ts`.
 *
 * @module
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
  assertStringIncludes,
} from "@std/assert";
import { HAVE_REFERENCE, REFERENCE_DIR } from "../lib/testing/harness.ts";
import { createNetns, mustSh, type TestNetns } from "../lib/testing/netns.ts";
import { announceSkip, cniboxBin, pluginsUnderTest, readConflist, skipReason } from "./_env.ts";
import { type Attachment, cniExec, type CniHost, createCniHost, mustCniExec } from "./_exec.ts";
import {
  cachedResults,
  defaultGateway,
  firewallLeftovers,
  firewallLines,
  inSubnet,
  ipv4Addresses,
  leases,
  probe,
  startServer,
  veths,
} from "./_net.ts";
import {
  fingerprintVersion,
  NOMAD_BRIDGE_PLUGINS,
  nomadAllocAddress,
  nomadCniArgs,
  nomadConflist,
  nomadPortMappings,
  satisfiesAtLeast,
} from "./_nomad.ts";

const SKIP = skipReason({
  ip: "iproute2",
  iptables: "iptables",
  "iptables-save": "iptables",
  "ip6tables-save": "iptables",
});
announceSkip("Nomad-shaped kernel tests (e2e/nomad_test.ts)", SKIP);

const NETWORK = "nomad";
const SUBNET = "172.26.64.0/20";
const GATEWAY = "172.26.64.1";
/** The port the allocations' servers listen on (Nomad's `to`). */
const TO_PORT = 8080;

/** An allocation: its namespace, UUID and (after ADD) address. */
interface Alloc {
  ns: TestNetns;
  id: string;
  hostPort: number;
  ip?: string;
}

/** A private Nomad client host: Nomad's conflist, and the admin chain Nomad creates before Setup. */
async function nomadHost(prefix: string): Promise<CniHost> {
  const host = await createCniHost(prefix);
  try {
    await host.addConflist("nomad.conflist", await nomadConflist(host.dataDir));
    // Nomad's ensureAdminChain: filter NOMAD-ADMIN with `-o <bridge> -d <subnet> -j ACCEPT`.
    await mustSh("ip", ["netns", "exec", host.ns.name, "iptables", "-N", "NOMAD-ADMIN"]);
    await mustSh("ip", [
      "netns",
      "exec",
      host.ns.name,
      "iptables",
      "-A",
      "NOMAD-ADMIN",
      "-o",
      NETWORK,
      "-d",
      SUBNET,
      "-j",
      "ACCEPT",
    ]);
  } catch (error) {
    await host[Symbol.asyncDispose]();
    throw error;
  }
  return host;
}

async function newAlloc(host: CniHost, hostPort: number): Promise<Alloc> {
  return { ns: await host.sandbox(), id: crypto.randomUUID(), hostPort };
}

/** Nomad's Setup/Check inputs (with CNI_ARGS) or Teardown inputs (without). */
function nomadInputs(alloc: Alloc, verb: "add" | "check" | "del"): Attachment {
  return {
    network: NETWORK,
    netns: alloc.ns.path,
    containerId: alloc.id,
    cniArgs: verb === "del" ? "" : nomadCniArgs({ id: alloc.id }),
    capArgs: { portMappings: nomadPortMappings(alloc.hostPort, TO_PORT) },
  };
}

/** ADD as Nomad does it; checks the address Nomad would record and returns it. */
async function addAlloc(host: CniHost, alloc: Alloc, cniPath: string): Promise<string> {
  const result = JSON.parse(
    await mustCniExec(host, "add", { ...nomadInputs(alloc, "add"), cniPath }),
  );
  const picked = nomadAllocAddress(result);
  assertEquals(picked.interfaceName, "eth0");
  const eth0 = result.interfaces.find((i: { name: string }) => i.name === "eth0");
  assertEquals(eth0.sandbox, alloc.ns.path);
  assert(inSubnet(picked.address, SUBNET), `${picked.address} is outside ${SUBNET}`);
  assertEquals(await ipv4Addresses(alloc.ns, "eth0"), [`${picked.address}/20`]);
  assertEquals(await defaultGateway(alloc.ns), GATEWAY);
  alloc.ip = picked.address;
  return picked.address;
}

/** Everything of `allocs` a DEL must remove from the host. */
async function leftovers(host: CniHost, allocs: Alloc[]) {
  return {
    firewall: await firewallLeftovers(host.ns, {
      ids: allocs.map((a) => a.id),
      ips: allocs.flatMap((a) => a.ip ? [a.ip] : []),
    }),
    veths: await veths(host.ns),
    leases: await leases(host.dataDir, NETWORK),
    cache: await cachedResults(host.cacheDir),
  };
}

const NOTHING_LEFT = { firewall: [], veths: [], leases: [], cache: [] };

async function runBare(path: string): Promise<{ code: number; output: string }> {
  // Nomad: no arguments, no CNI_COMMAND, 3 s timeout, stdout and stderr read together.
  const out = await new Deno.Command(path, {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    clearEnv: true,
    stdin: "null",
    signal: AbortSignal.timeout(3000),
  }).output();
  const text = new TextDecoder();
  return {
    code: out.code,
    output: text.decode(out.stdout) + text.decode(out.stderr),
  };
}

Deno.test("Nomad fingerprint: each plugin reports a version Nomad's constraints accept", async () => {
  const dir = await pluginsUnderTest();
  for (const name of NOMAD_BRIDGE_PLUGINS) {
    const run = await runBare(`${dir}/${name}`);
    assertEquals(run.code, 0, `${name} exited ${run.code}: ${run.output}`);
    const version = fingerprintVersion(run.output);
    assert(version !== undefined, `${name}: no semver token in ${JSON.stringify(run.output)}`);
    // Bridge-mode jobs need >= 0.4.0 from all five; CHECK on restore needs bridge >= 1.3.0.
    assert(satisfiesAtLeast(version, "0.4.0"), `${name} reports ${version}`);
    if (name === "bridge") assert(satisfiesAtLeast(version, "1.3.0"), `bridge reports ${version}`);
  }
});

Deno.test("Nomad fingerprint: the cnibox entry in cni_path exits 0 within Nomad's 3 s", async () => {
  // Nomad runs every executable in cni_path, the multi-call program's own name included.
  const run = await runBare(await cniboxBin());
  assertEquals(run.code, 0, run.output);
});

Deno.test({
  name: "Nomad fingerprint: Debian's reference bridge misses the CHECK gate (the check can fail)",
  ignore: !HAVE_REFERENCE,
  async fn() {
    const version = fingerprintVersion((await runBare(`${REFERENCE_DIR}/bridge`)).output);
    // "version unknown": Nomad ends up with the last protocol version on line 2.
    assertEquals(version, "1.0.0");
    assertEquals(satisfiesAtLeast(version!, "1.3.0"), false);
  },
});

Deno.test({
  name:
    "Nomad bridge: ADD gives the alloc address, CHECK passes, traffic flows, DEL leaves nothing",
  ignore: SKIP !== undefined,
  async fn() {
    const plugins = await pluginsUnderTest();
    await using host = await nomadHost("cbx-e2e-nb");
    const a = await newAlloc(host, 28090);
    const b = await newAlloc(host, 28080);
    await addAlloc(host, a, plugins);
    await addAlloc(host, b, plugins);
    assertNotEquals(a.ip, b.ip);
    assert((await firewallLeftovers(host.ns, { ids: [b.id] })).length > 0, "no rules for b?");

    for (const alloc of [a, b]) {
      await mustCniExec(host, "check", { ...nomadInputs(alloc, "check"), cniPath: plugins });
    }

    {
      await using _tcp = await startServer(b.ns, { port: TO_PORT, reply: "tcp:b" });
      await using _udp = await startServer(b.ns, { port: TO_PORT, reply: "udp:b", udp: true });
      assertEquals(await probe(a.ns, { host: b.ip!, port: TO_PORT }), "tcp:b");
      assertEquals(await probe(host.ns, { host: b.ip!, port: TO_PORT }), "tcp:b");
      assertEquals(await probe(host.ns, { host: "127.0.0.1", port: b.hostPort }), "tcp:b");
      assertEquals(
        await probe(host.ns, { host: "127.0.0.1", port: b.hostPort, udp: true }),
        "udp:b",
      );
    }

    // CHECK is not a no-op: with b's DNAT rules gone it must fail (Nomad then re-creates the alloc).
    const entry = (await firewallLines(host.ns))
      .find((line) => line.startsWith("-A CNI-HOSTPORT-DNAT") && line.includes(b.id));
    const dnatChain = entry?.match(/-j (CNI-DN-\w+)/)?.[1];
    assert(dnatChain, "no CNI-DN chain for b after ADD with port mappings");
    await mustSh("ip", ["netns", "exec", host.ns.name, "iptables", "-t", "nat", "-F", dnatChain]);
    const broken = await cniExec(host, "check", { ...nomadInputs(b, "check"), cniPath: plugins });
    assertNotEquals(broken.code, 0, "CHECK passed with the DNAT rules flushed");

    for (const alloc of [a, b]) {
      await mustCniExec(host, "del", { ...nomadInputs(alloc, "del"), cniPath: plugins });
      const eth0 = await alloc.ns.exec("ip", ["link", "show", "eth0"]);
      assertNotEquals(eth0.code, 0, "eth0 still in the allocation after DEL");
    }
    assertEquals(await leftovers(host, [a, b]), NOTHING_LEFT);
  },
});

/** A CNI_PATH directory with every plugin of `dir` except `omit` (symlinks). */
async function pathWithout(host: CniHost, dir: string, omit: string): Promise<string> {
  const partial = `${host.work}/without-${omit}`;
  await Deno.mkdir(partial);
  for (const name of NOMAD_BRIDGE_PLUGINS) {
    if (name !== omit) await Deno.symlink(`${dir}/${name}`, `${partial}/${name}`);
  }
  return partial;
}

/** The host's rules for one alloc appear once each (a retried ADD must not duplicate them). */
async function assertNoDuplicateRules(host: CniHost, alloc: Alloc): Promise<void> {
  const lines = await firewallLeftovers(host.ns, { ids: [alloc.id], ips: [alloc.ip!] });
  const rules = lines.filter((line) => line.startsWith("-A"));
  assert(rules.length > 0, "no rules for the allocation");
  assertEquals(rules.length, new Set(rules).size, `duplicated rules:\n${rules.join("\n")}`);
}

Deno.test({
  name: "Nomad bridge: ADD retried without DEL after a later plugin failed succeeds",
  ignore: SKIP !== undefined,
  async fn() {
    const plugins = await pluginsUnderTest();
    await using host = await nomadHost("cbx-e2e-nr");
    const alloc = await newAlloc(host, 28080);
    // Attempt 1: loopback, bridge and firewall succeed, then portmap cannot be found.
    const first = await cniExec(host, "add", {
      ...nomadInputs(alloc, "add"),
      cniPath: await pathWithout(host, plugins, "portmap"),
    });
    assertNotEquals(first.code, 0);
    assertStringIncludes(first.stderr, "portmap");
    assertEquals((await ipv4Addresses(alloc.ns, "eth0")).length, 1, "attempt 1 got no address");

    // Nomad sleeps 1-2 s and calls ADD again, without DEL.
    await addAlloc(host, alloc, plugins);
    assertEquals((await leases(host.dataDir, NETWORK)).length, 1);
    await assertNoDuplicateRules(host, alloc);
    await mustCniExec(host, "check", { ...nomadInputs(alloc, "check"), cniPath: plugins });
    {
      await using _tcp = await startServer(alloc.ns, { port: TO_PORT, reply: "retried" });
      assertEquals(await probe(host.ns, { host: "127.0.0.1", port: alloc.hostPort }), "retried");
    }

    await mustCniExec(host, "del", { ...nomadInputs(alloc, "del"), cniPath: plugins });
    assertEquals(await leftovers(host, [alloc]), NOTHING_LEFT);
  },
});

Deno.test({
  name: "Nomad bridge: ADD retried without DEL after IPAM failed inside bridge succeeds",
  ignore: SKIP !== undefined,
  async fn() {
    const plugins = await pluginsUnderTest();
    await using host = await nomadHost("cbx-e2e-ni");
    const alloc = await newAlloc(host, 28080);
    // Attempt 1: host-local cannot create its lease dir (a file is in the way) after the
    // veth exists.
    await Deno.mkdir(host.dataDir);
    await Deno.writeTextFile(`${host.dataDir}/${NETWORK}`, "in the way");
    const first = await cniExec(host, "add", { ...nomadInputs(alloc, "add"), cniPath: plugins });
    assertNotEquals(first.code, 0);
    assertEquals(await veths(host.ns), [], "the failed ADD left its host veth behind");

    await Deno.remove(`${host.dataDir}/${NETWORK}`);
    await addAlloc(host, alloc, plugins);
    assertEquals((await leases(host.dataDir, NETWORK)).length, 1);
    await assertNoDuplicateRules(host, alloc);
    await mustCniExec(host, "check", { ...nomadInputs(alloc, "check"), cniPath: plugins });

    await mustCniExec(host, "del", { ...nomadInputs(alloc, "del"), cniPath: plugins });
    assertEquals(await leftovers(host, [alloc]), NOTHING_LEFT);
  },
});

Deno.test({
  name: "Nomad bridge: the reference plugins fail the same retry (the retry test can fail)",
  ignore: SKIP !== undefined || !HAVE_REFERENCE,
  async fn() {
    await using host = await nomadHost("cbx-e2e-nx");
    const alloc = await newAlloc(host, 28080);
    const first = await cniExec(host, "add", {
      ...nomadInputs(alloc, "add"),
      cniPath: await pathWithout(host, REFERENCE_DIR, "portmap"),
    });
    assertNotEquals(first.code, 0);
    const retry = await cniExec(host, "add", {
      ...nomadInputs(alloc, "add"),
      cniPath: REFERENCE_DIR,
    });
    assertNotEquals(retry.code, 0);
    assertStringIncludes(retry.stderr, "already exists");
  },
});

/** ADD, then the allocation's netns disappears, then Nomad's DEL; returns what is left. */
async function delAfterNetnsGone(prefix: string, plugins: string) {
  await using host = await nomadHost(prefix);
  const alloc = await newAlloc(host, 28080);
  await addAlloc(host, alloc, plugins);
  assert((await leftovers(host, [alloc])).firewall.length > 0, "no rules after ADD?");
  await alloc.ns.remove();
  const del = await cniExec(host, "del", { ...nomadInputs(alloc, "del"), cniPath: plugins });
  return { del, left: await leftovers(host, [alloc]) };
}

Deno.test({
  name: "Nomad bridge: DEL after the netns is gone leaves nothing",
  ignore: SKIP !== undefined,
  async fn() {
    const { del, left } = await delAfterNetnsGone("cbx-e2e-ng", await pluginsUnderTest());
    assertEquals(del.code, 0, del.stderr);
    assertEquals(left, NOTHING_LEFT);
  },
});

Deno.test({
  name: "Nomad bridge: the reference leaks masquerade rules when the netns is gone (can fail)",
  ignore: SKIP !== undefined || !HAVE_REFERENCE,
  async fn() {
    const { del, left } = await delAfterNetnsGone("cbx-e2e-nz", REFERENCE_DIR);
    assertEquals(del.code, 0, del.stderr);
    // containernetworking/plugins#810: the POSTROUTING jump and the CNI-<hash> chain stay.
    assert(left.firewall.some((line) => line.startsWith("-A POSTROUTING")), left.firewall.join());
  },
});

Deno.test({
  name: "seed: an existing LAN bridge br0 puts the alloc on the LAN with no NAT",
  ignore: SKIP !== undefined,
  async fn() {
    const plugins = await pluginsUnderTest();
    const network = "cbxe2elan";
    await using host = await createCniHost("cbx-e2e-lan");
    await host.addConflist("lan.conflist", await readConflist("lan_bridge.conflist", host.dataDir));
    // The operator's bridge holds the host's LAN address; a LAN neighbour (also the router,
    // 192.168.77.1) hangs off the same bridge.
    await using lan = await createNetns("cbx-e2e-lan-n");
    const inHost = (...args: string[]) => mustSh("ip", ["-n", host.ns.name, ...args]);
    await inHost("link", "add", "br0", "type", "bridge");
    await inHost("addr", "add", "192.168.77.2/24", "dev", "br0");
    await inHost("link", "set", "br0", "up");
    await inHost("link", "add", "cbxe2e-lanp", "type", "veth", "peer", "lan0", "netns", lan.name);
    await inHost("link", "set", "cbxe2e-lanp", "master", "br0", "up");
    await mustSh("ip", ["-n", lan.name, "addr", "add", "192.168.77.1/24", "dev", "lan0"]);
    await mustSh("ip", ["-n", lan.name, "link", "set", "lan0", "up"]);

    const ns = await host.sandbox();
    const id = crypto.randomUUID();
    const inputs = { network, netns: ns.path, containerId: id, cniPath: plugins };
    const result = JSON.parse(
      await mustCniExec(host, "add", { ...inputs, cniArgs: nomadCniArgs({ id }) }),
    );
    const { address } = nomadAllocAddress(result);
    const last = Number(address.split(".")[3]);
    assert(inSubnet(address, "192.168.77.0/24") && last >= 100 && last <= 120, address);
    assertEquals(await defaultGateway(ns), "192.168.77.1");
    // isGateway false: br0 keeps exactly the host's LAN address.
    assertEquals(await ipv4Addresses(host.ns, "br0"), ["192.168.77.2/24"]);
    await mustCniExec(host, "check", { ...inputs, cniArgs: nomadCniArgs({ id }) });

    {
      await using _srv = await startServer(ns, { port: 8080, reply: "on the LAN" });
      await using _lanSrv = await startServer(lan, { port: 8081, reply: "neighbour" });
      assertEquals(await probe(lan, { host: address, port: 8080 }), "on the LAN");
      assertEquals(await probe(host.ns, { host: address, port: 8080 }), "on the LAN");
      assertEquals(await probe(ns, { host: "192.168.77.1", port: 8081 }), "neighbour");
    }
    // ipMasq false and no portmap: not a single NAT (or any) rule.
    assertEquals((await firewallLines(host.ns)).filter((line) => line.startsWith("-A")), []);

    await mustCniExec(host, "del", { ...inputs, cniArgs: "" });
    assertEquals(await veths(host.ns), ["cbxe2e-lanp"]);
    assertEquals(await ipv4Addresses(host.ns, "br0"), ["192.168.77.2/24"]);
    assertEquals(await leases(host.dataDir, network), []);
    assertEquals(await cachedResults(host.cacheDir), []);
  },
});

Deno.test({
  name: "seed: reference macvlan chained with our portmap maps host ports to the alloc's `to` port",
  ignore: SKIP !== undefined || !HAVE_REFERENCE,
  async fn() {
    const plugins = await pluginsUnderTest();
    const network = "cbxe2emv";
    await using host = await createCniHost("cbx-e2e-mv");
    await host.addConflist(
      "macvlan.conflist",
      await readConflist("macvlan_portmap.conflist", host.dataDir),
    );
    // No dummy links on this kernel: the parent is one end of a veth whose other end is the
    // LAN (router 10.98.0.1). The host's own LAN address sits on a macvlan "shim" in bridge
    // mode, the usual way a host reaches its macvlan containers.
    await using lan = await createNetns("cbx-e2e-mv-n");
    const inHost = (...args: string[]) => mustSh("ip", ["-n", host.ns.name, ...args]);
    await inHost("link", "add", "cbxe2e-par", "type", "veth", "peer", "lan0", "netns", lan.name);
    await inHost("link", "set", "cbxe2e-par", "up");
    await inHost(
      "link",
      "add",
      "cbxe2e-shim",
      "link",
      "cbxe2e-par",
      "type",
      "macvlan",
      "mode",
      "bridge",
    );
    await inHost("addr", "add", "10.98.0.2/24", "dev", "cbxe2e-shim");
    await inHost("link", "set", "cbxe2e-shim", "up");
    await mustSh("ip", ["-n", lan.name, "addr", "add", "10.98.0.1/24", "dev", "lan0"]);
    await mustSh("ip", ["-n", lan.name, "link", "set", "lan0", "up"]);

    const ns = await host.sandbox();
    const id = crypto.randomUUID();
    const hostPort = 28081;
    const inputs = {
      network,
      netns: ns.path,
      containerId: id,
      // Ours first; macvlan is only in the reference dir. Its IPAM (host-local) resolves to ours.
      cniPath: `${plugins}:${REFERENCE_DIR}`,
      capArgs: { portMappings: nomadPortMappings(hostPort, 8081) },
    };
    const result = JSON.parse(
      await mustCniExec(host, "add", { ...inputs, cniArgs: nomadCniArgs({ id }) }),
    );
    const { address } = nomadAllocAddress(result);
    assert(inSubnet(address, "10.98.0.0/24"), address);
    await mustCniExec(host, "check", { ...inputs, cniArgs: nomadCniArgs({ id }) });
    assertMatch(
      (await firewallLines(host.ns)).join("\n"),
      new RegExp(`--to-destination ${address.replaceAll(".", "\\.")}:8081`),
    );

    {
      await using _tcp = await startServer(ns, { port: 8081, reply: "mv tcp" });
      await using _udp = await startServer(ns, { port: 8081, reply: "mv udp", udp: true });
      assertEquals(await probe(lan, { host: address, port: 8081 }), "mv tcp");
      assertEquals(await probe(host.ns, { host: "127.0.0.1", port: hostPort }), "mv tcp");
      assertEquals(
        await probe(host.ns, { host: "127.0.0.1", port: hostPort, udp: true }),
        "mv udp",
      );
      assertEquals(await probe(host.ns, { host: "10.98.0.2", port: hostPort }), "mv tcp");
    }

    await mustCniExec(host, "del", { ...inputs, cniArgs: "" });
    assertEquals(await firewallLeftovers(host.ns, { ids: [id], ips: [address] }), []);
    assertEquals(await leases(host.dataDir, network), []);
    assertEquals(await cachedResults(host.cacheDir), []);
    assertNotEquals((await ns.exec("ip", ["link", "show", "eth0"])).code, 0);
  },
});

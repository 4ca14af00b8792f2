/**
 * Concurrency storms: rounds of 64 parallel `cnibox exec add` then 64
 * parallel `cnibox exec del` on one network with ports (bridge + host-local
 * + firewall + portmap). Every ADD gets a distinct address that its
 * container really carries, no plugin run fails with anything but code 11
 * (retryable, then retried like a runtime would), each container has its own
 * chains and rules, the shared chains hold each shared rule exactly once, and
 * after the DELs nothing is left: no veth, chain, rule, lease or cache entry.
 *
 * Default: 2 rounds. `HARDENING_FULL=1`: 10 rounds. `HARDENING_REPORT=<file>`
 * writes a JSON summary.
 *
 * @module
 */
import { assert, assertEquals } from "@std/assert";
import { readTree } from "../lib/testing/harness.ts";
import { ROOT, type TestNetns } from "../lib/testing/netns.ts";
import { leaseView } from "./_corpus.ts";
import { FULL, type ProcessOutput, readJournal } from "./_rig.ts";
import { NETWORK, networkWorld } from "./_network.ts";

const ROUNDS = Number(Deno.env.get("HARDENING_STORM_ROUNDS") ?? (FULL ? 10 : 2));
const WIDTH = 64;

interface PhaseStats {
  /** Plugin runs the journal recorded. */
  pluginRuns: number;
  failures: number;
  retried: number;
  codes: Record<string, number>;
  seconds: number;
}

/** Error codes of the plugin runs the journal recorded, by code. */
async function journalCodes(
  path: string,
): Promise<{ runs: number; codes: Record<string, number> }> {
  const codes: Record<string, number> = {};
  const entries = await readJournal(path);
  for (const entry of entries) {
    if (entry.outcome !== "error") continue;
    const key = `${entry.plugin} ${entry.command} ${entry.code}`;
    codes[key] = (codes[key] ?? 0) + 1;
  }
  return { runs: entries.length, codes };
}

/** Runs `op` for every container at once; failed ones are retried one by one (as a runtime retries code 11). */
async function storm(
  journal: string,
  containers: TestNetns[],
  op: (ns: TestNetns, i: number) => Promise<ProcessOutput>,
): Promise<{ outputs: ProcessOutput[]; stats: PhaseStats }> {
  await Deno.remove(journal).catch(() => {});
  const started = performance.now();
  const outputs = await Promise.all(containers.map(op));
  const seconds = (performance.now() - started) / 1000;
  const { runs, codes } = await journalCodes(journal);
  // bridge, firewall and portmap at least: the journal really saw the storm.
  assert(runs >= 3 * containers.length, `the journal recorded only ${runs} plugin runs`);
  const failed = outputs.map((out, i) => ({ out, i })).filter(({ out }) => out.code !== 0);
  for (const { i } of failed) {
    for (let attempt = 0; attempt < 3; attempt++) {
      outputs[i] = await op(containers[i], i);
      if (outputs[i].code === 0) break;
    }
  }
  return {
    outputs,
    stats: { pluginRuns: runs, failures: failed.length, retried: failed.length, codes, seconds },
  };
}

Deno.test({
  name:
    `concurrency storm: ${ROUNDS} rounds of ${WIDTH} parallel ADDs then ${WIDTH} parallel DELs with ports`,
  ignore: !ROOT,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using world = await networkWorld();
    const containers: TestNetns[] = [];
    for (let i = 0; i < WIDTH; i++) containers.push(await world.container());
    const rounds: { add: PhaseStats; del: PhaseStats }[] = [];
    const ports = (i: number) => [20000 + i, 25000 + i];

    for (let round = 0; round < ROUNDS; round++) {
      const id = (i: number) => `storm-${round}-${i}`;
      const add = await storm(world.journal, containers, (ns, i) =>
        world.exec("add", {
          containerId: id(i),
          netns: ns.path,
          ports: ports(i),
          timeoutMs: 180_000,
        }));
      const badAdd = Object.keys(add.stats.codes).filter((key) => !key.endsWith(" 11"));
      assertEquals(badAdd, [], `round ${round}: ADD errors other than code 11`);
      add.outputs.forEach((out, i) => assertEquals(out.code, 0, `ADD ${id(i)}: ${out.stderr}`));

      // Distinct addresses, each really on its container's eth0 and leased to it.
      const addresses = add.outputs.map((out) =>
        (JSON.parse(out.stdout).ips as { address: string }[])[0].address.split("/")[0]
      );
      assertEquals(new Set(addresses).size, WIDTH, `round ${round}: duplicate addresses`);
      const leases = leaseView(await readTree(`${world.leases}/${NETWORK}`));
      assertEquals(Object.keys(leases).length, WIDTH, `round ${round}: lease count`);
      for (let i = 0; i < WIDTH; i++) {
        assertEquals(leases[addresses[i]], `${id(i)}\r\neth0`, `lease of ${addresses[i]}`);
        const addr = await containers[i].exec("ip", ["-4", "-o", "addr", "show", "dev", "eth0"]);
        assert(addr.stdout.includes(` ${addresses[i]}/16 `), `${id(i)} eth0: ${addr.stdout}`);
      }
      const nat = (await world.host.exec("iptables-save", ["-t", "nat"])).stdout;
      const filter = (await world.host.exec("iptables-save", ["-t", "filter"])).stdout;
      const count = (text: string, re: RegExp) => text.split("\n").filter((l) => re.test(l)).length;
      assertEquals(count(nat, /^:CNI-DN-/), WIDTH, "one DNAT chain per container");
      assertEquals(count(nat, /^:CNI-[0-9a-f]{24} /), WIDTH, "one masquerade chain per container");
      assertEquals(
        count(nat, /^-A CNI-HOSTPORT-DNAT /),
        2 * WIDTH,
        "two entry rules per container",
      );
      assertEquals(count(filter, /^-A CNI-FORWARD -[sd] 10\.99\./), 2 * WIDTH, "two rules per IP");
      assertEquals(await world.sharedChainProblems(), [], `round ${round}: shared chains`);

      const del = await storm(world.journal, containers, (ns, i) =>
        world.exec("del", {
          containerId: id(i),
          netns: ns.path,
          ports: ports(i),
          timeoutMs: 180_000,
        }));
      const badDel = Object.keys(del.stats.codes).filter((key) => !key.endsWith(" 11"));
      assertEquals(badDel, [], `round ${round}: DEL errors other than code 11`);
      del.outputs.forEach((out, i) => assertEquals(out.code, 0, `DEL ${id(i)}: ${out.stderr}`));
      assertEquals(await world.residue(), [], `round ${round}: residue after the DELs`);
      assertEquals(await world.sharedChainProblems(), [], `round ${round}: shared chains`);
      rounds.push({ add: add.stats, del: del.stats });
    }

    const report = Deno.env.get("HARDENING_REPORT");
    if (report) {
      await Deno.writeTextFile(report, JSON.stringify({ width: WIDTH, rounds }, null, 2));
    }
  },
});

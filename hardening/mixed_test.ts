/**
 * Mixed fleets: the reference plugins (`/usr/lib/cni`, Debian 1.1.1) and
 * ours operate on the same node and network (same bridge, lease dir, chains
 * and result cache), under `cnibox exec` with `CNI_PATH` pointing at one or
 * the other. ADD by one and DEL by the other, in turn and concurrently: no
 * duplicate address, the shared chains hold each shared rule once, and
 * nothing is left at the end.
 *
 * @module
 */
import { assertEquals } from "@std/assert";
import { HAVE_REFERENCE, readTree } from "../lib/testing/harness.ts";
import { ROOT, type TestNetns } from "../lib/testing/netns.ts";
import { leaseView } from "./_corpus.ts";
import { FULL } from "./_rig.ts";
import { NETWORK, type NetworkWorld, networkWorld } from "./_network.ts";

const ROUNDS = FULL ? 5 : 2;
const WIDTH = 16;

/** Shared rules that are missing (`0 x ...`); duplicates are D6 and reported apart. */
function missing(problems: string[]): string[] {
  return problems.filter((p) => p.startsWith("0 x "));
}

/** Duplicated shared rules seen during the concurrent rounds (for D6's message). */
const duplicates: string[] = [];

/** Second copies of shared rules, as racing reference plugins leave them. */
const DOUBLED = [
  [
    "-I",
    "FORWARD",
    "1",
    "-m",
    "comment",
    "--comment",
    "CNI firewall plugin rules",
    "-j",
    "CNI-FORWARD",
  ],
  [
    ...["-t", "nat", "-A", "CNI-HOSTPORT-SETMARK", "-m", "comment", "--comment"],
    ...["CNI portfwd masquerade mark", "-j", "MARK", "--set-xmark", "0x2000/0x2000"],
  ],
];

function addressOf(stdout: string): string {
  return (JSON.parse(stdout).ips as { address: string }[])[0].address.split("/")[0];
}

/**
 * Nothing may be left after the DELs but cnibox firewall's address records
 * of attachments that cnibox added and the reference deleted (the
 * reference knows nothing of them; they live in /run and are harmless: a
 * record is only read by a DEL or GC of its own attachment, and a GC of a
 * 1.1.0 network removes the records of gone attachments).
 */
async function assertClean(
  world: NetworkWorld,
  containers: TestNetns[],
  recordsOf: string[],
  what: string,
): Promise<void> {
  const left = await world.residue(containers);
  const expected = recordsOf.map((id) => `${id}@eth0`).sort();
  const records = left.filter((line) => line.startsWith("firewall record "))
    .map((line) => line.split("/").at(-1)!).sort();
  assertEquals(left.filter((line) => !line.startsWith("firewall record ")), [], `${what}: residue`);
  assertEquals(records, expected, `${what}: firewall records`);
  await Deno.remove(`${world.tmp}/firewall-records`, { recursive: true }).catch(() => {});
}

Deno.test({
  name: "mixed fleet: ADD by the reference then DEL by cnibox, and the other way round",
  ignore: !ROOT || !HAVE_REFERENCE,
  async fn() {
    await using world = await networkWorld({ cniVersion: "1.0.0" });
    for (const addByReference of [true, false]) {
      const containers: TestNetns[] = [];
      for (let i = 0; i < 4; i++) containers.push(await world.container());
      const calls = containers.map((ns, i) => ({
        containerId: `mix-${addByReference ? "ref" : "ours"}-${i}`,
        netns: ns.path,
        ports: [18080 + i, 15353 + i],
      }));
      for (const call of calls) {
        const add = await world.exec("add", { ...call, reference: addByReference });
        assertEquals(add.code, 0, add.stderr);
        // cnibox must see the attachment as intact whoever made it (the Debian
        // reference's portmap CHECK fails even on its own IPv4-only attachments, bug #819).
        const check = await world.exec("check", call);
        assertEquals(check.code, 0, `CHECK by cnibox: ${check.stderr}`);
      }
      assertEquals(await world.sharedChainProblems(), []);
      for (const call of calls) {
        const del = await world.exec("del", { ...call, reference: !addByReference });
        assertEquals(del.code, 0, del.stderr);
      }
      await assertClean(
        world,
        containers,
        addByReference ? [] : calls.map((call) => call.containerId),
        `ADD by ${addByReference ? "reference" : "cnibox"}`,
      );
      assertEquals(await world.sharedChainProblems(), []);
    }
  },
});

Deno.test({
  name:
    `mixed fleet: ${ROUNDS} rounds of ${WIDTH} concurrent ADDs and crossed DELs, half reference, half cnibox`,
  ignore: !ROOT || !HAVE_REFERENCE,
  async fn() {
    await using world = await networkWorld({ cniVersion: "1.0.0" });
    const containers: TestNetns[] = [];
    for (let i = 0; i < WIDTH; i++) containers.push(await world.container());
    // The shared chains exist first, as on any node that has run a container: the
    // reference creates them check-then-create, so its concurrent first ADDs on a fresh
    // node can fail among themselves ("CHAIN_USER_ADD failed (File exists)"), cnibox or not.
    const warm = { containerId: "mixc-warm", netns: containers[0].path, ports: [19999, 24999] };
    assertEquals((await world.exec("add", { ...warm, reference: true })).code, 0, "warm-up ADD");
    assertEquals((await world.exec("del", { ...warm, reference: true })).code, 0, "warm-up DEL");
    for (let round = 0; round < ROUNDS; round++) {
      const calls = containers.map((ns, i) => ({
        containerId: `mixc-${round}-${i}`,
        netns: ns.path,
        ports: [20000 + i, 25000 + i],
      }));
      const adds = await Promise.all(
        calls.map((call, i) => world.exec("add", { ...call, reference: i % 2 === 0 })),
      );
      adds.forEach((out, i) =>
        assertEquals(
          out.code,
          0,
          `ADD ${calls[i].containerId} (${i % 2 ? "cnibox" : "ref"}): ${out.stderr}`,
        )
      );
      const addresses = adds.map((out) => addressOf(out.stdout));
      assertEquals(new Set(addresses).size, WIDTH, `round ${round}: duplicate addresses`);
      const leases = leaseView(await readTree(`${world.leases}/${NETWORK}`));
      assertEquals(Object.keys(leases).length, WIDTH, `round ${round}: leases`);
      for (let i = 0; i < WIDTH; i++) {
        assertEquals(leases[addresses[i]], `${calls[i].containerId}\r\neth0`);
      }
      // The reference's check-then-insert races with itself and with us: a shared rule may be
      // doubled (D6), but none may be missing.
      const afterAdd = await world.sharedChainProblems();
      assertEquals(missing(afterAdd), [], `round ${round}: shared rules missing after ADD`);
      duplicates.push(...afterAdd);

      const dels = await Promise.all(
        calls.map((call, i) => world.exec("del", { ...call, reference: i % 2 === 1 })),
      );
      dels.forEach((out, i) =>
        assertEquals(out.code, 0, `DEL ${calls[i].containerId}: ${out.stderr}`)
      );
      // cnibox added the odd ones, the reference deleted them.
      const ours = calls.filter((_, i) => i % 2 === 1).map((call) => call.containerId);
      await assertClean(world, containers, ours, `round ${round}`);
      const afterDel = await world.sharedChainProblems();
      assertEquals(missing(afterDel), [], `round ${round}: shared rules missing after DEL`);
      duplicates.push(...afterDel);
    }
  },
});

Deno.test({
  name:
    "shared rules doubled by a racing reference plugin are left once after the next cnibox ADD and DEL (was D6)",
  ignore: !ROOT,
  async fn() {
    await using world = await networkWorld({ cniVersion: "1.0.0" });
    const ns = await world.container();
    const first = { containerId: "d6-1", netns: ns.path, ports: [20000, 25000] };
    assertEquals((await world.exec("add", first)).code, 0);
    // What the reference's check-then-insert race leaves (seen in the concurrent rounds above,
    // and among reference plugins alone): a second copy of shared rules.
    for (const rule of DOUBLED) {
      const out = await world.host.exec("iptables", rule);
      assertEquals(out.code, 0, out.stderr);
    }
    assertEquals((await world.sharedChainProblems()).length, DOUBLED.length);
    const ns2 = await world.container();
    const second = { containerId: "d6-2", netns: ns2.path, ports: [20001, 25001] };
    assertEquals((await world.exec("add", second)).code, 0);
    assertEquals((await world.exec("del", second)).code, 0);
    assertEquals((await world.exec("del", first)).code, 0);
    assertEquals(
      await world.sharedChainProblems(),
      [],
      `duplicates seen in the concurrent rounds: ${[...new Set(duplicates)].join("; ") || "none"}`,
    );
  },
});

/**
 * Crash injection: `cnibox exec add` of a bridge + host-local + firewall +
 * portmap chain is SIGKILLed together with every process it started (the
 * plugin, iptables-restore, ...) at a random point of the ADD; in about half
 * the runs the first DEL is killed too. Then DEL and GC must leave zero
 * residue (links, rules, chains, leases, cache entries, held locks), no
 * process of the killed group may survive, and a following ADD must not be
 * blocked by the dead process's locks.
 *
 * D4 and D7 (docs/hardening.md) were known defects here and are fixed:
 * their residue now fails the main test like any other.
 *
 * Default: 40 kills. `HARDENING_FULL=1`: 200. `HARDENING_SEED=<n>` replays
 * the random delays; `HARDENING_REPORT=<file>` writes a JSON summary.
 *
 * @module
 */
import { assert, assertEquals } from "@std/assert";
import { ROOT, sh } from "../lib/testing/netns.ts";
import { FULL, Rng, SEED } from "./_rig.ts";
import { NETWORK, networkWorld } from "./_network.ts";

const RUNS = Number(Deno.env.get("HARDENING_CRASH_RUNS") ?? (FULL ? 200 : 40));
/** Verify every this-many runs that a full ADD goes through (and always at the end). */
const PROBE_EVERY = 4;
const IPTABLES_LOCK = "/run/lock/cnibox-iptables.lock";

interface RunRecord {
  run: number;
  delayMs: number;
  killed: boolean;
  /** When set, a first DEL was killed this many ms after it started. */
  delKilledAtMs?: number;
  /** New residue after DEL alone (GC then ran). */
  afterDel: string[];
  /** New residue after DEL + GC (must be empty but for the known defects). */
  afterGc: string[];
  problems: string[];
}

/** Processes of a killed group still running (zombies awaiting their reaper do not count). */
async function survivors(pgid: number): Promise<string[]> {
  const out = await sh("pgrep", ["-g", String(pgid), "-a"]);
  return out.stdout.split("\n").filter((line) => line && !line.includes("<defunct>"));
}

const records: RunRecord[] = [];

Deno.test({
  name:
    `crash injection: ${RUNS} SIGKILLs at random points of ADD (and of some DELs), then DEL + GC leave no residue`,
  ignore: !ROOT,
  async fn() {
    await using world = await networkWorld();
    const container = await world.container();
    const ports = [18080, 15353];
    // The firewall lock is per network namespace, named by the namespace's inode.
    const iptablesLock = IPTABLES_LOCK.replace(
      /\.lock$/,
      `-${Deno.statSync(world.host.path).ino}.lock`,
    );

    // Calibrate: the kill windows cover a whole ADD and a whole DEL.
    const addMs: number[] = [];
    const delMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const add = await world.exec("add", { containerId: "calib", netns: container.path, ports });
      assertEquals(add.code, 0, add.stderr);
      addMs.push(add.ms);
      const del = await world.exec("del", { containerId: "calib", netns: container.path, ports });
      assertEquals(del.code, 0, del.stderr);
      delMs.push(del.ms);
    }
    const window = Math.ceil(Math.max(...addMs) * 1.25);
    const delWindow = Math.ceil(Math.max(...delMs) * 1.25);
    assertEquals(await world.residue(), [], "calibration left residue");

    const rng = new Rng(SEED);
    // Residue that earlier runs left (and that was not cleaned): not this run's doing.
    let baseline = new Set<string>();
    const fresh = (lines: string[]) => lines.filter((line) => !baseline.has(line));
    for (let run = 0; run < RUNS; run++) {
      const call = { containerId: `crash-${run}`, netns: container.path, ports };
      const delayMs = rng.int(window + 1);
      const problems: string[] = [];
      const add = await world.exec("add", { ...call, killAfterMs: delayMs });
      if (!add.killed && add.code !== 0) problems.push(`ADD failed: ${add.stderr.trim()}`);

      let delKilledAtMs: number | undefined;
      if (rng.next() < 0.5) {
        delKilledAtMs = rng.int(delWindow + 1);
        const first = await world.exec("del", { ...call, killAfterMs: delKilledAtMs });
        if (!first.killed && first.code !== 0) {
          problems.push(`first DEL failed: ${first.stderr.trim()}`);
        }
      }
      const del = await world.exec("del", call);
      if (del.code !== 0) problems.push(`DEL failed: ${del.stderr.trim()}`);
      const afterDel = fresh(await world.residue());
      const gc = await world.exec("gc", { containerId: "" });
      if (gc.code !== 0) problems.push(`GC failed: ${gc.stderr.trim()}`);
      const left = await world.residue();
      const afterGc = fresh(left);
      baseline = new Set(left);

      if (add.killed) {
        // setsid made the killed process a group leader, so its pid is the group id.
        const alive = await survivors(add.pid);
        if (alive.length > 0) problems.push(`processes survived the kill: ${alive.join("; ")}`);
      }
      if ((await sh("flock", ["-w", "10", "-s", iptablesLock, "true"])).code !== 0) {
        problems.push("iptables lock still held 10 s after the run");
      }
      if (run % PROBE_EVERY === PROBE_EVERY - 1 || run === RUNS - 1) {
        // The dead process's locks must not block the next ADD.
        const probe = { ...call, containerId: `probe-${run}` };
        const probeAdd = await world.exec("add", { ...probe, timeoutMs: 20_000 });
        if (probeAdd.code !== 0) problems.push(`next ADD failed: ${probeAdd.stderr.trim()}`);
        const probeDel = await world.exec("del", probe);
        if (probeDel.code !== 0) problems.push(`probe DEL failed: ${probeDel.stderr.trim()}`);
        const probeLeft = fresh(await world.residue());
        if (probeLeft.length > 0) problems.push(`probe left: ${probeLeft.join("; ")}`);
      }
      records.push({
        run,
        delayMs,
        killed: add.killed,
        delKilledAtMs,
        afterDel,
        afterGc,
        problems,
      });
    }

    const failures = records.filter((r) => r.afterGc.length > 0 || r.problems.length > 0);
    const summary = {
      seed: SEED,
      runs: RUNS,
      addWindowMs: window,
      delWindowMs: delWindow,
      addsKilled: records.filter((r) => r.killed).length,
      addsCompletedBeforeKill: records.filter((r) => !r.killed).length,
      delsKilled: records.filter((r) => r.delKilledAtMs !== undefined).length,
      runsWithResidueAfterDel: records.filter((r) => r.afterDel.length > 0).length,
      runsWithResidueAfterGc: records.filter((r) => r.afterGc.length > 0).length,
      runsWithOtherProblems: failures.length,
      failures,
      residueAfterDel: records.filter((r) => r.afterDel.length > 0)
        .map(({ run, delayMs, delKilledAtMs, afterDel }) => ({
          run,
          delayMs,
          delKilledAtMs,
          afterDel,
        })),
    };
    const report = Deno.env.get("HARDENING_REPORT");
    if (report) await Deno.writeTextFile(report, JSON.stringify(summary, null, 2));
    assert(summary.addsKilled > 0, `no ADD was killed in ${RUNS} runs (window ${window} ms)`);
    assertEquals(
      failures.map((r) =>
        `run ${r.run} (ADD killed at ${r.delayMs} ms, DEL at ${r.delKilledAtMs ?? "-"}): ${
          [...r.afterGc, ...r.problems].join("; ")
        }`
      ),
      [],
      `seed ${SEED}`,
    );
  },
});

// The kill window of D7 is narrow (between the temp file's write and its rename; hit once
// in 200 runs): this test makes the leftover by hand so it fails deterministically.
Deno.test({
  name: "DEL + GC remove the cache temp file a killed runtime left behind (was D7)",
  ignore: !ROOT,
  async fn() {
    await using world = await networkWorld();
    const ns = await world.container();
    const call = { containerId: "d7", netns: ns.path, ports: [18080] };
    assertEquals((await world.exec("add", call)).code, 0);
    // Named after a process that has exited, as the runtime names its temp files.
    const dead = new Deno.Command("true").spawn();
    await dead.status;
    const stale = `${world.cache}/results/.${NETWORK}-${call.containerId}-eth0.${dead.pid}.tmp`;
    await Deno.writeTextFile(stale, '{"kind":"cniCacheV1","containerId":"d7"');
    assertEquals((await world.exec("del", call)).code, 0);
    assertEquals((await world.exec("gc", { containerId: "" })).code, 0);
    assertEquals(await world.residue([ns]), []);
  },
});

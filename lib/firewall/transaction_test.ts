import { assertEquals, assertRejects } from "@std/assert";
import { type ExecCall, RecordingExecer } from "./exec.ts";
import { IptablesError } from "./iptables.ts";
import { transact, withLock } from "./transaction.ts";

const EMPTY = "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n";
const WITH_CHAIN =
  "*filter\n:FORWARD ACCEPT [0:0]\n:CNI-FORWARD - [0:0]\n-A FORWARD -j CNI-FORWARD\nCOMMIT\n";

Deno.test("transact() reads once, applies once, per family", async () => {
  const execer = new RecordingExecer((call) => ({
    code: 0,
    stdout: call.args.includes("-S") ? EMPTY : "",
    stderr: "",
  }));
  const outcomes = await transact("filter", (plan) => {
    plan.ensureChain("CNI-FORWARD");
    plan.ensureRule("FORWARD", ["-j", "CNI-FORWARD"], { position: "first" });
  }, { families: [4, 6], execer, lockPath: "" });
  assertEquals(execer.calls.map((c) => c.cmd).sort(), [
    "ip6tables",
    "ip6tables-restore",
    "iptables",
    "iptables-restore",
  ]);
  assertEquals(
    outcomes[0].applied,
    "*filter\n-N CNI-FORWARD\n-I FORWARD 1 -j CNI-FORWARD\nCOMMIT\n",
  );
});

Deno.test("transact() starts no restore when nothing is missing", async () => {
  const execer = new RecordingExecer(() => ({ code: 0, stdout: WITH_CHAIN, stderr: "" }));
  const outcomes = await transact("filter", (plan) => {
    plan.ensureChain("CNI-FORWARD");
    plan.ensureRule("FORWARD", ["-j", "CNI-FORWARD"], { position: "first" });
  }, { families: [4], execer, lockPath: "" });
  assertEquals(execer.calls.length, 1);
  assertEquals(outcomes[0].applied, "");
});

Deno.test("transact() re-reads and re-plans when a concurrent run created the chain first", async () => {
  let saves = 0;
  const execer = new RecordingExecer((call: ExecCall) => {
    if ((call.cmd === "iptables" && call.args.includes("-S"))) {
      return { code: 0, stdout: saves++ === 0 ? EMPTY : WITH_CHAIN, stderr: "" };
    }
    return call.stdin?.includes("-N CNI-FORWARD")
      ? { code: 1, stdout: "", stderr: "iptables-restore: line 2 failed: Chain already exists." }
      : { code: 0, stdout: "", stderr: "" };
  });
  await transact("filter", (plan) => {
    plan.ensureChain("CNI-FORWARD");
    plan.ensureRule("FORWARD", ["-j", "CNI-FORWARD"], { position: "first" });
    plan.ensureRule("CNI-FORWARD", ["-s", "10.0.0.2/32", "-j", "ACCEPT"]);
  }, { families: [4], execer, lockPath: "" });
  assertEquals(execer.calls.map((c) => c.cmd), [
    "iptables",
    "iptables-restore",
    "iptables",
    "iptables-restore",
  ]);
  // The second batch neither re-creates (which would fail) nor declares (which would flush) the chain.
  assertEquals(execer.calls[3].stdin, "*filter\n-A CNI-FORWARD -s 10.0.0.2/32 -j ACCEPT\nCOMMIT\n");
});

Deno.test("transact() gives up after the configured attempts with the tool's error", async () => {
  const execer = new RecordingExecer((call) =>
    (call.cmd === "iptables" && call.args.includes("-S"))
      ? { code: 0, stdout: EMPTY, stderr: "" }
      : {
        code: 2,
        stdout: "",
        stderr: "iptables-restore: line 3 failed: Couldn't load target `NOPE'",
      }
  );
  const error = await assertRejects(
    () =>
      transact("filter", (plan) => plan.ensureRule("FORWARD", ["-j", "NOPE"]), {
        families: [4],
        execer,
        lockPath: "",
        attempts: 2,
      }),
    IptablesError,
  );
  assertEquals(error.stderr, "iptables-restore: line 3 failed: Couldn't load target `NOPE'");
  assertEquals(execer.calls.length, 4);
});

Deno.test("transact() reports an unlistable family only when asked to tolerate it", async () => {
  const execer = new RecordingExecer((call) =>
    (call.cmd === "ip6tables" && call.args.includes("-S"))
      ? { code: 1, stdout: "", stderr: "can't initialize ip6tables" }
      : { code: 0, stdout: EMPTY, stderr: "" }
  );
  const outcomes = await transact("filter", () => {}, {
    families: [4, 6],
    execer,
    lockPath: "",
    tolerateUnusable: true,
  });
  assertEquals(outcomes.map((o) => o.unusable?.stderr), [undefined, "can't initialize ip6tables"]);
  await assertRejects(
    () => transact("filter", () => {}, { families: [6], execer, lockPath: "" }),
    IptablesError,
  );
});

Deno.test("withLock() serialises runs sharing a lock file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cbx-fw-lock-" });
  try {
    const lockPath = `${dir}/lock`;
    const events: string[] = [];
    const job = (name: string) =>
      withLock(async () => {
        events.push(`${name}+`);
        await new Promise((resolve) => setTimeout(resolve, 30));
        events.push(`${name}-`);
      }, { lockPath });
    await Promise.all([job("a"), job("b")]);
    assertEquals(events.length, 4);
    assertEquals(events[0].slice(0, 1), events[1].slice(0, 1)); // no interleaving
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("withLock() still runs when the lock file cannot be opened", async () => {
  assertEquals(
    await withLock(() => Promise.resolve(42), { lockPath: "/nonexistent-dir/x/lock" }),
    42,
  );
});

Deno.test("transact() tries the scoped listing first and falls back to the whole table when its batch is refused", async () => {
  let restores = 0;
  const execer = new RecordingExecer((call) => {
    if (call.args.includes("-S")) {
      // `-S FORWARD` lists one chain; `-S` alone the whole table.
      return {
        code: 0,
        stdout: call.args.at(-1) === "FORWARD" ? "-P FORWARD ACCEPT\n" : EMPTY,
        stderr: "",
      };
    }
    // The scoped batch's guard fails, as iptables-restore does for a missing rule.
    return restores++ === 0
      ? { code: 1, stdout: "", stderr: "iptables-restore: line 2 failed" }
      : { code: 0, stdout: "", stderr: "" };
  });
  const outcomes = await transact("nat", (plan) => {
    plan.ensureChain("CNI-HOSTPORT-DNAT");
  }, {
    families: [4],
    execer,
    lockPath: "",
    scoped: {
      chains: ["FORWARD"],
      build: (plan) => void plan.batch.check("nat", "FORWARD", ["-j", "CNI-HOSTPORT-DNAT"]),
    },
  });
  assertEquals(execer.calls.map((c) => [c.cmd, ...c.args].join(" ")), [
    "iptables -w 5 -t nat -S FORWARD",
    "iptables-restore --noflush -w 5",
    "iptables -w 5 -t nat -S",
    "iptables-restore --noflush -w 5",
  ]);
  assertEquals(execer.calls[1].stdin, "*nat\n-C FORWARD -j CNI-HOSTPORT-DNAT\nCOMMIT\n");
  assertEquals(outcomes[0].applied, "*nat\n-N CNI-HOSTPORT-DNAT\nCOMMIT\n");
});

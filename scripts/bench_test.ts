import { assert, assertEquals, assertThrows } from "@std/assert";
import { HAVE_REFERENCE } from "../lib/testing/harness.ts";
import { ROOT, sh } from "../lib/testing/netns.ts";
import { type BenchResult, parseBenchArgs, renderChecks } from "./bench.ts";
import { nomadConflist } from "./_bench_host.ts";
import { childCpuMs } from "./_bench_driver.ts";
import { mergeOpenTraces, pluginModule } from "./_bench_profile.ts";
import { diffLines, leaseIp, normaliseRules, parseRss } from "./_bench_scenarios.ts";

Deno.test("parseBenchArgs() defaults to every scenario at the issue's sizes", () => {
  const options = parseBenchArgs([]);
  assertEquals(options.scenarios, ["chain", "hostlocal", "concurrent", "start", "status"]);
  assertEquals(options.impls, ["reference", "cnibox"]);
  assertEquals(options.sizes.live, [0, 100]);
  assertEquals(options.sizes.leases, [1, 1000, 4000]);
  assertEquals(options.sizes.concurrency, 64);
  assertEquals(options.status.attachments, 1000);
  assertEquals(options.status.leases, 4000);
  assertEquals(options.profile, false);
});

Deno.test("parseBenchArgs() takes scenario numbers, sizes and --quick", () => {
  const options = parseBenchArgs(["--quick", "-s", "4,1", "--live", "0,5", "--iterations", "3"]);
  assertEquals(options.scenarios, ["chain", "start"]);
  assertEquals(options.sizes.live, [0, 5]);
  assertEquals(options.sizes.iterations, 3);
  assertEquals(options.sizes.concurrency, 16);
  assertEquals(options.quick, true);
});

Deno.test("parseBenchArgs() rejects unknown scenarios, bad numbers and too many leases", () => {
  assertThrows(() => parseBenchArgs(["--scenario", "chains"]), RangeError, `"chains"`);
  assertThrows(() => parseBenchArgs(["--iterations", "x"]), RangeError, "--iterations");
  assertThrows(() => parseBenchArgs(["--leases", "5000"]), RangeError, "at most 4000");
  assertThrows(() => parseBenchArgs(["--impl", "go"]), RangeError, "--impl");
  assertThrows(() => parseBenchArgs(["--bogus"]), TypeError);
});

Deno.test("leaseIp() walks 10.88.0.0/20 from .2 across octet boundaries", () => {
  assertEquals(leaseIp(0), "10.88.0.2");
  assertEquals(leaseIp(253), "10.88.0.255");
  assertEquals(leaseIp(254), "10.88.1.0");
  assertEquals(leaseIp(3999), "10.88.15.161");
});

Deno.test("normaliseRules() drops comments and counters; diffLines() finds leftovers", () => {
  const before = normaliseRules("# Generated\n*nat\n:POSTROUTING ACCEPT [3:180]\nCOMMIT\n");
  const after = normaliseRules(
    "*nat\n:POSTROUTING ACCEPT [9:540]\n-A POSTROUTING -s 10.0.0.2 -j CNI-x\nCOMMIT\n# end\n",
  );
  assertEquals(before, ["*nat", ":POSTROUTING ACCEPT", "COMMIT"]);
  assertEquals(diffLines(before, after), {
    gone: [],
    added: ["-A POSTROUTING -s 10.0.0.2 -j CNI-x"],
  });
  assertEquals(diffLines(["a", "a"], ["a"]), { gone: ["a"], added: [] });
});

Deno.test("parseRss() reads /usr/bin/time's KiB, also after a non-zero exit note", () => {
  assertEquals(parseRss("40960\n"), 40);
  assertEquals(parseRss("Command exited with non-zero status 1\n2048\n"), 2);
  assertEquals(parseRss(""), undefined);
});

Deno.test("pluginModule() finds a plugin's module in applets.ts", () => {
  assertEquals(pluginModule("host-local"), "plugins/host_local.ts");
  assertEquals(pluginModule("loopback"), "plugins/loopback.ts");
  assertEquals(pluginModule("nonesuch"), undefined);
});

Deno.test("nomadConflist() is Nomad's chain with the data dir moved", () => {
  const list = JSON.parse(nomadConflist("/tmp/x"));
  assertEquals(list.cniVersion, "0.4.0");
  assertEquals(list.plugins.map((p: { type: string }) => p.type), [
    "loopback",
    "bridge",
    "firewall",
    "portmap",
  ]);
  assertEquals(list.plugins[1].ipam.dataDir, "/tmp/x");
});

Deno.test("childCpuMs() sums cutime and cstime ticks of /proc/self/stat", () => {
  // A comm with a space and a parenthesis must not shift the fields.
  const stat = "4242 (deno (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 55 12 7 3 20 0 9 0";
  assertEquals(childCpuMs(stat), 100);
  assert(childCpuMs() >= 0);
});

Deno.test("mergeOpenTraces() unites npm packages and takes medians", () => {
  const phases = (start: number) => ({ start, readGraph: 1, loadModules: 2, rest: 3 });
  const merged = mergeOpenTraces([
    { sources: 88, evaluated: 20, npm: [], npmMetadata: ["hono"], phases: phases(10) },
    { sources: 88, evaluated: 30, npm: ["hono"], npmMetadata: [], phases: phases(30) },
    { sources: 88, evaluated: 25, npm: [], npmMetadata: [] },
  ]);
  assertEquals(merged.evaluated, 25);
  assertEquals(merged.npm, ["hono"]);
  assertEquals(merged.npmMetadata, ["hono"]);
  assertEquals(merged.phases?.start, 20);
});

Deno.test("renderChecks() marks failures", () => {
  const text = renderChecks([
    { scenario: "3 concurrent", name: "a", ok: true, detail: "fine" },
    { scenario: "3 concurrent", name: "b", ok: false, detail: "left: 1 leases" },
  ]);
  assertEquals(text.split("\n"), [
    "- ok: 3 concurrent: a (fine)",
    "- **FAILED**: 3 concurrent: b (left: 1 leases)",
  ]);
});

async function benchNetns(): Promise<string[]> {
  return (await sh("ip", ["netns", "list"])).stdout.split("\n")
    .map((line) => line.split(" ")[0])
    .filter((name) => name.startsWith("cbx-bn-"));
}

Deno.test({
  name: "deno task bench --quick runs the start scenario and writes the JSON it reports",
  ignore: !ROOT || !HAVE_REFERENCE,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "cbx-bn-test-" });
    try {
      const before = await benchNetns();
      const json = `${dir}/out.json`;
      const out = await sh(Deno.execPath(), [
        "run",
        "-A",
        new URL("./bench.ts", import.meta.url).pathname,
        "--quick",
        "--scenario",
        "start",
        "--start-iterations",
        "2",
        "--json",
        json,
      ]);
      assertEquals(out.code, 0, out.stderr);
      const result = JSON.parse(await Deno.readTextFile(json)) as BenchResult;
      assertEquals(result.schema, "cnibox-bench/1");
      assertEquals(result.implementations.map((i) => i.name), ["reference", "cnibox"]);
      assertEquals(result.options.scenarios, ["start"]);
      const versions = result.rows.filter((r) => r.metric.endsWith("VERSION (bare start)"));
      assertEquals(versions.length, 5);
      for (const row of versions) {
        assertEquals(row.reference?.n, 2);
        assertEquals(row.cnibox?.n, 2);
        assert(row.ratio! > 0, `${row.metric}: no ratio`);
        assertEquals(row.target?.max, 25);
        assertEquals(typeof row.met, "boolean");
      }
      assert(result.rows.some((r) => r.unit === "MiB" && r.metric.includes("bridge ADD")));
      // The markdown on stdout is the same table.
      assert(out.stdout.includes("| 4 start | loopback VERSION (bare start) |"), out.stdout);
      // Everything the bench created is gone.
      assertEquals((await benchNetns()).filter((n) => !before.includes(n)), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

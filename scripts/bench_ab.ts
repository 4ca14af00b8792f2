// deno-lint-ignore-file no-console -- a benchmark script reports to its user.
/**
 * `deno task bench-ab [--cycles N] [--live N] <dir> <dir> ...`: Nomad's
 * chain, ADD then DEL, run from each plugin directory in turn (the order
 * alternating every cycle), with the median wall time of the chain and of
 * each plugin exec. `--live N` first adds N other allocations (each in its
 * own namespace, spread over the directories in turn) and leaves them up
 * while the cycles run, so their rules fill the shared tables for all.
 * For comparing two builds of cnibox (or any build with the reference)
 * quickly, e.g.:
 *
 * ```sh
 * deno task install --sources /tmp/before && deno task install /tmp/after
 * deno task bench-ab /tmp/before /tmp/after /usr/lib/cni
 * ```
 *
 * Runs as root in a private "host" namespace (and one container namespace)
 * that it removes afterwards; `deno task bench` is the full comparison.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { parseConfList } from "../lib/runtime/conflist.ts";
import { createNetns } from "../lib/testing/netns.ts";
import { nomadConflist } from "../lib/testing/nomad.ts";
import { runChain } from "./_bench_chain.ts";
import { median } from "./_bench_stats.ts";

const WARMUP = 2;

async function outer(args: string[]): Promise<number> {
  const flags = parseArgs(args, { string: ["cycles", "live"], boolean: ["help"] });
  const dirs = flags._.map(String);
  if (flags.help || dirs.length === 0) {
    console.log(
      "usage: deno task bench-ab [--cycles N] [--live N] <plugin dir> [<plugin dir> ...]",
    );
    return flags.help ? 0 : 2;
  }
  const cycles = Number(flags.cycles ?? 10);
  const live = Number(flags.live ?? 0);
  if (!Number.isInteger(cycles) || cycles < 1 || !Number.isInteger(live) || live < 0) {
    console.error(`bench-ab: --cycles must be >= 1 and --live >= 0, got ${cycles} and ${live}`);
    return 2;
  }
  await using host = await createNetns("cbx-ab");
  const work = await Deno.makeTempDir({ prefix: "cnibox-bench-ab-" });
  try {
    await host.exec("sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
    const inner = JSON.stringify({ dirs, cycles, live, work });
    const child = new Deno.Command("ip", {
      args: [
        ...["netns", "exec", host.name, Deno.execPath(), "run", "-A"],
        ...["--config", new URL("../deno.json", import.meta.url).pathname],
        ...[import.meta.filename!, "--inner", inner],
      ],
      stdout: "inherit",
      stderr: "inherit",
    });
    return (await child.output()).code;
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** Inside the host namespace: the cycles themselves. */
async function inner(
  options: { dirs: string[]; cycles: number; live: number; work: string },
): Promise<number> {
  const { dirs, cycles, live, work } = options;
  await using container = await createNetns("cbx-ab-c");
  const chainFor = (dir: string) => ({
    list: parseConfList(nomadConflist(`${work}/ipam-${dirs.indexOf(dir)}`)),
    env: {
      PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
      CNI_CACHE_DIR: `${work}/cache`,
      CNIBOX_JOURNAL: `${work}/journal`,
      CNIBOX_FIREWALL_RECORDS: `${work}/records`,
    },
  });
  const portMappings = (hostPort: number) =>
    ["tcp", "udp"].map((protocol) => ({
      HostPort: hostPort,
      ContainerPort: 8080,
      Protocol: protocol,
      HostIP: "",
    }));
  // Other allocations, left up during the cycles; their namespaces go at the end.
  await using others = new AsyncDisposableStack();
  for (let k = 0; k < live; k++) {
    const dir = dirs[k % dirs.length];
    const { list, env } = chainFor(dir);
    const netns = others.use(await createNetns("cbx-ab-l"));
    const rt = {
      containerId: `ab-live-${k}`,
      netns: netns.path,
      ifName: "eth0",
      capabilityArgs: { portMappings: portMappings(30000 + k) },
    };
    await runChain("ADD", { list, rt }, { path: [dir], env });
  }
  if (live > 0) console.log(`${live} other allocations live\n`);
  const samples = new Map<string, Map<string, number[]>>(dirs.map((d) => [d, new Map()]));
  const add = (dir: string, key: string, ms: number) => {
    const byKey = samples.get(dir)!;
    byKey.set(key, [...(byKey.get(key) ?? []), ms]);
  };
  for (let cycle = -WARMUP; cycle < cycles; cycle++) {
    for (const [index, dir] of (cycle % 2 === 0 ? dirs : [...dirs].reverse()).entries()) {
      const { list, env } = chainFor(dir);
      const rt = {
        containerId: `ab-${cycle}-${index}`,
        netns: container.path,
        ifName: "eth0",
        capabilityArgs: { portMappings: portMappings(28080) },
      };
      const up = await runChain("ADD", { list, rt }, { path: [dir], env });
      const down = await runChain("DEL", { list, rt }, { path: [dir], env, prevResult: up.result });
      if (cycle < 0) continue;
      add(dir, "chain ADD", up.ms);
      add(dir, "chain DEL", down.ms);
      for (const run of up.plugins) add(dir, `ADD ${run.type}`, run.ms);
      for (const run of down.plugins) add(dir, `DEL ${run.type}`, run.ms);
    }
  }
  const keys = [...samples.get(dirs[0])!.keys()];
  console.log(`Medians of ${cycles} cycles, ms (${WARMUP} warm-up cycles not counted)\n`);
  console.log(`| exec | ${dirs.join(" | ")} |`);
  console.log(`|---|${dirs.map(() => "---:").join("|")}|`);
  for (const key of keys) {
    const cells = dirs.map((d) => median(samples.get(d)!.get(key) ?? [NaN]).toFixed(1));
    console.log(`| ${key} | ${cells.join(" | ")} |`);
  }
  return 0;
}

if (import.meta.main) {
  const [first, second] = Deno.args;
  Deno.exit(first === "--inner" ? await inner(JSON.parse(second)) : await outer(Deno.args));
}

// deno-lint-ignore-file no-console -- a benchmark script reports to its user.
/**
 * `deno task bench-ab [--cycles N] <dir> <dir> ...`: Nomad's chain, ADD then
 * DEL, run from each plugin directory in turn (the order alternating every
 * cycle), with the median wall time of the chain and of each plugin exec.
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
  const flags = parseArgs(args, { string: ["cycles"], boolean: ["help"] });
  const dirs = flags._.map(String);
  if (flags.help || dirs.length === 0) {
    console.log("usage: deno task bench-ab [--cycles N] <plugin dir> [<plugin dir> ...]");
    return flags.help ? 0 : 2;
  }
  const cycles = Number(flags.cycles ?? 10);
  await using host = await createNetns("cbx-ab");
  const work = await Deno.makeTempDir({ prefix: "cnibox-bench-ab-" });
  try {
    await host.exec("sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
    const inner = JSON.stringify({ dirs, cycles, work });
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
async function inner(options: { dirs: string[]; cycles: number; work: string }): Promise<number> {
  const { dirs, cycles, work } = options;
  await using container = await createNetns("cbx-ab-c");
  const samples = new Map<string, Map<string, number[]>>(dirs.map((d) => [d, new Map()]));
  const add = (dir: string, key: string, ms: number) => {
    const byKey = samples.get(dir)!;
    byKey.set(key, [...(byKey.get(key) ?? []), ms]);
  };
  for (let cycle = -WARMUP; cycle < cycles; cycle++) {
    for (const [index, dir] of (cycle % 2 === 0 ? dirs : [...dirs].reverse()).entries()) {
      const list = parseConfList(nomadConflist(`${work}/ipam-${dirs.indexOf(dir)}`));
      const env = {
        PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
        CNI_CACHE_DIR: `${work}/cache`,
        CNIBOX_JOURNAL: `${work}/journal`,
        CNIBOX_FIREWALL_RECORDS: `${work}/records`,
      };
      const rt = {
        containerId: `ab-${cycle}-${index}`,
        netns: container.path,
        ifName: "eth0",
        capabilityArgs: {
          portMappings: ["tcp", "udp"].map((protocol) => ({
            HostPort: 28080,
            ContainerPort: 8080,
            Protocol: protocol,
            HostIP: "",
          })),
        },
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

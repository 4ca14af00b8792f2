/**
 * The bench's libcni stand-in: a long-lived process started inside one
 * implementation's private "host" namespace (`ip netns exec <host> deno run
 * -A scripts/_bench_driver.ts`) that runs plugins through `lib/runtime`
 * in-process, so the driver's own start-up is never measured and both
 * implementations are driven by exactly the same code.
 *
 * Protocol: one JSON request per line on stdin, one JSON reply per line on
 * stdout (`{ ok: true, ... }` or `{ ok: false, error }`), strictly in turn.
 * Every reply carries the times the driver measured.
 *
 * @module
 */
import { CniError } from "../lib/cni/error.ts";
import type { Result } from "../lib/cni/types.ts";
import { parseConfList } from "../lib/runtime/conflist.ts";
import { execPlugin, findInPath, pluginEnv } from "../lib/runtime/invoke.ts";
import {
  addNetworkList,
  delNetworkList,
  type RuntimeConf,
  type RuntimeOptions,
} from "../lib/runtime/runtime.ts";
import { runChain } from "./_bench_chain.ts";

/** One attachment as the orchestrator describes it. */
export interface Alloc {
  containerId: string;
  netns: string;
  ifName: string;
  /** CNI_ARGS of ADD (Nomad sends its NOMAD_* pairs). */
  args: [string, string][];
  /** Capability arguments (port mappings) for ADD and DEL. */
  capabilityArgs: Record<string, unknown>;
}

/** Requests the driver understands. */
export type DriverRequest =
  | {
    op: "init";
    /** CNI_PATH of this implementation. */
    path: string[];
    /** The conflist text the chain ops run. */
    conflist: string;
    /** Environment plugins start with. */
    env: Record<string, string>;
    /** libcni cache directory. */
    cacheDir: string;
  }
  | { op: "add"; alloc: Alloc }
  | { op: "del"; alloc: Alloc }
  | { op: "addMany"; allocs: Alloc[] }
  | { op: "delMany"; allocs: Alloc[] }
  | { op: "profile"; verb: "ADD" | "DEL"; alloc: Alloc; wrap?: "strace" | "openat" | "time" }
  | {
    op: "exec";
    plugin: string;
    command: string;
    stdin: string;
    alloc?: Alloc;
    wrap?: "time";
  }
  | { op: "quit" };

/** The outcome of one of many concurrent chain calls. */
export interface Outcome {
  ok: boolean;
  ip?: string;
  error?: string;
}

/** What the driver remembers between requests. */
interface State {
  options: RuntimeOptions;
  env: Record<string, string>;
  list: ReturnType<typeof parseConfList>;
  /** Final ADD results of profiled ADDs, for the profiled DEL's prevResult. */
  profiled: Map<string, Result>;
}

function runtimeConf(alloc: Alloc, verb: "ADD" | "DEL"): RuntimeConf {
  return {
    containerId: alloc.containerId,
    netns: alloc.netns,
    ifName: alloc.ifName,
    // Nomad sends an empty CNI_ARGS on DEL.
    args: verb === "ADD" ? alloc.args : [],
    capabilityArgs: alloc.capabilityArgs,
  };
}

/** The first IPv4 address (without prefix) of a result's sandboxed interface, else the first. */
export function allocIp(result: Result): string | undefined {
  const ips = result.ips ?? [];
  const sandboxed = (result.interfaces ?? []).findIndex((i) => i.sandbox);
  const pick = ips.find((ip) => ip.interface === sandboxed) ?? ips[0];
  return pick?.address.split("/")[0];
}

/**
 * CPU time (user + system) of every finished, waited-for descendant of this
 * process so far, in ms: `cutime + cstime` of `/proc/self/stat`. A plugin
 * waits for its own children, so their time is included. Clock ticks are
 * 10 ms; the bench reports means over many runs.
 */
export function childCpuMs(stat = Deno.readTextFileSync("/proc/self/stat")): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); cutime and cstime are fields 16 and 17.
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

function errorText(error: unknown): string {
  if (error instanceof CniError && error.details) return `${error.message}; ${error.details}`;
  return error instanceof Error ? error.message : String(error);
}

const WRAPPERS: Record<string, (output: string) => string[]> = {
  strace: (output) => ["strace", "-f", "--seccomp-bpf", "-ttt", "-e", "trace=execve", "-o", output],
  openat: (output) => [
    "strace",
    "-f",
    "--seccomp-bpf",
    "-ttt",
    "-e",
    "trace=openat,execve",
    "-o",
    output,
  ],
  time: (output) => ["/usr/bin/time", "-f", "%M", "-o", output],
};

/** Journal lines of one container written after `since` (ms since the epoch). */
async function journalOf(env: Record<string, string>, containerId: string, since: number) {
  const path = env.CNIBOX_JOURNAL;
  if (!path) return [];
  let text = "";
  for (const file of [`${path}.1`, path]) text += await Deno.readTextFile(file).catch(() => "");
  return text.split("\n").filter((line) => line.includes(containerId)).map((line) =>
    JSON.parse(line) as { plugin: string; command: string; durationMs: number; time: number }
  ).filter((entry) => entry.time >= since);
}

async function handle(
  request: DriverRequest,
  state: State | undefined,
): Promise<[Record<string, unknown>, State | undefined]> {
  if (request.op === "init") {
    const next: State = {
      options: { path: request.path, cacheDir: request.cacheDir, env: request.env },
      env: request.env,
      list: parseConfList(request.conflist),
      profiled: new Map(),
    };
    next.options.stderr = () => {};
    return [{}, next];
  }
  if (!state) throw new Error(`"${request.op}" before "init"`);
  const { list, options } = state;
  switch (request.op) {
    case "add": {
      const cpu = childCpuMs();
      const t0 = performance.now();
      const result = await addNetworkList(list, runtimeConf(request.alloc, "ADD"), options);
      const ms = performance.now() - t0;
      return [{ ms, cpuMs: childCpuMs() - cpu, ip: allocIp(result) }, state];
    }
    case "del": {
      const cpu = childCpuMs();
      const t0 = performance.now();
      await delNetworkList(list, runtimeConf(request.alloc, "DEL"), options);
      const ms = performance.now() - t0;
      return [{ ms, cpuMs: childCpuMs() - cpu }, state];
    }
    case "addMany":
    case "delMany": {
      const verb = request.op === "addMany" ? "ADD" : "DEL";
      const cpu = childCpuMs();
      const t0 = performance.now();
      const outcomes: Outcome[] = await Promise.all(request.allocs.map(async (alloc) => {
        try {
          if (verb === "DEL") {
            await delNetworkList(list, runtimeConf(alloc, "DEL"), options);
            return { ok: true };
          }
          const result = await addNetworkList(list, runtimeConf(alloc, "ADD"), options);
          return { ok: true, ip: allocIp(result) };
        } catch (error) {
          return { ok: false, error: errorText(error) };
        }
      }));
      const ms = performance.now() - t0;
      return [{ ms, cpuMs: childCpuMs() - cpu, outcomes }, state];
    }
    case "profile": {
      const { verb, alloc } = request;
      const since = Date.now();
      const wrapper = request.wrap ? WRAPPERS[request.wrap] : undefined;
      const run = await runChain(verb, { list, rt: runtimeConf(alloc, verb) }, {
        path: options.path,
        env: state.env,
        prevResult: state.profiled.get(alloc.containerId),
        wrap: wrapper && ((_type, output) => wrapper(output)),
      });
      if (verb === "ADD" && run.result) state.profiled.set(alloc.containerId, run.result);
      if (verb === "DEL") state.profiled.delete(alloc.containerId);
      const journal = await journalOf(state.env, alloc.containerId, since);
      return [{ ms: run.ms, plugins: run.plugins, journal }, state];
    }
    case "exec": {
      const pluginPath = await findInPath(request.plugin, options.path);
      const args = {
        command: request.command,
        containerId: request.alloc?.containerId,
        netns: request.alloc?.netns,
        ifName: request.alloc?.ifName,
        path: options.path,
      };
      if (request.wrap) {
        const dir = await Deno.makeTempDir({ prefix: "cbx-bn-rss-" });
        const output = `${dir}/rss`;
        const argv = [...WRAPPERS[request.wrap](output), pluginPath];
        const t0 = performance.now();
        const out = await new Deno.Command(argv[0], {
          args: argv.slice(1),
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
          env: pluginEnv(args, state.env),
          clearEnv: true,
        }).spawn();
        const feeding = ReadableStream.from([new TextEncoder().encode(request.stdin)])
          .pipeTo(out.stdin).catch(() => {});
        const status = await out.output();
        await feeding;
        const ms = performance.now() - t0;
        const text = await Deno.readTextFile(output).catch(() => "");
        await Deno.remove(dir, { recursive: true });
        if (!status.success) throw new Error(`${request.plugin} ${request.command} failed`);
        return [{ ms, wrapperOutput: text }, state];
      }
      const t0 = performance.now();
      await execPlugin(pluginPath, { stdin: request.stdin, args }, options);
      return [{ ms: performance.now() - t0 }, state];
    }
    case "quit":
      return [{ quit: true }, state];
  }
}

async function main(): Promise<void> {
  const encoder = new TextEncoder();
  const reply = async (value: Record<string, unknown>) => {
    const bytes = encoder.encode(JSON.stringify(value) + "\n");
    let off = 0;
    while (off < bytes.length) off += await Deno.stdout.write(bytes.subarray(off));
  };
  let state: State | undefined;
  let buffer = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.trim() === "") continue;
      let request: DriverRequest;
      try {
        request = JSON.parse(line);
        const [out, next] = await handle(request, state);
        state = next;
        await reply({ ok: true, ...out });
        if (request.op === "quit") return;
      } catch (error) {
        await reply({ ok: false, error: errorText(error) });
      }
    }
  }
}

if (import.meta.main) await main();

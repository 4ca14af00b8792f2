/**
 * A conflist run plugin by plugin, for the bench's profile passes: the same
 * stdin, environment and `prevResult` chaining as `lib/runtime`'s
 * `addNetworkList`/`delNetworkList` (it reuses `buildOneConfig`, `findInPath`
 * and `pluginEnv`), but every plugin exec is timed on its own and can be
 * started under a wrapper (`strace`, `/usr/bin/time`). The headline numbers
 * of the bench come from `lib/runtime` itself; this only splits them up.
 *
 * @module
 */
import { parseResult } from "../lib/cni/result.ts";
import type { Result } from "../lib/cni/types.ts";
import type { NetworkConfigList } from "../lib/runtime/conflist.ts";
import { buildOneConfig, findInPath, pluginEnv } from "../lib/runtime/invoke.ts";
import type { RuntimeConf } from "../lib/runtime/runtime.ts";

/** One plugin exec of a profiled chain run. */
export interface PluginRun {
  /** The plugin type, e.g. "bridge". */
  type: string;
  /** Wall time from spawn until its output was collected, in ms. */
  ms: number;
  /** The file the wrapper wrote, when there was a wrapper. */
  wrapperOutput?: string;
}

/** A whole profiled chain run. */
export interface ChainRun {
  /** Wall time of the whole chain, in ms. */
  ms: number;
  /** Per plugin, in the order they ran. */
  plugins: PluginRun[];
  /** The final result (ADD only). */
  result?: Result;
}

/** Options for {@linkcode runChain}. */
export interface RunChainOptions {
  /** Plugin directories (`CNI_PATH`). */
  path: readonly string[];
  /** Environment the plugins start with (CNI_* is set on top). */
  env: Record<string, string>;
  /** For DEL: the final ADD result, passed as `prevResult`. */
  prevResult?: Result;
  /**
   * Builds a wrapper command line for one plugin exec; the plugin's path is
   * appended to it. `output` names the file the wrapper writes, returned
   * as `wrapperOutput`. @default {undefined} (no wrapper)
   */
  wrap?: (type: string, output: string) => string[];
  /** Directory for wrapper output files. @default {Deno.makeTempDir()} */
  scratch?: string;
}

const decoder = new TextDecoder();

async function execOne(
  argv: string[],
  stdin: Uint8Array,
  env: Record<string, string>,
): Promise<Uint8Array> {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env,
    clearEnv: true,
  }).spawn();
  const feeding = ReadableStream.from([stdin]).pipeTo(child.stdin).catch(() => {});
  const out = await child.output();
  await feeding;
  if (!out.success) {
    throw new Error(
      `${argv.at(-1)} ${env.CNI_COMMAND} failed (exit ${out.code}): ${decoder.decode(out.stdout)}${
        decoder.decode(out.stderr)
      }`,
    );
  }
  return out.stdout;
}

/**
 * Runs `verb` (ADD or DEL) for every plugin of `list` (DEL in reverse order),
 * timing each exec. Throws on the first failing plugin with its output.
 */
export async function runChain(
  verb: "ADD" | "DEL",
  call: { list: NetworkConfigList; rt: RuntimeConf },
  options: RunChainOptions,
): Promise<ChainRun> {
  const { list, rt } = call;
  const order = verb === "ADD" ? list.plugins : [...list.plugins].reverse();
  const env = pluginEnv({
    command: verb,
    containerId: rt.containerId,
    netns: rt.netns,
    ifName: rt.ifName,
    args: rt.args ?? [],
    path: options.path,
  }, options.env);
  const scratch = options.wrap ? options.scratch ?? await Deno.makeTempDir() : "";
  const plugins: PluginRun[] = [];
  let prev = verb === "DEL" ? options.prevResult : undefined;
  const started = performance.now();
  for (const [index, plugin] of order.entries()) {
    const path = await findInPath(plugin.conf.type, options.path);
    const stdin = buildOneConfig(plugin, {
      name: list.name,
      cniVersion: list.cniVersion,
      prevResult: prev,
      capabilityArgs: rt.capabilityArgs,
    });
    const output = `${scratch}/${index}.${plugin.conf.type}.${verb}`;
    const argv = options.wrap ? [...options.wrap(plugin.conf.type, output), path] : [path];
    const t0 = performance.now();
    const stdout = await execOne(argv, stdin, env);
    const run: PluginRun = { type: plugin.conf.type, ms: performance.now() - t0 };
    if (options.wrap) {
      run.wrapperOutput = await Deno.readTextFile(output).catch(() => "");
      await Deno.remove(output).catch(() => {});
    }
    plugins.push(run);
    if (verb === "ADD") {
      const raw = JSON.parse(decoder.decode(stdout));
      prev = parseResult(raw, raw.cniVersion || list.cniVersion);
    }
  }
  const ms = performance.now() - started;
  if (options.wrap && !options.scratch) await Deno.remove(scratch, { recursive: true });
  return verb === "ADD" ? { ms, plugins, result: prev } : { ms, plugins };
}

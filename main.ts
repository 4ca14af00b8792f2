#!/usr/bin/env -S deno run -A
/**
 * cnibox: one program, many roles. The role comes from the name it was
 * started under (argv[0]), so `/opt/cni/bin/bridge` runs the bridge plugin
 * and any other name runs the command-line interface.
 *
 * The roles are the literal lazy imports in `applets.ts`: a plugin run
 * evaluates only its own modules (never hono).
 *
 * Runs with `-A`: writing `/proc/sys` and reading `/proc/self/cmdline` need
 * full access in Deno 2, and FFI is full access anyway.
 *
 * @module
 */
import { COMMANDS, PLUGIN_VERSIONS, PLUGINS } from "./applets.ts";
import type { PluginFuncs } from "./lib/cni/types.ts";

/**
 * The name this process was started under. Read from `/proc/self/cmdline`
 * rather than `Deno.execPath()`, which resolves symlinks, and rather than
 * `node:process`, whose import costs a plugin run about 19 ms.
 */
function invokedName(): string {
  try {
    const argv0 = Deno.readTextFileSync("/proc/self/cmdline").split("\0", 1)[0];
    return argv0.slice(argv0.lastIndexOf("/") + 1);
  } catch {
    return "cnibox";
  }
}

/** Handlers for a probe: the skeleton answers a bare run and VERSION without calling them. */
const PROBE_ONLY: PluginFuncs = {
  add: () => Promise.reject(new Error("probe run reached ADD")),
  del: () => Promise.reject(new Error("probe run reached DEL")),
};

async function runPlugin(name: string): Promise<number> {
  const command = Deno.env.get("CNI_COMMAND") ?? "";
  if (command === "" || command === "VERSION") {
    const skel = await import("./lib/cni/skel.ts");
    const identity = { name, supportedVersions: PLUGIN_VERSIONS[name], funcs: PROBE_ONLY };
    return await skel.runPlugin(identity, skel.denoIo());
  }
  const [skel, delegate, module] = await Promise.all([
    import("./lib/cni/skel.ts"),
    import("./lib/cni/delegate.ts"),
    PLUGINS[name](),
  ]);
  // An IPAM plugin found in CNI_PATH that is this same program runs in-process.
  delegate.setInProcessLoader(async (ipam) =>
    Object.hasOwn(PLUGINS, ipam) ? (await PLUGINS[ipam]()).plugin : undefined
  );
  return await skel.runPlugin(module.plugin, skel.denoIo());
}

async function main(): Promise<number> {
  const name = invokedName();
  if (Object.hasOwn(PLUGINS, name)) return await runPlugin(name);

  // `cnibox <plugin>` runs a plugin too: handy where symlinks are not wanted.
  const [command = "help", ...rest] = Deno.args;
  if (Object.hasOwn(PLUGINS, command)) return await runPlugin(command);
  if (!Object.hasOwn(COMMANDS, command)) {
    // deno-lint-ignore no-console -- the CLI reports a usage error on stderr.
    console.error(`cnibox: unknown command "${command}"; see "cnibox help"`);
    return 2;
  }
  const module = await COMMANDS[command]();
  return await module.run(rest);
}

if (import.meta.main) {
  Deno.exit(await main());
}

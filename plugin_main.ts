#!/usr/bin/env -S deno run -A
/**
 * The entry point of a plugin run: picks the plugin from the name this
 * process was started under (argv[0]) and runs it through the CNI skeleton.
 *
 * Plugin launchers start this file rather than `main.ts`, so a plugin run's
 * module graph holds the plugins and the CNI layers only, never the CLI or
 * the status endpoint (hono). `main.ts` uses it for plugin names as well,
 * which is the path a compiled binary's symlinks take.
 *
 * Runs with `-A`: writing `/proc/sys` and reading `/proc/self/cmdline` need
 * full access in Deno 2, and FFI is full access anyway.
 *
 * @module
 */
import { PLUGIN_VERSIONS, PLUGINS, RUNTIME_FILES } from "./applets.ts";
import { probeOutput, writeProbe } from "./lib/cni/probe.ts";

/**
 * The name this process was started under. Read from `/proc/self/cmdline`
 * rather than `Deno.execPath()`, which resolves symlinks, and rather than
 * `node:process`, whose import costs a plugin run about 19 ms.
 */
export function invokedName(): string {
  try {
    const argv0 = Deno.readTextFileSync("/proc/self/cmdline").split("\0", 1)[0];
    return argv0.slice(argv0.lastIndexOf("/") + 1);
  } catch {
    return "cnibox";
  }
}

/** True when `name` is one of the bundled plugins. */
export function isPlugin(name: string): boolean {
  return Object.hasOwn(PLUGINS, name);
}

type Skel = typeof import("./lib/cni/skel.ts");
type Delegate = typeof import("./lib/cni/delegate.ts");

/** Loads a module of the CNI runtime by computed URL (see applets.ts for why). */
function load<T>(file: string): Promise<T> {
  return import(new URL(file, import.meta.url).href) as Promise<T>;
}

/** Runs plugin `name` with the process's CNI environment and stdin; returns the exit code. */
export async function runPluginNamed(name: string): Promise<number> {
  // Probes (Nomad's fingerprint; podman's VERSION before every ADD and DEL)
  // need only the plugin's identity: neither the skeleton nor the plugin loads.
  const probe = probeOutput(name, PLUGIN_VERSIONS[name], Deno.env.get("CNI_COMMAND") ?? "");
  if (probe) {
    writeProbe(probe);
    return 0;
  }
  const [skel, delegate, module] = await Promise.all([
    load<Skel>(RUNTIME_FILES.skel),
    load<Delegate>(RUNTIME_FILES.delegate),
    PLUGINS[name](),
  ]);
  // An IPAM plugin found in CNI_PATH that is this same program runs in-process.
  delegate.setInProcessLoader(async (ipam) =>
    isPlugin(ipam) ? (await PLUGINS[ipam]()).plugin : undefined
  );
  return await skel.runPlugin(module.plugin, skel.denoIo());
}

if (import.meta.main) {
  const name = invokedName();
  if (isPlugin(name)) Deno.exit(await runPluginNamed(name));
  // deno-lint-ignore no-console -- no CNI skeleton runs for an unknown name.
  console.error(`cnibox: "${name}" is not a plugin (${Object.keys(PLUGINS).join(", ")})`);
  Deno.exit(2);
}

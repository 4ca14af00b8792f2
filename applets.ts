/**
 * The CNI plugins this program can be, by the file name it runs as.
 *
 * Modules are loaded by computed URL on purpose: `deno run` reads (and checks
 * against its cache) every module a *literal* `import()` can reach, so a
 * literal table would make each plugin run read all five plugins' graphs
 * (measured: about 4 ms per run). `deno compile` cannot see computed imports,
 * so `scripts/compile.ts` passes every file of {@linkcode PLUGIN_FILES} with
 * `--include`. The CLI's table is in `main.ts`. Kept apart from both entry
 * points because subcommands read it, and a module importing an entry point
 * would wait on its top-level `await`.
 *
 * @module
 */
import type { Plugin } from "./lib/cni/types.ts";
import { SUPPORTED_VERSIONS } from "./lib/cni/version.ts";

/** A plugin module exports its plugin for the skeleton. */
export type PluginModule = { plugin: Plugin };

/** Each plugin's module, relative to this file, by the name the program is run as. */
export const PLUGIN_FILES: Record<string, string> = {
  loopback: "plugins/loopback.ts",
  bridge: "plugins/bridge.ts",
  "host-local": "plugins/host_local.ts",
  firewall: "plugins/firewall.ts",
  portmap: "plugins/portmap.ts",
};

/**
 * Plugins that delegate IPAM, and this program's IPAM plugins each may run
 * in-process (see `lib/cni/delegate.ts`). A plugin bundle links exactly
 * these; `plugin_main.ts` loads any of ours on demand.
 */
export const IN_PROCESS_IPAM: Record<string, readonly string[]> = {
  bridge: ["host-local"],
};

/** The CNI runtime a plugin run loads besides its plugin, relative to this file (by computed URL too). */
export const RUNTIME_FILES = {
  skel: "lib/cni/skel.ts",
  delegate: "lib/cni/delegate.ts",
} as const;

/** Loads plugin `name`'s module (one plugin's graph, nothing else). */
function loader(name: string): () => Promise<PluginModule> {
  const url = new URL(PLUGIN_FILES[name], import.meta.url).href;
  return () => import(url) as Promise<PluginModule>;
}

/** The CNI plugins, by the name the program is run as. */
export const PLUGINS: Record<string, () => Promise<PluginModule>> = Object.fromEntries(
  Object.keys(PLUGIN_FILES).map((name) => [name, loader(name)]),
);

/**
 * Each plugin's CNI versions, known without loading the plugin: probes (a
 * bare run, which is Nomad's fingerprint, and VERSION, which podman sends to
 * every plugin before each ADD and DEL) are answered from this table.
 * A test keeps it equal to each plugin's own `supportedVersions`.
 */
export const PLUGIN_VERSIONS: Record<string, readonly string[]> = {
  loopback: SUPPORTED_VERSIONS,
  bridge: SUPPORTED_VERSIONS,
  "host-local": SUPPORTED_VERSIONS,
  firewall: ["0.4.0", "1.0.0", "1.1.0"],
  portmap: SUPPORTED_VERSIONS,
};

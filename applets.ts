/**
 * The CNI plugins this program can be, by the file name it runs as. Every
 * entry is a literal `import()` so `deno compile` bundles it while a run
 * evaluates only the one it needs.
 *
 * Only plugins live here: `deno run` reads every module a literal `import()`
 * can reach, so a table that also named the CLI's commands would make every
 * plugin run read the status endpoint's modules too. The CLI's table is in
 * `main.ts`. Kept apart from both entry points because subcommands read it,
 * and a module importing an entry point would wait on its top-level `await`.
 *
 * @module
 */
import type { Plugin } from "./lib/cni/types.ts";
import { SUPPORTED_VERSIONS } from "./lib/cni/version.ts";

/** A plugin module exports its plugin for the skeleton. */
export type PluginModule = { plugin: Plugin };

/** The CNI plugins, by the name the program is run as. */
export const PLUGINS: Record<string, () => Promise<PluginModule>> = {
  loopback: () => import("./plugins/loopback.ts"),
  bridge: () => import("./plugins/bridge.ts"),
  "host-local": () => import("./plugins/host_local.ts"),
  firewall: () => import("./plugins/firewall.ts"),
  portmap: () => import("./plugins/portmap.ts"),
};

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

/**
 * The table of roles this program can take: CNI plugins by the file name the
 * program runs as, and CLI subcommands. Every entry is a literal `import()`
 * so `deno compile` bundles it while a run evaluates only the one it needs.
 *
 * Kept apart from `main.ts` because subcommands read this table, and a module
 * importing `main.ts` would wait forever on its top-level `await`.
 *
 * @module
 */
import type { Plugin } from "./lib/cni/types.ts";
import { SUPPORTED_VERSIONS } from "./lib/cni/version.ts";

/** A plugin module exports its plugin for the skeleton. */
export type PluginModule = { plugin: Plugin };
/** A subcommand module exports its entry point. */
export type CommandModule = { run(args: string[]): Promise<number> };

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

/** Subcommands of the `cnibox` command-line interface. */
export const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  help: () => import("./commands/help.ts"),
  version: () => import("./commands/version.ts"),
  install: () => import("./commands/install.ts"),
  exec: () => import("./commands/exec.ts"),
  serve: () => import("./commands/serve.ts"),
  gc: () => import("./commands/gc.ts"),
};

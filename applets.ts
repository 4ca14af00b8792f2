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

/** Subcommands of the `cnibox` command-line interface. */
export const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  help: () => import("./commands/help.ts"),
  version: () => import("./commands/version.ts"),
  install: () => import("./commands/install.ts"),
  exec: () => import("./commands/exec.ts"),
  serve: () => import("./commands/serve.ts"),
  gc: () => import("./commands/gc.ts"),
};

#!/usr/bin/env -S deno run -A
/**
 * cnibox: one program, many roles. The role comes from the name it was
 * started under (argv[0]), so `/opt/cni/bin/bridge` runs the bridge plugin
 * and any other name runs the command-line interface.
 *
 * Plugin runs go through `plugin_main.ts`; the CLI's subcommands are the
 * literal lazy imports below, loaded one per run.
 *
 * Runs with `-A`: writing `/proc/sys` and reading `/proc/self/cmdline` need
 * full access in Deno 2, and FFI is full access anyway.
 *
 * @module
 */
import { invokedName, isPlugin, runPluginNamed } from "./plugin_main.ts";

type CommandModule = { run(args: string[]): Promise<number> };

/** Subcommands of the `cnibox` command-line interface. */
const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  help: () => import("./commands/help.ts"),
  version: () => import("./commands/version.ts"),
  install: () => import("./commands/install.ts"),
  exec: () => import("./commands/exec.ts"),
  serve: () => import("./commands/serve.ts"),
  gc: () => import("./commands/gc.ts"),
};

async function main(): Promise<number> {
  const name = invokedName();
  if (isPlugin(name)) return await runPluginNamed(name);

  // `cnibox <plugin>` runs a plugin too: handy where symlinks are not wanted.
  const [command = "help", ...rest] = Deno.args;
  if (isPlugin(command)) return await runPluginNamed(command);
  if (!Object.hasOwn(COMMANDS, command)) {
    // deno-lint-ignore no-console -- the CLI reports a usage error on stderr.
    console.error(`cnibox: unknown command "${command}"; see "cnibox help"`);
    return 2;
  }
  const module = await COMMANDS[command]();
  try {
    return await module.run(rest);
  } catch (error) {
    // An operator's mistake (an existing file, a bad flag) deserves one line, not a stack trace.
    const debug = Deno.env.get("CNIBOX_DEBUG");
    const text = error instanceof Error
      ? (debug ? error.stack ?? error.message : error.message)
      : String(error);
    // deno-lint-ignore no-console -- the CLI reports its failure on stderr.
    console.error(`cnibox ${command}: ${text}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main());
}

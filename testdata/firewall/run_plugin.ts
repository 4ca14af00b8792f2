/**
 * Test entry: runs our firewall or portmap plugin as a CNI binary would run
 * (env + stdin in, result or error JSON out). With `CBX_EXEC_LOG=<file>`,
 * every process the plugin starts is recorded and written to that file as
 * JSON when the run ends, so tests can count them.
 *
 * Usage: deno run -A testdata/firewall/run_plugin.ts firewall|portmap
 *
 * @module
 */
import { denoIo, runPlugin } from "../../lib/cni/skel.ts";
import { SpawnExecer, RecordingExecer } from "../../lib/firewall/exec.ts";
import type { Plugin } from "../../lib/cni/types.ts";

const name = Deno.args[0];
const log = Deno.env.get("CBX_EXEC_LOG");
const execer = log ? new RecordingExecer(new SpawnExecer()) : undefined;
let plugin: Plugin;
if (name === "firewall") {
  const { firewallFuncs, plugin: base } = await import("../../plugins/firewall.ts");
  plugin = { ...base, funcs: firewallFuncs({ execer }) };
} else if (name === "portmap") {
  const { portmapFuncs, plugin: base } = await import("../../plugins/portmap.ts");
  plugin = { ...base, funcs: portmapFuncs({ execer }) };
} else {
  throw new Error(`unknown plugin ${name}`);
}
const code = await runPlugin(plugin, denoIo());
if (log && execer) Deno.writeTextFileSync(log, JSON.stringify(execer.calls));
Deno.exit(code);

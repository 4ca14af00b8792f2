/**
 * What the end-to-end tests run against, and whether they can run here:
 * the plugin directory under test, the `cnibox` runtime that drives it, the
 * external tools each test needs, and the reasons a test is skipped.
 *
 * The plugins under test are this checkout's, installed as launchers (the
 * same dispatch path a compiled binary's symlinks take). Setting
 * `CNIBOX_E2E_PLUGIN_DIR` points the tests at another directory, e.g.
 * `/usr/lib/cni` to watch the reference plugins fail the checks they fail.
 *
 * Test-only.
 *
 * @module
 */
import { pluginDir } from "../lib/testing/harness.ts";
import { ROOT } from "../lib/testing/netns.ts";
import { NOMAD_BRIDGE_PLUGINS } from "./_nomad.ts";

/** Environment variable naming another plugin directory to test. */
export const PLUGIN_DIR_ENV = "CNIBOX_E2E_PLUGIN_DIR";

/** Root of this checkout. */
export const CHECKOUT: string = new URL("..", import.meta.url).pathname;

/** The directory holding the plugins under test (ours unless overridden). */
export async function pluginsUnderTest(): Promise<string> {
  const override = Deno.env.get(PLUGIN_DIR_ENV);
  const dir = override || await pluginDir();
  const missing = NOMAD_BRIDGE_PLUGINS.filter((name) => !isExecutable(`${dir}/${name}`));
  if (missing.length > 0) {
    // A product gap, not a missing tool: fail rather than skip.
    throw new Error(
      `plugin dir ${dir} lacks ${missing.join(", ")}` +
        (override ? "" : " (not in applets.ts PLUGINS yet?)"),
    );
  }
  return dir;
}

/** The `cnibox` launcher that plays the runtime (`cnibox exec`). Always ours. */
export async function cniboxBin(): Promise<string> {
  return `${await pluginDir()}/cnibox`;
}

function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** Finds `name` in PATH and the sbin directories; undefined when absent. */
export function findTool(name: string): string | undefined {
  const dirs = (Deno.env.get("PATH") ?? "").split(":").filter(Boolean);
  dirs.push("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin");
  for (const dir of dirs) if (isExecutable(`${dir}/${name}`)) return `${dir}/${name}`;
  return undefined;
}

/**
 * Why a group of tests cannot run here, or undefined when it can: not root,
 * or one of `tools` missing (each with the package that provides it).
 */
export function skipReason(tools: Record<string, string>): string | undefined {
  if (!ROOT) return "needs root (network namespaces, iptables)";
  const missing = Object.entries(tools).filter(([tool]) => !findTool(tool));
  if (missing.length === 0) return undefined;
  const packages = [...new Set(missing.map(([, pkg]) => pkg))];
  return `missing ${missing.map(([tool]) => tool).join(", ")} ` +
    `(apt-get install ${packages.join(" ")}; scripts/setup.sh installs them)`;
}

/** Tells the person running the tests why a group is skipped (once, on stderr). */
export function announceSkip(group: string, reason: string | undefined): void {
  if (reason === undefined) return;
  // deno-lint-ignore no-console -- a skipped end-to-end group must say why.
  console.warn(`e2e: skipping ${group}: ${reason}`);
}

/** Reads a conflist fixture from testdata/e2e with its `/var/run/cni` dataDir moved to `dataDir`. */
export async function readConflist(file: string, dataDir: string): Promise<string> {
  const text = await Deno.readTextFile(new URL(`../testdata/e2e/${file}`, import.meta.url));
  return text.replaceAll(`"/var/run/cni"`, JSON.stringify(dataDir));
}

// deno-lint-ignore-file no-console -- a CLI command talks to its user on stdout.
/**
 * `cnibox install <dir>`: makes `loopback`, `bridge`, `host-local`,
 * `firewall`, `portmap` and `cnibox` runnable from `<dir>`.
 *
 * From a compiled binary each name is a symlink to it. From a checkout each
 * plugin name is a small launcher over that plugin's bundle (see
 * `_bundle.ts`), and `cnibox` one over `main.ts`. With `--sources` the
 * plugin launchers start `plugin_main.ts` with their own path as argv[0],
 * which is the same dispatch path a symlink to a compiled binary takes.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { PLUGINS } from "../applets.ts";
import { BUNDLE_V8_FLAGS, bundleDenoDir, ensureBundles } from "./_bundle.ts";

/** The marker line that tells the IPAM delegation a file is this program. */
export const LAUNCHER_MARKER = "# cnibox-launcher:";

/** Options for {@linkcode installPlugins}. */
export interface InstallOptions {
  /** Replace existing files of the same names. @default {false} */
  force?: boolean;
  /**
   * Plugin launchers run `plugin_main.ts` from sources instead of a plugin
   * bundle (for working on the code: no install after each change).
   * @default {false}
   */
  sources?: boolean;
}

/** Where this program runs from: a compiled binary, or `deno` running a checkout. */
function isCompiled(): boolean {
  return !/\/deno$/.test(Deno.execPath());
}

function entryPath(file: "main.ts" | "plugin_main.ts"): string {
  return new URL(`../${file}`, import.meta.url).pathname;
}

/**
 * The DENO_DIR this install was made with, pinned into the `cnibox` launcher
 * and into plugin launchers that run the sources (runtimes clear HOME).
 * Plugin launchers that run bundles pin the bundles' own (`bundleDenoDir`).
 */
async function denoDir(): Promise<string> {
  if (Deno.env.get("DENO_DIR")) return Deno.env.get("DENO_DIR")!;
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
    .output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir;
}

function quote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * The launcher script for one entry point of this checkout. Plugin launchers
 * run without the project config (a plugin run needs no import map, and the
 * config's npm entry would make Deno read npm metadata), normally a plugin
 * bundle (`bundle`, see `_bundle.ts`) and else `plugin_main.ts` itself. The
 * marker line names the entry point either way: it is how in-process
 * delegation recognises this program.
 */
export function launcherScript(
  options: { deno: string; entry: string; denoDir: string; config?: string; bundle?: string },
): string {
  const config = options.config === undefined ? "--no-config" : `--config ${quote(options.config)}`;
  const exports = `export DENO_DIR=${quote(options.denoDir)} DENO_NO_UPDATE_CHECK=1`;
  if (options.bundle !== undefined) {
    // A bundle is one plugin, so argv[0] is not needed and plain sh (about 2 ms
    // faster to start than bash) can exec it.
    return [
      "#!/bin/sh",
      `${LAUNCHER_MARKER} ${options.entry}`,
      "# Runs this plugin's bundle of the cnibox checkout above (re-run `cnibox install` after changing it).",
      exports,
      `exec ${
        quote(options.deno)
      } run -A --v8-flags=${BUNDLE_V8_FLAGS} --quiet --no-prompt ${config} ${
        quote(options.bundle)
      } "$@"`,
      "",
    ].join("\n");
  }
  return [
    "#!/bin/bash",
    `${LAUNCHER_MARKER} ${options.entry}`,
    "# Runs the cnibox checkout above as the program named by this file's path (argv[0]).",
    exports,
    `exec -a "$0" ${quote(options.deno)} run -A --quiet --no-prompt ${config} ${
      quote(options.entry)
    } "$@"`,
    "",
  ].join("\n");
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Installs every plugin name and `cnibox` into `dir`; returns the paths written. */
export async function installPlugins(dir: string, options: InstallOptions = {}): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const names = [...Object.keys(PLUGINS), "cnibox"];
  const taken = names.map((name) => `${dir}/${name}`).filter(exists);
  if (taken.length > 0 && !options.force) {
    throw new Error(
      `Cannot install into "${dir}": ${taken.join(", ")} already exist (use --force)`,
    );
  }
  const compiled = isCompiled();
  const scripts = new Map<string, string>();
  if (!compiled) {
    const common = { deno: Deno.execPath(), denoDir: await denoDir() };
    const bundles = options.sources ? undefined : await bundleDir(common);
    for (const name of Object.keys(PLUGINS)) {
      scripts.set(
        name,
        launcherScript({
          ...common,
          entry: entryPath("plugin_main.ts"),
          ...(bundles === undefined
            ? {}
            : { bundle: `${bundles}/${name}.js`, denoDir: bundleDenoDir(common.denoDir, bundles) }),
        }),
      );
    }
    scripts.set(
      "cnibox",
      launcherScript({
        ...common,
        entry: entryPath("main.ts"),
        config: entryPath("main.ts").replace(/main\.ts$/, "deno.json"),
      }),
    );
  }
  const written: string[] = [];
  for (const name of names) {
    const path = `${dir}/${name}`;
    const temp = `${path}.cnibox-tmp`;
    // Write beside the target and rename, so a runtime never execs a half-written file.
    await Deno.remove(temp).catch(() => {});
    if (compiled) {
      await Deno.symlink(Deno.execPath(), temp);
    } else {
      await Deno.writeTextFile(temp, scripts.get(name)!, { mode: 0o755 });
      await Deno.chmod(temp, 0o755);
    }
    await Deno.rename(temp, path);
    written.push(path);
  }
  if (!compiled) await warmCache();
  return written;
}

/**
 * The plugin bundles for this checkout (built now if needed), or undefined
 * when they cannot be built: the launchers then run the sources, which
 * behave the same and only start slower, and the install says so.
 */
async function bundleDir(options: { deno: string; denoDir: string }): Promise<string | undefined> {
  try {
    return await ensureBundles(options);
  } catch (error) {
    console.error(
      `cnibox install: plugin bundles could not be built, the launchers run the sources ` +
        `(slower starts): ${(error as Error).message}`,
    );
    return undefined;
  }
}

/** Transpiles both entry points' graphs into DENO_DIR now, so no runtime's first call pays for it. */
async function warmCache(): Promise<void> {
  const runs = [
    ["cache", "--quiet", "--no-config", entryPath("plugin_main.ts")],
    [
      "cache",
      "--quiet",
      "--config",
      entryPath("main.ts").replace(/main\.ts$/, "deno.json"),
      entryPath("main.ts"),
    ],
  ];
  for (const args of runs) {
    const out = await new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "piped" })
      .output();
    if (!out.success) {
      throw new Error(
        `Cannot cache the module graph: ${new TextDecoder().decode(out.stderr).trim()}`,
      );
    }
  }
}

/** `cnibox install [--force] [--sources] <dir>`. */
export async function run(args: string[]): Promise<number> {
  const flags = parseArgs(args, {
    boolean: ["force", "sources", "help"],
    alias: { f: "force", h: "help" },
  });
  const [dir] = flags._;
  if (flags.help || !dir) {
    console.log("usage: cnibox install [--force] [--sources] <dir>");
    return flags.help ? 0 : 2;
  }
  const written = await installPlugins(dir, {
    force: flags.force === true,
    sources: flags.sources === true,
  });
  console.log(
    `installed ${written.length} programs into ${dir}: ${
      written.map((p) => p.slice(dir.length + 1)).join(", ")
    }`,
  );
  return 0;
}

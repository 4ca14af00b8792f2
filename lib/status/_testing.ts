/**
 * Test helper: a private copy of `testdata/status/` (configs, host-local
 * lease dirs, a libcni result cache) in a temporary directory, with the
 * `@DATA@` placeholder in the configs replaced by the copy's lease dir, a
 * plugin directory with cnibox and non-cnibox binaries, and a fake netns
 * probe (`fixture-live` exists, `fixture-gone` does not).
 *
 * @module
 */
import { fromFileUrl, join } from "@std/path";
import { launcherScript } from "../../commands/install.ts";
import type { StatusSources } from "./inventory.ts";

const FIXTURE = fromFileUrl(new URL("../../testdata/status/", import.meta.url));

/** Fixed clock of the fixture: cache files were written 90 s before it. */
export const FIXTURE_NOW = Date.UTC(2026, 0, 15, 12, 0, 0);

/** A fixture copy; dispose to delete it. */
export interface StatusFixture extends AsyncDisposable {
  root: string;
  configDir: string;
  dataDir: string;
  extraDataDir: string;
  cacheDir: string;
  pluginDir: string;
  /** Sources for `collectInventory`/`createStatusApp` over this fixture. */
  sources: StatusSources;
}

async function copyTree(from: string, to: string, replace: (text: string) => string) {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const src = join(from, entry.name);
    const dst = join(to, entry.name);
    if (entry.isDirectory) await copyTree(src, dst, replace);
    else await Deno.writeTextFile(dst, replace(await Deno.readTextFile(src)));
  }
}

/** Fake netns probe for the fixture's cache entries. */
export function fixtureProbe(path: string): Promise<boolean | null> {
  if (path === "/var/run/netns/fixture-live") return Promise.resolve(true);
  if (path === "/var/run/netns/fixture-gone") return Promise.resolve(false);
  return Promise.resolve(null);
}

/** Copies the fixture into a fresh temporary directory. */
export async function statusFixture(): Promise<StatusFixture> {
  const root = await Deno.makeTempDir({ prefix: "cbx-st-" });
  const dataDir = join(root, "data");
  await copyTree(FIXTURE, root, (text) => text.replaceAll("@DATA@", dataDir));
  const cacheDir = join(root, "cache");
  const cachedAt = new Date(FIXTURE_NOW - 90_000);
  for await (const entry of Deno.readDir(join(cacheDir, "results"))) {
    await Deno.utime(join(cacheDir, "results", entry.name), cachedAt, cachedAt);
  }
  const pluginDir = join(root, "bin");
  await Deno.mkdir(pluginDir);
  // bridge: a cnibox launcher; host-local: a symlink to a binary named cnibox; portmap: foreign.
  const launcher = launcherScript({
    deno: "/bin/false",
    entry: "/nonexistent/plugin_main.ts",
    denoDir: "/tmp",
  });
  await Deno.writeTextFile(join(pluginDir, "bridge"), launcher, { mode: 0o755 });
  await Deno.writeTextFile(join(pluginDir, "cnibox"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  await Deno.symlink(join(pluginDir, "cnibox"), join(pluginDir, "host-local"));
  await Deno.writeTextFile(join(pluginDir, "portmap"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  const configDir = join(root, "net.d");
  const extraDataDir = join(root, "extra");
  return {
    root,
    configDir,
    dataDir,
    extraDataDir,
    cacheDir,
    pluginDir,
    sources: {
      configDirs: [configDir],
      pluginDirs: [pluginDir],
      cacheDir,
      dataDirs: [extraDataDir],
      probe: fixtureProbe,
      now: () => FIXTURE_NOW,
    },
    [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }),
  };
}

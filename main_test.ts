import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { PLUGIN_FILES, PLUGIN_VERSIONS, PLUGINS } from "./applets.ts";
import { pluginDir, runApplet } from "./lib/testing/harness.ts";
import { sh } from "./lib/testing/netns.ts";

const root = new URL(".", import.meta.url).pathname;

/** Every module a plugin run loads: main.ts, the skeleton and the plugin's own graph. */
async function moduleGraph(entry: string): Promise<string[]> {
  const out = await sh(Deno.execPath(), ["info", "--json", `${root}${entry}`]);
  const info = JSON.parse(out.stdout) as { modules: { specifier: string }[] };
  return info.modules.map((module) => module.specifier);
}

for (const name of Object.keys(PLUGINS)) {
  Deno.test(`${name}: a bare run prints the fingerprint Nomad reads and exits 0`, async () => {
    const out = await runApplet(name, { env: {} });
    assertEquals(out.code, 0, out.stderr);
    assertEquals(out.stdout, "");
    const [first, second] = out.stderr.split("\n");
    assertEquals(first, `CNI ${name} plugin v1.9.1+cnibox.0.1.0`);
    assertMatch(second, /^CNI protocol versions supported: (0\.[1-4]\.0|0\.3\.1|1\.[01]\.0)(, |$)/);
    // Nomad takes the first whitespace-separated semver token and needs >= 1.3.0 for CHECK.
    const token = first.split(/\s+/).find((word) => /^v?\d+\.\d+\.\d+/.test(word));
    assertEquals(token, "v1.9.1+cnibox.0.1.0");
  });
}

Deno.test("a plugin run's graph holds no CLI command and no status endpoint", async () => {
  const graph = await moduleGraph("plugin_main.ts");
  const foreign = graph.filter((specifier) =>
    /^(npm|node|jsr|https?):/.test(specifier) || specifier.includes("/commands/") ||
    (specifier.includes("/lib/status/") && !specifier.endsWith("/lib/status/journal.ts"))
  );
  assertEquals(foreign, []);
});

Deno.test("plugin runs load no npm package and no node: module", async () => {
  for (const [name, file] of Object.entries(PLUGIN_FILES)) {
    const graph = [...await moduleGraph(file), ...await moduleGraph("lib/cni/skel.ts")];
    const heavy = graph.filter((specifier) => /^(npm|node|jsr|https?):/.test(specifier));
    assertEquals(heavy, [], `${name} loads ${heavy.join(", ")}`);
  }
});

Deno.test("cnibox under another name is the CLI: version --json", async () => {
  const dir = await pluginDir();
  const out = await sh(`${dir}/cnibox`, ["version", "--json"]);
  assertEquals(out.code, 0, out.stderr);
  const info = JSON.parse(out.stdout);
  assertEquals(info.upstreamRelease, "1.9.1");
  assertEquals(info.plugins, Object.keys(PLUGINS));
});

Deno.test("cnibox rejects an unknown command with exit 2", async () => {
  const dir = await pluginDir();
  const out = await sh(`${dir}/cnibox`, ["frobnicate"]);
  assertEquals(out.code, 2);
  assertStringIncludes(out.stderr, `unknown command "frobnicate"`);
});

Deno.test("a failing subcommand prints one line and exits 1", async () => {
  const dir = await pluginDir();
  const target = await Deno.makeTempDir({ prefix: "cnibox-install-" });
  try {
    await Deno.writeTextFile(`${target}/loopback`, "not ours");
    const out = await sh(`${dir}/cnibox`, ["install", target]);
    assertEquals(out.code, 1);
    assertStringIncludes(out.stderr, `cnibox install: Cannot install into "${target}"`);
    assertEquals(out.stderr.trim().split("\n").length, 1, out.stderr);
    assertEquals(await Deno.readTextFile(`${target}/loopback`), "not ours");
  } finally {
    await Deno.remove(target, { recursive: true });
  }
});

Deno.test("cnibox <plugin> runs the plugin without a symlink", async () => {
  const dir = await pluginDir();
  const out = await sh(`${dir}/cnibox`, ["loopback"], { env: { CNI_COMMAND: "VERSION" } });
  assertEquals(out.code, 0, out.stderr);
  assertEquals(JSON.parse(out.stdout).cniVersion, "1.1.0");
});

Deno.test("install refuses to overwrite without --force and replaces with it", async () => {
  const { installPlugins, LAUNCHER_MARKER } = await import("./commands/install.ts");
  const dir = await Deno.makeTempDir({ prefix: "cnibox-install-" });
  try {
    await Deno.writeTextFile(`${dir}/loopback`, "not ours");
    let refused = false;
    await installPlugins(dir).catch((error) => {
      refused = /already exist/.test(error.message);
    });
    assert(refused, "install overwrote an existing file without --force");
    assertEquals(await Deno.readTextFile(`${dir}/loopback`), "not ours");
    const written = await installPlugins(dir, { force: true });
    assertEquals(written.length, Object.keys(PLUGINS).length + 1);
    const launcher = await Deno.readTextFile(`${dir}/loopback`);
    assertStringIncludes(launcher, `${LAUNCHER_MARKER} ${root}plugin_main.ts`);
    assertStringIncludes(
      await Deno.readTextFile(`${dir}/cnibox`),
      `${LAUNCHER_MARKER} ${root}main.ts`,
    );
    assert(
      ((await Deno.stat(`${dir}/loopback`)).mode! & 0o111) !== 0,
      "launcher is not executable",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the probe table lists each plugin's own supported versions", async () => {
  assertEquals(Object.keys(PLUGIN_VERSIONS).sort(), Object.keys(PLUGINS).sort());
  for (const [name, load] of Object.entries(PLUGINS)) {
    const { plugin } = await load();
    assertEquals(plugin.name, name);
    assertEquals([...PLUGIN_VERSIONS[name]], [...plugin.supportedVersions], name);
  }
});

for (const name of Object.keys(PLUGINS)) {
  Deno.test(`${name}: VERSION answers with the plugin's versions`, async () => {
    const out = await runApplet(name, { env: { CNI_COMMAND: "VERSION" } });
    assertEquals(out.code, 0, out.stderr);
    assertEquals(JSON.parse(out.stdout), {
      cniVersion: "1.1.0",
      supportedVersions: [...PLUGIN_VERSIONS[name]],
    });
  });
}

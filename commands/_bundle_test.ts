import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { PLUGINS } from "../applets.ts";
import { ROOT, sh } from "../lib/testing/netns.ts";
import { createWorld, netConf } from "../plugins/_bridge_testing.ts";
import {
  BUNDLE_V8_FLAGS,
  bundleDenoDir,
  bundleEntrySource,
  bundleFingerprint,
  bundleSources,
  CHECKOUT_ROOT,
  ensureBundles,
  probeEntrySource,
} from "./_bundle.ts";
import { installPlugins } from "./install.ts";

Deno.test("bundleEntrySource() links the plugin and the skeleton, and IPAM only where delegated", () => {
  const loopback = bundleEntrySource("loopback", "/co/");
  assertStringIncludes(loopback, `from "file:///co/lib/cni/skel.ts"`);
  assertStringIncludes(loopback, `from "file:///co/plugins/loopback.ts"`);
  assert(!loopback.includes("delegate.ts"), "loopback delegates nothing");
  assert(loopback.trimEnd().endsWith("Deno.exit(await runPlugin(plugin, denoIo()));"));

  const bridge = bundleEntrySource("bridge", "/co/");
  assertStringIncludes(bridge, `from "file:///co/lib/cni/delegate.ts"`);
  assertStringIncludes(
    bridge,
    `case "host-local": return (await import("file:///co/plugins/host_local.ts")).plugin;`,
  );
  // Launchers name plugin_main.ts; in-process delegation must compare against that, not the bundle.
  assertStringIncludes(bridge, `{ programModule: "/co/plugin_main.ts" }`);
  assertThrows(() => bundleEntrySource("dhcp", "/co/"), Error, `Cannot bundle "dhcp"`);
});

Deno.test("probeEntrySource() answers probes from the version table and loads the run bundle otherwise", () => {
  const firewall = probeEntrySource("firewall", "/co/");
  assertStringIncludes(firewall, `from "file:///co/lib/cni/probe.ts"`);
  assertStringIncludes(firewall, `probeOutput("firewall", ["0.4.0","1.0.0","1.1.0"], `);
  // Computed, so `deno run` does not load the plugin for a probe.
  assertStringIncludes(
    firewall,
    `await import(new URL("./firewall.run.js", import.meta.url).href);`,
  );
  assert(!firewall.includes("plugins/"), "a probe bundle links no plugin");
  assertThrows(() => probeEntrySource("dhcp", "/co/"), Error, `Cannot bundle "dhcp"`);
});

Deno.test("bundleFingerprint() follows plugin sources and ignores tests", async () => {
  const root = `${await Deno.makeTempDir({ prefix: "cnibox-bundle-fp-" })}/`;
  try {
    for (const dir of ["lib/cni", "plugins", "commands"]) {
      await Deno.mkdir(`${root}${dir}`, { recursive: true });
    }
    const files: Record<string, string> = {
      "applets.ts": "a",
      "plugin_main.ts": "m",
      "deno.json": "{}",
      "commands/_bundle.ts": "b",
      "lib/cni/skel.ts": "s",
      "lib/cni/skel_test.ts": "t",
      "plugins/loopback.ts": "l",
    };
    for (const [file, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${root}${file}`, text);
    }
    assertEquals(bundleSources(root), [
      "applets.ts",
      "commands/_bundle.ts",
      "deno.json",
      "lib/cni/skel.ts",
      "plugin_main.ts",
      "plugins/loopback.ts",
    ]);
    const before = await bundleFingerprint(root);
    assertMatch(before, /^[0-9a-f]{24}$/);
    await Deno.writeTextFile(`${root}lib/cni/skel_test.ts`, "changed");
    assertEquals(await bundleFingerprint(root), before, "a test file changed the fingerprint");
    await Deno.writeTextFile(`${root}plugins/loopback.ts`, "changed");
    assertNotEquals(await bundleFingerprint(root), before, "a plugin source did not");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("install points plugin launchers at this checkout's bundles, or at the sources when asked", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cnibox-bundle-install-" });
  try {
    await installPlugins(dir, { force: true });
    const bundles = `${CHECKOUT_ROOT}dist/bundles/${await bundleFingerprint(CHECKOUT_ROOT)}`;
    for (const name of Object.keys(PLUGINS)) {
      const launcher = await Deno.readTextFile(`${dir}/${name}`);
      assert(launcher.startsWith("#!/bin/sh\n"), launcher);
      assertStringIncludes(launcher, `# cnibox-launcher: ${CHECKOUT_ROOT}plugin_main.ts`);
      assertStringIncludes(launcher, ` --v8-flags=${BUNDLE_V8_FLAGS} `);
      assertStringIncludes(
        launcher,
        `export DENO_DIR='${bundleDenoDir(await sharedDenoDir(), bundles)}' `,
      );
      assertStringIncludes(launcher, `'${bundles}/${name}.js'`);
      assert((await Deno.stat(`${bundles}/${name}.run.js`)).isFile);
      const version = await sh(`${dir}/${name}`, [], {
        env: { CNI_COMMAND: "VERSION", PATH: "/usr/bin:/bin" },
        clearEnv: true,
      });
      assertEquals(version.code, 0, version.stderr);
      assertEquals(JSON.parse(version.stdout).cniVersion, "1.1.0");
    }
    await installPlugins(dir, { force: true, sources: true });
    const launcher = await Deno.readTextFile(`${dir}/bridge`);
    // Source launchers dispatch on argv[0], which only bash's `exec -a` passes on.
    assert(launcher.startsWith("#!/bin/bash\n"), launcher);
    assertStringIncludes(launcher, `exec -a "$0"`);
    assertStringIncludes(launcher, `'${CHECKOUT_ROOT}plugin_main.ts' "$@"`);
    assert(!launcher.includes("--v8-flags"), launcher);
    // Launchers that run no bundle keep the installer's DENO_DIR, where the sources are cached.
    const shared = await sharedDenoDir();
    assertStringIncludes(launcher, `export DENO_DIR='${shared}' `);
    assertStringIncludes(await Deno.readTextFile(`${dir}/cnibox`), `export DENO_DIR='${shared}' `);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The DENO_DIR `cnibox install` pins into launchers that run no bundle. */
async function sharedDenoDir(): Promise<string> {
  return Deno.env.get("DENO_DIR") ??
    JSON.parse((await sh(Deno.execPath(), ["info", "--json"])).stdout).denoDir;
}

/** The scratch journal the test runner chose, so plugin runs do not write the real one. */
function scratchEnv(): Record<string, string> {
  const journal = Deno.env.get("CNIBOX_JOURNAL");
  return journal === undefined ? {} : { CNIBOX_JOURNAL: journal };
}

Deno.test({
  name:
    "a bundled bridge runs this program's host-local in-process (its launcher is never executed)",
  ignore: !ROOT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "cnibox-bundle-ipam-" });
    await using world = await createWorld(1);
    try {
      await installPlugins(dir, { force: true });
      // Same marker line, but executing this launcher would fail the ADD.
      const launcher = await Deno.readTextFile(`${dir}/host-local`);
      const marker = launcher.split("\n").find((line) => line.startsWith("# cnibox-launcher:"));
      await Deno.writeTextFile(`${dir}/host-local`, `#!/bin/bash\n${marker}\nexit 97\n`);
      const conf = netConf(world, {
        type: "bridge",
        bridge: "cbx0",
        isGateway: true,
        ipam: { type: "host-local", subnet: "10.77.0.0/24" },
      });
      const call = async (command: string, stdin: unknown) =>
        await sh("ip", ["netns", "exec", world.host.name, `${dir}/bridge`], {
          stdin: JSON.stringify(stdin),
          env: {
            PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
            CNI_COMMAND: command,
            CNI_CONTAINERID: "bundle1",
            CNI_NETNS: world.containers[0].path,
            CNI_IFNAME: "eth0",
            CNI_PATH: dir,
            ...scratchEnv(),
          },
          clearEnv: true,
        });
      const add = await call("ADD", conf);
      assertEquals(add.code, 0, add.stdout + add.stderr);
      assertMatch(JSON.parse(add.stdout).ips[0].address, /^\d+\.\d+\.\d+\.\d+\/\d+$/);
      const del = await call("DEL", { ...conf, prevResult: JSON.parse(add.stdout) });
      assertEquals(del.code, 0, del.stdout + del.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** A copy of what a plugin bundle is built from, as a throwaway checkout. */
async function copyCheckout(): Promise<string> {
  const root = `${await Deno.makeTempDir({ prefix: "cnibox-bundle-root-" })}/`;
  for (const file of bundleSources(CHECKOUT_ROOT)) {
    const target = `${root}${file}`;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    await Deno.copyFile(`${CHECKOUT_ROOT}${file}`, target);
  }
  // The @std adapters the sources import through deno.json's map.
  await Deno.mkdir(`${root}lib/std`, { recursive: true });
  for (const entry of Deno.readDirSync(`${CHECKOUT_ROOT}lib/std`)) {
    await Deno.copyFile(`${CHECKOUT_ROOT}lib/std/${entry.name}`, `${root}lib/std/${entry.name}`);
  }
  return root;
}

Deno.test("ensureBundles(): concurrent installs all get the finished directory and leave no half-built one", async () => {
  const root = await copyCheckout();
  // The warm-up runs (one fails on purpose) must not reach the run journal of whoever installs.
  const journal = `${root}journal`;
  const saved = Deno.env.get("CNIBOX_JOURNAL");
  Deno.env.set("CNIBOX_JOURNAL", journal);
  const shared = await Deno.makeTempDir({ prefix: "cnibox-bundle-denodir-" });
  try {
    const options = { deno: Deno.execPath(), denoDir: shared, root };
    const dirs = await Promise.all([ensureBundles(options), ensureBundles(options)]);
    assertEquals(dirs[0], dirs[1]);
    assertEquals(dirs[0], `${root}dist/bundles/${await bundleFingerprint(root)}`);
    const files = [...Deno.readDirSync(dirs[0])].map((e) => e.name).sort();
    assertEquals(
      files,
      [".complete", ...Object.keys(PLUGINS).flatMap((n) => [`${n}.js`, `${n}.run.js`])].sort(),
    );
    // The bundles' own DENO_DIR holds their code cache, with every write-ahead log emptied.
    const denoDir = bundleDenoDir(shared, dirs[0]);
    assertEquals(denoDir, `${shared}/cnibox-bundles/${await bundleFingerprint(root)}`);
    const caches = [...Deno.readDirSync(denoDir)].map((e) => e.name);
    // The logs exist (SQLite could not create them in a DENO_DIR mounted read-only) and are empty.
    assert(caches.includes("v8_code_cache_v2-wal"), caches.join(" "));
    for (const name of caches.filter((n) => n.endsWith("-wal"))) {
      assertEquals((await Deno.stat(`${denoDir}/${name}`)).size, 0, name);
    }
    // No half-built directory is left beside it.
    const left = [...Deno.readDirSync(`${root}dist/bundles`)].map((e) => e.name).sort();
    assertEquals(left, [".lock", dirs[0].slice(dirs[0].lastIndexOf("/") + 1)]);
    assertEquals(await Deno.readTextFile(journal).catch(() => ""), "");
  } finally {
    if (saved === undefined) Deno.env.delete("CNIBOX_JOURNAL");
    else Deno.env.set("CNIBOX_JOURNAL", saved);
    await Deno.remove(root, { recursive: true });
    await Deno.remove(shared, { recursive: true });
  }
});

Deno.test("ensureBundles() reports a failed build and leaves nothing half-built", async () => {
  const root = await copyCheckout();
  try {
    await Deno.writeTextFile(`${root}plugins/loopback.ts`, "export const plugin = ;\n");
    const error = await assertRejects(
      () => ensureBundles({ deno: Deno.execPath(), denoDir: "/nonexistent/cnibox-denodir", root }),
      Error,
      "deno bundle failed",
    );
    assert(error instanceof Error);
    assertEquals([...Deno.readDirSync(`${root}dist/bundles`)].map((e) => e.name), [".lock"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

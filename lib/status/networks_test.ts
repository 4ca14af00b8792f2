import { assertEquals } from "@std/assert";
import { join } from "@std/path";
import { findPlugin, isCniboxBinary, scanNetworks } from "./networks.ts";
import { statusFixture } from "./_testing.ts";

Deno.test("scanNetworks() lists every config, marks shadowed names and reports broken files", async () => {
  await using fx = await statusFixture();
  const scan = await scanNetworks([fx.configDir, join(fx.root, "missing")], {
    pluginDirs: [fx.pluginDir],
  });
  assertEquals(
    scan.networks.map((n) => [n.name, n.file.slice(fx.configDir.length + 1), n.cniVersion]),
    [
      ["alpha", "10-alpha.conflist", "1.1.0"],
      ["beta", "20-beta.conflist", "0.4.0"],
      ["alpha", "40-alpha-copy.conflist", "1.0.0"],
      ["gamma", "50-gamma.conf", "1.0.0"],
    ],
  );
  assertEquals(scan.networks[2].shadowedBy, join(fx.configDir, "10-alpha.conflist"));
  assertEquals(scan.networks[0].shadowedBy, undefined);
  assertEquals(scan.errors.length, 1);
  assertEquals(scan.errors[0].file, join(fx.configDir, "30-broken.conflist"));
  assertEquals(scan.errors[0].error.startsWith("error parsing configuration list"), true);
});

Deno.test("scanNetworks() resolves the chain, IPAM included, against the plugin path", async () => {
  await using fx = await statusFixture();
  const scan = await scanNetworks([fx.configDir], { pluginDirs: [fx.pluginDir] });
  const alpha = scan.networks[0];
  assertEquals(
    alpha.plugins.map((p) => [p.type, p.role, p.path !== null, p.cnibox]),
    [
      ["bridge", "plugin", true, true], // launcher written by `cnibox install`
      ["host-local", "ipam", true, true], // symlink to a binary named cnibox
      ["firewall", "plugin", false, false], // missing
      ["portmap", "plugin", true, false], // someone else's binary
    ],
  );
});

Deno.test("findPlugin() refuses names that are paths", async () => {
  await using fx = await statusFixture();
  assertEquals(await findPlugin("bridge", [fx.root, fx.pluginDir]), join(fx.pluginDir, "bridge"));
  for (const name of ["", ".", "..", "../bin/bridge", "/bin/sh"]) {
    assertEquals(await findPlugin(name, [fx.pluginDir]), null, name);
  }
  assertEquals(await isCniboxBinary(join(fx.pluginDir, "portmap")), false);
  assertEquals(await isCniboxBinary(join(fx.pluginDir, "nope")), false);
});

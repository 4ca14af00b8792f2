import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { fromFileUrl, join } from "@std/path";
import { PLUGINS } from "../applets.ts";
import { listCacheEntries, writeCacheEntry } from "../lib/runtime/cache.ts";
import { fakePlugins } from "../lib/runtime/_testing.ts";
import { createStatusApp } from "../lib/status/app.ts";
import { fixtureProbe, statusFixture } from "../lib/status/_testing.ts";
import { HAVE_REFERENCE, pluginDir, REFERENCE_DIR, runApplet } from "../lib/testing/harness.ts";
import { createNetns, ROOT, type TestNetns } from "../lib/testing/netns.ts";
import { run } from "./gc.ts";

interface Captured {
  code: number;
  out: string;
  err: string;
}

async function gc(args: string[], env: Record<string, string>): Promise<Captured> {
  let out = "";
  let err = "";
  const code = await run(args, {
    env,
    stdout: (t) => out += t,
    stderr: (t) => err += t,
    probe: fixtureProbe,
  });
  return { code, out, err };
}

Deno.test("gc --dry-run prints what would go and changes nothing", async () => {
  await using fx = await statusFixture();
  await using fake = await fakePlugins(["bridge", "firewall", "portmap"]);
  const env = { ...fake.env, CNI_PATH: fake.binDir };
  const before = await listCacheEntries(fx.cacheDir);
  const res = await gc(
    ["alpha", "--dry-run", "--cni-config-dir", fx.configDir, "--cache-dir", fx.cacheDir],
    env,
  );
  assertEquals(res.code, 0, res.err);
  assertEquals(res.out.split("\n").filter((l) => l !== ""), [
    `network alpha (cniVersion 1.1.0, from ${
      join(fx.configDir, "10-alpha.conflist")
    }): 2 cached attachments, 1 valid, 1 stale`,
    "would remove attachment c-gone/eth0 (netns /var/run/netns/fixture-gone is gone; DEL through the chain)",
    "would release lease 10.22.0.3 (c-gone/eth0; by the DEL above)",
    "would release lease 10.22.0.9 (c-leak/eth0; no attachment; by host-local GC)",
    "would release lease 10.22.0.10 (<img src=x onerror=alert(1)>/eth0; no attachment; by host-local GC)",
    "would send GC to bridge, firewall, portmap with 1 valid attachments",
  ]);
  assertEquals(await fake.calls(), []);
  assertEquals(await listCacheEntries(fx.cacheDir), before);
});

Deno.test("gc deletes stale attachments through the chain and sends GC with the valid ones", async () => {
  await using fx = await statusFixture();
  await using fake = await fakePlugins(["bridge", "firewall", "portmap"]);
  const env = { ...fake.env, CNI_PATH: fake.binDir, NETCONFPATH: fx.configDir };
  const res = await gc(["alpha", "--cache-dir", fx.cacheDir], env);
  assertEquals(res.code, 0, res.err);
  assertEquals(await fake.calls(), [
    "portmap DEL c-gone eth0",
    "firewall DEL c-gone eth0",
    "bridge DEL c-gone eth0",
    "bridge GC",
    "firewall GC",
    "portmap GC",
  ]);
  const gcConf = await fake.stdin("bridge", "GC");
  assertEquals(gcConf["cni.dev/valid-attachments"], [{ containerID: "c-live", ifname: "eth0" }]);
  assertStringIncludes(
    res.out,
    "removed attachment c-gone/eth0 (netns /var/run/netns/fixture-gone is gone",
  );
  assertStringIncludes(res.out, "sent GC to bridge, firewall, portmap with 1 valid attachments");
  // The healthy attachment and the other network stay cached.
  assertEquals(
    (await listCacheEntries(fx.cacheDir)).map((e) => `${e.networkName}/${e.containerId}`),
    ["alpha/c-live", "beta/c-b1"],
  );
});

Deno.test("gc reports plugin failures with exit status 1 and still removes what it could", async () => {
  await using fx = await statusFixture();
  await using fake = await fakePlugins(["bridge", "firewall", "portmap"]);
  await fake.answer("firewall", "GC", "fail", '{"code":999,"msg":"iptables is locked"}');
  const env = { ...fake.env, CNI_PATH: fake.binDir };
  const res = await gc(
    ["alpha", "--cni-config-dir", fx.configDir, "--cache-dir", fx.cacheDir],
    env,
  );
  assertEquals(res.code, 1);
  assertStringIncludes(res.err, "iptables is locked");
  assertStringIncludes(res.out, "removed attachment c-gone/eth0");
});

Deno.test("gc of a pre-1.1.0 network deletes stale attachments but sends no GC", async () => {
  await using fx = await statusFixture();
  await using fake = await fakePlugins(["bridge"]);
  // beta's only attachment is live; make a second one whose netns is gone.
  const [live] = await listCacheEntries(fx.cacheDir, { networkName: "beta" });
  await writeCacheEntry(fx.cacheDir, {
    ...live,
    containerId: "c-b2",
    netns: "/var/run/netns/fixture-gone",
  });
  const env = { ...fake.env, CNI_PATH: fake.binDir };
  const dry = await gc(
    ["beta", "-n", "--cni-config-dir", fx.configDir, "--cache-dir", fx.cacheDir],
    env,
  );
  assertStringIncludes(
    dry.out,
    "lease 10.33.0.6 (c-legacy/?) has no attachment but stays: plugins get GC only from cniVersion 1.1.0",
  );
  const res = await gc(["beta", "--cni-config-dir", fx.configDir, "--cache-dir", fx.cacheDir], env);
  assertEquals(res.code, 0, res.err);
  assertEquals(await fake.calls(), ["bridge DEL c-b2 eth1"]);
  assertEquals(res.out.includes("GC to"), false);
});

Deno.test("gc of a network without a config file uses the config its attachments cached", async () => {
  await using fx = await statusFixture();
  await using fake = await fakePlugins(["loopback"]);
  const config = new TextEncoder().encode(
    '{"cniVersion":"1.1.0","name":"ghost","plugins":[{"type":"loopback"}]}',
  );
  for (
    const [id, netns] of [["g1", "/var/run/netns/fixture-gone"], [
      "g2",
      "/var/run/netns/fixture-live",
    ]]
  ) {
    await writeCacheEntry(fx.cacheDir, {
      networkName: "ghost",
      containerId: id,
      ifName: "eth0",
      netns,
      config,
    });
  }
  const env = { ...fake.env, CNI_PATH: fake.binDir };
  const res = await gc(
    ["ghost", "--cni-config-dir", fx.configDir, "--cache-dir", fx.cacheDir],
    env,
  );
  assertEquals(res.code, 0, res.err);
  assertStringIncludes(res.out, "from the cached config of");
  assertStringIncludes(res.err, "skipping"); // the broken 30-broken.conflist is reported, not fatal
  assertEquals(await fake.calls(), ["loopback DEL g1 eth0", "loopback GC"]);
});

Deno.test("gc rejects bad arguments", async () => {
  for (const args of [[], ["a", "b"], ["../etc"], ["--bogus", "x"]]) {
    const res = await gc(args, {});
    assertEquals(res.code, 2, args.join(" "));
    assert(res.err.length > 0);
  }
  const res = await gc([
    "nowhere",
    "--cni-config-dir",
    "/nonexistent",
    "--cache-dir",
    "/nonexistent",
  ], {});
  assertEquals(res.code, 1);
  assertStringIncludes(res.err, 'no network configuration named "nowhere"');
});

// ---------------------------------------------------------------------------
// End to end over real state: a private "host" namespace with a bridge
// network, attachments made by `cnibox exec` and directly by a plugin, a leak
// made on purpose, every status route checked, then `cnibox gc`.

const ROOT_DIR = fromFileUrl(new URL("..", import.meta.url));

interface Variant {
  name: string;
  pluginDir: () => Promise<string>;
  cniVersion: string;
}

const VARIANTS: Variant[] = [
  {
    name: "reference plugins",
    pluginDir: () => Promise.resolve(REFERENCE_DIR),
    cniVersion: "1.0.0",
  },
];
if (["bridge", "host-local", "portmap"].every((p) => Object.hasOwn(PLUGINS, p))) {
  VARIANTS.push({ name: "cnibox plugins", pluginDir: pluginDir, cniVersion: "1.1.0" });
}

/** Runs `cnibox <command> ...args` from this checkout inside namespace `host`. */
async function cnibox(host: TestNetns, args: string[], env: Record<string, string>) {
  const driver = await Deno.makeTempFile({ prefix: "cbx-st-driver-", suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      driver,
      `const mod = Deno.args[0] === "exec" ? await import("${ROOT_DIR}commands/exec.ts")
  : await import("${ROOT_DIR}commands/gc.ts");
Deno.exit(await mod.run(Deno.args.slice(1)));`,
    );
    return await host.exec(
      Deno.execPath(),
      ["run", "-A", "--quiet", "--config", `${ROOT_DIR}deno.json`, driver, ...args],
      { env: { ...env, PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } },
    );
  } finally {
    await Deno.remove(driver);
  }
}

for (const variant of VARIANTS) {
  Deno.test({
    name:
      `[${variant.name}] status routes show real attachments and leaks; gc removes only the leaks`,
    ignore: !ROOT || !HAVE_REFERENCE,
    async fn() {
      const plugins = await variant.pluginDir();
      await using host = await createNetns("cbx-st");
      await using c1 = await createNetns("cbx-st");
      const c2 = await createNetns("cbx-st");
      const root = await Deno.makeTempDir({ prefix: "cbx-st-e2e-" });
      try {
        const confDir = join(root, "net.d");
        const dataDir = join(root, "data");
        const cacheDir = join(root, "cache");
        await Deno.mkdir(confDir);
        const ipam = {
          type: "host-local",
          dataDir,
          ranges: [[{ subnet: "10.251.7.0/24" }]],
        };
        await Deno.writeTextFile(
          join(confDir, "cbxst.conflist"),
          JSON.stringify({
            cniVersion: variant.cniVersion,
            name: "cbxst",
            plugins: [
              { type: "bridge", bridge: "cbxst0", isGateway: true, ipam },
              { type: "portmap", capabilities: { portMappings: true } },
            ],
          }),
        );
        const env = { NETCONFPATH: confDir, CNI_PATH: plugins, CNI_CACHE_DIR: cacheDir };

        // Two attachments through the runtime (cached), one lease made by host-local alone.
        const add1 = await cnibox(host, ["exec", "add", "cbxst", c1.path], {
          ...env,
          CNI_CONTAINERID: "ctr-1",
          CAP_ARGS: JSON.stringify({
            portMappings: [{ hostPort: 18080, containerPort: 80, protocol: "tcp" }],
          }),
        });
        assertEquals(add1.code, 0, add1.stderr);
        const ip1 = JSON.parse(add1.stdout).ips[0].address as string;
        const add2 = await cnibox(host, ["exec", "add", "cbxst", c2.path], {
          ...env,
          CNI_CONTAINERID: "ctr-2",
        });
        assertEquals(add2.code, 0, add2.stderr);
        const ip2 = JSON.parse(add2.stdout).ips[0].address as string;
        const orphan = await runApplet("host-local", {
          reference: true,
          env: {
            CNI_COMMAND: "ADD",
            CNI_CONTAINERID: "orphan-1",
            CNI_NETNS: c1.path,
            CNI_IFNAME: "eth9",
            CNI_PATH: REFERENCE_DIR,
          },
          stdin: JSON.stringify({ cniVersion: "1.0.0", name: "cbxst", ipam }),
        });
        assertEquals(orphan.code, 0, orphan.stdout);
        const ip3 = JSON.parse(orphan.stdout).ips[0].address as string;
        // The leak: the netns is deleted before anyone runs DEL.
        await c2.remove();

        const app = createStatusApp({
          configDirs: [confDir],
          pluginDirs: [plugins],
          cacheDir,
          dataDirs: [],
        });
        const get = async (path: string) => {
          const res = await app.request(path);
          assertEquals(res.status, 200, path);
          return res;
        };
        assertEquals(await (await get("/healthz")).text(), "ok");
        const networks = await (await get("/v1/networks")).json();
        assertEquals(networks.networks.length, 1);
        assertEquals(networks.networks[0].name, "cbxst");
        assertEquals(
          networks.networks[0].plugins.map((p: { type: string; path: string }) => [p.type, p.path]),
          [
            ["bridge", join(plugins, "bridge")],
            ["host-local", join(plugins, "host-local")],
            ["portmap", join(plugins, "portmap")],
          ],
        );
        assertEquals(
          networks.networks[0].plugins.every((p: { cnibox: boolean }) =>
            p.cnibox === (plugins !== REFERENCE_DIR)
          ),
          true,
        );
        const detail = await (await get("/v1/networks/cbxst")).json();
        assertEquals(detail.hostLocal[0].rangeSets[0].ranges[0].capacity, 253);
        assertEquals(detail.hostLocal[0].rangeSets[0].ranges[0].used, 3);
        const leases = (await (await get("/v1/leases?network=cbxst")).json()).leases as {
          ip: string;
          containerId: string;
          ifname: string;
          stale: boolean;
          staleReason?: string;
        }[];
        const byId = Object.fromEntries(leases.map((l) => [l.containerId, l]));
        assertEquals(byId["ctr-1"].ip, ip1.split("/")[0]);
        assertEquals(byId["ctr-1"].stale, false);
        assertEquals([byId["ctr-2"].ip, byId["ctr-2"].staleReason], [
          ip2.split("/")[0],
          "netns-gone",
        ]);
        assertEquals([byId["orphan-1"].ip, byId["orphan-1"].staleReason], [
          ip3.split("/")[0],
          "no-attachment",
        ]);
        const attachments = await (await get("/v1/attachments")).json();
        assertEquals(
          attachments.attachments.map((
            a: { containerId: string; netnsExists: boolean; stale: boolean; ips: string[] },
          ) => [a.containerId, a.netnsExists, a.stale, a.ips]),
          [["ctr-1", true, false, [ip1]], ["ctr-2", false, true, [ip2]]],
        );
        assertEquals(attachments.attachments[0].portMappings, [
          { hostPort: 18080, containerPort: 80, protocol: "tcp" },
        ]);
        assertEquals(attachments.staleLeases.length, 2);
        const metrics = await (await get("/metrics")).text();
        assertStringIncludes(
          metrics,
          'cnibox_leases_used{network="cbxst",range_set="0",range="0",subnet="10.251.7.0/24"} 3\n',
        );
        assertStringIncludes(metrics, 'cnibox_stale_leases{network="cbxst"} 2\n');
        assertStringIncludes(metrics, 'cnibox_stale_attachments{network="cbxst"} 1\n');
        const html = await (await get("/")).text();
        assertStringIncludes(html, 'data-network="cbxst"');
        assertEquals(html.match(/<tr class="attachment stale">/g)?.length, 1);

        // gc --dry-run changes nothing; gc removes the leaked attachment and its lease.
        const dry = await cnibox(host, ["gc", "cbxst", "--dry-run"], env);
        assertEquals(dry.code, 0, dry.stderr);
        assertStringIncludes(dry.stdout, "would remove attachment ctr-2/eth0");
        assertEquals((await (await get("/v1/leases")).json()).leases.length, 3);
        const done = await cnibox(host, ["gc", "cbxst"], env);
        assertEquals(done.code, 0, done.stderr);
        assertStringIncludes(done.stdout, "removed attachment ctr-2/eth0");
        assertStringIncludes(done.stdout, `released lease ${ip2.split("/")[0]} (ctr-2/eth0)`);

        const after = await (await get("/v1/attachments")).json();
        assertEquals(
          after.attachments.map((
            a: { containerId: string; stale: boolean },
          ) => [a.containerId, a.stale]),
          [["ctr-1", false]],
        );
        const left = ((await (await get("/v1/leases")).json()).leases as { containerId: string }[])
          .map((l) => l.containerId).sort();
        // host-local GC (cniVersion 1.1.0) also releases the orphan; before 1.1.0 it stays.
        assertEquals(
          left,
          variant.cniVersion === "1.1.0" ? ["ctr-1"] : ["ctr-1", "orphan-1"],
        );
        // The healthy attachment is untouched: its address is still on eth0 in its netns.
        const addr = await c1.exec("ip", ["-o", "addr", "show", "dev", "eth0"]);
        assertStringIncludes(addr.stdout, ip1);

        const del = await cnibox(host, ["exec", "del", "cbxst", c1.path], {
          ...env,
          CNI_CONTAINERID: "ctr-1",
        });
        assertEquals(del.code, 0, del.stderr);
      } finally {
        await c2.remove();
        await Deno.remove(root, { recursive: true });
      }
    },
  });
}

Deno.test("gc keeps control characters from lease files off the terminal", async () => {
  await using fx = await statusFixture();
  await Deno.writeTextFile(join(fx.dataDir, "alpha", "10.22.0.66"), "\x1b[2Jevil\r\neth0");
  const res = await gc(
    ["alpha", "--dry-run", "--cni-config-dir", fx.configDir, "--cache-dir", fx.cacheDir],
    {},
  );
  assertEquals(res.code, 0, res.err);
  assertStringIncludes(res.out, "would release lease 10.22.0.66 (?[2Jevil/eth0;");
  assertEquals(res.out.includes("\x1b"), false);
});

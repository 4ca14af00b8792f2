import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { fromFileUrl, join } from "@std/path";
import { createHash } from "node:crypto";
import { type FakePlugins, fakePlugins } from "../lib/runtime/_testing.ts";
import { listCacheEntries, writeCacheEntry } from "../lib/runtime/cache.ts";
import { createNetns, ROOT, sh } from "../lib/testing/netns.ts";
import { containerIdFor, parseCniArgs, run } from "./exec.ts";

const CONFLIST = {
  cniVersion: "1.1.0",
  name: "testnet",
  plugins: [{ type: "first" }, { type: "second", capabilities: { portMappings: true } }],
};

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function setup(
  fake: FakePlugins,
  conflist: unknown = CONFLIST,
): Promise<Record<string, string>> {
  const netconf = join(fake.root, "net.d");
  await Deno.mkdir(netconf, { recursive: true });
  await Deno.writeTextFile(join(netconf, "10-test.conflist"), JSON.stringify(conflist));
  return {
    ...fake.env,
    NETCONFPATH: netconf,
    CNI_PATH: fake.binDir,
    CNI_CACHE_DIR: join(fake.root, "cache"),
  };
}

async function exec(args: string[], env: Record<string, string>): Promise<Outcome> {
  let stdout = "";
  let stderr = "";
  const code = await run(args, {
    env,
    stdout: (t) => stdout += t,
    stderr: (t) => stderr += t,
  });
  return { code, stdout, stderr };
}

Deno.test("containerIdFor() derives cnitool's ID from the netns path", async () => {
  const path = "/var/run/netns/blue";
  const expected = "cnitool-" + createHash("sha512").update(path).digest("hex").slice(0, 20);
  assertEquals(await containerIdFor(path), expected);
  assertEquals((await containerIdFor(path)).length, "cnitool-".length + 20);
});

Deno.test("parseCniArgs() accepts K=V pairs and rejects what cnitool rejects", () => {
  assertEquals(parseCniArgs("A=1;B=two"), [["A", "1"], ["B", "two"]]);
  for (const bad of ["A=1;", "A=b=c", "=1", "A="]) {
    let threw = false;
    try {
      parseCniArgs(bad);
    } catch (error) {
      threw = true;
      assertStringIncludes((error as Error).message, "invalid CNI_ARGS pair");
    }
    assert(threw, `expected ${bad} to be rejected`);
  }
});

Deno.test("run() prints usage and fails for bad invocations", async () => {
  for (
    const args of [[], ["bogus", "net", "/x"], ["add", "net"], ["del"], ["add", "a", "b", "c"]]
  ) {
    const out = await exec(args, {});
    assertEquals(out.code, 1, `args ${JSON.stringify(args)}`);
    assertStringIncludes(out.stderr, "usage: cnibox exec");
    assertEquals(out.stdout, "");
  }
  const help = await exec(["--help"], {});
  assertEquals(help.code, 0);
  assertStringIncludes(help.stdout, "usage: cnibox exec");
});

Deno.test("run() add prints the result, caches it under the derived ID; del removes it", async () => {
  await using fake = await fakePlugins(["first", "second"]);
  const env = await setup(fake);
  await fake.answer(
    "second",
    "ADD",
    "out",
    '{"cniVersion":"1.1.0","ips":[{"address":"10.3.0.2/24"}]}',
  );
  const netns = join(fake.root, "ns-file");
  const add = await exec(["add", "testnet", netns], {
    ...env,
    CNI_ARGS: "A=1",
    CAP_ARGS: '{"portMappings":[]}',
  });
  assertEquals(add.code, 0, add.stderr);
  assertEquals(
    add.stdout,
    JSON.stringify({ cniVersion: "1.1.0", ips: [{ address: "10.3.0.2/24" }] }, null, 4),
  );
  const id = await containerIdFor(netns);
  assertEquals(await fake.calls(), [`first ADD ${id} eth0`, `second ADD ${id} eth0`]);
  const addEnv = await fake.envOf("first", "ADD");
  assertEquals([addEnv.CNI_NETNS, addEnv.CNI_ARGS, addEnv.CNI_PATH], [netns, "A=1", fake.binDir]);
  assertEquals((await fake.stdin("second", "ADD")).runtimeConfig, { portMappings: [] });
  assertEquals((await fake.stdin("first", "ADD")).runtimeConfig, undefined);
  const cached = await listCacheEntries(env.CNI_CACHE_DIR);
  assertEquals(cached.map((e) => [e.networkName, e.containerId, e.ifName, e.netns]), [
    ["testnet", id, "eth0", netns],
  ]);

  const check = await exec(["check", "testnet", netns], env);
  assertEquals(check.code, 0, check.stderr);
  const del = await exec(["del", "testnet", netns], env);
  assertEquals(del.code, 0, del.stderr);
  assertEquals((await fake.calls()).slice(-2), [`second DEL ${id} eth0`, `first DEL ${id} eth0`]);
  assertEquals(await listCacheEntries(env.CNI_CACHE_DIR), []);
});

Deno.test("run() add prints the result exactly as cnitool does for its version", async () => {
  await using fake = await fakePlugins(["first", "second"]);
  const env = await setup(fake, { ...CONFLIST, cniVersion: "0.4.0" });
  await fake.answer(
    "second",
    "ADD",
    "out",
    '{"ips":[{"version":"4","address":"10.3.0.2/24"}],"cniVersion":"0.4.0"}',
  );
  const add = await exec(["add", "testnet", "/var/run/netns/x"], env);
  assertEquals(add.code, 0, add.stderr);
  assertEquals(
    add.stdout,
    '{\n    "cniVersion": "0.4.0",\n    "ips": [\n        {\n            "version": "4",\n' +
      '            "address": "10.3.0.2/24"\n        }\n    ],\n    "dns": {}\n}',
  );
});

Deno.test("run() takes the interface from -i, then CNI_IFNAME, and the ID from CNI_CONTAINERID", async () => {
  await using fake = await fakePlugins(["first", "second"]);
  const env = await setup(fake);
  const netns = join(fake.root, "ns");
  assertEquals(
    (await exec(["add", "-i", "net1", "testnet", netns], { ...env, CNI_IFNAME: "x" })).code,
    0,
  );
  assertEquals((await exec(["add", "testnet", netns], { ...env, CNI_IFNAME: "net2" })).code, 0);
  assertEquals(
    (await exec(["add", "testnet", netns], { ...env, CNI_CONTAINERID: "mine" })).code,
    0,
  );
  const calls = (await fake.calls()).filter((c) => c.startsWith("first"));
  const id = await containerIdFor(netns);
  assertEquals(calls, [`first ADD ${id} net1`, `first ADD ${id} net2`, "first ADD mine eth0"]);
});

Deno.test("run() reports failures on stderr with exit status 1", async () => {
  await using fake = await fakePlugins(["first", "second"]);
  const env = await setup(fake);
  await fake.answer("second", "ADD", "fail", '{"code":7,"msg":"bad","details":"very"}');
  const add = await exec(["add", "testnet", "/var/run/netns/x"], env);
  assertEquals([add.code, add.stdout], [1, ""]);
  assertEquals(add.stderr, 'plugin type="second" failed (add): bad; very\n');

  const missing = await exec(["add", "nonet", "/x"], env);
  assertEquals(missing.code, 1);
  assertStringIncludes(missing.stderr, 'no net configuration with name "nonet"');

  const caps = await exec(["add", "testnet", "/x"], { ...env, CAP_ARGS: "[1]" });
  assertEquals(caps.code, 1);
  assertStringIncludes(caps.stderr, "CAP_ARGS must be a JSON object");

  const check = await exec(["check", "testnet", "/nothing/cached"], env);
  assertEquals(check.code, 1);
  assertStringIncludes(check.stderr, "no cached result");
});

async function cacheFor(env: Record<string, string>, containerId: string, netns: string) {
  await writeCacheEntry(env.CNI_CACHE_DIR, {
    containerId,
    config: new TextEncoder().encode(JSON.stringify(CONFLIST)),
    ifName: "eth0",
    networkName: "testnet",
    netns,
    result: { cniVersion: "1.1.0" },
  });
}

Deno.test("run() gc without a netns keeps attachments whose netns still exists", async () => {
  await using fake = await fakePlugins(["first", "second"]);
  const env = await setup(fake);
  const alive = join(fake.root, "alive-ns");
  await Deno.writeTextFile(alive, "");
  await cacheFor(env, "alive", alive);
  await cacheFor(env, "gone", join(fake.root, "gone-ns"));
  const gc = await exec(["gc", "testnet"], env);
  assertEquals(gc.code, 0, gc.stderr);
  assertEquals(await fake.calls(), [
    "second DEL gone eth0",
    "first DEL gone eth0",
    "first GC",
    "second GC",
  ]);
  assertEquals((await fake.stdin("first", "GC"))["cni.dev/valid-attachments"], [
    { containerID: "alive", ifname: "eth0" },
  ]);
  assertEquals((await listCacheEntries(env.CNI_CACHE_DIR)).map((e) => e.containerId), ["alive"]);
});

Deno.test("run() gc with a netns behaves like cnitool and deletes every attachment", async () => {
  await using fake = await fakePlugins(["first", "second"]);
  const env = await setup(fake);
  const alive = join(fake.root, "alive-ns");
  await Deno.writeTextFile(alive, "");
  await cacheFor(env, "alive", alive);
  assertEquals((await exec(["gc", "testnet", alive], env)).code, 0);
  assertEquals(await listCacheEntries(env.CNI_CACHE_DIR), []);
  assertEquals("cni.dev/valid-attachments" in await fake.stdin("first", "GC"), false);
});

Deno.test("run() status asks the plugins and fails with their message", async () => {
  await using fake = await fakePlugins(["first", "second"]);
  const env = await setup(fake);
  assertEquals((await exec(["status", "testnet"], env)).code, 0);
  assertEquals(await fake.calls(), ["first STATUS", "second STATUS"]);
  await fake.answer("first", "STATUS", "fail", '{"code":50,"msg":"no bridge yet"}');
  const status = await exec(["status", "testnet"], env);
  assertEquals([status.code, status.stderr], [1, "no bridge yet\n"]);
});

// Debian's containernetworking-plugins (the reference binaries).
const REFERENCE_DIR = "/usr/lib/cni";
const HAVE_REFERENCE = ["loopback", "bridge", "host-local"].every((p) => {
  try {
    return Deno.statSync(join(REFERENCE_DIR, p)).isFile;
  } catch {
    return false;
  }
});
const ENTRY = fromFileUrl(new URL("../testdata/runtime/exec_entry.ts", import.meta.url));
const CONFIG = fromFileUrl(new URL("../deno.json", import.meta.url));

Deno.test({
  name: "run() drives the reference loopback, bridge and host-local through add, check and del",
  ignore: !ROOT || !HAVE_REFERENCE,
  async fn() {
    await using host = await createNetns("cbx-rt-h");
    await using ctr = await createNetns("cbx-rt-c");
    const root = await Deno.makeTempDir({ prefix: "cbx-rt-ref-" });
    try {
      const netconf = join(root, "net.d");
      const ipamDir = join(root, "ipam");
      await Deno.mkdir(netconf);
      await Deno.writeTextFile(
        join(netconf, "10-cbxrt.conflist"),
        JSON.stringify({
          cniVersion: "0.4.0",
          name: "cbxrt",
          plugins: [
            { type: "loopback" },
            {
              type: "bridge",
              bridge: "cbxrt0",
              isGateway: true,
              ipMasq: false,
              ipam: {
                type: "host-local",
                ranges: [[{ subnet: "10.251.7.0/24" }]],
                routes: [{ dst: "0.0.0.0/0" }],
                dataDir: ipamDir,
              },
            },
          ],
        }),
      );
      const env = {
        NETCONFPATH: netconf,
        CNI_PATH: REFERENCE_DIR,
        CNI_CACHE_DIR: join(root, "cache"),
      };
      const cnibox = (verb: string) =>
        host.exec(Deno.execPath(), [
          "run",
          "-A",
          "--config",
          CONFIG,
          ENTRY,
          verb,
          "cbxrt",
          ctr.path,
        ], {
          env,
        });
      const cacheFile = join(
        root,
        "cache",
        "results",
        `cbxrt-${await containerIdFor(ctr.path)}-eth0`,
      );

      const add = await cnibox("add");
      assertEquals(add.code, 0, add.stderr);
      const result = JSON.parse(add.stdout);
      assertEquals(result.cniVersion, "0.4.0");
      const address: string = result.ips[0].address;
      assertMatch(address, /^10\.251\.7\.\d+\/24$/);
      const eth0 = result.interfaces[result.ips[0].interface];
      assertEquals([eth0.name, eth0.sandbox], ["eth0", ctr.path]);
      const inCtr = await sh("ip", ["-n", ctr.name, "-o", "-4", "addr", "show", "eth0"]);
      assertStringIncludes(inCtr.stdout, address);
      const lo = await sh("ip", ["-n", ctr.name, "-o", "link", "show", "lo"]);
      assertStringIncludes(lo.stdout, "UP");
      const cached = JSON.parse(await Deno.readTextFile(cacheFile));
      assertEquals([cached.kind, cached.networkName, cached.ifName], [
        "cniCacheV1",
        "cbxrt",
        "eth0",
      ]);
      assertEquals(cached.result.ips[0].address, address);

      const check = await cnibox("check");
      assertEquals(check.code, 0, check.stderr);

      const del = await cnibox("del");
      assertEquals(del.code, 0, del.stderr);
      const gone = await sh("ip", ["-n", ctr.name, "link", "show", "eth0"]);
      assert(gone.code !== 0, "eth0 should be gone from the container");
      let cacheLeft = true;
      await Deno.stat(cacheFile).catch(() => cacheLeft = false);
      assertEquals(cacheLeft, false);
      const reserved: string[] = [];
      for await (const e of Deno.readDir(join(ipamDir, "cbxrt"))) {
        if (/^\d+\.\d+\.\d+\.\d+$/.test(e.name)) reserved.push(e.name);
      }
      assertEquals(reserved, []);

      // A second DEL is fine (idempotent plugins, cache already gone).
      assertEquals((await cnibox("del")).code, 0);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

import { assert, assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { join } from "@std/path";
import { CniError } from "../cni/error.ts";
import { convertResult } from "../cni/result.ts";
import { type FakePlugins, fakePlugins } from "./_testing.ts";
import { listCacheEntries, readCacheEntry, writeCacheEntry } from "./cache.ts";
import { parseConfList } from "./conflist.ts";
import {
  addNetworkList,
  checkNetworkList,
  delNetworkList,
  gcNetworkList,
  getCachedResult,
  type RuntimeConf,
  type RuntimeOptions,
  statusNetworkList,
} from "./runtime.ts";

const RT: RuntimeConf = {
  containerId: "ctr-1",
  netns: "/var/run/netns/ctr-1",
  ifName: "eth0",
  args: [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "web"]],
  capabilityArgs: {
    portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
    mac: "c2:11:22:33:44:55",
  },
};

function chain(version: string, extra: Record<string, unknown> = {}) {
  return parseConfList(JSON.stringify({
    cniVersion: version,
    name: "mynet",
    plugins: [
      { type: "first", capabilities: { mac: false } },
      { type: "second", setting: 42 },
      { type: "third", capabilities: { portMappings: true } },
    ],
    ...extra,
  }));
}

function options(fake: FakePlugins): RuntimeOptions {
  return {
    path: ["/nonexistent", fake.binDir],
    cacheDir: join(fake.root, "cache"),
    env: fake.env,
    stderr: () => {},
  };
}

const RESULT_1 = { cniVersion: "1.0.0", interfaces: [{ name: "br0" }] };
const RESULT_2 = {
  cniVersion: "1.0.0",
  interfaces: [{ name: "br0" }],
  ips: [{ address: "10.1.0.2/24" }],
};

async function cacheAttachment(fake: FakePlugins, containerId: string, network = "mynet") {
  await writeCacheEntry(join(fake.root, "cache"), {
    containerId,
    config: new TextEncoder().encode("{}"),
    ifName: "eth0",
    networkName: network,
    netns: `/var/run/netns/${containerId}`,
    cniArgs: [["ID", containerId]],
    result: { cniVersion: "1.1.0", ips: [{ address: `10.9.0.${containerId.length}/24` }] },
  });
}

Deno.test("addNetworkList() runs plugins in order and chains each result as prevResult", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await fake.answer("first", "ADD", "out", JSON.stringify(RESULT_1));
  await fake.answer("second", "ADD", "out", JSON.stringify(RESULT_2));
  await fake.answer("third", "ADD", "out", "{}"); // no cniVersion: the list's is assumed
  const result = await addNetworkList(chain("1.0.0"), RT, options(fake));

  assertEquals(await fake.calls(), [
    "first ADD ctr-1 eth0",
    "second ADD ctr-1 eth0",
    "third ADD ctr-1 eth0",
  ]);
  const first = await fake.stdin("first", "ADD");
  assertEquals(first.prevResult, undefined);
  assertEquals([first.name, first.cniVersion], ["mynet", "1.0.0"]);
  assertEquals((await fake.stdin("second", "ADD")).prevResult, RESULT_1);
  assertEquals((await fake.stdin("third", "ADD")).prevResult, RESULT_2);
  assertEquals(result, { cniVersion: "1.0.0" });
});

Deno.test("addNetworkList() re-marshals each result in its own version like Go's result types", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await fake.answer(
    "first",
    "ADD",
    "out",
    '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.2/24","extra":1}],"x":2}',
  );
  await addNetworkList(chain("0.4.0"), RT, options(fake));
  // Unknown keys are dropped and `dns` is always present, as types040 marshals it.
  assertEquals((await fake.stdin("second", "ADD")).prevResult, {
    cniVersion: "0.4.0",
    ips: [{ version: "4", address: "10.1.0.2/24" }],
    dns: {},
  });
});

Deno.test("addNetworkList() gives runtimeConfig only to plugins declaring the capability", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await addNetworkList(chain("1.0.0"), RT, options(fake));
  assertEquals((await fake.stdin("first", "ADD")).runtimeConfig, undefined); // mac: false
  assertEquals((await fake.stdin("second", "ADD")).runtimeConfig, undefined);
  assertEquals((await fake.stdin("third", "ADD")).runtimeConfig, {
    portMappings: RT.capabilityArgs!.portMappings,
  });
  // Keys arrive sorted, as libcni re-marshals through a map.
  assert(
    (await fake.stdinText("second", "ADD")).startsWith('{"cniVersion":"1.0.0","name":"mynet"'),
  );
});

Deno.test("addNetworkList() passes the CNI environment and keeps the caller's", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await addNetworkList(chain("1.0.0"), RT, options(fake));
  assertEquals(await fake.envOf("second", "ADD"), {
    CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=web",
    CNI_COMMAND: "ADD",
    CNI_CONTAINERID: "ctr-1",
    CNI_IFNAME: "eth0",
    CNI_NETNS: "/var/run/netns/ctr-1",
    CNI_PATH: `/nonexistent:${fake.binDir}`,
    FAKE_DIR: fake.fakeDir,
  });
});

Deno.test("addNetworkList() caches the final result with the list bytes", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await fake.answer("third", "ADD", "out", JSON.stringify(RESULT_2));
  const list = chain("1.0.0");
  await addNetworkList(list, RT, options(fake));
  const entry = await readCacheEntry(join(fake.root, "cache"), {
    networkName: "mynet",
    containerId: "ctr-1",
    ifName: "eth0",
  });
  assertEquals(entry, {
    containerId: "ctr-1",
    config: list.bytes,
    ifName: "eth0",
    networkName: "mynet",
    netns: "/var/run/netns/ctr-1",
    cniArgs: RT.args,
    capabilityArgs: RT.capabilityArgs,
    result: RESULT_2,
  });
});

Deno.test("addNetworkList() stops at a failing plugin without rollback or cache", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await fake.answer("second", "ADD", "fail", '{"code":11,"msg":"try later","details":"busy"}');
  const error = await assertRejects(
    () => addNetworkList(chain("1.0.0"), RT, options(fake)),
    CniError,
  );
  assertEquals(error.code, 11);
  assertEquals(error.message, 'plugin type="second" failed (add): try later');
  assertEquals(error.details, "busy");
  assertEquals(await fake.calls(), ["first ADD ctr-1 eth0", "second ADD ctr-1 eth0"]);
  assertEquals(await listCacheEntries(join(fake.root, "cache")), []);
});

Deno.test("addNetworkList() validates container ID and interface name like libcni", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  const bad = await assertRejects(
    () => addNetworkList(chain("1.0.0"), { ...RT, containerId: "bad/id" }, options(fake)),
    CniError,
  );
  assertEquals([bad.code, bad.message, bad.details], [
    4,
    'plugin type="first" failed (add): invalid characters in containerID',
    "bad/id",
  ]);
  const long = await assertRejects(
    () => addNetworkList(chain("1.0.0"), { ...RT, ifName: "a-very-long-ifname" }, options(fake)),
    CniError,
  );
  assertEquals([long.code, long.details], [4, "interface name should be less than 16 characters"]);
  assertEquals(await fake.calls(), []);
});

Deno.test("addNetworkList() reports a plugin missing from the path", async () => {
  await using fake = await fakePlugins(["first"]);
  const error = await assertRejects(() => addNetworkList(chain("1.0.0"), RT, options(fake)));
  assertEquals(
    error.message,
    `plugin type="second" failed (add): failed to find plugin "second" in path [/nonexistent ${fake.binDir}]`,
  );
});

Deno.test("delNetworkList() runs plugins in reverse with the cached result and drops the cache", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await fake.answer("third", "ADD", "out", JSON.stringify(RESULT_2));
  const list = chain("1.0.0");
  await addNetworkList(list, RT, options(fake));
  await delNetworkList(list, RT, options(fake));
  assertEquals((await fake.calls()).slice(3), [
    "third DEL ctr-1 eth0",
    "second DEL ctr-1 eth0",
    "first DEL ctr-1 eth0",
  ]);
  for (const type of ["first", "second", "third"]) {
    assertEquals((await fake.stdin(type, "DEL")).prevResult, RESULT_2);
  }
  assertEquals((await fake.stdin("third", "DEL")).runtimeConfig, {
    portMappings: RT.capabilityArgs!.portMappings,
  });
  assertEquals(await listCacheEntries(join(fake.root, "cache")), []);
});

Deno.test("delNetworkList() sends no prevResult before 0.4.0 but still drops the cache", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await fake.answer("third", "ADD", "out", '{"cniVersion":"0.3.1"}');
  const list = chain("0.3.1");
  await addNetworkList(list, RT, options(fake));
  await delNetworkList(list, RT, options(fake));
  assertEquals((await fake.stdin("first", "DEL")).prevResult, undefined);
  assertEquals(await listCacheEntries(join(fake.root, "cache")), []);
});

Deno.test("delNetworkList() works without a cache and stops at the first error", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await delNetworkList(chain("1.0.0"), RT, options(fake));
  assertEquals((await fake.stdin("second", "DEL")).prevResult, undefined);

  await fake.answer("third", "ADD", "out", JSON.stringify(RESULT_2));
  await addNetworkList(chain("1.0.0"), RT, options(fake));
  await fake.answer("second", "DEL", "fail", '{"code":999,"msg":"stuck"}');
  const before = (await fake.calls()).length;
  await assertRejects(
    () => delNetworkList(chain("1.0.0"), RT, options(fake)),
    CniError,
    'plugin type="second" failed (delete): stuck',
  );
  assertEquals((await fake.calls()).slice(before), [
    "third DEL ctr-1 eth0",
    "second DEL ctr-1 eth0",
  ]);
  assertEquals((await listCacheEntries(join(fake.root, "cache"))).length, 1);
});

Deno.test("delNetworkList() drops an unreadable cache entry and deletes without prevResult", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await Deno.mkdir(join(fake.root, "cache", "results"), { recursive: true });
  await Deno.writeTextFile(join(fake.root, "cache", "results", "mynet-ctr-1-eth0"), "garbage");
  await delNetworkList(chain("1.0.0"), RT, options(fake));
  assertEquals((await fake.stdin("first", "DEL")).prevResult, undefined);
  await assertRejects(() => Deno.stat(join(fake.root, "cache", "results", "mynet-ctr-1-eth0")));
});

Deno.test("checkNetworkList() without a cached result fails before running plugins", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await assertRejects(
    () => checkNetworkList(chain("1.0.0"), RT, options(fake)),
    Error,
    'failed to get network "mynet" cached result: no cached result',
  );
  assertEquals(await fake.calls(), []);
});

Deno.test("checkNetworkList() runs plugins in order with the cached result", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await fake.answer("third", "ADD", "out", JSON.stringify(RESULT_2));
  await addNetworkList(chain("1.0.0"), RT, options(fake));
  await checkNetworkList(chain("1.0.0"), RT, options(fake));
  assertEquals((await fake.calls()).slice(3), [
    "first CHECK ctr-1 eth0",
    "second CHECK ctr-1 eth0",
    "third CHECK ctr-1 eth0",
  ]);
  assertEquals((await fake.stdin("first", "CHECK")).prevResult, RESULT_2);
  assertEquals((await fake.envOf("first", "CHECK")).CNI_COMMAND, "CHECK");
});

Deno.test("checkNetworkList() refuses lists older than 0.4.0 and honours disableCheck", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await assertRejects(
    () => checkNetworkList(chain("0.3.1"), RT, options(fake)),
    Error,
    'configuration version "0.3.1" does not support the CHECK command',
  );
  await checkNetworkList(chain("1.0.0", { disableCheck: true }), RT, options(fake));
  assertEquals(await fake.calls(), []);
});

Deno.test("getCachedResult() converts the cached result to the list's version", async () => {
  await using fake = await fakePlugins([]);
  const cache = (result: Record<string, unknown>) =>
    writeCacheEntry(join(fake.root, "cache"), {
      containerId: "ctr-1",
      config: new Uint8Array(),
      ifName: "eth0",
      networkName: "mynet",
      result,
    });
  await cache({ cniVersion: "0.3.1", ips: [{ version: "4", address: "10.0.0.2/24" }] });
  const as040 = await getCachedResult(chain("0.4.0"), RT, options(fake));
  assertEquals(convertResult(as040!, "0.4.0"), {
    cniVersion: "0.4.0",
    ips: [{ version: "4", address: "10.0.0.2/24" }],
    dns: {},
  });
  const as100 = await getCachedResult(chain("1.0.0"), RT, options(fake));
  assertEquals(convertResult(as100!, "1.0.0"), {
    cniVersion: "1.0.0",
    ips: [{ address: "10.0.0.2/24" }],
  });
  await cache({ cniVersion: "1.0.0", interfaces: [{ name: "eth0" }] });
  await assertRejects(
    () => getCachedResult(chain("0.2.0"), RT, options(fake)),
    RangeError,
    'failed to convert cached result to config version "0.2.0": cannot convert: no valid IP addresses',
  );
});

Deno.test("gcNetworkList() deletes stale attachments of the network and sends GC with the valid ones", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await cacheAttachment(fake, "keep");
  await cacheAttachment(fake, "stale");
  await cacheAttachment(fake, "elsewhere", "othernet");
  const valid = [{ containerID: "keep", ifname: "eth0" }];
  const deleted = await gcNetworkList(chain("1.1.0"), {
    ...options(fake),
    validAttachments: valid,
  });
  assertEquals(deleted, [{ containerID: "stale", ifname: "eth0" }]);
  assertEquals(await fake.calls(), [
    "third DEL stale eth0",
    "second DEL stale eth0",
    "first DEL stale eth0",
    "first GC",
    "second GC",
    "third GC",
  ]);
  const del = await fake.envOf("first", "DEL");
  assertEquals([del.CNI_NETNS, del.CNI_ARGS], ["/var/run/netns/stale", "ID=stale"]);
  assertEquals((await fake.stdin("first", "DEL")).prevResult, {
    cniVersion: "1.1.0",
    ips: [{ address: "10.9.0.5/24" }],
  });
  const gc = await fake.stdin("second", "GC");
  assertEquals(gc, {
    "cni.dev/attachments": valid,
    "cni.dev/valid-attachments": valid,
    cniVersion: "1.1.0",
    name: "mynet",
    setting: 42,
    type: "second",
  });
  assertEquals((await fake.envOf("second", "GC")).CNI_CONTAINERID, "");
  const left = await listCacheEntries(join(fake.root, "cache"));
  assertEquals(left.map((e) => e.containerId), ["keep", "elsewhere"]);
});

Deno.test("gcNetworkList() without valid attachments deletes all and omits the keys", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await cacheAttachment(fake, "a");
  await cacheAttachment(fake, "b");
  await gcNetworkList(chain("1.1.0"), options(fake));
  assertEquals((await fake.calls()).filter((c) => c.startsWith("first")), [
    "first DEL a eth0",
    "first DEL b eth0",
    "first GC",
  ]);
  const gc = await fake.stdin("first", "GC");
  assertEquals("cni.dev/valid-attachments" in gc, false);
  assertEquals("cni.dev/attachments" in gc, false);
});

Deno.test("gcNetworkList() sends no GC before 1.1.0 and does nothing with disableGC", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await cacheAttachment(fake, "a");
  await gcNetworkList(chain("1.1.0", { disableGC: true }), options(fake));
  assertEquals(await fake.calls(), []);
  await gcNetworkList(chain("1.0.0"), options(fake));
  assertEquals(await fake.calls(), ["third DEL a eth0", "second DEL a eth0", "first DEL a eth0"]);
});

Deno.test("gcNetworkList() goes on after errors and throws them together", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await cacheAttachment(fake, "a");
  await cacheAttachment(fake, "b");
  await fake.answer("third", "DEL", "fail", '{"code":999,"msg":"nope"}');
  await fake.answer("first", "GC", "fail", '{"code":999,"msg":"gc broke"}');
  const error = await assertRejects(
    () => gcNetworkList(chain("1.1.0"), options(fake)),
    AggregateError,
  );
  assertEquals(error.errors.length, 3);
  assertEquals(
    error.message,
    [
      'failed to delete stale attachment a eth0: plugin type="third" failed (delete): nope',
      'failed to delete stale attachment b eth0: plugin type="third" failed (delete): nope',
      "failed to GC plugin first: gc broke",
    ].join("\n"),
  );
  assertEquals((await fake.calls()).filter((c) => c.includes(" GC")).length, 3);
});

Deno.test("statusNetworkList() asks every plugin from 1.1.0 on and keeps the error code", async () => {
  await using fake = await fakePlugins(["first", "second", "third"]);
  await statusNetworkList(chain("1.0.0"), options(fake));
  assertEquals(await fake.calls(), []);
  await statusNetworkList(chain("1.1.0"), options(fake));
  assertEquals(await fake.calls(), ["first STATUS", "second STATUS", "third STATUS"]);
  assertEquals(await fake.stdin("third", "STATUS"), {
    capabilities: { portMappings: true },
    cniVersion: "1.1.0",
    name: "mynet",
    type: "third",
  });
  await fake.answer("second", "STATUS", "fail", '{"code":50,"msg":"not ready"}');
  const error = await assertRejects(
    () => statusNetworkList(chain("1.1.0"), options(fake)),
    CniError,
  );
  assertEquals([error.code, error.message], [50, "not ready"]);
  assertStringIncludes((await fake.calls()).join(","), "second STATUS");
  assertEquals((await fake.calls()).slice(3), ["first STATUS", "second STATUS"]);
});

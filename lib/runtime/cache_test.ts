import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { join } from "@std/path";
import {
  cacheFilePath,
  decodeCacheEntry,
  defaultCacheDir,
  deleteCacheEntry,
  encodeCacheEntry,
  listCacheEntries,
  readCacheEntry,
  writeCacheEntry,
} from "./cache.ts";
import type { CacheEntry } from "./cache.ts";

const CONFIG = '{"cniVersion":"1.0.0","name":"mynet","plugins":[{"type":"bridge"}]}';

function entry(overrides: Partial<CacheEntry> = {}): CacheEntry {
  return {
    containerId: "c1",
    config: new TextEncoder().encode(CONFIG),
    ifName: "eth0",
    networkName: "mynet",
    netns: "/var/run/netns/x",
    cniArgs: [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "p"]],
    capabilityArgs: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] },
    result: { cniVersion: "1.0.0", ips: [{ address: "10.1.0.2/24", interface: 0 }] },
    ...overrides,
  };
}

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "cbx-rt-cache-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("encodeCacheEntry() writes libcni's cniCacheV1 layout", () => {
  assertEquals(
    encodeCacheEntry(entry()),
    '{"kind":"cniCacheV1","containerId":"c1","config":"' + btoa(CONFIG) +
      '","ifName":"eth0","networkName":"mynet","netns":"/var/run/netns/x",' +
      '"cniArgs":[["IgnoreUnknown","1"],["K8S_POD_NAME","p"]],' +
      '"capabilityArgs":{"portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"}]},' +
      '"result":{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.2/24","interface":0}]}}',
  );
});

Deno.test("encodeCacheEntry() omits empty optional fields", () => {
  assertEquals(
    encodeCacheEntry(entry({ netns: "", cniArgs: [], capabilityArgs: {}, result: undefined })),
    `{"kind":"cniCacheV1","containerId":"c1","config":"${
      btoa(CONFIG)
    }","ifName":"eth0","networkName":"mynet"}`,
  );
});

Deno.test("decodeCacheEntry() round-trips and rejects other kinds", () => {
  const e = entry();
  assertEquals(decodeCacheEntry(encodeCacheEntry(e)), e);
  assertThrows(() => decodeCacheEntry('{"kind":"v2"}'), TypeError, "wrong kind");
  assertThrows(() => decodeCacheEntry("{"), SyntaxError);
});

Deno.test("cacheFilePath() is <dir>/results/<net>-<id>-<ifname> and needs all three", () => {
  assertEquals(
    cacheFilePath("/var/lib/cni", { networkName: "n", containerId: "c", ifName: "eth0" }),
    "/var/lib/cni/results/n-c-eth0",
  );
  assertThrows(
    () => cacheFilePath("/x", { networkName: "n", containerId: "", ifName: "eth0" }),
    RangeError,
    'cache file path requires network name ("n"), container ID (""), and interface name ("eth0")',
  );
  assertThrows(
    () => cacheFilePath("/x", { networkName: "n", containerId: "c", ifName: "../../etc" }),
    RangeError,
  );
});

Deno.test("defaultCacheDir() honours CNI_CACHE_DIR", () => {
  assertEquals(defaultCacheDir({}), "/var/lib/cni");
  assertEquals(defaultCacheDir({ CNI_CACHE_DIR: "/tmp/c" }), "/tmp/c");
});

Deno.test("writeCacheEntry() creates the results dir 0700 and the file 0600", async () => {
  await withTempDir(async (dir) => {
    const cacheDir = join(dir, "cache");
    await writeCacheEntry(cacheDir, entry());
    const results = await Deno.stat(join(cacheDir, "results"));
    assertEquals(results.mode! & 0o777, 0o700);
    const file = join(cacheDir, "results", "mynet-c1-eth0");
    assertEquals((await Deno.stat(file)).mode! & 0o777, 0o600);
    assertEquals(await Deno.readTextFile(file), encodeCacheEntry(entry()));
    // Only the final file is left behind.
    const names = [];
    for await (const e of Deno.readDir(join(cacheDir, "results"))) names.push(e.name);
    assertEquals(names, ["mynet-c1-eth0"]);
  });
});

Deno.test("readCacheEntry() returns undefined without a file and throws on garbage", async () => {
  await withTempDir(async (dir) => {
    const key = { networkName: "mynet", containerId: "c1", ifName: "eth0" };
    assertEquals(await readCacheEntry(dir, key), undefined);
    await writeCacheEntry(dir, entry());
    assertEquals(await readCacheEntry(dir, key), entry());
    await Deno.writeTextFile(join(dir, "results", "mynet-c1-eth0"), "garbage");
    await assertRejects(() => readCacheEntry(dir, key), SyntaxError);
  });
});

Deno.test("deleteCacheEntry() is idempotent", async () => {
  await withTempDir(async (dir) => {
    const key = { networkName: "mynet", containerId: "c1", ifName: "eth0" };
    await writeCacheEntry(dir, entry());
    assert(await deleteCacheEntry(dir, key));
    assertEquals(await deleteCacheEntry(dir, key), false);
    assertEquals(await readCacheEntry(dir, key), undefined);
  });
});

Deno.test("listCacheEntries() enumerates valid entries sorted and filters like libcni", async () => {
  await withTempDir(async (dir) => {
    assertEquals(await listCacheEntries(dir), []);
    await writeCacheEntry(dir, entry({ containerId: "c2" }));
    await writeCacheEntry(dir, entry({ containerId: "c1" }));
    await writeCacheEntry(dir, entry({ containerId: "c1", networkName: "other" }));
    await Deno.writeTextFile(join(dir, "results", "junk-c1-eth0"), "not json");
    await Deno.writeTextFile(join(dir, "results", "legacy-c1-eth0"), '{"cniVersion":"0.3.1"}');
    const all = await listCacheEntries(dir);
    assertEquals(all.map((e) => `${e.networkName}/${e.containerId}`), [
      "mynet/c1",
      "mynet/c2",
      "other/c1",
    ]);
    const c1 = await listCacheEntries(dir, { containerId: "c1" });
    assertEquals(c1.map((e) => e.networkName), ["mynet", "other"]);
    const mynet = await listCacheEntries(dir, { networkName: "mynet" });
    assertEquals(mynet.map((e) => e.containerId), ["c1", "c2"]);
    assertEquals(mynet[0].cniArgs, [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "p"]]);
  });
});

Deno.test("listCacheEntries() skips FIFOs, links and oversized files instead of blocking on them", async () => {
  await withTempDir(async (dir) => {
    await writeCacheEntry(dir, entry({ containerId: "c1" }));
    const results = join(dir, "results");
    // A FIFO with no writer would block a read forever.
    const mkfifo = new Deno.Command("mkfifo", { args: [join(results, "mynet-fifo-eth0")] });
    assertEquals((await mkfifo.output()).code, 0);
    const outside = join(dir, "outside");
    await writeCacheEntry(outside, entry({ containerId: "elsewhere" }));
    await Deno.symlink(
      join(outside, "results", "mynet-elsewhere-eth0"),
      join(results, "mynet-link-eth0"),
    );
    await Deno.writeTextFile(join(results, "mynet-huge-eth0"), " ".repeat(4 * 1024 * 1024 + 1));
    assertEquals((await listCacheEntries(dir)).map((e) => e.containerId), ["c1"]);
  });
});

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { join } from "@std/path";
import {
  confFiles,
  confListFromConf,
  loadAllConfLists,
  loadConfList,
  loadConfListFile,
  NetworkNotFoundError,
  parseConfList,
  parsePluginConf,
} from "./conflist.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

async function withDir(files: Record<string, string>, fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "cbx-rt-conf-" });
  try {
    for (const [name, content] of Object.entries(files)) {
      await Deno.mkdir(join(dir, name, ".."), { recursive: true });
      await Deno.writeTextFile(join(dir, name), content);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const list = (name: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: "1.0.0", name, plugins: [{ type: "loopback" }], ...extra });

Deno.test("parseConfList() picks the highest of cniVersions and cniVersion, ignoring newer than 1.1.0", () => {
  const parsed = parseConfList(
    list("n", { cniVersion: "0.4.0", cniVersions: ["1.0.0", "0.3.1", "1.1.0", "1.2.0", "9.0.0"] }),
  );
  assertEquals(parsed.cniVersion, "1.1.0");
  assertEquals(
    parseConfList(list("n", { cniVersion: "1.0.0", cniVersions: ["0.3.1", "0.4.0"] })).cniVersion,
    "1.0.0",
  );
});

Deno.test("parseConfList() takes cniVersion as is when cniVersions is absent", () => {
  assertEquals(parseConfList(list("n", { cniVersion: "2.0.0" })).cniVersion, "2.0.0");
  // All candidates too new: libcni keeps the original cniVersion.
  assertEquals(
    parseConfList(list("n", { cniVersion: "3.0.0", cniVersions: ["2.0.0"] })).cniVersion,
    "3.0.0",
  );
});

Deno.test("parseConfList() rejects unparsable cniVersions entries", () => {
  const error = assertThrows(
    () => parseConfList(list("n", { cniVersions: ["1.0.0", "one.two"] })),
    RangeError,
  );
  assertStringIncludes(error.message, "invalid cniVersions entry one.two at index 1");
  assertThrows(() => parseConfList(list("n", { cniVersions: "1.0.0" })), TypeError, "cniVersions");
});

Deno.test("parseConfList() reads disableCheck/disableGC as bools or strings", () => {
  const parsed = parseConfList(list("n", { disableCheck: "TRUE", disableGC: true }));
  assertEquals([parsed.disableCheck, parsed.disableGC, parsed.loadOnlyInlinedPlugins], [
    true,
    true,
    false,
  ]);
  assertThrows(
    () => parseConfList(list("n", { disableCheck: "yes" })),
    TypeError,
    'invalid value "yes" for disableCheck',
  );
});

Deno.test("parseConfList() rejects a missing name, empty plugins and plugins without type", () => {
  assertThrows(
    () => parseConfList('{"plugins":[{"type":"a"}]}'),
    TypeError,
    "error parsing configuration list: no name",
  );
  assertThrows(() => parseConfList('{"name":"n","plugins":[]}'), TypeError, "no plugins in list");
  assertThrows(
    () => parseConfList('{"name":"n","plugins":[{"type":"a"},{"bridge":"x"}]}'),
    TypeError,
    "failed to parse plugin config 1: error parsing configuration: missing 'type'",
  );
  assertThrows(() => parseConfList("{nope"), SyntaxError, "error parsing configuration list");
});

Deno.test("parseConfList() re-marshals plugin entries with sorted keys and keeps the list bytes", () => {
  const raw = '{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"b","z":1,"a":{"y":"<",' +
    '"b":2}}]}';
  const parsed = parseConfList(raw);
  assertEquals(text(parsed.plugins[0].bytes), '{"a":{"b":2,"y":"\\u003c"},"type":"b","z":1}');
  assertEquals(text(parsed.bytes), raw);
});

Deno.test("parsePluginConf() checks the types libcni decodes", () => {
  assertThrows(
    () => parsePluginConf('{"type":"a","capabilities":{"mac":"yes"}}'),
    TypeError,
    '"capabilities.mac" must be a boolean',
  );
  assertThrows(() => parsePluginConf('{"type":7}'), TypeError, '"type" must be a string');
  assertThrows(() => parsePluginConf("[]"), TypeError, "expected a JSON object");
});

Deno.test("confListFromConf() wraps a single config like libcni ConfListFromConf", () => {
  const wrapped = confListFromConf(
    parsePluginConf('{"cniVersion":"0.4.0","name":"single","type":"bridge","bridge":"br0"}'),
  );
  assertEquals(wrapped.name, "single");
  assertEquals(wrapped.cniVersion, "0.4.0");
  assertEquals(wrapped.plugins.length, 1);
  assertEquals(
    text(wrapped.bytes),
    '{"cniVersion":"0.4.0","name":"single","plugins":[{"bridge":"br0","cniVersion":"0.4.0",' +
      '"name":"single","type":"bridge"}]}',
  );
});

Deno.test("confFiles() lists matching files sorted, skips directories, tolerates a missing dir", async () => {
  await withDir({
    "b.conf": "{}",
    "a.json": "{}",
    "c.conflist": "{}",
    "d.txt": "{}",
    "sub.conf/x.conf": "{}",
  }, async (dir) => {
    assertEquals(await confFiles(dir, [".conf", ".json"]), [
      join(dir, "a.json"),
      join(dir, "b.conf"),
    ]);
    assertEquals(await confFiles(join(dir, "missing"), [".conf"]), []);
  });
});

Deno.test("loadConfList() returns the first match in sorted order", async () => {
  await withDir({
    "20-b.conflist": list("net", { marker: "second" }),
    "10-a.conflist": list("net", { marker: "first" }),
    "05-other.conflist": list("other"),
  }, async (dir) => {
    const found = await loadConfList(dir, "net");
    assertEquals(JSON.parse(text(found.bytes)).marker, "first");
    assertEquals(found.file, join(dir, "10-a.conflist"));
  });
});

Deno.test("loadConfList() prefers .conflist files over single configs", async () => {
  await withDir({
    "00-single.conf": '{"cniVersion":"0.4.0","name":"net","type":"single"}',
    "99-list.conflist": list("net"),
  }, async (dir) => {
    const found = await loadConfList(dir, "net");
    assertEquals(found.plugins[0].conf.type, "loopback");
  });
});

Deno.test("loadConfList() wraps .conf and .json single configs", async () => {
  await withDir({
    "10-a.conf": '{"cniVersion":"0.3.1","name":"a","type":"ta"}',
    "20-b.json": '{"cniVersion":"1.0.0","name":"b","type":"tb"}',
  }, async (dir) => {
    const a = await loadConfList(dir, "a");
    assertEquals([a.name, a.cniVersion, a.plugins[0].conf.type], ["a", "0.3.1", "ta"]);
    const b = await loadConfList(dir, "b");
    assertEquals([b.name, b.cniVersion, b.plugins[0].conf.type], ["b", "1.0.0", "tb"]);
    assertEquals(JSON.parse(text(b.bytes)).plugins.length, 1);
  });
});

Deno.test("loadConfList() names the file that fails to parse", async () => {
  await withDir({ "10-bad.conflist": '{"name":', "20-good.conflist": list("net") }, async (dir) => {
    const error = await assertRejects(() => loadConfList(dir, "net"), SyntaxError);
    assertStringIncludes(error.message, join(dir, "10-bad.conflist"));
  });
  await withDir({ "10-bad.conf": '{"name":"x"}' }, async (dir) => {
    const error = await assertRejects(() => loadConfList(dir, "x"), TypeError);
    assertStringIncludes(error.message, `${join(dir, "10-bad.conf")}: `);
    assertStringIncludes(error.message, "missing 'type'");
  });
});

Deno.test("loadConfList() throws NetworkNotFoundError for unknown names and empty dirs", async () => {
  await withDir({ "10-a.conflist": list("a") }, async (dir) => {
    const error = await assertRejects(() => loadConfList(dir, "zzz"), NetworkNotFoundError);
    assertEquals(error.message, `no net configuration with name "zzz" in ${dir}`);
    assertEquals(error.empty, false);
  });
  await withDir({}, async (dir) => {
    const error = await assertRejects(() => loadConfList(dir, "a"), NetworkNotFoundError);
    assertEquals(error.message, `no net configurations found in ${dir}`);
    assert(error.empty);
  });
});

Deno.test("loadConfListFile() appends <dir>/<name>/*.conf plugins unless loadOnlyInlinedPlugins", async () => {
  await withDir({
    "a.conflist": list("a"),
    "a/20-y.conf": '{"type":"second"}',
    "a/10-x.conf": '{"type":"first"}',
    "b.conflist": list("b", { loadOnlyInlinedPlugins: true }),
    "b/10-x.conf": '{"type":"ignored"}',
    "c.conflist": '{"cniVersion":"1.1.0","name":"c"}',
    "c/1.conf": '{"type":"only"}',
  }, async (dir) => {
    const a = await loadConfListFile(join(dir, "a.conflist"));
    assertEquals(a.plugins.map((p) => p.conf.type), ["loopback", "first", "second"]);
    const b = await loadConfListFile(join(dir, "b.conflist"));
    assertEquals(b.plugins.map((p) => p.conf.type), ["loopback"]);
    const c = await loadConfListFile(join(dir, "c.conflist"));
    assertEquals(c.plugins.map((p) => p.conf.type), ["only"]);
  });
  await withDir({ "e.conflist": '{"cniVersion":"1.1.0","name":"e"}' }, async (dir) => {
    await assertRejects(
      () => loadConfListFile(join(dir, "e.conflist")),
      TypeError,
      "no plugin configs found",
    );
  });
});

Deno.test("loadAllConfLists() reports broken files without stopping", async () => {
  await withDir({
    "10-a.conflist": list("a"),
    "20-bad.conflist": "nope",
    "30-c.conf": '{"cniVersion":"1.0.0","name":"c","type":"x"}',
  }, async (dir) => {
    const entries = await loadAllConfLists(dir);
    assertEquals(entries.map((e) => [e.file.slice(dir.length + 1), e.list?.name ?? null]), [
      ["10-a.conflist", "a"],
      ["20-bad.conflist", null],
      ["30-c.conf", "c"],
    ]);
    assert(entries[1].error instanceof SyntaxError);
  });
});

Deno.test("loadConfList() refuses a FIFO or an oversized file where a config should be, and follows links", async () => {
  await withDir({ "real.conflist": list("net") }, async (dir) => {
    await Deno.symlink(join(dir, "real.conflist"), join(dir, "10-link.conflist"));
    assertEquals((await loadConfList(dir, "net")).file, join(dir, "10-link.conflist"));
    const mkfifo = new Deno.Command("mkfifo", { args: [join(dir, "05-fifo.conflist")] });
    assertEquals((await mkfifo.output()).code, 0);
    await assertRejects(
      () => loadConfList(dir, "net"),
      Error,
      "05-fifo.conflist: not a regular file",
    );
    await Deno.remove(join(dir, "05-fifo.conflist"));
    await Deno.writeTextFile(join(dir, "06-huge.conflist"), " ".repeat(16 * 1024 * 1024 + 1));
    await assertRejects(() => loadConfList(dir, "net"), Error, "larger than");
  });
});

import { assert, assertEquals } from "@std/assert";
import { join } from "@std/path";
import {
  DEFAULT_JOURNAL_PATH,
  formatRunEntry,
  journalPath,
  recordRun,
  type RunEntry,
} from "./journal.ts";
import { parseJournal } from "./journal_reader.ts";

const root = new URL("../..", import.meta.url).pathname;
const entry: RunEntry = { plugin: "bridge", command: "ADD", outcome: "ok", durationMs: 12.3456 };

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cbx-st-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("formatRunEntry() writes one compact JSON line with rounded duration", () => {
  const line = formatRunEntry({ ...entry, time: 1000, code: 7, network: "n", containerId: "c" });
  assertEquals(
    line,
    '{"time":1000,"plugin":"bridge","command":"ADD","outcome":"ok","durationMs":12.346,"code":7,"network":"n","containerId":"c"}',
  );
});

Deno.test("journalPath() honours CNIBOX_JOURNAL, including empty to disable", () => {
  assertEquals(journalPath({}), DEFAULT_JOURNAL_PATH);
  assertEquals(journalPath({ CNIBOX_JOURNAL: "/tmp/j" }), "/tmp/j");
  assertEquals(journalPath({ CNIBOX_JOURNAL: "" }), "");
});

Deno.test("recordRun() appends lines, creating the directory", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "sub", "journal");
    recordRun({ ...entry, time: 1 }, { path });
    recordRun({ ...entry, command: "DEL", outcome: "error", code: 11, time: 2 }, { path });
    const entries = parseJournal(await Deno.readTextFile(path));
    assertEquals(entries.map((e) => [e.time, e.command, e.outcome, e.code]), [
      [1, "ADD", "ok", undefined],
      [2, "DEL", "error", 11],
    ]);
    assertEquals((await Deno.stat(path)).mode! & 0o777, 0o640);
  });
});

Deno.test("recordRun() rotates at the size cap and keeps one old file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "journal");
    const lineBytes = formatRunEntry({ ...entry, time: 1 }).length + 1;
    for (let i = 0; i < 25; i++) {
      recordRun({ ...entry, time: 1 }, { path, maxBytes: lineBytes * 10 });
    }
    const current = parseJournal(await Deno.readTextFile(path));
    const old = parseJournal(await Deno.readTextFile(`${path}.1`));
    assertEquals(current.length, 5);
    assertEquals(old.length, 10);
    assert((await Deno.stat(path)).size <= lineBytes * 10);
  });
});

Deno.test("recordRun() never throws and records nothing when disabled or unwritable", async () => {
  await withTempDir(async (dir) => {
    recordRun(entry, { path: "" });
    recordRun(entry, { path: dir }); // a directory
    recordRun(entry, { path: "/proc/cnibox-journal-test/x" }); // cannot be created
    await Deno.writeTextFile(join(dir, "file"), "");
    recordRun(entry, { path: join(dir, "file", "journal") }); // parent is a file
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["file"]);
  });
});

// Timing is reported by `deno task bench`, not asserted here (no timing assertions in tests).
Deno.test("recordRun() appends one whole line per run", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "journal");
    recordRun(entry, { path }); // warm-up: create the file
    const runs = 500;
    for (let i = 0; i < runs; i++) recordRun(entry, { path });
    assertEquals(parseJournal(await Deno.readTextFile(path)).length, runs + 1);
  });
});

Deno.test("recordRun() records from a fresh process, as a plugin run does", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "cold.ts");
    // Like a plugin run: main.ts has already read /proc/self/cmdline when the skeleton records.
    await Deno.writeTextFile(
      file,
      `import { recordRun } from "${root}lib/status/journal.ts";
Deno.readTextFileSync("/proc/self/cmdline");
const start = performance.now();
recordRun({ plugin: "bridge", command: "ADD", outcome: "ok", durationMs: 1 }, { path: ${
        JSON.stringify(join(dir, "journal"))
      } });
console.log(performance.now() - start);`,
    );
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--no-config", file],
        stdout: "piped",
      }).output();
      times.push(Number(new TextDecoder().decode(out.stdout)));
    }
    assert(times.every((t) => Number.isFinite(t)), `a fresh process failed to record: ${times}`);
    assertEquals(parseJournal(await Deno.readTextFile(join(dir, "journal"))).length, 5);
  });
});

Deno.test("recordRun() from concurrent processes keeps every line whole", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "journal");
    const script = `import { recordRun } from "${root}lib/status/journal.ts";
for (let i = 0; i < 200; i++) recordRun({ plugin: "p" + Deno.args[0], command: "ADD", outcome: "ok", durationMs: i }, { path: ${
      JSON.stringify(path)
    }, maxBytes: 1e9 });`;
    const file = join(dir, "writer.ts");
    await Deno.writeTextFile(file, script);
    const children = [0, 1, 2, 3].map((n) =>
      new Deno.Command(Deno.execPath(), { args: ["run", "-A", "--no-config", file, String(n)] })
        .output()
    );
    for (const out of await Promise.all(children)) assert(out.success);
    const text = await Deno.readTextFile(path);
    const lines = text.trimEnd().split("\n");
    assertEquals(lines.length, 800);
    assertEquals(parseJournal(text).length, 800);
  });
});

Deno.test("journal.ts loads no npm package and no node: module (plugin runs import it)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", `${root}lib/status/journal.ts`],
    cwd: root,
    stdout: "piped",
  }).output();
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string }[];
  };
  assertEquals(info.modules.map((m) => m.specifier), [`file://${root}lib/status/journal.ts`]);
});

Deno.test("recordRun() leaves a directory at the journal path alone, even past the cap", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "journal");
    await Deno.mkdir(path);
    recordRun(entry, { path, maxBytes: 1 });
    assertEquals((await Deno.stat(path)).isDirectory, true);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["journal"]);
  });
});

Deno.test("recordRun() keeps the permissions an operator gave the journal", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "journal");
    recordRun(entry, { path });
    await Deno.chmod(path, 0o600);
    recordRun(entry, { path });
    assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
  });
});

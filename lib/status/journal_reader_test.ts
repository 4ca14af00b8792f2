import { assertEquals } from "@std/assert";
import { join } from "@std/path";
import { recordRun } from "./journal.ts";
import { JournalTail, parseJournal, parseJournalLine } from "./journal_reader.ts";

Deno.test("parseJournalLine() rejects malformed lines and label-unsafe names", () => {
  const ok = '{"time":5,"plugin":"bridge","command":"ADD","outcome":"ok","durationMs":3}';
  assertEquals(parseJournalLine(ok)?.plugin, "bridge");
  for (
    const bad of [
      "",
      "not json",
      "[]",
      '{"time":5,"plugin":"a\\"b","command":"ADD","outcome":"ok","durationMs":3}',
      '{"time":5,"plugin":"bridge","command":"HACK","outcome":"ok","durationMs":3}',
      '{"time":5,"plugin":"bridge","command":"ADD","outcome":"maybe","durationMs":3}',
      '{"time":5,"plugin":"bridge","command":"ADD","outcome":"ok","durationMs":-1}',
      '{"plugin":"bridge","command":"ADD","outcome":"ok","durationMs":1}',
    ]
  ) assertEquals(parseJournalLine(bad), undefined, bad);
  assertEquals(parseJournal(`${ok}\ngarbage\n${ok}\n`).length, 2);
});

Deno.test("JournalTail.poll() returns each run once across appends and rotations", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cbx-st-" });
  try {
    const path = join(dir, "journal");
    const tail = new JournalTail(path);
    assertEquals(await tail.poll(), []); // no file yet
    const rec = (n: number) =>
      recordRun({ plugin: "p", command: "ADD", outcome: "ok", durationMs: n, time: n }, {
        path,
        maxBytes: 700, // about 9 lines per file
      });
    for (let n = 1; n <= 5; n++) rec(n);
    const seen: number[] = (await tail.poll()).map((e) => e.durationMs);
    for (let n = 6; n <= 14; n++) rec(n); // rotates once in between
    seen.push(...(await tail.poll()).map((e) => e.durationMs));
    assertEquals(await tail.poll(), []);
    for (let n = 15; n <= 16; n++) rec(n);
    seen.push(...(await tail.poll()).map((e) => e.durationMs));
    assertEquals(seen, Array.from({ length: 16 }, (_, i) => i + 1));

    // A new reader starts with the rotated file, then the current one.
    const fresh = (await new JournalTail(path).poll()).map((e) => e.durationMs);
    assertEquals(fresh, fresh.toSorted((a, b) => a - b));
    assertEquals(fresh.at(-1), 16);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("JournalTail.poll() holds back an unterminated last line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cbx-st-" });
  try {
    const path = join(dir, "journal");
    const line = '{"time":1,"plugin":"p","command":"DEL","outcome":"ok","durationMs":2}';
    await Deno.writeTextFile(path, line.slice(0, 20));
    const tail = new JournalTail(path);
    assertEquals(await tail.poll(), []);
    await Deno.writeTextFile(path, line.slice(20) + "\n", { append: true });
    assertEquals((await tail.poll()).map((e) => e.command), ["DEL"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("JournalTail.poll() called concurrently returns each line once in all", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cbx-st-" });
  try {
    const path = join(dir, "journal");
    const rec = (n: number) =>
      recordRun({ plugin: "p", command: "ADD", outcome: "ok", durationMs: n, time: n }, { path });
    for (let n = 1; n <= 50; n++) rec(n);
    const tail = new JournalTail(path);
    const first = await Promise.all(Array.from({ length: 20 }, () => tail.poll()));
    assertEquals(first.flat().length, 50);
    for (let n = 51; n <= 60; n++) rec(n);
    const second = await Promise.all([tail.poll(), tail.poll()]);
    assertEquals(
      second.flat().map((e) => e.durationMs),
      Array.from({ length: 10 }, (_, i) => i + 51),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

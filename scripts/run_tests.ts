// deno-lint-ignore-file no-console -- the test runner reports to its user.
/**
 * `deno task test`: static checks (fmt, lint, type check) and every test,
 * including the kernel tests when run as root. Ends with one line
 * `N passed, N failed, N skipped` that CI reads; each static check counts as
 * one test.
 *
 * Extra arguments go to `deno test` (e.g. a path or `--filter`).
 *
 * Not named `test.ts`: `deno test` would discover that name as a test module
 * and run it, which would start `deno test` again, and again.
 *
 * @module
 */

const root = new URL("..", import.meta.url).pathname;
let passed = 0;
let failed = 0;
let skipped = 0;

async function step(name: string, args: string[]): Promise<boolean> {
  console.log(`\n== ${name}: deno ${args.join(" ")}`);
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
  })
    .output();
  if (out.success) passed++;
  else {
    failed++;
    console.log(`== ${name} FAILED`);
  }
  return out.success;
}

const extra = Deno.args;
if (extra.length === 0) {
  await step("format", ["fmt", "--check"]);
  await step("lint", ["lint"]);
  await step("type check", ["check", "--quiet", "."]);
}

console.log(`\n== tests: deno test -A ${extra.join(" ")}`);
// Plugin runs in tests record into a scratch journal and scratch firewall records, not /run/cnibox.
const journal = await Deno.makeTempFile({ prefix: "cnibox-test-journal-" });
const records = await Deno.makeTempDir({ prefix: "cnibox-test-fw-records-" });
const child = new Deno.Command(Deno.execPath(), {
  args: ["test", "-A", "--no-check", ...extra],
  cwd: root,
  stdout: "piped",
  stderr: "inherit",
  env: { NO_COLOR: "1", CNIBOX_JOURNAL: journal, CNIBOX_FIREWALL_RECORDS: records },
}).spawn();
let tail = "";
const decoder = new TextDecoder();
for await (const chunk of child.stdout) {
  const text = decoder.decode(chunk, { stream: true });
  await Deno.stdout.write(chunk);
  tail = (tail + text).slice(-4000);
}
const status = await child.status;
for (const scratch of [journal, `${journal}.1`, records]) {
  await Deno.remove(scratch, { recursive: true }).catch(() => {});
}
// deno test's summary: "ok | 12 passed (3 steps) | 0 failed | 2 ignored (1s)"
const summary = tail.split("\n").reverse().find((line) => /\d+ passed.*\d+ failed/.test(line));
if (summary) {
  const count = (word: string) => Number(summary.match(new RegExp(`(\\d+) ${word}`))?.[1] ?? 0);
  passed += count("passed");
  failed += count("failed");
  skipped += count("ignored");
  if (!status.success && count("failed") === 0) failed++; // e.g. leaked resources or an uncaught error
} else {
  failed++;
  console.log("== the test run printed no summary");
}
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
Deno.exit(failed === 0 ? 0 : 1);

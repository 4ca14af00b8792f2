import { assert, assertEquals, assertThrows } from "@std/assert";
import { Errno } from "./errno.ts";
import { OsError } from "./libc.ts";
import { spawnChild } from "./spawn.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("spawnChild() feeds stdin and collects stdout, stderr and the exit status", () => {
  const child = spawnChild("/bin/sh", ["-c", "cat; echo err >&2; exit 3"], {
    stdin: new TextEncoder().encode("hello"),
  });
  const out = child.finish();
  assertEquals([out.code, text(out.stdout), text(out.stderr)], [3, "hello", "err\n"]);
  assertEquals(out.signal, undefined);
});

Deno.test("spawnChild() moves a MiB through stdin and stdout without deadlock", () => {
  const input = new Uint8Array(1 << 20).map((_, i) => i % 251);
  const out = spawnChild("/bin/cat", [], { stdin: input }).finish();
  assertEquals(out.code, 0);
  assertEquals(out.stdout, input);
});

Deno.test("spawnChild() reports a signal as 128 + its number", () => {
  const out = spawnChild("/bin/sh", ["-c", "kill -9 $$"]).finish();
  assertEquals([out.code, out.signal], [137, 9]);
});

Deno.test("spawnChild() throws OsError when the program does not exist", () => {
  const error = assertThrows(() => spawnChild("/nonexistent/cbx-tool", []), OsError);
  assertEquals(error.errno, Errno.ENOENT);
  assert(error.message.includes('"/nonexistent/cbx-tool"'), error.message);
});

Deno.test("spawnChild() passes the environment, and stdin is /dev/null without input", () => {
  const out = spawnChild("/bin/sh", ["-c", 'echo "$CBX_A"; readlink /proc/self/fd/0'], {
    env: { CBX_A: "one two", PATH: "/usr/bin:/bin" },
  }).finish();
  assertEquals(text(out.stdout), "one two\n/dev/null\n");
});

Deno.test("children get SIGPIPE at its default, though Deno ignores it", () => {
  // If SIGPIPE stayed ignored, `yes` would see EPIPE and complain on stderr.
  const out = spawnChild("/bin/sh", ["-c", "yes | head -n 1; grep SigIgn /proc/self/status"])
    .finish();
  assertEquals(text(out.stderr), "");
  const ignored = BigInt("0x" + text(out.stdout).split("\t")[1].trim());
  assertEquals(ignored & (1n << 12n), 0n, "SIGPIPE (bit 12) is ignored in the child");
});

Deno.test("children inherit fds 0-2 and what this process left open across exec, nothing more", () => {
  // fdinfo "flags" is octal; O_CLOEXEC is 02000000.
  const inheritable = [...Deno.readDirSync("/proc/self/fd")].map((e) => Number(e.name))
    .filter((fd) => fd > 2)
    .filter((fd) => {
      try {
        const flags = Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`).match(/flags:\s+(\d+)/);
        return flags !== null && (parseInt(flags[1], 8) & 0o2000000) === 0;
      } catch {
        return false; // the directory listing's own fd, closed by now
      }
    });
  // Once started (and past its loader), sleep holds only what it inherited.
  const child = spawnChild("/bin/sleep", ["0.5"], { env: { LC_ALL: "C" } });
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  const seen = [...Deno.readDirSync(`/proc/${child.pid}/fd`)].map((e) => Number(e.name))
    .sort((a, b) => a - b);
  child.finish();
  assertEquals(seen, [0, 1, 2, ...inheritable].sort((a, b) => a - b));
});

/** A child that waits (up to 5 s) for `path` to exist and exits 0 if it appeared. */
function waitForFile(path: string) {
  return spawnChild("/bin/sh", [
    "-c",
    `i=0; while [ ! -e ${path} ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done; [ -e ${path} ]`,
  ]);
}

Deno.test("children started together run together before either is collected", () => {
  const flag = Deno.makeTempFileSync();
  Deno.removeSync(flag);
  // The first waits (up to 5 s) for a file only the second creates.
  const waiter = waitForFile(flag);
  const maker = spawnChild("/bin/touch", [flag]);
  try {
    assertEquals(waiter.finish().code, 0);
    assertEquals(maker.finish().code, 0);
  } finally {
    Deno.removeSync(flag);
  }
});

Deno.test("collecting one child drains the others, so none stalls on a full pipe", () => {
  const flag = Deno.makeTempFileSync();
  Deno.removeSync(flag);
  // The first waits (up to 5 s) for a file the second creates only after writing 200 KB,
  // more than a pipe holds: it must be read while the first is collected.
  const waiter = waitForFile(flag);
  const writer = spawnChild("/bin/sh", ["-c", `head -c 200000 /dev/zero; touch ${flag}`]);
  try {
    assertEquals(waiter.finish().code, 0);
    const out = writer.finish();
    assertEquals([out.code, out.stdout.length], [0, 200000]);
  } finally {
    Deno.removeSync(flag);
  }
});

import { assertEquals } from "@std/assert";
import { findCommand, RecordingExecer, SpawnExecer } from "./exec.ts";

Deno.test("SpawnExecer.run() feeds stdin and collects output and status", async () => {
  const out = await new SpawnExecer().run("sh", ["-c", "cat; echo err >&2; exit 3"], {
    stdin: "hello",
  });
  assertEquals(out, { code: 3, stdout: "hello", stderr: "err\n" });
});

Deno.test("SpawnExecer.run() reports a missing command as exit 127", async () => {
  const out = await new SpawnExecer().run("cbx-no-such-command", []);
  assertEquals(out.code, 127);
});

Deno.test("findCommand() looks in PATH and the sbin directories", () => {
  assertEquals(findCommand("sh")?.endsWith("/sh"), true);
  assertEquals(findCommand("/bin/sh"), "/bin/sh");
  assertEquals(findCommand("cbx-no-such-command"), undefined);
});

Deno.test("RecordingExecer forwards to another execer and records", async () => {
  const execer = new RecordingExecer(new SpawnExecer());
  const out = await execer.run("sh", ["-c", "echo hi"]);
  assertEquals(out.stdout, "hi\n");
  assertEquals(execer.calls, [{ cmd: "sh", args: ["-c", "echo hi"] }]);
});

Deno.test("SpawnExecer.run() calls started together run together (Promise.all)", async () => {
  const flag = Deno.makeTempFileSync();
  Deno.removeSync(flag);
  const execer = new SpawnExecer();
  try {
    // The first call waits (up to 5 s) for a file only the second creates.
    const [waiter, maker] = await Promise.all([
      execer.run("sh", [
        "-c",
        `i=0; while [ ! -e ${flag} ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done; [ -e ${flag} ]`,
      ]),
      execer.run("touch", [flag]),
    ]);
    assertEquals([waiter.code, maker.code], [0, 0]);
  } finally {
    Deno.removeSync(flag);
  }
});

Deno.test("SpawnExecer.run() reports a file it cannot execute as exit 126", async () => {
  const file = Deno.makeTempFileSync();
  try {
    const out = await new SpawnExecer().run(file, []);
    assertEquals(out.code, 126);
  } finally {
    Deno.removeSync(file);
  }
});

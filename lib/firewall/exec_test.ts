import { assertEquals } from "@std/assert";
import { DenoExecer, findCommand, RecordingExecer } from "./exec.ts";

Deno.test("DenoExecer.run() feeds stdin and collects output and status", async () => {
  const out = await new DenoExecer().run("sh", ["-c", "cat; echo err >&2; exit 3"], {
    stdin: "hello",
  });
  assertEquals(out, { code: 3, stdout: "hello", stderr: "err\n" });
});

Deno.test("DenoExecer.run() reports a missing command as exit 127", async () => {
  const out = await new DenoExecer().run("cbx-no-such-command", []);
  assertEquals(out.code, 127);
});

Deno.test("findCommand() looks in PATH and the sbin directories", () => {
  assertEquals(findCommand("sh")?.endsWith("/sh"), true);
  assertEquals(findCommand("/bin/sh"), "/bin/sh");
  assertEquals(findCommand("cbx-no-such-command"), undefined);
});

Deno.test("RecordingExecer forwards to another execer and records", async () => {
  const execer = new RecordingExecer(new DenoExecer());
  const out = await execer.run("sh", ["-c", "echo hi"]);
  assertEquals(out.stdout, "hi\n");
  assertEquals(execer.calls, [{ cmd: "sh", args: ["-c", "echo hi"] }]);
});

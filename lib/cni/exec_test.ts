import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { CniError } from "./error.ts";
import {
  execPluginFile,
  findPlugin,
  pluginError,
  pluginOutput,
  type PluginRun,
  runPluginFile,
} from "./exec.ts";
import { withDir as withTempDir, writeScript } from "./_testing.ts";

const encoder = new TextEncoder();
const BASE_ENV = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };

const withDir = (fn: (dir: string) => Promise<void> | void) => withTempDir("cbxc-exec-", fn);

/** A shell script plugin running `body`. */
function writeSh(path: string, body: string, mode = 0o755): void {
  writeScript(path, `#!/bin/sh\n${body}\n`, { mode });
}

/** A failed run that printed `stdout`. */
function failed(stdout: string, failure = "exit status 1"): PluginRun {
  return { failure, stdout: encoder.encode(stdout), stderr: new Uint8Array() };
}

Deno.test("findPlugin() finds the first regular file, Go-cleaning the path", async () => {
  await withDir((dir) => {
    Deno.mkdirSync(`${dir}/a/x`, { recursive: true }); // a directory named x does not count
    Deno.mkdirSync(`${dir}/b`);
    Deno.writeTextFileSync(`${dir}/b/x`, "");
    Deno.symlinkSync(`${dir}/b/x`, `${dir}/a/y`);
    assertEquals(findPlugin("x", [`${dir}/a`, `${dir}/b/`]), `${dir}/b/x`);
    assertEquals(findPlugin("x", [`${dir}/a/../b`]), `${dir}/b/x`);
    assertEquals(findPlugin("y", [`${dir}/a`]), `${dir}/a/y`); // a link to a file counts
  });
});

Deno.test("findPlugin() fails with the library's messages", () => {
  assertThrows(() => findPlugin("", ["/x"]), Error, "no plugin name provided");
  assertThrows(() => findPlugin("a/b", ["/x"]), Error, "invalid plugin name: a/b");
  assertThrows(() => findPlugin("x", []), Error, "no paths provided");
  assertThrows(
    () => findPlugin('no"pe', ["/nonexistent/a", "/nonexistent/b"]),
    Error,
    'failed to find plugin "no\\"pe" in path [/nonexistent/a /nonexistent/b]',
  );
});

Deno.test("pluginError() without stdout names stderr and the failure", () => {
  const quiet = pluginError(failed("", "signal: killed"));
  assertEquals(quiet.toJSON(), {
    code: 0,
    msg: "netplugin failed with no error message: signal: killed",
  });
  const noisy = pluginError({
    failure: "exit status 3",
    stdout: new Uint8Array(),
    stderr: encoder.encode('say "hi"\n'),
  });
  assertEquals(noisy.message, 'netplugin failed: "say \\"hi\\"\\n": exit status 3');
});

Deno.test("pluginError() decodes the error object like json.Unmarshal into types.Error", () => {
  const json = (text: string) => pluginError(failed(text)).toJSON();
  assertEquals(json('{"code":7,"msg":"bad","details":"d"}'), { code: 7, msg: "bad", details: "d" });
  assertEquals(json('{"CODE":7,"Msg":"bad","extra":1}'), { code: 7, msg: "bad" });
  assertEquals(json('{"code":7,"code":8,"msg":null}'), { code: 8, msg: "" });
  assertEquals(json("null"), { code: 0, msg: "" });
  const prefix = "netplugin failed but error parsing its diagnostic message";
  assertEquals(json("[1]"), {
    code: 0,
    msg: `${prefix} "[1]": json: cannot unmarshal array into Go value of type types.Error`,
  });
  assertEquals(json("oops"), {
    code: 0,
    msg: `${prefix} "oops": invalid character 'o' looking for beginning of value`,
  });
  // A mismatched field is reported after the rest were still decoded.
  assertEquals(json('{"code":"7","msg":"m","details":"d"}'), {
    code: 0,
    msg: `${prefix} "{\\"code\\":\\"7\\",\\"msg\\":\\"m\\",\\"details\\":\\"d\\"}": ` +
      "json: cannot unmarshal string into Go struct field Error.code of type uint",
    details: "d",
  });
  assertEquals(json('{"msg":1,"code":5}').code, 5);
  assertEquals(
    pluginError(failed('{"code":-1}')).message.endsWith(
      "json: cannot unmarshal number -1 into Go struct field Error.code of type uint",
    ),
    true,
  );
});

Deno.test("pluginOutput() throws for a failed run and hands on stderr only on success", () => {
  const seen: string[] = [];
  const stderr = (bytes: Uint8Array) => seen.push(new TextDecoder().decode(bytes));
  const ok: PluginRun = { stdout: encoder.encode("out"), stderr: encoder.encode("warn") };
  assertEquals(pluginOutput(ok, { stderr }), encoder.encode("out"));
  const bad: PluginRun = { ...ok, stdout: new Uint8Array(), failure: "exit status 2" };
  assertThrows(() => pluginOutput(bad, { stderr }), CniError, "exit status 2");
  assertEquals(seen, ["warn"]);
});

Deno.test("runPluginFile() passes stdin and only the given environment", async () => {
  await withDir(async (dir) => {
    writeSh(`${dir}/p`, 'cat; echo " $CNI_COMMAND ${HOME-unset}"; echo e >&2');
    const run = await runPluginFile(`${dir}/p`, encoder.encode("in"), {
      env: { ...BASE_ENV, CNI_COMMAND: "ADD" },
    });
    assertEquals(run.failure, undefined);
    assertEquals(new TextDecoder().decode(run.stdout), "in ADD unset\n");
    assertEquals(new TextDecoder().decode(run.stderr), "e\n");
  });
});

Deno.test("runPluginFile() reports Go's exit, signal and fork/exec texts", async () => {
  await withDir(async (dir) => {
    writeSh(`${dir}/exit`, "exit 4");
    writeSh(`${dir}/segv`, "kill -SEGV $$");
    writeSh(`${dir}/term`, "kill -TERM $$");
    writeSh(`${dir}/noexec`, "exit 0", 0o644);
    const failure = async (name: string) =>
      (await runPluginFile(`${dir}/${name}`, new Uint8Array(), { env: BASE_ENV })).failure;
    assertEquals(await failure("exit"), "exit status 4");
    assertEquals(await failure("segv"), "signal: segmentation fault");
    assertEquals(await failure("term"), "signal: terminated");
    assertEquals(await failure("noexec"), `fork/exec ${dir}/noexec: permission denied`);
    assertEquals(await failure("absent"), `fork/exec ${dir}/absent: no such file or directory`);
    const error = await assertRejects(
      () => execPluginFile(`${dir}/noexec`, new Uint8Array(), { env: BASE_ENV }),
      CniError,
    );
    assert(error.cause instanceof Deno.errors.PermissionDenied, "the spawn error is the cause");
  });
});

Deno.test("runPluginFile() kills an aborted plugin that ignores SIGTERM", async () => {
  await withDir(async (dir) => {
    // exec: the shell itself ignores TERM and becomes the sleeping process.
    writeSh(`${dir}/stubborn`, "trap '' TERM; exec sleep 30");
    const started = performance.now();
    const run = await runPluginFile(`${dir}/stubborn`, new Uint8Array(), {
      env: BASE_ENV,
      signal: AbortSignal.timeout(100),
    });
    assertEquals(run.failure, "signal: killed");
    assert(performance.now() - started < 10_000, "waited for the plugin's own end");
  });
});

Deno.test("runPluginFile() retries a binary that is still being written", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/busy`;
    const file = Deno.openSync(path, { write: true, create: true, mode: 0o755 });
    file.writeSync(encoder.encode("#!/bin/sh\necho done\n"));
    Deno.chmodSync(path, 0o755);
    // Executing a file open for writing fails with ETXTBSY until it is closed.
    const closing = new Promise<void>((resolve) =>
      setTimeout(() => {
        file.close();
        resolve();
      }, 300)
    );
    const started = Date.now();
    const run = await runPluginFile(path, new Uint8Array(), { env: BASE_ENV });
    await closing;
    assertEquals(run.failure, undefined);
    assertEquals(new TextDecoder().decode(run.stdout), "done\n");
    assert(Date.now() - started >= 900, "waited a second before retrying");
  });
});

Deno.test("runPluginFile() kills the plugin when the signal aborts", async () => {
  await withDir(async (dir) => {
    writeSh(`${dir}/slow`, "exec sleep 30");
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const run = await runPluginFile(`${dir}/slow`, new Uint8Array(), {
      env: BASE_ENV,
      signal: controller.signal,
    });
    // Deno stops an aborted child with SIGTERM.
    assertEquals(run.failure, "signal: terminated");
  });
});

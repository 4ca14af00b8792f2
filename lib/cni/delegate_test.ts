import { assert, assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { CniError } from "./error.ts";
import {
  delegateAdd,
  delegateCheck,
  delegateDel,
  delegateGc,
  delegateStatus,
  isThisProgram,
  setInProcessLoader,
} from "./delegate.ts";
import type { Plugin } from "./types.ts";
import { withDir as withTempDir, writeScript } from "./_testing.ts";

const MAIN_MODULE = decodeURIComponent(new URL(Deno.mainModule).pathname);

const withDir = (fn: (dir: string) => Promise<void> | void) => withTempDir("cbxc-delegate-", fn);

const stdinFor = (version: string) =>
  new TextEncoder().encode(
    `{"cniVersion":"${version}","name":"net1","type":"bridge","ipam":{"type":"fakeipam"}}`,
  );

// A delegate that reports what it got on stderr and answers per command.
const SCRIPT = `#!/bin/sh
in=$(cat)
echo "cmd=$CNI_COMMAND foo=$FOO home=\${HOME-unset} stdin=$in" >&2
case "$CNI_COMMAND" in
  ADD) printf '%s' "$RESULT" ;;
  DEL) exit 0 ;;
  CHECK) printf '{"code":11,"msg":"try later","details":"d"}'; exit 1 ;;
  GC) exit 3 ;;
  STATUS) printf 'oops'; exit 2 ;;
esac
`;

Deno.test("delegateAdd() runs the delegate with the same stdin and only CNI_COMMAND changed", async () => {
  await withDir(async (dir) => {
    writeScript(`${dir}/fakeipam`, SCRIPT);
    const stdinData = stdinFor("0.4.0");
    const env = {
      CNI_COMMAND: "CHECK",
      CNI_PATH: `/nonexistent:${dir}`,
      FOO: "bar",
      RESULT: '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.5/24"}]}',
    };
    let stderr = "";
    const result = await delegateAdd("fakeipam", { stdinData, env }, {
      stderr: (text) => void (stderr += text),
    });
    assertEquals(result, { cniVersion: "1.1.0", ips: [{ address: "10.0.0.5/24" }] });
    assert(!Object.isFrozen(result));
    assertEquals(
      stderr,
      `cmd=ADD foo=bar home=unset stdin=${new TextDecoder().decode(stdinData)}\n`,
    );
    await delegateDel("fakeipam", { stdinData, env }, { stderr: () => {} });
  });
});

Deno.test("delegateAdd() reads a result without cniVersion in the config's version", async () => {
  await withDir(async (dir) => {
    writeScript(`${dir}/fakeipam`, SCRIPT);
    const env = {
      CNI_PATH: dir,
      RESULT: '{"ips":[{"version":"4","address":"10.0.0.5/24","gateway":"10.0.0.1"}]}',
    };
    const quiet = { stderr: () => {} };
    const r = await delegateAdd("fakeipam", { stdinData: stdinFor("0.3.1"), env }, quiet);
    assertEquals(r.ips, [{ address: "10.0.0.5/24", gateway: "10.0.0.1" }]);
    // A result that names its own version is read in that version, whatever the config's.
    const wrong = { ...env, RESULT: '{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.5/24"}}' };
    const r020 = await delegateAdd("fakeipam", { stdinData: stdinFor("1.0.0"), env: wrong }, quiet);
    assertEquals(r020.ips, [{ address: "10.0.0.5/24" }]);
    const garbage = { ...env, RESULT: "garbage" };
    await assertRejects(
      () => delegateAdd("fakeipam", { stdinData: stdinFor("1.0.0"), env: garbage }, quiet),
      Error,
      "failed to unmarshal raw result: invalid character 'g' looking for beginning of value result garbage",
    );
    const array = { ...env, RESULT: "[]" };
    await assertRejects(
      () => delegateAdd("fakeipam", { stdinData: stdinFor("1.0.0"), env: array }, quiet),
      Error,
      "failed to unmarshal raw result: json: cannot unmarshal array into Go value of type map[string]interface {} result []",
    );
  });
});

Deno.test("delegate*() turn a failed delegate into the runtime-side errors", async () => {
  await withDir(async (dir) => {
    writeScript(`${dir}/fakeipam`, SCRIPT);
    writeScript(`${dir}/silent`, "#!/bin/sh\nexit 4\n");
    writeScript(`${dir}/noexec`, "#!/bin/sh\n", { mode: 0o644 });
    const args = { stdinData: stdinFor("1.1.0"), env: { CNI_PATH: dir } };
    const stdin = new TextDecoder().decode(args.stdinData);

    const check = await assertRejects(() => delegateCheck("fakeipam", args), CniError);
    assertEquals(check.toJSON(), { code: 11, msg: "try later", details: "d" });

    const gc = await assertRejects(() => delegateGc("fakeipam", args), CniError);
    assertEquals(gc.toJSON(), {
      code: 0,
      msg: `netplugin failed: "cmd=GC foo= home=unset stdin=${
        stdin.replaceAll('"', '\\"')
      }\\n": exit status 3`,
    });

    const status = await assertRejects(() => delegateStatus("fakeipam", args), CniError);
    assertEquals(
      status.message,
      `netplugin failed but error parsing its diagnostic message "oops": invalid character 'o' looking for beginning of value`,
    );

    const silent = await assertRejects(() => delegateDel("silent", args), CniError);
    assertEquals(silent.message, "netplugin failed with no error message: exit status 4");

    const noexec = await assertRejects(() => delegateDel("noexec", args), CniError);
    assertEquals(
      noexec.message,
      `netplugin failed with no error message: fork/exec ${dir}/noexec: permission denied`,
    );

    await assertRejects(
      () => delegateDel("missing", args),
      Error,
      `failed to find plugin "missing" in path [${dir}]`,
    );
  });
});

Deno.test("isThisProgram() recognises our executable and our launchers only", async () => {
  await withDir((dir) => {
    Deno.symlinkSync(Deno.execPath(), `${dir}/linked`);
    assert(isThisProgram(`${dir}/linked`));
    writeScript(`${dir}/launcher`, `#!/bin/sh\n# cnibox-launcher: ${MAIN_MODULE}\nexit 99\n`);
    assert(isThisProgram(`${dir}/launcher`));
    writeScript(`${dir}/other`, "#!/bin/sh\n# cnibox-launcher: /elsewhere/main.ts\nexit 99\n");
    assert(!isThisProgram(`${dir}/other`));
    writeScript(`${dir}/plain`, "#!/bin/sh\nexit 0\n");
    assert(!isThisProgram(`${dir}/plain`));
    writeScript(
      `${dir}/big`,
      `#!/bin/sh\n# cnibox-launcher: ${MAIN_MODULE}\n${"#".repeat(5000)}\n`,
    );
    assert(!isThisProgram(`${dir}/big`));
    assert(!isThisProgram(`${dir}/absent`));
    assert(isThisProgram(`${dir}/other`, { mainModule: "/elsewhere/main.ts" }));
  });
});

// A plugin module usable both in-process and through a launcher that execs it.
const FAKE_IPAM = (skelUrl: string) => `
import { CniError } from ${JSON.stringify(new URL("./error.ts", import.meta.url).href)};
export const plugin = {
  name: "fakeipam",
  supportedVersions: ["0.4.0", "1.0.0", "1.1.0"],
  funcs: {
    add(args) {
      if (args.env.FAIL) return Promise.reject(new CniError(7, "bad config", args.env.FAIL));
      return Promise.resolve({
        cniVersion: "1.1.0",
        ips: [{ address: "10.2.0.7/16", gateway: "10.2.0.1" }],
        routes: [{ dst: "0.0.0.0/0" }],
        dns: { nameservers: ["10.2.0.1"] },
      });
    },
    // Handlers read the environment from their CmdArgs only (never Deno.env),
    // which is what makes the in-process run match a real one.
    del: (args) => Promise.reject(new Error("del " + args.env.CNI_COMMAND)),
  },
};
if (import.meta.main) {
  const { runPlugin, denoIo } = await import(${JSON.stringify(skelUrl)});
  Deno.exit(await runPlugin(plugin, denoIo()));
}
`;

Deno.test("delegateAdd() runs a delegate of this program in-process, indistinguishably", async () => {
  await withDir(async (dir) => {
    const module = `${dir}/fake_ipam.ts`;
    Deno.writeTextFileSync(module, FAKE_IPAM(new URL("./skel.ts", import.meta.url).href));
    const { plugin } = await import(`file://${module}`) as { plugin: Plugin };

    // Exec path: a launcher for another main module, which really runs deno.
    Deno.mkdirSync(`${dir}/exec`);
    writeScript(
      `${dir}/exec/fakeipam`,
      `#!/bin/sh\n# cnibox-launcher: ${module}\nexec ${Deno.execPath()} run -A --no-config ${module}\n`,
    );
    // In-process path: a launcher naming the running main module; running it would exit 99.
    Deno.mkdirSync(`${dir}/inproc`);
    writeScript(
      `${dir}/inproc/fakeipam`,
      `#!/bin/sh\n# cnibox-launcher: ${MAIN_MODULE}\nexit 99\n`,
    );

    const loaded: string[] = [];
    setInProcessLoader((name) => {
      loaded.push(name);
      return Promise.resolve(name === "fakeipam" ? plugin : undefined);
    });
    try {
      const base = {
        CNI_CONTAINERID: "c1",
        CNI_NETNS: "/var/run/netns/cbxc-absent",
        CNI_IFNAME: "eth0",
      };
      const outcome = async (path: string, extra: Record<string, string> = {}) => {
        const args = { stdinData: stdinFor("0.4.0"), env: { ...base, CNI_PATH: path, ...extra } };
        const settle = async (p: Promise<unknown>) => {
          try {
            return { ok: await p };
          } catch (error) {
            return { error: (error as CniError).toJSON?.() ?? String(error) };
          }
        };
        return {
          add: await settle(delegateAdd("fakeipam", args)),
          fail: await settle(delegateAdd("fakeipam", { ...args, env: { ...args.env, FAIL: "x" } })),
          del: await settle(delegateDel("fakeipam", args)),
        };
      };
      const inProcess = await outcome(`${dir}/inproc`);
      assertEquals(loaded, ["fakeipam", "fakeipam", "fakeipam"]);
      const executed = await outcome(`${dir}/exec`);
      assertEquals(inProcess, executed);
      // The ADD went through the 0.4.0 round trip of a real plugin run.
      assertEquals(inProcess.add, {
        ok: {
          cniVersion: "1.1.0",
          ips: [{ address: "10.2.0.7/16", gateway: "10.2.0.1" }],
          routes: [{ dst: "0.0.0.0/0" }],
          dns: { nameservers: ["10.2.0.1"] },
        },
      });
      assertEquals(inProcess.fail, { error: { code: 7, msg: "bad config", details: "x" } });
      assertEquals(inProcess.del, { error: { code: 999, msg: "del DEL" } });
    } finally {
      setInProcessLoader(undefined);
    }
  });
});

Deno.test("delegateAdd() execs this program's file when the loader has no such plugin", async () => {
  await withDir(async (dir) => {
    writeScript(`${dir}/fakeipam`, `#!/bin/sh\n# cnibox-launcher: ${MAIN_MODULE}\nexit 99\n`);
    setInProcessLoader(() => Promise.resolve(undefined));
    try {
      const error = await assertRejects(
        () => delegateAdd("fakeipam", { stdinData: stdinFor("1.0.0"), env: { CNI_PATH: dir } }),
        CniError,
      );
      assertStringIncludes(error.message, "exit status 99");
    } finally {
      setInProcessLoader(undefined);
    }
  });
});

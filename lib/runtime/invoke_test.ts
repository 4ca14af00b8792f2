import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { join } from "@std/path";
import { CniError } from "../cni/error.ts";
import { parsePluginConf } from "./conflist.ts";
import {
  buildOneConfig,
  execPlugin,
  execPluginWithResult,
  findInPath,
  getVersionInfo,
  injectConf,
  pluginEnv,
} from "./invoke.ts";

const BASE_ENV = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

async function withScripts(
  scripts: Record<string, string>,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cbx-rt-inv-" });
  try {
    for (const [name, body] of Object.entries(scripts)) {
      await Deno.writeTextFile(join(dir, name), `#!/bin/bash\n${body}\n`, { mode: 0o755 });
      await Deno.chmod(join(dir, name), 0o755);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const ADD_ARGS = {
  command: "ADD",
  containerId: "c1",
  netns: "/var/run/netns/x",
  ifName: "eth0",
  args: [["A", "1"], ["B", "2"]] as [string, string][],
  path: ["/opt/cni/bin", "/usr/lib/cni"],
};

Deno.test("pluginEnv() sets every CNI_* variable on top of the base environment", () => {
  assertEquals(
    pluginEnv(ADD_ARGS, { HOME: "/root", CNI_COMMAND: "VERSION", CNI_IFNAME: "stale" }),
    {
      HOME: "/root",
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "c1",
      CNI_NETNS: "/var/run/netns/x",
      CNI_ARGS: "A=1;B=2",
      CNI_IFNAME: "eth0",
      CNI_PATH: "/opt/cni/bin:/usr/lib/cni",
    },
  );
  const gc = pluginEnv({ command: "GC", path: ["/b"] }, {});
  assertEquals([gc.CNI_CONTAINERID, gc.CNI_NETNS, gc.CNI_IFNAME, gc.CNI_ARGS], ["", "", "", ""]);
});

Deno.test("findInPath() returns the first regular file and reports libcni's errors", async () => {
  await withScripts({ "p1": "exit 0" }, async (dir) => {
    await Deno.mkdir(join(dir, "sub"));
    await Deno.mkdir(join(dir, "sub", "p1")); // a directory named like the plugin is skipped
    await Deno.symlink(join(dir, "p1"), join(dir, "sub", "p2"));
    assertEquals(await findInPath("p1", [join(dir, "sub"), dir]), join(dir, "p1"));
    assertEquals(await findInPath("p2", [join(dir, "sub"), dir]), join(dir, "sub", "p2"));
    await assertRejects(
      () => findInPath("p3", ["/nonexistent", dir]),
      Error,
      `failed to find plugin "p3" in path [/nonexistent ${dir}]`,
    );
  });
  await assertRejects(() => findInPath("", ["/x"]), Error, "no plugin name provided");
  await assertRejects(
    () => findInPath("../bin/sh", ["/x"]),
    Error,
    "invalid plugin name: ../bin/sh",
  );
  await assertRejects(() => findInPath("bridge", []), Error, "no paths provided");
});

Deno.test("buildOneConfig() injects name, version, prevResult and only declared+supplied capabilities", () => {
  const plugin = parsePluginConf(JSON.stringify({
    type: "portmap",
    name: "ignored",
    cniVersion: "0.1.0",
    capabilities: { portMappings: true, mac: false, ips: true },
    runtimeConfig: { stale: true },
    snat: true,
  }));
  const stdin = text(buildOneConfig(plugin, {
    name: "mynet",
    cniVersion: "1.0.0",
    prevResult: { cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24" }] },
    capabilityArgs: { portMappings: [{ hostPort: 80 }], mac: "aa:bb", bandwidth: {} },
  }));
  assertEquals(
    stdin,
    '{"capabilities":{"ips":true,"mac":false,"portMappings":true},"cniVersion":"1.0.0",' +
      '"name":"mynet","prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]},' +
      '"runtimeConfig":{"portMappings":[{"hostPort":80}]},"snat":true,"type":"portmap"}',
  );
});

Deno.test("buildOneConfig() leaves runtimeConfig alone when no capability applies", () => {
  const plugin = parsePluginConf('{"type":"bridge","runtimeConfig":{"x":1}}');
  const stdin = JSON.parse(text(buildOneConfig(plugin, {
    name: "n",
    cniVersion: "0.4.0",
    capabilityArgs: { portMappings: [] },
  })));
  assertEquals(stdin, { cniVersion: "0.4.0", name: "n", runtimeConfig: { x: 1 }, type: "bridge" });
});

Deno.test("injectConf() rejects empty keys and null values", () => {
  const plugin = parsePluginConf('{"type":"x"}');
  assertThrows(() => injectConf(plugin, { "": 1 }), TypeError, "keys cannot be empty");
  assertThrows(() => injectConf(plugin, { a: null }), TypeError, "key 'a' value must not be nil");
});

Deno.test("execPlugin() passes stdin and the CNI environment, forwards stderr on success", async () => {
  await withScripts({
    p: 'cat > "$(dirname "$0")/stdin"; env | grep -E "^(CNI_|KEEP)" | sort > "$(dirname "$0")/env"; ' +
      "echo warn >&2; printf out",
  }, async (dir) => {
    const seen: string[] = [];
    const out = await execPlugin(join(dir, "p"), { stdin: '{"a":1}', args: ADD_ARGS }, {
      env: { ...BASE_ENV, KEEP: "me", CNI_COMMAND: "stale" },
      stderr: (chunk) => seen.push(text(chunk)),
    });
    assertEquals(text(out), "out");
    assertEquals(await Deno.readTextFile(join(dir, "stdin")), '{"a":1}');
    assertEquals(
      await Deno.readTextFile(join(dir, "env")),
      [
        "CNI_ARGS=A=1;B=2",
        "CNI_COMMAND=ADD",
        "CNI_CONTAINERID=c1",
        "CNI_IFNAME=eth0",
        "CNI_NETNS=/var/run/netns/x",
        "CNI_PATH=/opt/cni/bin:/usr/lib/cni",
        "KEEP=me",
        "",
      ].join("\n"),
    );
    assertEquals(seen, ["warn\n"]);
  });
});

Deno.test("execPlugin() throws the plugin's error object with code, msg and details", async () => {
  await withScripts({
    p: `cat >/dev/null; printf '{"code":7,"msg":"bad config","details":"field x"}'; exit 1`,
  }, async (dir) => {
    const error = await assertRejects(
      () => execPlugin(join(dir, "p"), { stdin: "{}", args: ADD_ARGS }, { env: BASE_ENV }),
      CniError,
    );
    assertEquals([error.code, error.message, error.details], [7, "bad config", "field x"]);
  });
});

Deno.test("execPlugin() builds libcni's message when the plugin printed no error", async () => {
  await withScripts({
    quiet: "exit 1",
    noisy: "echo boom >&2; exit 3",
    garbage: "printf 'not json'; exit 2",
    killed: "kill -9 $$",
  }, async (dir) => {
    const run = (name: string) =>
      assertRejects(
        () => execPlugin(join(dir, name), { stdin: "{}", args: ADD_ARGS }, { env: BASE_ENV }),
        CniError,
      );
    assertEquals(
      (await run("quiet")).message,
      "netplugin failed with no error message: exit status 1",
    );
    assertEquals((await run("noisy")).message, 'netplugin failed: "boom\\n": exit status 3');
    assertStringIncludes(
      (await run("garbage")).message,
      'netplugin failed but error parsing its diagnostic message "not json": ',
    );
    assertEquals(
      (await run("killed")).message,
      "netplugin failed with no error message: signal: killed",
    );
  });
});

Deno.test("execPlugin() reports a plugin that cannot be started", async () => {
  await withScripts({ p: "exit 0" }, async (dir) => {
    await Deno.chmod(join(dir, "p"), 0o644);
    const error = await assertRejects(
      () => execPlugin(join(dir, "p"), { stdin: "{}", args: ADD_ARGS }, { env: BASE_ENV }),
      CniError,
    );
    assertEquals(
      error.message,
      `netplugin failed with no error message: fork/exec ${join(dir, "p")}: permission denied`,
    );
  });
});

Deno.test("execPluginWithResult() takes a result without cniVersion to be in the config's version", async () => {
  await withScripts({
    bare: `cat >/dev/null; printf '{"ips":[{"address":"10.0.0.2/24"}]}'`,
    old: `cat >/dev/null; printf '{"cniVersion":"0.3.1","ips":[]}'`,
    weird: `cat >/dev/null; printf '{"cniVersion":"0.5.0"}'`,
    badip: `cat >/dev/null; printf '{"cniVersion":"1.0.0","ips":[{"address":"nope"}]}'`,
  }, async (dir) => {
    const request = { stdin: '{"cniVersion":"1.0.0","name":"n","type":"bare"}', args: ADD_ARGS };
    const options = { env: BASE_ENV };
    assertEquals(await execPluginWithResult(join(dir, "bare"), request, options), {
      cniVersion: "1.0.0",
      ips: [{ address: "10.0.0.2/24" }],
    });
    assertEquals(
      (await execPluginWithResult(join(dir, "old"), request, options)).cniVersion,
      "0.3.1",
    );
    await assertRejects(
      () => execPluginWithResult(join(dir, "weird"), request, options),
      Error,
      'unsupported CNI result version "0.5.0"',
    );
    // The result type of the version checks the content, as Go's decoders do.
    await assertRejects(
      () => execPluginWithResult(join(dir, "badip"), request, options),
      SyntaxError,
      "invalid CIDR address: nope",
    );
    const noVersion = { stdin: '{"name":"n","type":"bare"}', args: ADD_ARGS };
    assertEquals(
      (await execPluginWithResult(join(dir, "bare"), noVersion, options)).cniVersion,
      "0.1.0",
    );
  });
});

Deno.test("getVersionInfo() asks VERSION the way libcni does", async () => {
  await withScripts({
    modern: `cat > "$(dirname "$0")/stdin"; env | grep ^CNI_ | sort > "$(dirname "$0")/env"; ` +
      `printf '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}'`,
    ancient: `printf '{"code":4,"msg":"unknown CNI_COMMAND: VERSION"}'; exit 1`,
    v020: `printf '{"cniVersion":"0.2.0"}'`,
    broken: `printf '{"supportedVersions":["1.0.0"]}'`,
  }, async (dir) => {
    const options = { env: BASE_ENV };
    assertEquals(await getVersionInfo(join(dir, "modern"), options), {
      cniVersion: "1.0.0",
      supportedVersions: ["0.4.0", "1.0.0"],
    });
    assertEquals(await Deno.readTextFile(join(dir, "stdin")), '{"cniVersion":"1.1.0"}');
    const env = await Deno.readTextFile(join(dir, "env"));
    for (
      const line of ["CNI_COMMAND=VERSION", "CNI_IFNAME=dummy", "CNI_NETNS=dummy", "CNI_PATH=dummy"]
    ) {
      assertStringIncludes(env, `${line}\n`);
    }
    assertEquals((await getVersionInfo(join(dir, "ancient"), options)).supportedVersions, [
      "0.1.0",
    ]);
    assertEquals((await getVersionInfo(join(dir, "v020"), options)).supportedVersions, [
      "0.1.0",
      "0.2.0",
    ]);
    const error = await assertRejects(
      () => getVersionInfo(join(dir, "broken"), options),
      TypeError,
    );
    assert(error.message.includes("missing field cniVersion"));
  });
});

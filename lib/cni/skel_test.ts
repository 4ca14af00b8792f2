import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { CniError } from "./error.ts";
import { argIp, parseCniArgs } from "./args.ts";
import { type PluginIo, runPlugin } from "./skel.ts";
import { SUPPORTED_VERSIONS } from "./version.ts";
import type { CmdArgs, Plugin, PluginFuncs, Result } from "./types.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  stdinReads: number;
}

async function run(plugin: Plugin, env: Record<string, string>, stdin = ""): Promise<Run> {
  const out: Run = { code: -1, stdout: "", stderr: "", stdinReads: 0 };
  const io: PluginIo = {
    env,
    readStdin() {
      out.stdinReads++;
      return Promise.resolve(new TextEncoder().encode(stdin));
    },
    writeStdout: (text) => void (out.stdout += text),
    writeStderr: (text) => void (out.stderr += text),
  };
  out.code = await runPlugin(plugin, io);
  return out;
}

const RESULT: Result = {
  cniVersion: "1.1.0",
  ips: [{ address: "10.79.0.2/24", gateway: "10.79.0.1" }, {
    address: "2001:db8:1::2/64",
    gateway: "2001:db8:1::1",
  }],
  routes: [{ dst: "10.100.0.0/16" }, { dst: "0.0.0.0/0", gw: "10.79.0.254" }, { dst: "::/0" }],
};

function fakePlugin(
  funcs: Partial<PluginFuncs> = {},
  versions: readonly string[] = SUPPORTED_VERSIONS,
): Plugin & { calls: CmdArgs[] } {
  const calls: CmdArgs[] = [];
  const record = (args: CmdArgs) => void calls.push(args);
  return {
    name: "fake",
    supportedVersions: versions,
    calls,
    funcs: {
      add: funcs.add ?? ((args) => (record(args), Promise.resolve(RESULT))),
      del: funcs.del ?? ((args) => (record(args), Promise.resolve())),
      check: "check" in funcs ? funcs.check : (args) => (record(args), Promise.resolve()),
      gc: funcs.gc,
      status: funcs.status,
    },
  };
}

const ENV = {
  CNI_CONTAINERID: "ctr-1",
  CNI_NETNS: "/var/run/netns/does-not-exist-cbxc",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin:/usr/lib/cni",
};
const env = (command: string, extra: Record<string, string> = {}) => ({
  CNI_COMMAND: command,
  ...ENV,
  ...extra,
});
const conf = (version?: string, extra = "") =>
  `{"name":"net1","type":"fake"${
    version === undefined ? "" : `,"cniVersion":"${version}"`
  }${extra}}`;

function errorJson(code: number, msg: string, details?: string): string {
  return JSON.stringify(details ? { code, msg, details } : { code, msg }, null, 4);
}

Deno.test("runPlugin() prints the about text without CNI_COMMAND", async () => {
  const r = await run(fakePlugin(), { ...ENV });
  assertEquals(r.code, 0);
  assertEquals(r.stdout, "");
  assertEquals(
    r.stderr,
    "CNI fake plugin v1.9.1+cnibox.0.1.0\n" +
      "CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n",
  );
  assertEquals(r.stdinReads, 0);
});

Deno.test("runPlugin() answers VERSION without reading stdin", async () => {
  const r = await run(fakePlugin(), { CNI_COMMAND: "VERSION" }, "not json");
  assertEquals(r.code, 0);
  assertEquals(
    r.stdout,
    '{"cniVersion":"1.1.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n',
  );
  assertEquals(r.stdinReads, 0);
  const firewall = await run(fakePlugin({}, ["0.4.0", "1.0.0", "1.1.0"]), {
    CNI_COMMAND: "VERSION",
  });
  assertEquals(
    firewall.stdout,
    '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}\n',
  );
});

Deno.test("runPlugin() lists missing variables in the library's order", async () => {
  const cases: [string, string][] = [
    ["ADD", "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH"],
    ["CHECK", "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH"],
    ["DEL", "CNI_CONTAINERID,CNI_IFNAME,CNI_PATH"],
    ["GC", "CNI_PATH"],
    ["STATUS", "CNI_PATH"],
  ];
  for (const [command, missing] of cases) {
    const r = await run(fakePlugin(), { CNI_COMMAND: command }, conf("1.1.0"));
    assertEquals(r.code, 1, command);
    assertEquals(r.stdout, errorJson(4, `required env variables [${missing}] missing`), command);
    assertEquals(r.stdinReads, 0);
  }
});

Deno.test("runPlugin() validates the container ID before reporting missing variables", async () => {
  const r = await run(fakePlugin(), { CNI_COMMAND: "ADD", CNI_CONTAINERID: "a b" });
  assertEquals(r.stdout, errorJson(4, "invalid characters in containerID", "a b"));
  // GC and STATUS do not use (or check) the container ID or interface name.
  const gc = await run(
    fakePlugin(),
    { CNI_COMMAND: "GC", CNI_PATH: "/x", CNI_CONTAINERID: "a b", CNI_IFNAME: "a/b" },
    conf("1.1.0"),
  );
  assertEquals([gc.code, gc.stdout], [0, ""]);
});

Deno.test("runPlugin() validates the interface name", async () => {
  const cases: [string, string, string?][] = [
    [
      "0123456789abcdef",
      "interface name is too long",
      "interface name should be less than 16 characters",
    ],
    ["ééééééééé", "interface name is too long", "interface name should be less than 16 characters"],
    [".", "interface name is . or .."],
    ["..", "interface name is . or .."],
    ["a/b", "interface name contains / or : or whitespace characters"],
    ["a:b", "interface name contains / or : or whitespace characters"],
    ["a b", "interface name contains / or : or whitespace characters"],
    ["a\u00a0b", "interface name contains / or : or whitespace characters"],
    ["a\u0085b", "interface name contains / or : or whitespace characters"],
  ];
  for (const [name, msg, details] of cases) {
    const r = await run(fakePlugin(), env("DEL", { CNI_IFNAME: name }), conf("1.0.0"));
    assertEquals(r.stdout, errorJson(4, msg, details), name);
  }
  for (const ok of ["0123456789abcde", "eth0.100", "a\ufeffb"]) {
    const r = await run(fakePlugin(), env("DEL", { CNI_IFNAME: ok }), conf("1.0.0"));
    assertEquals(r.code, 0, ok);
  }
});

Deno.test("runPlugin() reports a stdin read failure as code 5", async () => {
  const io: PluginIo = {
    env: env("ADD"),
    readStdin: () => Promise.reject(new Error("boom")),
    writeStdout: (text) => void (out += text),
    writeStderr: () => {},
  };
  let out = "";
  assertEquals(await runPlugin(fakePlugin(), io), 1);
  assertEquals(out, errorJson(5, "error reading from stdin: boom"));
});

Deno.test("runPlugin() checks the config before the command", async () => {
  let r = await run(fakePlugin(), env("ADD"), "");
  assertEquals(
    r.stdout,
    errorJson(6, "error unmarshall network config: unexpected end of JSON input"),
  );
  r = await run(fakePlugin(), env("ADD"), '{"type":"x"}');
  assertEquals(r.stdout, errorJson(7, "missing network name"));
  r = await run(fakePlugin(), env("FOO"), '{"name":"a b"}');
  assertEquals(r.stdout, errorJson(7, "invalid characters found in network name", "a b"));
  r = await run(fakePlugin(), env("FOO"), conf("1.0.0"));
  assertEquals(r.stdout, errorJson(4, "unknown CNI_COMMAND: FOO"));
  // An unknown command wins over a cniVersion that is not a string.
  r = await run(fakePlugin(), { CNI_COMMAND: "FOO" }, '{"name":"n","cniVersion":1}');
  assertEquals(r.stdout, errorJson(4, "unknown CNI_COMMAND: FOO"));
});

Deno.test("runPlugin() refuses a version the plugin does not list", async () => {
  const r = await run(fakePlugin(), env("ADD"), conf("1.2.0"));
  assertEquals(
    r.stdout,
    errorJson(
      1,
      "incompatible CNI versions",
      'config is "1.2.0", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]',
    ),
  );
  const firewall = fakePlugin({}, ["0.4.0", "1.0.0", "1.1.0"]);
  const old = await run(firewall, env("DEL"), conf());
  assertEquals(
    old.stdout,
    errorJson(
      1,
      "incompatible CNI versions",
      'config is "0.1.0", plugin supports ["0.4.0" "1.0.0" "1.1.0"]',
    ),
  );
  assertEquals(firewall.calls.length, 0);
  const bad = await run(fakePlugin(), env("ADD"), '{"name":"n","cniVersion":5}');
  assertEquals(
    bad.stdout,
    errorJson(
      6,
      "decoding version from network config: json: cannot unmarshal number into Go struct field .cniVersion of type string",
    ),
  );
});

Deno.test("runPlugin() gates CHECK on the config and plugin versions", async () => {
  const cases: [string, number, string][] = [
    ["0.3.1", 1, "config version does not allow CHECK"],
    [
      "x.1",
      6,
      'failed to convert major version part "x": strconv.Atoi: parsing "x": invalid syntax',
    ],
    ["1.0.0.0", 6, 'invalid version "1.0.0.0": too many parts'],
    ["1.2.0", 1, "plugin version does not allow CHECK"],
  ];
  for (const [version, code, msg] of cases) {
    const r = await run(fakePlugin(), env("CHECK"), conf(version));
    assertEquals(r.stdout, errorJson(code, msg), version);
  }
  const plugin = fakePlugin();
  const ok = await run(plugin, env("CHECK"), conf("0.4.0"));
  assertEquals([ok.code, ok.stdout, plugin.calls.length], [0, "", 1]);
  const none = await run(fakePlugin({ check: undefined }), env("CHECK"), conf("1.0.0"));
  assertEquals([none.code, none.stdout], [0, ""]);
});

Deno.test("runPlugin() gates GC and STATUS on 1.1.0 and runs missing handlers as no-ops", async () => {
  for (const verb of ["GC", "STATUS"]) {
    const old = await run(fakePlugin(), { CNI_COMMAND: verb, CNI_PATH: "/x" }, conf("1.0.0"));
    assertEquals(old.stdout, errorJson(1, `config version does not allow ${verb}`));
    const none = await run(fakePlugin(), { CNI_COMMAND: verb, CNI_PATH: "/x" }, conf("1.1.0"));
    assertEquals([none.code, none.stdout, none.stderr], [0, "", ""]);
  }
  const seen: CmdArgs[] = [];
  const plugin = fakePlugin({
    gc: (args) => (seen.push(args), Promise.resolve()),
    status: () => Promise.reject(new CniError(50, "no addresses left")),
  });
  const gc = await run(plugin, { CNI_COMMAND: "GC", CNI_PATH: "/x" }, conf("1.1.0"));
  assertEquals([gc.code, seen.length, seen[0].command], [0, 1, "GC"]);
  const status = await run(plugin, { CNI_COMMAND: "STATUS", CNI_PATH: "/x" }, conf("1.1.0"));
  assertEquals(status.stdout, errorJson(50, "no addresses left"));
});

Deno.test("runPlugin() prints the ADD result in the config's version", async () => {
  const fixtures = new URL("../../testdata/cni/results/", import.meta.url);
  for (const version of ["0.1.0", "0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
    const r = await run(fakePlugin(), env("ADD"), conf(version));
    assertEquals(r.code, 0);
    assertEquals(
      r.stdout,
      Deno.readTextFileSync(new URL(`host_local.as_${version}.out`, fixtures)),
      version,
    );
  }
  const r = await run(fakePlugin(), env("ADD"), conf());
  assertEquals(JSON.parse(r.stdout).cniVersion, "0.1.0");
});

Deno.test("runPlugin() hands the handler the CmdArgs", async () => {
  const plugin = fakePlugin();
  const stdin = conf("1.0.0", ',"ipam":{"type":"host-local"}');
  await run(plugin, env("ADD", { CNI_ARGS: "IgnoreUnknown=1;A=b" }), stdin);
  const args = plugin.calls[0];
  assertEquals(args.command, "ADD");
  assertEquals(args.containerId, "ctr-1");
  assertEquals(args.netns, ENV.CNI_NETNS);
  assertEquals(args.ifName, "eth0");
  assertEquals(args.args, "IgnoreUnknown=1;A=b");
  assertEquals(args.path, ["/opt/cni/bin", "/usr/lib/cni"]);
  assertEquals(args.netnsOverride, false);
  assertEquals(new TextDecoder().decode(args.stdinData), stdin);
  assertEquals(args.conf.cniVersion, "1.0.0");
  assertEquals(args.conf.ipam, { type: "host-local" });
  assertEquals(args.env.CNI_ARGS, "IgnoreUnknown=1;A=b");
});

Deno.test("runPlugin() reports handler errors as CNI error JSON", async () => {
  let r = await run(
    fakePlugin({ del: () => Promise.reject(new Error("link gone")) }),
    env("DEL"),
    conf("1.0.0"),
  );
  assertEquals([r.code, r.stdout, r.stderr], [1, errorJson(999, "link gone"), ""]);
  r = await run(
    fakePlugin({ del: () => Promise.reject(new CniError(11, "busy", "try later")) }),
    env("DEL"),
    conf("1.0.0"),
  );
  assertEquals(r.stdout, errorJson(11, "busy", "try later"));
  r = await run(
    fakePlugin({ del: () => Promise.reject("plain string") }),
    env("DEL"),
    conf("1.0.0"),
  );
  assertEquals(r.stdout, errorJson(999, "plain string"));
  // Go escapes <, > and & in the JSON it prints.
  r = await run(
    fakePlugin({ del: () => Promise.reject(new Error("got <nil> & more")) }),
    env("DEL"),
    conf("1.0.0"),
  );
  assertStringIncludes(r.stdout, '"msg": "got \\u003cnil\\u003e \\u0026 more"');
});

Deno.test("runPlugin() writes a stack to stderr only when CNIBOX_DEBUG is set", async () => {
  const failing = fakePlugin({ del: () => Promise.reject(new TypeError("oops")) });
  const quiet = await run(failing, env("DEL"), conf("1.0.0"));
  assertEquals(quiet.stderr, "");
  const loud = await run(failing, env("DEL", { CNIBOX_DEBUG: "1" }), conf("1.0.0"));
  assertStringIncludes(loud.stderr, "TypeError: oops");
  assertEquals(loud.stdout, errorJson(999, "oops"));
});

Deno.test("runPlugin() turns a failed conversion into code 999", async () => {
  const plugin = fakePlugin({ add: () => Promise.resolve({ cniVersion: "1.1.0" }) });
  const r = await run(plugin, env("ADD"), conf("0.2.0"));
  assertEquals(r.stdout, errorJson(999, "cannot convert: no valid IP addresses"));
});

Deno.test("runPlugin() refuses CNI_NETNS naming the plugin's own netns before ADD and after DEL", async () => {
  const own = "/proc/self/ns/net";
  const msg = "plugin's netns and netns from CNI_NETNS should not be the same";
  let added = 0;
  const counting = fakePlugin({ add: () => (added++, Promise.resolve({ cniVersion: "1.0.0" })) });
  const add = await run(counting, env("ADD", { CNI_NETNS: own }), conf("1.0.0"));
  assertEquals([add.code, add.stdout, added], [1, errorJson(8, msg), 0]);
  const del = await run(fakePlugin(), env("DEL", { CNI_NETNS: own }), conf("1.0.0"));
  assertEquals(del.stdout, errorJson(8, msg));
  for (const override of ["1", "true", "TRUE", "True"]) {
    const r = await run(
      fakePlugin(),
      env("ADD", { CNI_NETNS: own, CNI_NETNS_OVERRIDE: override }),
      conf("1.0.0"),
    );
    assertEquals(r.code, 0, override);
    assert(r.stdout.startsWith("{"));
  }
  const notOverride = await run(
    fakePlugin(),
    env("ADD", { CNI_NETNS: own, CNI_NETNS_OVERRIDE: "yes" }),
    conf("1.0.0"),
  );
  assertEquals(notOverride.code, 1);
  // DEL without CNI_NETNS, or a gone namespace, is fine.
  const noNetns = await run(fakePlugin(), env("DEL", { CNI_NETNS: "" }), conf("1.0.0"));
  assertEquals(noNetns.code, 0);
  // DEL runs first (it cleans up what it can), then the check fails it.
  let deleted = 0;
  const deleting = fakePlugin({ del: () => (deleted++, Promise.resolve()) });
  const delFirst = await run(deleting, env("DEL", { CNI_NETNS: own }), conf("1.0.0"));
  assertEquals([delFirst.stdout, deleted], [errorJson(8, msg), 1]);
});

Deno.test("denoIo() refuses stdin beyond its limit with code 5", async () => {
  const script = `
    import { denoIo, runPlugin } from ${JSON.stringify(new URL("./skel.ts", import.meta.url).href)};
    const plugin = { name: "t", supportedVersions: ["1.0.0"], funcs: {
      add: () => Promise.resolve({ cniVersion: "1.0.0" }), del: () => Promise.resolve() } };
    Deno.exit(await runPlugin(plugin, denoIo({ maxStdinBytes: 64 })));`;
  const dir = Deno.makeTempDirSync({ prefix: "cbxc-skel-" });
  try {
    const file = `${dir}/main.ts`;
    Deno.writeTextFileSync(file, script);
    const exec = async (stdin: string) => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--no-config", file],
        env: { ...env("DEL"), CNI_NETNS: "" },
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(stdin)).catch(() => {});
      await writer.close().catch(() => {});
      const out = await child.output();
      return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
    };
    const small = await exec(conf("1.0.0"));
    assertEquals(small, { code: 0, stdout: "" });
    const big = await exec(conf("1.0.0", `,"pad":"${"x".repeat(100)}"`));
    assertEquals(big, {
      code: 1,
      stdout: errorJson(5, "error reading from stdin: stdin is larger than 64 bytes"),
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// The Debian reference binary (libcni 1.0.x) agrees with HEAD on these cases.
const HOST_LOCAL = "/usr/lib/cni/host-local";
const haveHostLocal = (() => {
  try {
    return Deno.statSync(HOST_LOCAL).isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "runPlugin() prints what the reference host-local prints for protocol errors",
  ignore: !haveHostLocal,
  async fn() {
    const dataDir = Deno.makeTempDirSync({ prefix: "cbxc-hl-" });
    const hl = (extra = "") =>
      `{"cniVersion":"1.0.0","name":"n","type":"host-local","ipam":{"type":"host-local","subnet":"10.9.0.0/24","dataDir":"${dataDir}"}${extra}}`;
    // Debian lists versions up to 1.0.0; give the fake the same list.
    const debianVersions = SUPPORTED_VERSIONS.slice(0, 6);
    const plugin = fakePlugin({
      del: (args) => {
        parseCniArgs(args.args, { IP: argIp });
        return Promise.resolve();
      },
    }, debianVersions);
    const cases: [Record<string, string>, string][] = [
      [{ CNI_COMMAND: "ADD" }, hl()],
      [{ CNI_COMMAND: "DEL", CNI_CONTAINERID: "a b", CNI_IFNAME: "eth0", CNI_PATH: "/x" }, hl()],
      [{ ...env("DEL"), CNI_IFNAME: "0123456789abcdef" }, hl()],
      [{ ...env("DEL"), CNI_IFNAME: "a:b" }, hl()],
      [env("DEL"), ""],
      [env("DEL"), "x"],
      [env("DEL"), "tru"],
      [env("DEL"), "[]"],
      [env("DEL"), '{"name":5}'],
      [env("DEL"), "null"],
      [env("DEL"), '{"name":"a b"}'],
      [env("DEL"), '{"name":"n"} x'],
      [env("DEL"), '{"name":"n",}'],
      [env("DEL"), '{"a":[1,]}'],
      [env("DEL"), '{"a":"\\u12g4"}'],
      [env("DEL"), "\ufeff{}"],
      [env("DEL"), '{"name":"n","cniVersion":5}'],
      [env("DEL"), '{"name":"n","cniVersion":"abc"}'],
      [env("CHECK"), '{"name":"n","cniVersion":"0.3.1"}'],
      [env("CHECK"), '{"name":"n","cniVersion":"x.1"}'],
      [env("CHECK"), '{"name":"n","cniVersion":"1.0.0.0"}'],
      [env("CHECK"), '{"name":"n","cniVersion":"1.2.0"}'],
      [env("DEL", { CNI_ARGS: "IgnoreUnknown=YES" }), hl()],
      [env("DEL", { CNI_ARGS: "IP=foo" }), hl()],
      [env("DEL", { CNI_ARGS: "K8S=1;" }), hl()],
      [env("DEL", { CNI_ARGS: "FOO=a=b" }), hl()],
      [env("DEL", { CNI_ARGS: "ip=1.2.3.4;X=1" }), hl()],
      [env("DEL", { CNI_ARGS: "IgnoreUnknown=1;K=2" }), hl()],
    ];
    try {
      for (const [caseEnv, stdin] of cases) {
        const child = new Deno.Command(HOST_LOCAL, {
          env: caseEnv,
          clearEnv: true,
          stdin: "piped",
          stdout: "piped",
          stderr: "null",
        }).spawn();
        const writer = child.stdin.getWriter();
        await writer.write(new TextEncoder().encode(stdin));
        await writer.close();
        const ref = await child.output();
        const ours = await run(plugin, caseEnv, stdin);
        const label = `${JSON.stringify(caseEnv)} ${stdin}`;
        assertEquals(ours.stdout, new TextDecoder().decode(ref.stdout), label);
        assertEquals(ours.code, ref.code, label);
      }
    } finally {
      Deno.removeSync(dataDir, { recursive: true });
    }
  },
});

Deno.test("runPlugin() reaps children left to settle, in the outermost run only", async () => {
  const { settleLater, spawnChild } = await import("../sys/spawn.ts");
  const reaped = (pid: number) => {
    try {
      Deno.statSync(`/proc/${pid}`); // unreaped children (zombies too) stay listed
      return false;
    } catch {
      return true;
    }
  };
  let pid = 0;
  let reapedAfterInner: boolean | undefined;
  const inner = fakePlugin();
  const outer = fakePlugin({
    add: async () => {
      const child = spawnChild("/bin/true", []);
      pid = child.pid;
      settleLater(child);
      // An in-process IPAM run: it must leave the caller's child alone.
      await run(inner, env("ADD"), conf("1.1.0"));
      reapedAfterInner = reaped(pid);
      return RESULT;
    },
  });
  const r = await run(outer, env("ADD"), conf("1.1.0"));
  assertEquals(r.code, 0, r.stdout);
  assertEquals(reapedAfterInner, false);
  assertEquals(reaped(pid), true);
});

import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { HAVE_REFERENCE, runApplet, SHARED_VERSIONS } from "../lib/testing/harness.ts";
import { createNetns, ROOT, type TestNetns } from "../lib/testing/netns.ts";

const kernel = { ignore: !ROOT };
const sideBySide = { ignore: !ROOT || !HAVE_REFERENCE };

function conf(version: string | undefined, extra: Record<string, unknown> = {}): string {
  const base: Record<string, unknown> = { name: "lonet", type: "loopback", ...extra };
  if (version !== undefined) base.cniVersion = version;
  return JSON.stringify(base);
}

function env(command: string, netns: string) {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: "ctr-1",
    CNI_NETNS: netns,
    CNI_IFNAME: "eth0",
    CNI_PATH: "/usr/lib/cni",
  };
}

async function loUp(ns: TestNetns): Promise<boolean> {
  const [lo] = JSON.parse((await ns.exec("ip", ["-j", "link", "show", "lo"])).stdout);
  return (lo.flags as string[]).includes("UP");
}

/**
 * The result as a runtime reads it, with the namespace path made neutral:
 * key order and 1.1.1's always-present empty `dns` carry no meaning.
 */
function semantic(stdout: string, ns: TestNetns): unknown {
  const { dns, ...rest } = JSON.parse(stdout.replaceAll(ns.path, "<netns>"));
  return dns && Object.keys(dns).length > 0 ? { ...rest, dns } : rest;
}

for (const version of [...SHARED_VERSIONS, undefined]) {
  Deno.test({
    name: `[${version ?? "no cniVersion"}] loopback ADD matches the reference and sets lo up`,
    ...sideBySide,
    async fn() {
      await using ours = await createNetns("cbx-lo");
      await using theirs = await createNetns("cbx-lo");
      await ours.exec("ip", ["link", "set", "lo", "down"]);
      await theirs.exec("ip", ["link", "set", "lo", "down"]);
      const a = await runApplet("loopback", { env: env("ADD", ours.path), stdin: conf(version) });
      const b = await runApplet("loopback", {
        env: env("ADD", theirs.path),
        stdin: conf(version),
        reference: true,
      });
      assertEquals(a.code, 0, a.stdout + a.stderr);
      assertEquals(b.code, 0, b.stdout + b.stderr);
      assertEquals(semantic(a.stdout, ours), semantic(b.stdout, theirs));
      assert(await loUp(ours), "our ADD left lo down");
    },
  });
}

Deno.test({
  name: "[1.0.0] loopback result is printed as upstream HEAD does: sorted keys, no empty dns",
  ...kernel,
  async fn() {
    await using ns = await createNetns("cbx-lo");
    const out = await runApplet("loopback", { env: env("ADD", ns.path), stdin: conf("1.0.0") });
    assertEquals(out.code, 0, out.stderr);
    const expected = `{
    "cniVersion": "1.0.0",
    "interfaces": [
        {
            "mac": "00:00:00:00:00:00",
            "name": "lo",
            "sandbox": "${ns.path}"
        }
    ],
    "ips": [
        {
            "address": "127.0.0.1/8",
            "interface": 0
        },
        {
            "address": "::1/128",
            "interface": 0
        }
    ]
}`;
    assertEquals(out.stdout, expected);
  },
});

Deno.test({
  name: "[1.1.0] loopback ADD, CHECK, DEL and CHECK after DEL",
  ...kernel,
  async fn() {
    await using ns = await createNetns("cbx-lo");
    await ns.exec("ip", ["link", "set", "lo", "down"]);
    const add = await runApplet("loopback", { env: env("ADD", ns.path), stdin: conf("1.1.0") });
    assertEquals(add.code, 0, add.stdout);
    assertEquals(JSON.parse(add.stdout).cniVersion, "1.1.0");
    const check = await runApplet("loopback", { env: env("CHECK", ns.path), stdin: conf("1.1.0") });
    assertEquals([check.code, check.stdout], [0, ""]);
    const del = await runApplet("loopback", { env: env("DEL", ns.path), stdin: conf("1.1.0") });
    assertEquals([del.code, del.stdout], [0, ""]);
    assert(!(await loUp(ns)), "DEL left lo up");
    const after = await runApplet("loopback", { env: env("CHECK", ns.path), stdin: conf("1.1.0") });
    assertEquals(after.code, 1);
    assertEquals(JSON.parse(after.stdout), { code: 999, msg: "loopback interface is down" });
  },
});

Deno.test({
  name: "loopback ADD passes prevResult through, converted to the config version",
  ...kernel,
  async fn() {
    await using ns = await createNetns("cbx-lo");
    const prevResult = {
      cniVersion: "0.4.0",
      interfaces: [{ name: "eth0", sandbox: ns.path }],
      ips: [{ version: "4", interface: 0, address: "10.9.0.2/24", gateway: "10.9.0.1" }],
    };
    const out = await runApplet("loopback", {
      env: env("ADD", ns.path),
      stdin: conf("0.4.0", { prevResult }),
    });
    assertEquals(out.code, 0, out.stdout);
    assertEquals(JSON.parse(out.stdout), { ...prevResult, dns: {} });
  },
});

Deno.test({
  name: "loopback DEL succeeds when the namespace is gone or not given",
  ...kernel,
  async fn() {
    for (const netns of ["/var/run/netns/cbx-lo-never-existed", ""]) {
      const out = await runApplet("loopback", { env: env("DEL", netns), stdin: conf("1.0.0") });
      assertEquals([out.code, out.stdout], [0, ""], `CNI_NETNS=${netns}`);
    }
  },
});

Deno.test({
  name: "loopback ADD rejects a non-loopback address on lo",
  ...kernel,
  async fn() {
    await using ns = await createNetns("cbx-lo");
    await ns.exec("ip", ["addr", "add", "10.123.0.1/32", "dev", "lo"]);
    const out = await runApplet("loopback", { env: env("ADD", ns.path), stdin: conf("1.0.0") });
    assertEquals(out.code, 1);
    assertEquals(JSON.parse(out.stdout), {
      code: 999,
      msg: 'loopback interface found with non-loopback address "10.123.0.1"',
    });
  },
});

Deno.test({
  name: "loopback bad input: same error JSON as the reference, nothing changed",
  ...sideBySide,
  async fn() {
    await using ns = await createNetns("cbx-lo");
    await ns.exec("ip", ["link", "set", "lo", "down"]);
    const cases: { what: string; env: Record<string, string>; stdin: string }[] = [
      { what: "malformed JSON", env: env("ADD", ns.path), stdin: "{not json" },
      { what: "missing name", env: env("ADD", ns.path), stdin: '{"cniVersion":"1.0.0"}' },
      { what: "bad name", env: env("ADD", ns.path), stdin: conf("1.0.0", { name: "a b" }) },
      { what: "unknown version", env: env("ADD", ns.path), stdin: conf("9.9.9") },
      {
        what: "bad container id",
        env: { ...env("ADD", ns.path), CNI_CONTAINERID: "../x" },
        stdin: conf("1.0.0"),
      },
      { what: "missing env", env: { CNI_COMMAND: "ADD" }, stdin: conf("1.0.0") },
      { what: "unknown command", env: env("FOO", ns.path), stdin: conf("1.0.0") },
      { what: "CHECK on 0.3.1", env: env("CHECK", ns.path), stdin: conf("0.3.1") },
      {
        what: "netns path is a regular file",
        env: env("ADD", "/etc/hostname"),
        stdin: conf("1.0.0"),
      },
      {
        what: "nonexistent netns",
        env: env("ADD", "/var/run/netns/cbx-lo-never-existed"),
        stdin: conf("1.0.0"),
      },
      {
        what: "prevResult not an object",
        env: env("ADD", ns.path),
        stdin: conf("1.0.0", { prevResult: "x" }),
      },
      {
        what: "prevResult of another version family",
        env: env("ADD", ns.path),
        stdin: conf("1.0.0", { prevResult: { cniVersion: "0.4.0", ips: [] } }),
      },
    ];
    for (const c of cases) {
      const a = await runApplet("loopback", { env: c.env, stdin: c.stdin });
      const b = await runApplet("loopback", { env: c.env, stdin: c.stdin, reference: true });
      assertEquals(a.code, 1, `${c.what}: ${a.stdout}`);
      const mine = JSON.parse(a.stdout);
      const reference = JSON.parse(b.stdout);
      // 1.1.1 supports up to 1.0.0 and says so in the details; codes and messages are the same.
      if (c.what === "unknown version") {
        assertEquals([mine.code, mine.msg], [reference.code, reference.msg]);
        assertStringIncludes(mine.details, `"1.1.0"`);
      } else if (c.what === "prevResult of another version family") {
        // The supported versions listed differ (1.1.1: [1.0.0], HEAD: [1.0.0 1.1.0]).
        const hideList = (msg: string) => msg.replace(/\[[0-9. ]+\]/, "[...]");
        assertEquals([mine.code, hideList(mine.msg)], [reference.code, hideList(reference.msg)]);
      } else {
        assertEquals(mine, reference, c.what);
      }
      assert(!a.stdout.includes("    at "), `${c.what}: a stack trace reached stdout`);
    }
    assert(!(await loUp(ns)), "a failed run changed lo");
  },
});

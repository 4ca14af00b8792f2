import { assertEquals, assertStringIncludes } from "@std/assert";
import { runPlugin } from "../lib/cni/skel.ts";
import { sh } from "../lib/testing/netns.ts";
import { plugin } from "./host_local.ts";

const REF = "/usr/lib/cni/host-local";
const HAVE_REF = (() => {
  try {
    return Deno.statSync(REF).isFile;
  } catch {
    return false;
  }
})();
const MAIN = new URL("../testdata/ipam/host_local_main.ts", import.meta.url).pathname;
const RESOLV = new URL("../testdata/ipam/resolv.conf", import.meta.url).pathname;
/** A path that is not our netns (HEAD's skel refuses CNI_NETNS == own netns after ADD/DEL). */
const NETNS = "/var/run/netns/cbx-hl-absent";

interface Call {
  id?: string;
  ifname?: string;
  args?: string;
}

interface Outcome {
  code: number;
  out: string;
}

function env(cmd: string, call: Call): Record<string, string> {
  return {
    CNI_COMMAND: cmd,
    CNI_CONTAINERID: call.id ?? "c1",
    CNI_NETNS: NETNS,
    CNI_IFNAME: call.ifname ?? "eth0",
    CNI_PATH: "/usr/lib/cni",
    CNI_ARGS: call.args ?? "",
  };
}

/** Runs our plugin in-process through the skeleton. */
async function ours(cmd: string, conf: unknown, call: Call = {}): Promise<Outcome> {
  let out = "";
  const stdin = new TextEncoder().encode(JSON.stringify(conf));
  const code = await runPlugin(plugin, {
    env: env(cmd, call),
    readStdin: () => Promise.resolve(stdin),
    writeStdout: (text) => (out += text),
    writeStderr: () => {},
  });
  return { code, out };
}

/** Runs the reference binary. */
async function ref(cmd: string, conf: unknown, call: Call = {}): Promise<Outcome> {
  const r = await sh(REF, [], { stdin: JSON.stringify(conf), env: env(cmd, call), clearEnv: true });
  return { code: r.code, out: r.stdout };
}

/** Result or error JSON modulo key order and HEAD's omission of an empty `dns`. */
function normalize(out: string): unknown {
  if (out === "") return "";
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      return Object.fromEntries(
        Object.keys(o).sort().filter((k) =>
          !(k === "dns" && Object.keys(o[k] as object).length === 0)
        )
          .map((k) => [k, sort(o[k])]),
      );
    }
    return v;
  };
  return sort(JSON.parse(out));
}

interface DirEntry {
  name: string;
  content: string;
  mode: string;
}

function snapshot(dir: string): DirEntry[] {
  try {
    return [...Deno.readDirSync(dir)].filter((e) => e.isFile).map((e) => ({
      name: e.name,
      content: Deno.readTextFileSync(`${dir}/${e.name}`),
      mode: (Deno.statSync(`${dir}/${e.name}`).mode! & 0o777).toString(8),
    })).sort((a, b) => (a.name < b.name ? -1 : 1));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/** Same names and contents; modes differ only as HEAD (0600) vs Debian 1.1.1 (0644). */
function assertSameFiles(oursDir: string, refDir: string, step: string): void {
  const a = snapshot(oursDir);
  const b = snapshot(refDir);
  assertEquals(a.map((e) => [e.name, e.content]), b.map((e) => [e.name, e.content]), step);
  for (const [i, e] of a.entries()) {
    const want = e.name === "lock" ? "750" : "600";
    assertEquals([e.name, e.mode], [e.name, want], `${step}: our mode`);
    assertEquals(
      [b[i].name, b[i].mode],
      [e.name, e.name === "lock" ? "750" : "644"],
      `${step}: reference mode`,
    );
  }
}

async function withDirs(fn: (oursData: string, refData: string) => Promise<void>): Promise<void> {
  const root = Deno.makeTempDirSync({ prefix: "cbx-hl-plugin-" });
  try {
    await fn(`${root}/ours`, `${root}/ref`);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
}

function netConf(version: string, dataDir: string, ipam: Record<string, unknown>, extra = {}) {
  return {
    cniVersion: version,
    name: "hlnet",
    type: "host-local",
    ipam: { type: "host-local", dataDir, ...ipam },
    ...extra,
  };
}

// ------------------------------------------------------------------ in-process

Deno.test("host-local plugin ADD/CHECK/DEL round trip through the skeleton", () =>
  withDirs(async (dataDir) => {
    const conf = netConf("1.1.0", dataDir, {
      subnet: "10.44.0.0/24",
      routes: [{ dst: "0.0.0.0/0" }],
    });
    const add = await ours("ADD", conf);
    assertEquals(add.code, 0, add.out);
    assertEquals(JSON.parse(add.out), {
      cniVersion: "1.1.0",
      ips: [{ address: "10.44.0.2/24", gateway: "10.44.0.1" }],
      routes: [{ dst: "0.0.0.0/0" }],
    });
    assertEquals(await ours("CHECK", conf), { code: 0, out: "" });
    assertEquals(await ours("DEL", conf), { code: 0, out: "" });
    assertEquals(await ours("DEL", conf), { code: 0, out: "" }, "second DEL must succeed");
    const check = await ours("CHECK", conf);
    assertEquals(check.code, 1);
    assertEquals(
      JSON.parse(check.out).msg,
      "host-local: Failed to find address added by container c1",
    );
  }));

Deno.test("host-local plugin prints 0.2.0 results with ip4/ip6 and dns", () =>
  withDirs(async (dataDir) => {
    const conf = netConf("0.2.0", dataDir, {
      ranges: [[{ subnet: "10.45.0.0/24" }], [{ subnet: "fd45::/64" }]],
      resolvConf: RESOLV,
    });
    const add = await ours("ADD", conf);
    assertEquals(add.code, 0, add.out);
    const result = JSON.parse(add.out);
    assertEquals(result.ip4, { ip: "10.45.0.2/24", gateway: "10.45.0.1" });
    assertEquals(result.ip6, { ip: "fd45::2/64", gateway: "fd45::1" });
    assertEquals(result.dns.domain, "example.com");
  }));

Deno.test("host-local plugin GC releases leases of attachments the runtime no longer has", () =>
  withDirs(async (dataDir) => {
    const conf = netConf("1.1.0", dataDir, { subnet: "10.46.0.0/24" });
    for (const id of ["a", "b", "c"]) assertEquals((await ours("ADD", conf, { id })).code, 0);
    const gc = await ours("GC", {
      ...conf,
      "cni.dev/valid-attachments": [{ containerID: "b", ifname: "eth0" }],
    });
    assertEquals(gc, { code: 0, out: "" });
    assertEquals(snapshot(`${dataDir}/hlnet`).map((e) => e.name), [
      "10.46.0.3",
      "last_reserved_ip.0",
      "lock",
    ]);
    // Without the key GC does nothing rather than wiping the network.
    assertEquals((await ours("GC", conf)).code, 0);
    assertEquals(snapshot(`${dataDir}/hlnet`).length, 3);
    // GC needs a 1.1.0 config.
    const old = await ours("GC", { ...conf, cniVersion: "1.0.0" });
    assertEquals(JSON.parse(old.out), { code: 1, msg: "config version does not allow GC" });
  }));

Deno.test("host-local plugin STATUS succeeds with a full range set: a failure would block Nomad's teardowns", () =>
  withDirs(async (dataDir) => {
    const conf = netConf("1.1.0", dataDir, {
      ranges: [[{ subnet: "10.47.0.0/24" }], [{ subnet: "10.48.0.0/30" }]],
    });
    assertEquals(await ours("STATUS", conf), { code: 0, out: "" });
    assertEquals(snapshot(dataDir), [], "STATUS created state");
    assertEquals((await ours("ADD", conf)).code, 0);
    const add = await ours("ADD", conf, { id: "c2" });
    assertStringIncludes(
      JSON.parse(add.out).msg,
      "failed to allocate for range 1: no IP addresses available",
    );
    // Full: ADD fails, STATUS still succeeds (upstream has no STATUS handler either).
    assertEquals(await ours("STATUS", conf), { code: 0, out: "" });
    // A 1.0.0 config does not allow STATUS at all.
    const old = await ours("STATUS", { ...conf, cniVersion: "1.0.0" });
    assertEquals(JSON.parse(old.out), { code: 1, msg: "config version does not allow STATUS" });
  }));

// ------------------------------------------------------------ side by side

interface Step {
  cmd: string;
  call?: Call;
  conf?: (dataDir: string) => unknown;
}

async function sideBySide(
  label: string,
  version: string,
  ipam: Record<string, unknown>,
  steps: Step[],
) {
  await withDirs(async (oursData, refData) => {
    for (const [i, step] of steps.entries()) {
      if (step.cmd === "CHECK" && version < "0.4.0") continue;
      const confFor = (dataDir: string) => step.conf?.(dataDir) ?? netConf(version, dataDir, ipam);
      const a = await ours(step.cmd, confFor(oursData), step.call);
      const b = await ref(step.cmd, confFor(refData), step.call);
      const where = `${label} [${version}] step ${i} ${step.cmd} ${
        JSON.stringify(step.call ?? {})
      }`;
      assertEquals(a.code, b.code, `${where}: exit code; ours ${a.out} ref ${b.out}`);
      assertEquals(normalize(a.out), normalize(b.out), where);
      assertSameFiles(`${oursData}/hlnet`, `${refData}/hlnet`, where);
    }
  });
}

const SCENARIOS: {
  label: string;
  ipam: (dataDir: string) => Record<string, unknown>;
  steps: Step[];
}[] = [
  {
    label: "single IPv4 subnet with routes and resolvConf",
    ipam: () => ({
      subnet: "10.50.0.0/29",
      routes: [{ dst: "0.0.0.0/0" }, { dst: "10.60.1.2/16", gw: "10.50.0.1" }],
      resolvConf: RESOLV,
    }),
    steps: [
      { cmd: "ADD" },
      { cmd: "ADD", call: { id: "c2" } },
      { cmd: "ADD", call: { id: "c1", ifname: "eth1" } },
      { cmd: "ADD" }, // duplicate
      { cmd: "CHECK", call: { id: "c2" } },
      { cmd: "DEL" },
      { cmd: "CHECK" },
      { cmd: "ADD", call: { id: "c3" } }, // round robin: .5, not the freed .2
      { cmd: "ADD", call: { id: "c4" } },
      { cmd: "ADD", call: { id: "c5" } }, // wraps to .2
      { cmd: "ADD", call: { id: "c6" } }, // exhausted
      { cmd: "DEL", call: { id: "nobody" } },
    ],
  },
  {
    label: "dual stack with start/end/gateway",
    ipam: () => ({
      ranges: [
        [{
          subnet: "10.51.0.0/24",
          rangeStart: "10.51.0.100",
          rangeEnd: "10.51.0.101",
          gateway: "10.51.0.100",
        }],
        [{ subnet: "fd51::/120", rangeStart: "fd51::fe" }],
      ],
    }),
    steps: [
      { cmd: "ADD" },
      { cmd: "ADD", call: { id: "c2" } }, // v4 exhausted, v6 of c2 must be rolled back
      { cmd: "DEL" },
      { cmd: "ADD", call: { id: "c2" } },
      { cmd: "CHECK", call: { id: "c2" } },
    ],
  },
  {
    label: "two ranges in one set, legacy range first",
    ipam: () => ({
      subnet: "10.52.9.0/24",
      rangeStart: "10.52.9.7",
      rangeEnd: "10.52.9.7",
      ranges: [[{ subnet: "10.52.0.0/30" }, { subnet: "10.52.1.0/30" }]],
    }),
    steps: [
      { cmd: "ADD" },
      { cmd: "ADD", call: { id: "c2" } },
      { cmd: "ADD", call: { id: "c3" } },
      { cmd: "DEL", call: { id: "c1" } },
      { cmd: "DEL", call: { id: "c2" } },
      { cmd: "ADD", call: { id: "c4" } },
    ],
  },
  {
    label: "requested IPs from CNI_ARGS, args and runtimeConfig",
    ipam: () => ({ ranges: [[{ subnet: "10.53.0.0/24" }], [{ subnet: "fd53::/64" }]] }),
    steps: [
      { cmd: "ADD", call: { args: "IP=10.53.0.50" } },
      { cmd: "ADD", call: { id: "c2", args: "IgnoreUnknown=1;K8S_POD_NAME=p;IP=fd53::77/64" } },
      { cmd: "ADD", call: { id: "c3", args: "IP=10.53.0.50" } }, // taken
      { cmd: "ADD", call: { id: "c4", args: "IP=10.53.0.1" } }, // gateway
      { cmd: "ADD", call: { id: "c5", args: "IP=10.99.0.1" } }, // outside every range
      { cmd: "ADD", call: { id: "c6", args: "K8S_POD_NAME=p" } }, // unknown args
      { cmd: "ADD", call: { id: "c7", args: "IP=nope" } },
      {
        cmd: "ADD",
        call: { id: "c8" },
        conf: (d) =>
          netConf(
            "1.0.0",
            d,
            { ranges: [[{ subnet: "10.53.0.0/24" }], [{ subnet: "fd53::/64" }]] },
            {
              args: { cni: { ips: ["10.53.0.60"] } },
              runtimeConfig: { ips: ["fd53::60/64"] },
            },
          ),
      },
      {
        cmd: "ADD",
        call: { id: "c9" },
        conf: (d) =>
          netConf("1.0.0", d, { ranges: [[{ subnet: "10.53.0.0/24" }]] }, {
            runtimeConfig: { ipRanges: [[{ subnet: "10.54.0.0/24" }]] },
          }),
      },
      { cmd: "DEL", call: { id: "c8" } },
    ],
  },
];

for (const version of ["0.3.1", "0.4.0", "1.0.0"]) {
  for (const scenario of SCENARIOS) {
    Deno.test({
      name: `[${version}] host-local matches the reference: ${scenario.label}`,
      ignore: !HAVE_REF,
      fn: async () => {
        await sideBySide(scenario.label, version, scenario.ipam(""), scenario.steps);
      },
    });
  }
}

const BAD_CONFIGS: [string, Record<string, unknown>, Call?][] = [
  ["host bits in subnet", { subnet: "10.9.8.5/24" }],
  ["subnet too small", { subnet: "10.9.8.0/31" }],
  ["overlapping ranges in a set", {
    ranges: [[{ subnet: "10.0.0.0/24" }, { subnet: "10.0.0.0/25" }]],
  }],
  ["overlapping range sets", {
    ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "10.0.0.128/25" }]],
  }],
  ["mixed families", { ranges: [[{ subnet: "10.0.0.0/24" }, { subnet: "fd00::/64" }]] }],
  ["rangeStart after rangeEnd", {
    subnet: "10.9.8.0/24",
    rangeStart: "10.9.8.50",
    rangeEnd: "10.9.8.40",
  }],
  ["rangeEnd outside", { subnet: "10.9.8.0/24", rangeEnd: "10.9.9.1" }],
  ["gateway outside (accepted)", { subnet: "10.9.8.0/24", gateway: "10.1.1.1" }],
  ["invalid CIDR", { subnet: "10.9.8.0/33" }],
  ["invalid IP", { subnet: "10.9.8.0/24", rangeStart: "foo" }],
  ["kind error", { ranges: [[{ subnet: 5 }]] }],
  ["no ranges", {}],
  ["empty range set", { ranges: [[]] }],
  ["missing resolv.conf", { subnet: "10.9.8.0/24", resolvConf: "/nonexistent/resolv.conf" }],
  ["bad CNI_ARGS pair", { subnet: "10.9.8.0/24" }, { args: "IP" }],
];

for (const [label, ipam, call] of BAD_CONFIGS) {
  Deno.test({
    name: `host-local fails like the reference on bad input: ${label}`,
    ignore: !HAVE_REF,
    fn: () =>
      withDirs(async (oursData, refData) => {
        for (const cmd of ["ADD", "DEL"]) {
          const a = await ours(cmd, netConf("1.0.0", oursData, ipam), call);
          const b = await ref(cmd, netConf("1.0.0", refData, ipam), call);
          assertEquals([a.code, normalize(a.out)], [b.code, normalize(b.out)], `${label} ${cmd}`);
        }
      }),
  });
}

Deno.test({
  name: "host-local fails like the reference when the ipam key is missing",
  ignore: !HAVE_REF,
  fn: async () => {
    const conf = { cniVersion: "1.0.0", name: "hlnet", type: "host-local" };
    const a = await ours("ADD", conf);
    const b = await ref("ADD", conf);
    assertEquals([a.code, normalize(a.out)], [b.code, normalize(b.out)]);
  },
});

// ------------------------------------------------------------- interleaving

Deno.test({
  name: "host-local and the reference take over each other's leases",
  ignore: !HAVE_REF,
  fn: () =>
    withDirs(async (dataDir) => {
      const conf = netConf("1.0.0", dataDir, {
        ranges: [[{ subnet: "10.55.0.0/24" }], [{ subnet: "fd55::/64" }]],
      });
      const leaseDir = `${dataDir}/hlnet`;
      const leases = () =>
        snapshot(leaseDir).map((e) => e.name).filter((n) => n !== "lock" && !n.startsWith("last_"));

      // Reference ADD, our CHECK/duplicate detection/DEL.
      assertEquals((await ref("ADD", conf)).code, 0);
      assertEquals((await ours("CHECK", conf)).code, 0);
      const dup = await ours("ADD", conf);
      assertStringIncludes(
        JSON.parse(dup.out).msg,
        "10.55.0.2 has been allocated to c1, duplicate allocation is not allowed",
      );
      assertEquals((await ours("DEL", conf)).code, 0);
      assertEquals(leases(), []);

      // Our ADD, reference CHECK/duplicate detection/DEL.
      const add = await ours("ADD", conf, { id: "c2" });
      assertEquals(JSON.parse(add.out).ips.map((ip: { address: string }) => ip.address), [
        "10.55.0.3/24",
        "fd55::3/64",
      ]);
      assertEquals((await ref("CHECK", conf, { id: "c2" })).code, 0);
      assertStringIncludes(
        (await ref("ADD", conf, { id: "c2" })).out,
        "duplicate allocation is not allowed",
      );
      assertEquals((await ref("DEL", conf, { id: "c2" })).code, 0);
      assertEquals(leases(), []);
      // Our index notices the reference's DEL.
      assertEquals((await ours("CHECK", conf, { id: "c2" })).code, 1);

      // Mixed: ours and the reference allocate alternately, then swap for DEL.
      for (let i = 0; i < 6; i++) {
        const run = i % 2 === 0 ? ours : ref;
        assertEquals((await run("ADD", conf, { id: `m${i}` })).code, 0);
      }
      assertEquals(leases().length, 12);
      for (let i = 0; i < 6; i++) {
        const run = i % 2 === 0 ? ref : ours;
        assertEquals((await run("DEL", conf, { id: `m${i}` })).code, 0);
      }
      assertEquals(leases(), []);
      assertEquals(snapshot(leaseDir).map((e) => e.name), [
        "last_reserved_ip.0",
        "last_reserved_ip.1",
        "lock",
      ]);
    }),
});

// -------------------------------------------------------------- processes

async function spawnAdd(exe: string[], conf: unknown, id: string, cmd = "ADD"): Promise<Outcome> {
  const r = await sh(exe[0], exe.slice(1), {
    stdin: JSON.stringify(conf),
    env: {
      ...env(cmd, { id }),
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/root",
    },
    clearEnv: true,
  });
  return { code: r.code, out: r.stdout };
}

const OURS_EXE = [Deno.execPath(), "run", "-A", "--quiet", MAIN];

Deno.test("host-local gives 64 parallel ADD processes 64 distinct addresses", () =>
  withDirs(async (dataDir) => {
    const conf = netConf("1.0.0", dataDir, { subnet: "10.56.0.0/24" });
    const jobs = Array.from({ length: 64 }, (_, i) => {
      // Half of them are the reference binary, when it is installed: both take the same flock.
      const exe = HAVE_REF && i % 2 === 1 ? [REF] : OURS_EXE;
      return spawnAdd(exe, conf, `p${i}`);
    });
    const results = await Promise.all(jobs);
    for (const r of results) assertEquals(r.code, 0, r.out);
    const addrs = results.map((r) => JSON.parse(r.out).ips[0].address);
    assertEquals(new Set(addrs).size, 64, "an address was handed out twice");
    const files = snapshot(`${dataDir}/hlnet`).filter((e) => e.name.startsWith("10."));
    assertEquals(files.length, 64, "lost lease files");
    assertEquals(new Set(files.map((f) => f.content)).size, 64);
    const dels = await Promise.all(
      Array.from({ length: 64 }, (_, i) => spawnAdd(OURS_EXE, conf, `p${i}`, "DEL")),
    );
    for (const r of dels) assertEquals(r.code, 0, r.out);
    assertEquals(snapshot(`${dataDir}/hlnet`).filter((e) => e.name.startsWith("10.")), []);
  }));

Deno.test({
  name: "host-local process ADD/DEL at 4000 leases vs the reference (report)",
  ignore: !HAVE_REF,
  fn: () =>
    withDirs(async (oursData, refData) => {
      const rows: string[] = [];
      for (
        const [name, dataDir, exe] of [["ours", oursData, OURS_EXE], ["reference", refData, [
          REF,
        ]]] as const
      ) {
        const dir = `${dataDir}/hlnet`;
        Deno.mkdirSync(dir, { recursive: true });
        for (let i = 0; i < 4000; i++) {
          Deno.writeTextFileSync(`${dir}/10.57.${i >> 8}.${i & 255}`, `f${i}\r\neth0`);
        }
        const conf = netConf("1.0.0", dataDir, { subnet: "10.57.0.0/16" });
        // First run after the bulk write: ours rebuilds its index once here.
        assertEquals((await spawnAdd([...exe], conf, "warm")).code, 0);
        const add: number[] = [];
        const del: number[] = [];
        for (let i = 0; i < 5; i++) {
          let t = performance.now();
          assertEquals((await spawnAdd([...exe], conf, `b${i}`)).code, 0);
          add.push(performance.now() - t);
          t = performance.now();
          assertEquals((await spawnAdd([...exe], conf, `b${i}`, "DEL")).code, 0);
          del.push(performance.now() - t);
        }
        const median = (v: number[]) => v.sort((a, b) => a - b)[2].toFixed(1);
        rows.push(
          `${name.padEnd(10)} ADD ${median(add)} ms  DEL ${
            median(del)
          } ms (process wall time, median of 5)`,
        );
      }
      // deno-lint-ignore no-console -- a benchmark-style test reports its numbers
      console.log(`\nhost-local with 4000 leases:\n  ${rows.join("\n  ")}`);
    }),
});

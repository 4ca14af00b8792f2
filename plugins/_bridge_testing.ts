/**
 * Test rig for the bridge plugin's kernel tests: private "host" and
 * container namespaces, our plugin and the reference binary run side by side
 * as processes inside the host namespace, and normalised views of results
 * and kernel state for comparison. Test-only.
 *
 * Our plugin runs through a small entry script (skeleton + bridge, with
 * in-process delegation to our host-local through a launcher in `CNI_PATH`),
 * so these tests do not depend on the program's applet table.
 *
 * @module
 */
import {
  type CommandOutput,
  createNetns,
  mustSh,
  sh,
  type TestNetns,
} from "../lib/testing/netns.ts";

const ROOT_DIR = new URL("..", import.meta.url).pathname;

/** Where the reference binaries are. */
export const REFERENCE_DIR = "/usr/lib/cni";

/** True when the reference bridge and host-local binaries exist. */
export const HAVE_REFERENCE: boolean = (() => {
  try {
    return Deno.statSync(`${REFERENCE_DIR}/bridge`).isFile &&
      Deno.statSync(`${REFERENCE_DIR}/host-local`).isFile;
  } catch {
    return false;
  }
})();

let entryDir: Promise<string> | undefined;

/**
 * A temp dir with `entry.ts` (runs the plugin named by argv[1], default
 * bridge; with `CNIBOX_BRIDGE_TIMING` set prints the in-process time of the
 * handler run to stderr) and a `host-local` launcher naming it.
 */
export function ourPluginDir(): Promise<string> {
  entryDir ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "cnibox-bridge-test-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    const entry = `${dir}/entry.ts`;
    await Deno.writeTextFile(
      entry,
      [
        `import { denoIo, runPlugin } from "${ROOT_DIR}lib/cni/skel.ts";`,
        `import { setInProcessLoader } from "${ROOT_DIR}lib/cni/delegate.ts";`,
        "const loaders = {",
        `  bridge: () => import("${ROOT_DIR}plugins/bridge.ts"),`,
        `  "host-local": () => import("${ROOT_DIR}plugins/host_local.ts"),`,
        "};",
        "setInProcessLoader(async (name) => name in loaders ? (await loaders[name]()).plugin : undefined);",
        "const name = Deno.args[0] ?? 'bridge';",
        "const plugin = (await loaders[name]()).plugin;",
        "const start = performance.now();",
        "const code = await runPlugin(plugin, denoIo());",
        "if (Deno.env.get('CNIBOX_BRIDGE_TIMING')) {",
        "  console.error(`timing ${Deno.env.get('CNI_COMMAND')} ${(performance.now() - start).toFixed(2)}`);",
        "}",
        "Deno.exit(code);",
        "",
      ].join("\n"),
    );
    const launcher = `${dir}/host-local`;
    await Deno.writeTextFile(
      launcher,
      `#!/bin/bash\n# cnibox-launcher: ${entry}\nexec ${Deno.execPath()} run -A --quiet ${entry} host-local\n`,
    );
    await Deno.chmod(launcher, 0o755);
    return dir;
  })();
  return entryDir;
}

/** A private host namespace with containers and its own IPAM data dir. */
export interface World extends AsyncDisposable {
  host: TestNetns;
  containers: TestNetns[];
  /** host-local `dataDir` for this world. */
  ipamDir: string;
}

/** Creates a world with `count` container namespaces (prefix `cbx-br`). */
export async function createWorld(count = 1): Promise<World> {
  const host = await createNetns("cbx-br-h");
  const containers: TestNetns[] = [];
  for (let i = 0; i < count; i++) containers.push(await createNetns("cbx-br-c"));
  const ipamDir = await Deno.makeTempDir({ prefix: "cnibox-bridge-ipam-" });
  return {
    host,
    containers,
    ipamDir,
    async [Symbol.asyncDispose]() {
      for (const ns of containers) await ns.remove();
      await host.remove();
      await Deno.remove(ipamDir, { recursive: true }).catch(() => {});
    },
  };
}

/** One plugin call. */
export interface Call {
  command: "ADD" | "DEL" | "CHECK" | "STATUS" | "GC";
  /** The network config object (serialised as stdin). */
  conf: Record<string, unknown>;
  containerId?: string;
  /** @default {"eth0"} */
  ifName?: string;
  /** @default {the first container's path} */
  netns?: string;
  cniArgs?: string;
  /** Extra environment. */
  env?: Record<string, string>;
}

/** Output of a call, with the parsed stdout when it is JSON. */
export interface CallOutput extends CommandOutput {
  json: Record<string, unknown> | undefined;
}

function parse(out: CommandOutput): CallOutput {
  let json: Record<string, unknown> | undefined;
  try {
    json = out.stdout ? JSON.parse(out.stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { ...out, json };
}

/** Runs our bridge (`reference: false`) or the reference binary inside the world's host. */
export async function runBridge(
  world: World,
  call: Call,
  options: { reference?: boolean } = {},
): Promise<CallOutput> {
  const reference = options.reference ?? false;
  const env: Record<string, string> = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId ?? "ctr1",
    CNI_NETNS: call.netns ?? world.containers[0]?.path ?? "",
    CNI_IFNAME: call.ifName ?? "eth0",
    CNI_PATH: reference ? REFERENCE_DIR : await ourPluginDir(),
    CNI_ARGS: call.cniArgs ?? "",
    ...call.env,
  };
  for (const key of ["HOME", "DENO_DIR"]) {
    const value = Deno.env.get(key);
    if (value !== undefined) env[key] = value;
  }
  const cmd = reference
    ? [`${REFERENCE_DIR}/bridge`]
    : [Deno.execPath(), "run", "-A", "--quiet", `${await ourPluginDir()}/entry.ts`, "bridge"];
  const out = await sh("ip", ["netns", "exec", world.host.name, ...cmd], {
    stdin: JSON.stringify(call.conf),
    env,
    clearEnv: true,
  });
  return parse(out);
}

/** A config object for `network`, with the IPAM data dir pointed into the world. */
export function netConf(
  world: World,
  plugin: Record<string, unknown>,
  options: { name?: string; cniVersion?: string } = {},
): Record<string, unknown> {
  const conf: Record<string, unknown> = structuredClone(plugin);
  conf.cniVersion = options.cniVersion ?? "1.0.0";
  conf.name = options.name ?? "nomad";
  const ipam = conf.ipam as Record<string, unknown> | undefined;
  if (ipam?.type) ipam.dataDir = world.ipamDir;
  return conf;
}

/** Reads a JSON fixture from testdata/bridge. */
export function fixture(name: string): Record<string, unknown> {
  return JSON.parse(Deno.readTextFileSync(`${ROOT_DIR}testdata/bridge/${name}`));
}

/** Reads a commented hex fixture (`#` lines ignored) from testdata/bridge. */
export function hexFixture(name: string): Uint8Array {
  const text = Deno.readTextFileSync(`${ROOT_DIR}testdata/bridge/${name}`);
  const hex = text.split("\n").filter((line) => !line.startsWith("#")).join(" ").trim().split(
    /\s+/,
  );
  return new Uint8Array(hex.map((byte) => parseInt(byte, 16)));
}

const VETH = /^veth[0-9a-f]{8}$/;
const normName = (name: unknown) => (typeof name === "string" && VETH.test(name) ? "<veth>" : name);

/** A result with random parts replaced (MACs, veth names, netns paths) and an empty `dns` dropped. */
export function normalizeResult(result: unknown): unknown {
  const r = structuredClone(result) as Record<string, unknown>;
  if (r.dns !== undefined && Object.keys(r.dns as object).length === 0) delete r.dns;
  for (const iface of (r.interfaces as Record<string, unknown>[] | undefined) ?? []) {
    if (iface.mac !== undefined) iface.mac = "<mac>";
    if (iface.sandbox !== undefined) iface.sandbox = "<netns>";
    iface.name = normName(iface.name);
  }
  return r;
}

interface IpLink {
  ifname: string;
  master?: string;
  mtu: number;
  operstate: string;
  flags: string[];
  linkinfo?: {
    info_kind?: string;
    info_slave_kind?: string;
    info_slave_data?: { hairpin?: boolean; isolated?: boolean };
  };
}

interface IpAddr {
  ifname: string;
  addr_info: {
    family: string;
    local: string;
    prefixlen: number;
    scope: string;
    broadcast?: string;
  }[];
}

/** Links, addresses (no link-local ones: they derive from random MACs) and main-table routes. */
export interface KernelState {
  links: string[];
  addresses: string[];
  routes: string[];
}

// "linkdown" follows carrier changes, which the kernel's linkwatch reports up to a second late.
function flagsOf(flags: unknown): string {
  const list = (Array.isArray(flags) ? flags : []).filter((f) => f !== "linkdown");
  return list.length ? `flags ${list.join(",")}` : "";
}

/** Reads a namespace's links, addresses and routes as comparable text lines. */
export async function kernelState(ns: TestNetns): Promise<KernelState> {
  const json = async <T>(args: string[]): Promise<T[]> =>
    JSON.parse((await ns.exec("ip", ["-j", ...args])).stdout || "[]");
  const links = (await json<IpLink>(["-d", "link", "show"])).map((l) => {
    const info = l.linkinfo ?? {};
    const port = info.info_slave_data;
    return [
      normName(l.ifname),
      `kind=${info.info_kind ?? "-"}`,
      `master=${normName(l.master) ?? "-"}`,
      `mtu=${l.mtu}`,
      `state=${l.operstate}`,
      `flags=${[...l.flags].sort().join(",")}`,
      port ? `hairpin=${port.hairpin} isolated=${port.isolated}` : "",
    ].join(" ").trim();
  }).sort();
  const addresses = (await json<IpAddr>(["addr", "show"])).flatMap((l) =>
    l.addr_info.filter((a) => a.scope !== "link").map((a) =>
      `${normName(l.ifname)} ${a.local}/${a.prefixlen} scope=${a.scope} brd=${a.broadcast ?? "-"}`
    )
  ).sort();
  const routes: string[] = [];
  for (const family of ["-4", "-6"]) {
    const list = await json<Record<string, unknown>>([family, "route", "show", "table", "main"]);
    for (const r of list) {
      routes.push(
        [
          r.dst,
          r.gateway ? `via ${r.gateway}` : "",
          `dev ${normName(r.dev)}`,
          `proto ${r.protocol}`,
          `scope ${r.scope ?? "-"}`,
          `metric ${r.metric ?? "-"}`,
          flagsOf(r.flags),
        ]
          .filter(Boolean).join(" "),
      );
    }
  }
  return { links, addresses, routes: routes.sort() };
}

/**
 * Waits (up to 3 s) until a bridge without ports has lost its carrier: the
 * kernel reports carrier changes through linkwatch, up to a second late, so
 * snapshots right after DEL would otherwise race.
 */
export async function settleBridge(ns: TestNetns, bridge: string): Promise<void> {
  for (let i = 0; i < 60; i++) {
    const out = await ns.exec("ip", ["-j", "link", "show", "dev", bridge]);
    const link = (JSON.parse(out.stdout || "[]") as IpLink[])[0];
    if (link === undefined || link.flags.includes("NO-CARRIER") || !link.flags.includes("UP")) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** `iptables-save`/`ip6tables-save` of the nat table without comments and counters. */
export async function natRules(ns: TestNetns): Promise<string> {
  const out: string[] = [];
  for (const cmd of ["iptables-save", "ip6tables-save"]) {
    const text = (await ns.exec(cmd, ["-t", "nat"])).stdout;
    out.push(
      ...text.split("\n").filter((line) => line && !line.startsWith("#"))
        .map((line) => line.replace(/\[\d+:\d+\]/, "[0:0]")),
    );
  }
  return out.join("\n");
}

/** Reads sysctls inside a namespace (missing keys read as "-"). */
export async function sysctls(ns: TestNetns, keys: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const key of keys) {
    const res = await ns.exec("cat", [`/proc/sys/${key}`]);
    out[key.replace(/veth[0-9a-f]{8}/, "<veth>")] = res.code === 0 ? res.stdout.trim() : "-";
  }
  return out;
}

/** The host veth names in a namespace. */
export async function hostVeths(ns: TestNetns): Promise<string[]> {
  const links = JSON.parse((await ns.exec("ip", ["-j", "link", "show"])).stdout) as IpLink[];
  return links.map((l) => l.ifname).filter((name) => VETH.test(name));
}

/**
 * The host veths left once the kernel has finished tearing down removed
 * namespaces: a namespace's veth pair goes with it, but asynchronously
 * (the kernel's netns cleanup work, several RCU grace periods), which under
 * load can outlast a plugin run. Polls for at most `timeoutMs`; returns the
 * last list, so a veth that stays (a namespace pinned by an open socket)
 * still fails the caller's assertion.
 */
export async function hostVethsAfterTeardown(ns: TestNetns, timeoutMs = 5000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const veths = await hostVeths(ns);
    if (veths.length === 0 || Date.now() >= deadline) return veths;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Lease files (named by their IP address) under a host-local data dir. */
export async function leases(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(path: string): Promise<void> {
    for await (const entry of Deno.readDir(path)) {
      if (entry.isDirectory) await walk(`${path}/${entry.name}`);
      else if (/^[0-9a-f.:_]+$/i.test(entry.name) && /[.:_]/.test(entry.name)) out.push(entry.name);
    }
  }
  await walk(dir).catch(() => {});
  return out.sort();
}

/** Runs a shell command in a namespace and throws when it fails. */
export async function nsSh(ns: TestNetns, script: string): Promise<string> {
  return await mustSh("ip", ["netns", "exec", ns.name, "sh", "-c", script]);
}

/**
 * Sends one TCP message from namespace `from` to `address:port` served in
 * namespace `to` (no ping on this machine; TCP through the bridge is real
 * traffic too). Returns what the server echoed.
 */
export async function tcpExchange(
  from: TestNetns,
  to: TestNetns,
  target: { address: string; port: number },
): Promise<string> {
  const host = target.address.includes(":") ? `[${target.address}]` : target.address;
  const server = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      to.name,
      Deno.execPath(),
      "eval",
      `const l = Deno.listen({ hostname: "${target.address}", port: ${target.port} });
       console.log("ready");
       const c = await l.accept(); const b = new Uint8Array(64); const n = await c.read(b);
       await c.write(new TextEncoder().encode("echo:" + new TextDecoder().decode(b.subarray(0, n ?? 0))));
       c.close(); l.close();`,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = server.stdout.getReader();
  await reader.read(); // "ready": the server listens
  await reader.cancel();
  const client = await sh("ip", [
    "netns",
    "exec",
    from.name,
    "bash",
    "-c",
    `exec 3<>/dev/tcp/${
      host.replace(/[[\]]/g, "")
    }/${target.port}; printf ping >&3; timeout 5 cat <&3`,
  ]);
  await server.status;
  return client.stdout;
}

/**
 * Traffic and leftovers for the end-to-end tests: TCP/UDP servers and
 * clients (scripts/_netprobe.ts) started inside test namespaces, and the
 * per-container state a DEL must remove (iptables rules and chains, veths,
 * leases, cached results).
 *
 * Test-only; everything runs inside namespaces the tests created.
 *
 * @module
 */
import { sh, type TestNetns } from "../lib/testing/netns.ts";
import { CHECKOUT } from "./_env.ts";

const PROBE = `${CHECKOUT}scripts/_netprobe.ts`;
// Deno.listenDatagram (the UDP modes) is still behind --unstable-net in Deno 2.
const PROBE_FLAGS = ["run", "-A", "--quiet", "--unstable-net", PROBE];

/** A running probe server; disposing it stops it. */
export interface ProbeServer extends AsyncDisposable {
  stop(): Promise<void>;
}

/** Starts a TCP (or UDP) server in `ns` that answers every client with `reply`. */
export async function startServer(
  ns: TestNetns,
  options: { port: number; reply: string; udp?: boolean },
): Promise<ProbeServer> {
  const mode = options.udp ? "serve-udp" : "serve";
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      ns.name,
      Deno.execPath(),
      ...PROBE_FLAGS,
      mode,
      String(options.port),
      options.reply,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  const first = await reader.read();
  reader.releaseLock();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill("SIGTERM");
    } catch { /* already exited */ }
    await child.stdout.cancel();
    await child.status;
  };
  if (first.done || !new TextDecoder().decode(first.value).includes("ready")) {
    await stop();
    throw new Error(`probe ${mode} on port ${options.port} in ${ns.name} did not start`);
  }
  return { stop, [Symbol.asyncDispose]: stop };
}

/**
 * Connects from `ns` to `host:port` (TCP, or one UDP datagram) and returns
 * what the server answered; throws with the client's error when nothing came.
 */
export async function probe(
  ns: TestNetns,
  target: { host: string; port: number; udp?: boolean },
): Promise<string> {
  const mode = target.udp ? "get-udp" : "get";
  const out = await ns.exec(Deno.execPath(), [
    ...PROBE_FLAGS,
    mode,
    target.host,
    String(target.port),
  ]);
  if (out.code !== 0) {
    throw new Error(
      `${target.udp ? "udp" : "tcp"} ${target.host}:${target.port} from ${ns.name} failed ` +
        `(exit ${out.code}): ${out.stderr.trim()}`,
    );
  }
  return out.stdout.trim();
}

/** iptables-save and ip6tables-save of a namespace, rule and chain lines only. */
export async function firewallLines(ns: TestNetns): Promise<string[]> {
  const lines: string[] = [];
  for (const tool of ["iptables-save", "ip6tables-save"]) {
    const out = await ns.exec(tool, []);
    lines.push(...out.stdout.split("\n").filter((line) => /^[-:]/.test(line)));
  }
  return lines;
}

// Per-container chains: bridge's ipMasq `CNI-<24 hex>`, portmap's `CNI-DN-`/`CNI-SN-`.
const PER_CONTAINER_CHAIN = /\bCNI-(?:DN-|SN-)?[0-9a-f]{12,}\b/;

/**
 * The per-container firewall state left in `ns` for the given container IDs
 * and addresses: rules naming an ID or address, and per-container chains.
 * Shared chains (CNI-FORWARD, CNI-HOSTPORT-*, admin chains) may stay.
 */
export async function firewallLeftovers(
  ns: TestNetns,
  owners: { ids: string[]; ips?: string[] },
): Promise<string[]> {
  const ips = (owners.ips ?? []).map((ip) => ip.split("/")[0]);
  return (await firewallLines(ns)).filter((line) =>
    PER_CONTAINER_CHAIN.test(line) ||
    owners.ids.some((id) => line.includes(id)) ||
    ips.some((ip) => new RegExp(`[\\s:]${ip.replaceAll(".", "\\.")}(/\\d+)?(\\s|:|$)`).test(line))
  );
}

/** Names of the veth links in a namespace. */
export async function veths(ns: TestNetns): Promise<string[]> {
  const out = await ns.exec("ip", ["-j", "link", "show", "type", "veth"]);
  return (JSON.parse(out.stdout || "[]") as { ifname: string }[]).map((link) => link.ifname);
}

/** host-local lease files (one per leased IP) in `<dataDir>/<network>`. */
export async function leases(dataDir: string, network: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(`${dataDir}/${network}`)) {
      if (entry.isFile && /^[0-9a-f.:_]+$/i.test(entry.name) && /[.:_]/.test(entry.name)) {
        names.push(entry.name);
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.sort();
}

/** Files in a libcni result cache (`<cacheDir>/results`) whose name starts with `prefix`. */
export async function cachedResults(cacheDir: string, prefix = ""): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(`${cacheDir}/results`)) {
      if (entry.name.startsWith(prefix)) names.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.sort();
}

/** IPv4 addresses (with prefix) on `ifname` inside `ns`. */
export async function ipv4Addresses(ns: TestNetns, ifname: string): Promise<string[]> {
  const out = await ns.exec("ip", ["-j", "-4", "addr", "show", "dev", ifname]);
  if (out.code !== 0) return [];
  const links = JSON.parse(out.stdout || "[]") as {
    addr_info: { local: string; prefixlen: number }[];
  }[];
  return links.flatMap((link) => link.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
}

/** The IPv4 default gateway inside `ns`, if any. */
export async function defaultGateway(ns: TestNetns): Promise<string | undefined> {
  const out = await ns.exec("ip", ["-j", "-4", "route", "show", "default"]);
  const routes = JSON.parse(out.stdout || "[]") as { gateway?: string }[];
  return routes[0]?.gateway;
}

/** True when `ip` (no prefix) lies in the IPv4 `cidr`. */
export function inSubnet(ip: string, cidr: string): boolean {
  const toInt = (text: string) =>
    text.split(".").reduce((value, octet) => (value << 8n) | BigInt(Number(octet)), 0n);
  const [net, bits] = cidr.split("/");
  const mask = ((1n << 32n) - 1n) ^ ((1n << BigInt(32 - Number(bits))) - 1n);
  return (toInt(ip) & mask) === (toInt(net) & mask);
}

/** Link names in the machine's own network namespace (read only: proves nothing leaked there). */
export async function hostLinkNames(): Promise<string[]> {
  const out = await sh("ip", ["-j", "link", "show"]);
  return (JSON.parse(out.stdout || "[]") as { ifname: string }[]).map((link) => link.ifname);
}

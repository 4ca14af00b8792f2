/**
 * A private node with one CNI network for the crash, storm, teardown and
 * mixed-fleet tests: a "host" namespace where `cnibox exec` and the plugins
 * run, a conflist (bridge + host-local + firewall + portmap), lease, cache
 * and journal dirs, container namespaces on demand, and residue checks that
 * name everything a network's attachments may leave behind. Test-only.
 *
 * @module
 */
import { readTree } from "../lib/testing/harness.ts";
import { createNetns, type TestNetns } from "../lib/testing/netns.ts";
import { leaseView } from "./_corpus.ts";
import {
  binDir,
  linesWith,
  lockIsFree,
  nsState,
  PREFIX,
  type ProcessOutput,
  REFERENCE_DIR,
  runProcess,
} from "./_rig.ts";

/** The network's name, bridge and subnet. */
export const NETWORK = "hdnet";
export const BRIDGE = "cni-hd0";
export const SUBNET = "10.99.0.0/16";

/** Shared chains that stay after the last DEL (created once, never removed, as in the reference). */
export const SHARED_CHAINS = [
  "CNI-HOSTPORT-DNAT",
  "CNI-HOSTPORT-MASQ",
  "CNI-HOSTPORT-SETMARK",
  "CNI-FORWARD",
  "CNI-ADMIN",
];

/** The exact shared rules a network with ports leaves: each must appear once. */
export const SHARED_RULES = [
  "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
  "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
  '-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ',
  "-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE",
  '-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000',
  '-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
  '-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN',
];

/** Options for {@linkcode networkWorld}. */
export interface NetworkWorldOptions {
  /** @default {"1.1.0"} (the reference needs "1.0.0") */
  cniVersion?: string;
  /** Leave out firewall. @default {false} */
  noFirewall?: boolean;
}

/** Options of one `cnibox exec` call. */
export interface ExecCall {
  containerId: string;
  /** Container netns path ("" for gc). */
  netns?: string;
  /** Host ports mapped to container port 80 (tcp) and 53 (udp, when two are given). */
  ports?: number[];
  /** Run the reference plugins (`CNI_PATH=/usr/lib/cni`) under our runtime. @default {false} */
  reference?: boolean;
  killAfterMs?: number;
  timeoutMs?: number;
}

/** The private node. */
export interface NetworkWorld extends AsyncDisposable {
  host: TestNetns;
  tmp: string;
  leases: string;
  cache: string;
  journal: string;
  /** Creates a container namespace (removed with the world). */
  container(): Promise<TestNetns>;
  /** Runs `cnibox exec <verb> hdnet [netns]` in the host namespace. */
  exec(verb: "add" | "del" | "check" | "gc", call: ExecCall): Promise<ProcessOutput>;
  /** Everything attachments left behind, in words (empty: clean). */
  residue(containers?: readonly TestNetns[]): Promise<string[]>;
  /** Problems with the shared chains (each shared rule exactly once; empty: intact). */
  sharedChainProblems(): Promise<string[]>;
}

/** The conflist of the network. */
export function conflist(leases: string, options: NetworkWorldOptions = {}): unknown {
  const plugins: unknown[] = [
    {
      type: "bridge",
      bridge: BRIDGE,
      isGateway: true,
      ipMasq: true,
      ipam: { type: "host-local", dataDir: leases, ranges: [[{ subnet: SUBNET }]] },
    },
  ];
  if (!options.noFirewall) plugins.push({ type: "firewall", backend: "iptables" });
  plugins.push({ type: "portmap", capabilities: { portMappings: true } });
  return { cniVersion: options.cniVersion ?? "1.1.0", name: NETWORK, plugins };
}

/** Creates the node. */
export async function networkWorld(options: NetworkWorldOptions = {}): Promise<NetworkWorld> {
  const bin = await binDir();
  const host = await createNetns(PREFIX);
  const tmp = await Deno.makeTempDir({ prefix: `${PREFIX}-net-` });
  const leases = `${tmp}/leases`;
  const cache = `${tmp}/cache`;
  const journal = `${tmp}/journal`;
  await Deno.mkdir(`${tmp}/net.d`);
  await Deno.writeTextFile(
    `${tmp}/net.d/${NETWORK}.conflist`,
    JSON.stringify(conflist(leases, options)),
  );
  const containers: TestNetns[] = [];

  async function saves(): Promise<string> {
    const v4 = await host.exec("iptables-save", []);
    const v6 = await host.exec("ip6tables-save", []);
    return `${v4.stdout}\n${v6.stdout}`;
  }

  return {
    host,
    tmp,
    leases,
    cache,
    journal,
    async container() {
      const ns = await createNetns(PREFIX);
      containers.push(ns);
      return ns;
    },
    exec(verb, call) {
      const ports = call.ports ?? [];
      const mappings = ports.map((hostPort, i) => ({
        hostPort,
        containerPort: i === 1 ? 53 : 80,
        protocol: i === 1 ? "udp" : "tcp",
      }));
      const args = ["exec", verb, NETWORK];
      if (call.netns) args.push(call.netns);
      return runProcess(`${bin}/cnibox`, args, {
        host,
        env: {
          NETCONFPATH: `${tmp}/net.d`,
          CNI_PATH: call.reference ? REFERENCE_DIR : bin,
          CNI_CACHE_DIR: cache,
          CNIBOX_JOURNAL: journal,
          CNIBOX_FIREWALL_RECORDS: `${tmp}/firewall-records`,
          CNI_CONTAINERID: call.containerId || undefined,
          CAP_ARGS: mappings.length > 0 ? JSON.stringify({ portMappings: mappings }) : undefined,
        },
        killAfterMs: call.killAfterMs,
        timeoutMs: call.timeoutMs,
      });
    },
    async residue(check = containers) {
      const out: string[] = [];
      const state = await nsState(host);
      for (const link of state.links as { ifname: string }[]) {
        if (link.ifname !== "lo" && link.ifname !== BRIDGE) out.push(`host link ${link.ifname}`);
      }
      for (const ns of check) {
        const links = JSON.parse((await ns.exec("ip", ["-j", "link", "show"])).stdout || "[]");
        for (const link of links as { ifname: string }[]) {
          if (link.ifname !== "lo") out.push(`link ${link.ifname} in ${ns.name}`);
        }
      }
      const save = `${state.iptables}\n${state.ip6tables}`;
      for (const line of save.split("\n")) {
        const chain = /^:(\S+)/.exec(line)?.[1];
        if (chain?.startsWith("CNI-") && !SHARED_CHAINS.includes(chain)) {
          out.push(`chain ${chain}`);
        }
        if (
          line.startsWith("-A ") && !SHARED_RULES.includes(line) &&
          /CNI-|id: /.test(line)
        ) out.push(`rule ${line}`);
      }
      for (const line of linesWith(state.nft, ["masquerade comment", "dnat to", "cni_hostport"])) {
        out.push(`nft ${line.trim()}`);
      }
      const leaseFiles = leaseView(await readTree(`${leases}/${NETWORK}`));
      for (const [file, owner] of Object.entries(leaseFiles)) {
        out.push(`lease ${file} (${owner.replace("\r\n", " ")})`);
      }
      for (const file of Object.keys(await readTree(`${cache}/results`))) {
        out.push(`cache ${file}`);
      }
      for (const file of Object.keys(await readTree(`${tmp}/firewall-records`))) {
        out.push(`firewall record ${file}`);
      }
      if (!(await lockIsFree(`${leases}/${NETWORK}/lock`))) out.push("host-local lock held");
      return out;
    },
    async sharedChainProblems() {
      const save = await saves();
      const problems: string[] = [];
      for (const rule of SHARED_RULES) {
        const count = save.split("\n").filter((line) => line === rule).length;
        if (count !== 1) problems.push(`${count} x ${rule}`);
      }
      return problems;
    },
    async [Symbol.asyncDispose]() {
      for (const ns of containers) await ns.remove();
      await host.remove();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    },
  };
}

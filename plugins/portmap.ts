/**
 * The `portmap` CNI plugin (chained): forwards host ports to the container
 * (`runtimeConfig.portMappings`) with DNAT, masquerading hairpin and
 * localhost traffic when `snat` is on. Behaves like
 * containernetworking/plugins v1.9.1, with the iptables backend (nat table,
 * `CNI-HOSTPORT-DNAT` + a `CNI-DN-<hash>` chain per container) and the
 * nftables backend (`cni_hostport` tables).
 *
 * Better than the reference: on an intact node ADD lists nothing and applies
 * everything with one `iptables-restore` per family, the shared rules
 * guarded with `-C` (`CNI-HOSTPORT-DNAT`, or the whole nat table, is listed
 * only on a node's first ADD or when a shared rule is missing); the
 * reference lists the whole nat table four times per ADD and runs ~19
 * processes, so its ADD slows as containers accumulate. DEL lists nothing
 * either when it knows the mappings and nf_tables shows each shared rule
 * once: one restore deletes exactly what ADD made and is refused otherwise;
 * else it lists the nat table once and also leaves one copy of shared rules
 * that a racing reference plugin doubled. All validation
 * happens before anything changes (ports 1-65535, tcp/udp/sctp, host IPs);
 * DEL cleans up without `portMappings` (the chain is found by its hash) and
 * also flushes UDP conntrack entries; CHECK looks only at the families the
 * container has;
 * GC removes the chains of containers that are gone; port-mapping keys are
 * matched case-insensitively (Nomad sends `HostPort`, `HostIP`, ...).
 *
 * @module
 */
import { confField } from "../lib/cni/config.ts";
import { CniError, ErrorCode } from "../lib/cni/error.ts";
import type { CmdArgs, NetConf, Plugin, PluginFuncs, Result } from "../lib/cni/types.ts";
import { formatIp, type IpAddress, tryParseCidr } from "../lib/ip/cidr.ts";
import { routingLinkName } from "../lib/netlink/route_lookup.ts";
import { type PrevResult, prevResultOf, validAttachmentIds } from "../lib/firewall/_cni.ts";
import { formatChainName } from "../lib/firewall/chain_name.ts";
import { defaultExecer, type Execer, findCommand } from "../lib/firewall/exec.ts";
import {
  checkHostport,
  dnatEntryRules,
  dnatRules,
  HOSTPORT_DNAT_CHAIN,
  HOSTPORT_SETMARK_CHAIN,
  type HostportSpec,
  NFT_HOSTPORT_TABLE,
  NFT_OWNED_CHAINS,
  nftHostportAdd,
  OLD_HOSTPORT_SNAT_CHAIN,
  planHostportAdd,
  planHostportAddScoped,
  planHostportDel,
  planSharedRepair,
  type PortMapping,
  SCOPED_ADD_CHAINS,
  sharedRulesSingle,
} from "../lib/firewall/hostport.ts";
import {
  commentOwners,
  type Family,
  nftFamilyOf,
  readTable,
  renderRule,
  RestoreBatch,
  usesNftables,
} from "../lib/firewall/iptables.ts";
import { jumpsTo, nftChainExists, nftTableRules } from "../lib/firewall/nfnetlink.ts";
import { applyNft, listNftTable, NftError, NftTransaction } from "../lib/firewall/nft.ts";
import { TablePlan } from "../lib/firewall/plan.ts";
import { transact } from "../lib/firewall/transaction.ts";
import {
  conditionsBackend,
  validateAddress,
  validateChainName,
  validateConditions,
  validatePort,
  validateProtocol,
} from "../lib/firewall/validate.ts";
import { writeSysctl } from "../lib/sys/sysctl.ts";

/** The reference's default masquerade mark bit (Kubernetes uses 14 and 15, Calico 20-31). */
export const DEFAULT_MARK_BIT = 13;

/** The portmap plugin's settings after validation. */
export interface PortmapConf {
  backend: "iptables" | "nftables";
  snat: boolean;
  masqAll: boolean;
  markBit: number;
  externalSetMarkChain?: string;
  conditionsV4: string[];
  conditionsV6: string[];
  mappings: PortMapping[];
  /** The container's first IPv4 and IPv6 address on `CNI_IFNAME` (from prevResult). */
  container: { 4?: HostportSpec["container"]; 6?: HostportSpec["container"] };
  /** prevResult as given and in the 1.x shape. */
  prev?: PrevResult;
}

/** Which backends are installed (tests override). */
export interface BackendProbe {
  iptables(): boolean;
  nftables(): boolean;
}

const PROBE: BackendProbe = {
  iptables: () => !!findCommand("iptables-restore") && !!findCommand("iptables"),
  nftables: () => !!findCommand("nft"),
};

/** A key of `obj` matched case-insensitively, as Go's encoding/json does (Nomad sends `HostPort`). */
const field = confField;

function fail(message: string): never {
  throw new CniError(ErrorCode.InvalidNetworkConfig, message);
}

/**
 * The runtime's port mappings. `lenient` (DEL) checks only what the
 * reference's DEL refuses (a port below 1) and drops mappings that are
 * otherwise invalid: an ADD that failed on them must still be undone.
 */
function parseMappings(conf: NetConf, lenient: boolean): PortMapping[] {
  const runtime = field(conf, "runtimeConfig");
  if (runtime === undefined || runtime === null) return [];
  if (typeof runtime !== "object") fail("runtimeConfig must be an object");
  const list = field(runtime as Record<string, unknown>, "portMappings");
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) fail("runtimeConfig.portMappings must be a list");
  const entries = list.map((entry) => {
    if (!entry || typeof entry !== "object") fail(`Invalid port mapping: ${JSON.stringify(entry)}`);
    return entry as Record<string, unknown>;
  });
  // The reference checks every entry's ports before anything else.
  for (const entry of entries) {
    const containerPort = field(entry, "containerPort");
    const hostPort = field(entry, "hostPort");
    const max = lenient ? Infinity : 65535;
    if (
      !Number.isInteger(containerPort) || (containerPort as number) < 1 ||
      (containerPort as number) > max
    ) {
      fail(`Invalid container port number: ${JSON.stringify(containerPort ?? 0)}`);
    }
    if (!Number.isInteger(hostPort) || (hostPort as number) < 1 || (hostPort as number) > max) {
      fail(`Invalid host port number: ${JSON.stringify(hostPort ?? 0)}`);
    }
  }
  const valid = (entry: Record<string, unknown>): PortMapping | undefined => {
    try {
      return parseMapping(entry);
    } catch (error) {
      if (lenient) return undefined;
      throw error;
    }
  };
  return entries.map(valid).filter((m): m is PortMapping => m !== undefined);
}

/** One mapping, validated (ports already checked for being positive integers). */
function parseMapping(entry: Record<string, unknown>): PortMapping {
  const mapping: PortMapping = {
    hostPort: validatePort(field(entry, "hostPort"), "hostPort"),
    containerPort: validatePort(field(entry, "containerPort"), "containerPort"),
    protocol: "tcp",
  };
  try {
    mapping.protocol = validateProtocol(field(entry, "protocol"), "protocol");
  } catch {
    fail(
      `Invalid protocol: ${
        JSON.stringify(field(entry, "protocol") ?? "")
      } (must be tcp, udp or sctp)`,
    );
  }
  const hostIp = field(entry, "hostIP");
  if (hostIp !== undefined && hostIp !== null && hostIp !== "") {
    try {
      // Go's `To4()` makes an IPv4-mapped host IP an IPv4 one, so the reference maps it.
      mapping.hostIp = validateAddress(hostIp, "hostIP", { unwrapMapped: true });
    } catch (error) {
      fail(`Invalid host IP: ${(error as Error).message}`);
    }
  }
  return mapping;
}

/**
 * Validates a portmap config the way the reference's `parseConfig` orders
 * it, plus range checks the reference leaves to iptables. Throws `CniError`
 * code 7 with the reference's message where one exists.
 *
 * @example Usage
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const conf = parsePortmapConf({ cniVersion: "1.0.0", name: "n", type: "portmap" }, { ifName: "eth0" });
 * assertEquals([conf.snat, conf.markBit], [true, 13]);
 * ```
 */
export function parsePortmapConf(
  conf: NetConf,
  options: { ifName: string; probe?: BackendProbe; lenient?: boolean },
): PortmapConf {
  let prev: PrevResult | undefined;
  try {
    prev = prevResultOf(conf);
  } catch (error) {
    fail((error as Error).message);
  }
  const result = prev?.current;
  const snat = field(conf, "snat") ?? true;
  if (typeof snat !== "boolean") fail(`snat must be a boolean, got ${JSON.stringify(snat)}`);
  const masqAll = field(conf, "masqAll") ?? false;
  if (typeof masqAll !== "boolean") {
    fail(`masqAll must be a boolean, got ${JSON.stringify(masqAll)}`);
  }
  const bit = field(conf, "markMasqBit");
  const external = field(conf, "externalSetMarkChain");
  const hasBit = bit !== undefined && bit !== null;
  const hasExternal = external !== undefined && external !== null;
  if (hasBit && hasExternal) fail("Cannot specify externalSetMarkChain and markMasqBit");
  const markBit = hasBit ? bit : DEFAULT_MARK_BIT;
  if (typeof markBit !== "number" || !Number.isInteger(markBit)) {
    fail(`markMasqBit must be an integer, got ${JSON.stringify(markBit)}`);
  }
  if (markBit < 0 || markBit > 31) fail("MasqMarkBit must be between 0 and 31");
  // Values that end up in rule text. The reference's DEL checks only their JSON types, so
  // `lenient` (DEL) drops a bad value (it never reaches rule text) rather than failing.
  const checked = <T>(check: () => T, fallback: T): T => {
    try {
      return check();
    } catch (error) {
      if (options.lenient && error instanceof RangeError) return fallback;
      return fail((error as Error).message);
    }
  };
  const externalSetMarkChain = hasExternal
    ? checked<string | undefined>(
      () => validateChainName(external, "externalSetMarkChain"),
      undefined,
    )
    : undefined;
  const conditionsOf = (key: "conditionsV4" | "conditionsV6") => {
    const value = field(conf, key);
    return value === undefined || value === null
      ? []
      : checked(() => validateConditions(value, key), []);
  };
  const conditionsV4 = conditionsOf("conditionsV4");
  const conditionsV6 = conditionsOf("conditionsV6");

  // Backend selection and cross-checks, as the reference's validateBackend.
  const specific: Record<string, string[]> = { iptables: [], nftables: [] };
  if (hasExternal) specific.iptables.push("externalSetMarkChain");
  for (
    const [key, tokens] of [["conditionsV4", conditionsV4], ["conditionsV6", conditionsV6]] as const
  ) {
    const backend = conditionsBackend(tokens);
    if (backend) specific[backend].push(key);
  }
  let backend = field(conf, "backend");
  if (backend === undefined || backend === null) {
    const probe = options.probe ?? PROBE;
    backend = !probe.iptables() && probe.nftables() ? "nftables" : "iptables";
  }
  if (typeof backend !== "string") fail(`backend must be a string, got ${JSON.stringify(backend)}`);
  const wrong = backend === "iptables" ? "nftables" : "iptables";
  if (specific[wrong].length > 0) {
    fail(
      `${backend} backend was requested but configuration contains ${wrong}-specific options [${
        specific[wrong].join(" ")
      }]`,
    );
  }
  if (backend !== "iptables" && backend !== "nftables") fail(`unrecognized backend "${backend}"`);

  const mappings = parseMappings(conf, options.lenient ?? false);

  // The first IPv4 and IPv6 on CNI_IFNAME inside the sandbox (ips without an interface count too).
  const container: PortmapConf["container"] = {};
  for (const ip of result?.ips ?? []) {
    const cidr = tryParseCidr(ip.address, { keepMapped: true });
    if (!cidr) fail(`invalid address in prevResult: ${JSON.stringify(ip.address)}`);
    const parsed = { addr: cidr.address, prefix: cidr.prefixLength };
    if (container[parsed.addr.family]) continue;
    const index = ip.interface;
    const ifaces = result?.interfaces ?? [];
    if (index !== undefined && index >= 0 && index < ifaces.length) {
      const iface = ifaces[index];
      if (iface.name !== options.ifName || !iface.sandbox) continue;
    }
    container[parsed.addr.family] = parsed;
  }
  return {
    backend,
    snat,
    masqAll,
    markBit,
    externalSetMarkChain,
    conditionsV4,
    conditionsV6,
    mappings,
    container,
    prev,
  };
}

function prefixed(error: unknown): never {
  if (error instanceof CniError) {
    throw new CniError(error.code, `failed to parse config: ${error.message}`, error.details, {
      cause: error,
    });
  }
  throw error;
}

/** Dependencies of the portmap handlers (tests inject fakes). */
export interface PortmapDeps {
  /** Starts iptables/nft. @default {defaultExecer()} */
  execer?: Execer;
  /** Lock file for read-decide-apply; `""` disables. @default {DEFAULT_LOCK_PATH} */
  lockPath?: string;
  /** Which backends are installed. */
  probe?: BackendProbe;
  /** Deletes UDP conntrack entries for host ports (in-process ctnetlink by default). */
  flushConntrack?: (ports: number[], family: Family) => Promise<void>;
  /** Sets `route_localnet=1` on the interface routing to an IPv4 container address. */
  enableRouteLocalnet?: (address: IpAddress) => Promise<void>;
  /**
   * Whether each shared rule DEL repairs is there at most once, so DEL can
   * skip its listing (false: cannot tell). @default {an nf_tables query}
   */
  sharedRulesSingle?: (family: Family, repair: { snat: boolean; markBit?: number }) => boolean;
  /**
   * Whether one of `chains` may exist in `family`'s nat table: DEL looks at a
   * family its prevResult does not name only then. @default {an nf_tables
   * query; true on the legacy backend}
   */
  chainsMayExist?: (family: Family, chains: readonly string[]) => boolean;
  /**
   * Removes the container chain and its `entries` jumps from CNI-HOSTPORT-DNAT
   * in one transaction of its own, if the node is exactly so (no legacy
   * chain either); false when the tool must do it. @default {the execer's
   * nftDropChain on iptables-nft; false on the legacy backend}
   */
  dropChain?: (
    family: Family,
    chains: { chain: string; legacyChain: string; entries: number },
  ) => boolean;
}

async function defaultFlushConntrack(ports: number[], family: Family): Promise<void> {
  if (ports.length === 0) return;
  const { deleteConntrackByDstPort } = await import("../lib/firewall/conntrack.ts");
  deleteConntrackByDstPort(ports, { family });
}

function defaultEnableRouteLocalnet(address: IpAddress): Promise<void> {
  // The interface the kernel routes the container through (policy rules, every table, VRFs),
  // as the reference asks netlink; where nothing routes there it skips route_localnet too.
  const name = routingLinkName(formatIp(address));
  if (name) writeSysctl(`net/ipv4/conf/${name}/route_localnet`, "1");
  return Promise.resolve();
}

/**
 * Whether nf_tables shows each shared rule of the family at most once (see
 * `sharedRulesSingle`); false when it cannot tell (legacy backend, no nfnetlink).
 */
function defaultSharedRulesSingle(
  family: Family,
  repair: { snat: boolean; markBit?: number },
): boolean {
  if (!usesNftables(family)) return false;
  try {
    const rulesOf = nftTableRules(nftFamilyOf(family), "nat");
    // Only rules naming the target are decoded: POSTROUTING holds a masquerade jump per container.
    return sharedRulesSingle({
      jumps: (chain, target) => jumpsTo(rulesOf(chain), target),
      rules: (chain) => rulesOf(chain).length,
    }, repair);
  } catch {
    return false;
  }
}

/**
 * Whether one of `chains` may exist in `family`'s nat table: an nf_tables
 * query where iptables is iptables-nft, else (legacy backend, no nfnetlink)
 * yes, which costs that family a listing.
 */
function defaultChainsMayExist(family: Family, chains: readonly string[]): boolean {
  if (!usesNftables(family)) return true;
  try {
    return chains.some((chain) => nftChainExists(nftFamilyOf(family), "nat", chain));
  } catch {
    return true;
  }
}

function udpPorts(mappings: readonly PortMapping[]): number[] {
  return [...new Set(mappings.filter((m) => m.protocol === "udp").map((m) => m.hostPort))];
}

function families(conf: PortmapConf): Family[] {
  return ([4, 6] as Family[]).filter((f) => conf.container[f]);
}

/** Creates the portmap handlers with the given dependencies. */
export function portmapFuncs(deps: PortmapDeps = {}): PluginFuncs {
  const execer = () => deps.execer ?? defaultExecer();
  const flushConntrack = deps.flushConntrack ?? defaultFlushConntrack;
  const enableRouteLocalnet = deps.enableRouteLocalnet ?? defaultEnableRouteLocalnet;
  const sharedRulesSingleNow = deps.sharedRulesSingle ?? defaultSharedRulesSingle;
  const chainsMayExist = deps.chainsMayExist ?? defaultChainsMayExist;
  const dropChain = deps.dropChain ?? ((
    family: Family,
    chains: { chain: string; legacyChain: string; entries: number },
  ) =>
    usesNftables(family) && execer().nftDropChain?.({
        family: nftFamilyOf(family),
        table: "nat",
        chain: chains.chain,
        jumpsFrom: [HOSTPORT_DNAT_CHAIN],
        jumps: chains.entries,
        absent: [chains.legacyChain],
      }) === true);
  const tx = { lockPath: deps.lockPath };

  async function specs(conf: PortmapConf, args: CmdArgs): Promise<Map<Family, HostportSpec>> {
    const chain = await formatChainName(args.conf.name, args.containerId, { prefix: "DN-" });
    const out = new Map<Family, HostportSpec>();
    for (const family of families(conf)) {
      out.set(family, {
        network: args.conf.name,
        containerId: args.containerId,
        chain,
        container: conf.container[family]!,
        mappings: conf.mappings,
        snat: conf.snat,
        masqAll: conf.masqAll,
        setMarkChain: conf.externalSetMarkChain ?? HOSTPORT_SETMARK_CHAIN,
        conditions: family === 4 ? conf.conditionsV4 : conf.conditionsV6,
      });
    }
    return out;
  }

  /**
   * Removes the container's chains. `repair` also leaves one copy of doubled
   * shared rules. With `expected` (the container's specs, from the
   * runtime's mappings and prevResult), a family whose shared rules nf_tables
   * shows single is torn down without a listing: the batch deletes the entry
   * rules and chain ADD made, and is refused if anything differs (other
   * mappings, a leftover legacy chain), which then lists the table after all.
   */
  async function iptablesTeardown(
    args: CmdArgs,
    options: {
      only?: Family[];
      repair?: { snat: boolean; markBit?: number };
      expected?: Map<Family, HostportSpec>;
    } = {},
  ): Promise<Map<Family, number[]>> {
    const { only, repair, expected } = options;
    const [chain, legacyChain] = await Promise.all([
      formatChainName(args.conf.name, args.containerId, { prefix: "DN-" }),
      formatChainName(args.conf.name, args.containerId, { prefix: "SN-" }),
    ]);
    const flushed = new Map<Family, number[]>();
    // Where ADD's chain and entry rules are as expected and no shared rule needs repair, they
    // go in one nf_tables transaction of our own: no tool to start. The UDP ports to flush are
    // then the configured ones (the caller adds those anyway).
    const families = only ?? [4, 6] as Family[];
    const singles = new Map<Family, boolean>();
    const sharedSingle = (family: Family, repair: { snat: boolean; markBit?: number }) => {
      if (!singles.has(family)) singles.set(family, sharedRulesSingleNow(family, repair));
      return singles.get(family)!;
    };
    const dropped = families.filter((family) => {
      const spec = expected?.get(family);
      if (spec === undefined || spec.chain !== chain) return false;
      if (repair && !sharedSingle(family, repair)) return false;
      return dropChain(family, { chain, legacyChain, entries: dnatEntryRules(spec).length });
    });
    for (const family of dropped) flushed.set(family, []);
    const rest = families.filter((family) => !dropped.includes(family));
    if (rest.length === 0) return flushed;
    const teardown = (plan: TablePlan, family: Family) => {
      const found = planHostportDel(plan, { chain, legacyChain });
      if (found.removed) flushed.set(family, found.udpPorts);
      else flushed.delete(family); // an earlier, refused try planned otherwise
    };
    const outcomes = await transact("nat", (plan, family) => {
      teardown(plan, family);
      // ADD does not read the shared rules (it guards them), so DEL repairs doubled ones.
      if (repair) planSharedRepair(plan, repair);
    }, {
      ...tx,
      execer: execer(),
      families: rest,
      tolerateUnusable: true,
      unlisted: {
        assume: (family) => {
          const spec = expected?.get(family);
          if (spec === undefined || spec.chain !== chain) return undefined;
          // The repair's listing is needed only where a shared rule may be doubled.
          if (repair && !sharedSingle(family, repair)) return undefined;
          return new Map([
            [HOSTPORT_DNAT_CHAIN, dnatEntryRules(spec).map(renderRule)],
            [chain, dnatRules(spec).map(renderRule)],
            [OLD_HOSTPORT_SNAT_CHAIN, []], // none of its jumps lead to our legacy chain
          ]);
        },
        build: teardown,
      },
    });
    const unusable = outcomes.filter((o) => o.unusable);
    // A family that could not be listed after a refused unlisted try removed nothing.
    for (const outcome of unusable) flushed.delete(outcome.family);
    if (unusable.length === outcomes.length && unusable.length > 0 && dropped.length === 0) {
      const why = (f: Family) =>
        outcomes.find((o) => o.family === f)?.unusable?.message ?? "not tried";
      throw new Error(
        `neither iptables nor ip6tables is usable, (iptables) ${why(4)}, (ip6tables) ${why(6)}`,
      );
    }
    return flushed;
  }

  async function nftTeardown(containerId: string): Promise<void> {
    const tx = new NftTransaction();
    for (const family of ["ip", "ip6"] as const) {
      let listing;
      try {
        listing = await listNftTable(family, NFT_HOSTPORT_TABLE, { execer: execer() });
      } catch (error) {
        // No nft binary: nothing of ours can exist (the reference skips such a family too).
        if (error instanceof NftError && error.code === 127) continue;
        throw error;
      }
      for (const rule of listing.rules) {
        if (
          rule.comment === containerId &&
          (NFT_OWNED_CHAINS as readonly string[]).includes(rule.chain)
        ) {
          tx.deleteRule(family, NFT_HOSTPORT_TABLE, rule.chain, rule.handle);
        }
      }
    }
    await applyNft(tx, { execer: execer() });
  }

  return {
    async add(args: CmdArgs): Promise<Result> {
      let conf: PortmapConf;
      try {
        conf = parsePortmapConf(args.conf, { ifName: args.ifName, probe: deps.probe });
      } catch (error) {
        prefixed(error);
      }
      if (!conf.prev) throw new Error("must be called as chained plugin");
      if (conf.mappings.length === 0) return conf.prev.given;
      // A mapping whose hostIP is of a family the container lacks maps nothing (as in the
      // reference: podman sends `::` next to `0.0.0.0`), but its port still enters the chain.
      const perFamily = await specs(conf, args);
      if (perFamily.size > 0) {
        if (conf.backend === "nftables") {
          await nftAdd(conf, args, perFamily);
        } else {
          try {
            const shared = {
              markBit: conf.externalSetMarkChain === undefined ? conf.markBit : undefined,
            };
            await transact("nat", (plan, family) => {
              planHostportAdd(plan, perFamily.get(family)!, shared);
            }, {
              ...tx,
              execer: execer(),
              families: [...perFamily.keys()],
              // Nothing is listed when the node is as expected: the container chain's `-N` and
              // the shared rules' `-C` guards refuse the batch otherwise. Then only
              // CNI-HOSTPORT-DNAT is listed, unless a shared rule is missing.
              unlisted: {
                // Its other containers' entries do not matter: only jumps to this chain are read.
                assume: () => new Map(SCOPED_ADD_CHAINS.map((chain) => [chain, []])),
                build: (plan, family) =>
                  planHostportAddScoped(plan, perFamily.get(family)!, shared),
              },
              scoped: {
                chains: SCOPED_ADD_CHAINS,
                build: (plan, family) =>
                  planHostportAddScoped(plan, perFamily.get(family)!, shared),
              },
            });
          } catch (error) {
            // One family may have succeeded; leave nothing half-done behind.
            await iptablesTeardown(args, { only: [...perFamily.keys()] }).catch(() => {});
            throw error;
          }
        }
      }
      const udp = udpPorts(conf.mappings);
      for (const family of perFamily.keys()) {
        // Stale UDP flows would keep bypassing the new DNAT; failures only cost that.
        await flushConntrack(udp, family).catch(() => {});
      }
      if (conf.snat && conf.container[4]) {
        try {
          await enableRouteLocalnet(conf.container[4].addr);
        } catch (error) {
          throw new Error(`unable to enable route_localnet: ${(error as Error).message}`, {
            cause: error,
          });
        }
      }
      return conf.prev.given;
    },

    async del(args: CmdArgs): Promise<void> {
      let conf: PortmapConf;
      try {
        conf = parsePortmapConf(args.conf, {
          ifName: args.ifName,
          probe: deps.probe,
          lenient: true,
        });
      } catch (error) {
        prefixed(error);
      }
      if (conf.backend === "nftables") {
        await nftTeardown(args.containerId);
        const udp = udpPorts(conf.mappings);
        for (const family of [4, 6] as Family[]) await flushConntrack(udp, family).catch(() => {});
        return;
      }
      // The chain is named by network and container, so no portMappings are needed to find it.
      // Every family is torn down, as upstream does, whatever prevResult names (it may be
      // partial): a family it does not name only if our chains may be there.
      const known = families(conf);
      let only: Family[] | undefined;
      if (known.length > 0) {
        const chains = await Promise.all([
          formatChainName(args.conf.name, args.containerId, { prefix: "DN-" }),
          formatChainName(args.conf.name, args.containerId, { prefix: "SN-" }),
        ]);
        only = ([4, 6] as Family[]).filter((f) => known.includes(f) || chainsMayExist(f, chains));
      }
      const flushed = await iptablesTeardown(args, {
        only,
        repair: {
          snat: conf.snat,
          markBit: conf.externalSetMarkChain === undefined ? conf.markBit : undefined,
        },
        expected: conf.mappings.length > 0 ? await specs(conf, args) : undefined,
      });
      for (const [family, ports] of flushed) {
        const udp = [...new Set([...ports, ...udpPorts(conf.mappings)])];
        await flushConntrack(udp, family).catch(() => {});
      }
    },

    async check(args: CmdArgs): Promise<void> {
      const conf = parsePortmapConf(args.conf, { ifName: args.ifName, probe: deps.probe });
      if (!conf.prev) throw new Error("Required prevResult missing");
      if (conf.mappings.length === 0) return;
      const perFamily = await specs(conf, args);
      if (conf.backend === "nftables") {
        for (const [family, spec] of perFamily) await nftCheck(conf, family, spec);
        return;
      }
      for (const [family, spec] of perFamily) {
        const table = await readTable("nat", { family, execer: execer() });
        const problem = checkHostport(new TablePlan(table, new RestoreBatch()), spec);
        if (problem) throw new Error(`could not check ipv${family} dnat: ${problem}`);
      }
    },

    async gc(args: CmdArgs): Promise<void> {
      const conf = parsePortmapConf(args.conf, { ifName: "", probe: deps.probe });
      // nft rules carry only the container id, not the network: GC cannot tell whose they are.
      if (conf.backend !== "iptables") return;
      const valid = validAttachmentIds(args.conf);
      if (!valid) return;
      const stale = new Set<string>();
      for (const family of [4, 6] as Family[]) {
        try {
          const nat = await readTable("nat", { family, execer: execer() });
          for (
            const id of commentOwners(nat.chains.get("CNI-HOSTPORT-DNAT") ?? [], args.conf.name, {
              prefix: "dnat ",
            })
          ) {
            if (!valid.has(id)) stale.add(id);
          }
        } catch {
          // family unusable: nothing of ours can be there
        }
      }
      if (stale.size === 0) return;
      // Chains are found by name (the hash of network and id), never by comment alone.
      const chains = await Promise.all([...stale].map(async (id) => ({
        chain: await formatChainName(args.conf.name, id, { prefix: "DN-" }),
        legacyChain: await formatChainName(args.conf.name, id, { prefix: "SN-" }),
      })));
      const flushed = new Map<Family, number[]>();
      await transact("nat", (plan, family) => {
        for (const names of chains) {
          const teardown = planHostportDel(plan, names);
          if (teardown.removed) {
            flushed.set(family, [...(flushed.get(family) ?? []), ...teardown.udpPorts]);
          }
        }
      }, { ...tx, execer: execer(), families: [4, 6], tolerateUnusable: true });
      for (const [family, ports] of flushed) await flushConntrack(ports, family).catch(() => {});
    },
  };

  async function nftAdd(
    conf: PortmapConf,
    args: CmdArgs,
    perFamily: Map<Family, HostportSpec>,
  ): Promise<void> {
    const tx = new NftTransaction();
    for (const [family, spec] of perFamily) {
      const listing = await listNftTable(nftFamilyOf(family), NFT_HOSTPORT_TABLE, {
        execer: execer(),
      });
      nftHostportAdd(tx, {
        containerId: args.containerId,
        container: { addr: spec.container.addr },
        mappings: conf.mappings,
        snat: conf.snat,
        masqAll: conf.masqAll,
        conditions: spec.conditions,
        existing: listing.rules.filter((r) =>
          r.comment === args.containerId &&
          (NFT_OWNED_CHAINS as readonly string[]).includes(r.chain)
        ),
      });
    }
    try {
      await applyNft(tx, { execer: execer() });
    } catch (error) {
      throw new Error(
        `unable to set up nftables rules for port mappings: ${(error as Error).message}`,
      );
    }
  }

  async function nftCheck(conf: PortmapConf, family: Family, spec: HostportSpec): Promise<void> {
    const listing = await listNftTable(nftFamilyOf(family), NFT_HOSTPORT_TABLE, {
      execer: execer(),
    });
    const count = (chain: string) =>
      listing.rules.filter((r) => r.chain === chain && r.comment === spec.containerId).length;
    const ports = conf.mappings.filter((m) => !m.hostIp || m.hostIp.family === family).length;
    if (ports > 0 && count("hostports") < ports) {
      throw new Error(`missing hostport rules in "hostports" chain`);
    }
    const masq = !conf.snat ? 0 : family === 4 && !conf.masqAll ? 2 : 1;
    if (masq > 0 && count("masquerading") < masq) {
      throw new Error(`missing hostport rules in "masquerading" chain`);
    }
  }
}

/** The portmap plugin (CNI 0.1.0 and later). */
export const plugin: Plugin = {
  name: "portmap",
  supportedVersions: ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
  funcs: portmapFuncs(),
};

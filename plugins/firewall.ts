/**
 * The `firewall` CNI plugin (chained): lets each container address through
 * the host's `FORWARD` chain via `CNI-FORWARD` (with an admin override chain
 * jumped to first) and optionally isolates bridges from each other
 * (`ingressPolicy`). Behaves like containernetworking/plugins v1.9.1 with
 * the iptables backend; the firewalld (D-Bus) backend is detected but not
 * implemented.
 *
 * Better than the reference: where the shared rules are in place (which
 * nf_tables is asked directly), ADD appends a container's rules and DEL
 * deletes them in one nf_tables transaction of the plugin's own, starting no
 * process (the reference starts 10 for an ADD, 4 for a DEL); elsewhere each
 * verb applies all changes of a family with one `iptables-restore`, planned
 * against one listing of the filter table (a node's first ADD: 2 processes
 * per family); CHECK creates nothing; bad values are rejected before
 * anything changes; GC removes address rules of containers that are gone;
 * each ADD records the addresses it let through (lib/firewall/records.ts),
 * so a DEL without prevResult still removes the rules.
 *
 * @module
 */
import { confField } from "../lib/cni/config.ts";
import { CniError, ErrorCode } from "../lib/cni/error.ts";
import type { CmdArgs, NetConf, Plugin, PluginFuncs, Result } from "../lib/cni/types.ts";
import {
  familyBits,
  inetNtop,
  ipToBytes,
  parseCidr,
  tryParseCidr,
  tryParseIp,
} from "../lib/ip/cidr.ts";
import { prevResultOf, validAttachmentList } from "../lib/firewall/_cni.ts";
import { defaultExecer, type Execer } from "../lib/firewall/exec.ts";
import { firewalldRunning } from "../lib/firewall/firewalld.ts";
import {
  assumedForwardChains,
  checkForward,
  containerRules,
  DEFAULT_ADMIN_CHAIN,
  FORWARD_CHAIN,
  type ForwardRuleView,
  type ForwardSetup,
  type IngressPolicy,
  nftContainerRuleExpressions,
  nftContainerRules,
  nftSharedJumpsAsMade,
  planForwardAdd,
  planForwardAddUnlisted,
  planForwardDel,
  unlistedAddReady,
} from "../lib/firewall/forward.ts";
import {
  type Family,
  nftFamilyOf,
  readTable,
  renderRule,
  RestoreBatch,
  tokenizeRule,
  usesNftables,
} from "../lib/firewall/iptables.ts";
import { jumpsTo, nftTableRules, payloadHolds } from "../lib/firewall/nfnetlink.ts";
import { TablePlan } from "../lib/firewall/plan.ts";
import {
  DEFAULT_RECORD_ROOT,
  listRecords,
  otherNetworksAddresses,
  readRecord,
  recordDir,
  removeRecord,
  writeRecord,
} from "../lib/firewall/records.ts";
import { transact, withLock } from "../lib/firewall/transaction.ts";
import { validateChainName, validateInterfaceName } from "../lib/firewall/validate.ts";

/** The firewall plugin's settings after validation. */
export interface FirewallConf {
  /** Admin override chain (`iptablesAdminChainName`, default `CNI-ADMIN`). */
  adminChain: string;
  ingressPolicy: IngressPolicy;
  /** The backend the config asks for: `iptables`, `firewalld`, or undefined (auto). */
  backend?: "iptables" | "firewalld";
}

function invalid(error: unknown): never {
  if (error instanceof TypeError || error instanceof RangeError) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, error.message, "", { cause: error });
  }
  throw error;
}

/**
 * Validates the plugin-specific keys of a firewall config. Throws
 * `CniError` code 7 for a bad admin chain name or ingress policy.
 *
 * @example Usage
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const conf = parseFirewallConf({ cniVersion: "1.0.0", name: "n", type: "firewall" });
 * assertEquals(conf.adminChain, "CNI-ADMIN");
 * ```
 */
export function parseFirewallConf(
  conf: NetConf,
  options: { lenient?: boolean; check?: boolean } = {},
): FirewallConf {
  // As in the reference, any other backend value means auto-detection.
  const configured = confField(conf, "backend");
  const backend = configured === "iptables" || configured === "firewalld" ? configured : undefined;
  // DEL removes address rules only: settings it does not use must not make it fail, or an
  // ADD that failed on them could never be undone (the runtime stops its DEL chain there).
  if (options.lenient) return { adminChain: DEFAULT_ADMIN_CHAIN, ingressPolicy: "open", backend };
  try {
    // JSON null leaves a Go string field empty, as if the key were absent.
    const text = (key: string) => {
      const value = confField(conf, key) ?? undefined;
      if (value !== undefined && typeof value !== "string") {
        throw new TypeError(`${key} must be a string, got ${JSON.stringify(value)}`);
      }
      return value;
    };
    text("backend");
    text("firewalldZone");
    const admin = text("iptablesAdminChainName");
    const adminChain = admin === undefined || admin === ""
      ? DEFAULT_ADMIN_CHAIN
      : validateChainName(admin, "iptablesAdminChainName");
    const policy = text("ingressPolicy") ?? "";
    // CHECK looks at the address rules only; the reference does not read the policy there.
    if (options.check) return { adminChain, ingressPolicy: "open", backend };
    if (!["", "open", "same-bridge", "isolated"].includes(policy)) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `unknown ingress policy: "${policy}"`);
    }
    return { adminChain, ingressPolicy: (policy || "open") as IngressPolicy, backend };
  } catch (error) {
    return invalid(error);
  }
}

/** Container addresses of a result in host form (`/32`, `/128`), by family. */
function hostAddresses(result: Result): Map<Family, string[]> {
  const byFamily = new Map<Family, string[]>();
  for (const ip of result.ips ?? []) {
    const parsed = tryParseCidr(ip.address, { keepMapped: true })?.address;
    if (!parsed) {
      throw new CniError(
        ErrorCode.DecodingFailure,
        `invalid address in prevResult: "${ip.address}"`,
      );
    }
    const host = `${inetNtop(parsed)}/${familyBits(parsed.family)}`;
    const list = byFamily.get(parsed.family) ?? [];
    if (!list.includes(host)) list.push(host);
    byFamily.set(parsed.family, list);
  }
  return byFamily;
}

/** The family of a host-form address (`10.0.0.2/32`, `fd00::2/128`). */
function hostFamily(address: string): Family {
  return address.includes(":") ? 6 : 4;
}

/** Dependencies of the firewall handlers (tests inject fakes). */
export interface FirewallDeps {
  /** Starts iptables tools. @default {defaultExecer()} */
  execer?: Execer;
  /** Lock file for read-decide-apply; `""` disables. @default {DEFAULT_LOCK_PATH} */
  lockPath?: string;
  /** Whether firewalld runs. @default {firewalldRunning} */
  firewalld?: () => boolean;
  /**
   * Root of the per-attachment address records (see lib/firewall/records.ts).
   * @default {the plugin's `CNIBOX_FIREWALL_RECORDS`, else DEFAULT_RECORD_ROOT}
   */
  recordRoot?: string;
  /**
   * Whether an ADD of `setup` may skip listing the family's filter table
   * (see `unlistedAddReady`); false also keeps the ADD from its own nf_tables
   * transaction (tests force the listed path with it). @default {an nf_tables
   * query; false on the legacy backend}
   */
  unlistedAddReady?: (family: Family, setup: ForwardSetup) => boolean;
}

/**
 * Asks nf_tables (one dump per chain, no process) whether an ADD may skip
 * its listing; false when it cannot tell (legacy backend, no nfnetlink).
 */
function defaultUnlistedAddReady(family: Family, setup: ForwardSetup): boolean {
  if (!usesNftables(family)) return false;
  try {
    return unlistedAddReady(nftRuleView(nftTableRules(nftFamilyOf(family), "filter")), setup);
  } catch {
    return false;
  }
}

/** The filter table as nf_tables dumps it, for {@linkcode unlistedAddReady}. */
function nftRuleView(rulesOf: (chain: string) => readonly Uint8Array[]): ForwardRuleView {
  return {
    jumps: (chain, target) => jumpsTo(rulesOf(chain), target),
    mayMention: (chain, address) => {
      const bytes = ipToBytes(parseCidr(address, { keepMapped: true }).address);
      return rulesOf(chain).some((payload) => payloadHolds(payload, bytes));
    },
  };
}

/** Creates the firewall handlers with the given dependencies. */
export function firewallFuncs(deps: FirewallDeps = {}): PluginFuncs {
  const execer = () => deps.execer ?? defaultExecer();
  const firewalld = deps.firewalld ?? firewalldRunning;
  const unlistedReady = deps.unlistedAddReady ?? defaultUnlistedAddReady;
  const tx = { lockPath: deps.lockPath };
  const records = (args: CmdArgs) =>
    recordDir(
      args.conf.name,
      deps.recordRoot ?? (args.env.CNIBOX_FIREWALL_RECORDS || DEFAULT_RECORD_ROOT),
    );

  /** Fails unless the iptables backend applies; `lenient` (DEL, GC) cleans iptables regardless. */
  function requireIptables(conf: FirewallConf, lenient: boolean): void {
    if (conf.backend === "iptables") return;
    const running = firewalld();
    if (conf.backend === "firewalld" && !running && !lenient) {
      throw new Error(
        'backend "firewalld" was requested but firewalld is not running (no org.fedoraproject.FirewallD1 on the system bus); use "backend": "iptables"',
      );
    }
    if (running && !lenient) {
      throw new CniError(
        ErrorCode.UnsupportedField,
        "the firewalld backend is not supported by cnibox",
        `firewalld is running; set "backend": "iptables" to use iptables`,
      );
    }
  }

  return {
    async add(args: CmdArgs): Promise<Result> {
      const conf = parseFirewallConf(args.conf);
      const prev = prevResultOf(args.conf);
      if (!prev) throw new Error("missing prevResult from earlier plugin");
      const result = prev.current;
      requireIptables(conf, false);
      const addresses = hostAddresses(result);
      let isolation: { bridge: string; policy: "same-bridge" | "isolated" } | undefined;
      // The reference asks for the bridge even when there is no address to isolate.
      if (conf.ingressPolicy !== "open") {
        const bridge = result.interfaces?.[0]?.name;
        if (!result.interfaces?.length) {
          throw new Error(
            `interface needs to be set for ingress policy "${conf.ingressPolicy}", make sure to chain "firewall" plugin with "bridge"`,
          );
        }
        if (!bridge) throw new Error("got empty bridge name");
        try {
          isolation = {
            bridge: validateInterfaceName(bridge, "bridge name"),
            policy: conf.ingressPolicy,
          };
        } catch (error) {
          invalid(error);
        }
      }
      // Upstream prints the prevResult converted to 1.x (so 0.4.0 output gets each IP's
      // version from its address), unlike portmap, which passes it through as given.
      if (addresses.size === 0) return prev.current;
      // Recorded first: a DEL that comes without prevResult (the runtime died
      // before caching this result) can still find the rules.
      writeRecord(records(args), args.containerId, args.ifName, [...addresses.values()].flat());
      const setupOf = (family: Family): ForwardSetup => ({
        adminChain: conf.adminChain,
        addresses: addresses.get(family)!,
        isolation,
      });
      // Where the shared rules are as the reference makes them (the node's every ADD but its
      // first, unless ingress isolation is asked for), the address rules are appended in one
      // nf_tables transaction of our own: no tool to start. It is refused whole if the ruleset
      // changed since it was read (tried again twice). The tool's paths below are the fallback.
      const families = [...addresses.keys()].sort();
      const rest = await withLock(() =>
        Promise.resolve(families.filter((family) => {
          if (!usesNftables(family)) return true;
          const setup = setupOf(family);
          return execer().nftAppendRules?.({
            family: nftFamilyOf(family),
            table: "filter",
            rules: setup.addresses.flatMap(nftContainerRuleExpressions)
              .map((expressions) => ({ chain: FORWARD_CHAIN, expressions })),
            ready: (rulesOf) =>
              unlistedAddReady(nftRuleView(rulesOf), setup) &&
              nftSharedJumpsAsMade(rulesOf, setup.adminChain) &&
              (deps.unlistedAddReady?.(family, setup) ?? true),
          }) !== true;
        })), tx);
      if (rest.length === 0) return prev.current;
      await transact("filter", (plan, family) => planForwardAdd(plan, setupOf(family)), {
        ...tx,
        execer: execer(),
        families: rest,
        // A node whose shared rules are in place needs no listing, which grows with
        // every container (firewall ADD at 100 live allocations: 46 -> 35 ms).
        unlisted: {
          assume: (family) =>
            unlistedReady(family, setupOf(family))
              ? assumedForwardChains(conf.adminChain)
              : undefined,
          build: (plan, family) => planForwardAddUnlisted(plan, setupOf(family)),
        },
      });
      return prev.current;
    },

    async del(args: CmdArgs): Promise<void> {
      const conf = parseFirewallConf(args.conf, { lenient: true });
      const prev = prevResultOf(args.conf);
      const dir = records(args);
      // The reference removes nothing without prevResult; the record still knows.
      const recorded = readRecord(dir, args.containerId, args.ifName);
      if (!prev && recorded.length === 0) {
        removeRecord(dir, args.containerId, args.ifName);
        return;
      }
      requireIptables(conf, true);
      const named = prev ? hostAddresses(prev.current) : new Map<Family, string[]>();
      const namedSet = new Set([...named.values()].flat());
      const onlyRecorded = recorded.filter((address) => !namedSet.has(address));
      // An address only the record names may have been leased again since this attachment's
      // result was lost: its rules stay while another attachment's record claims it (rare: a
      // runtime sends its cached result; GC checks the nat table's owners too). Records are
      // read under the lock: an ADD writes its record before it takes the lock to add rules.
      let claimed: Set<string> | undefined;
      const addressesOf = (family: Family): string[] => {
        claimed ??= onlyRecorded.length === 0 ? new Set() : new Set(
          listRecords(dir)
            .filter((r) => r.containerId !== args.containerId || r.ifname !== args.ifName)
            .flatMap((r) => r.addresses),
        );
        const own = onlyRecorded.filter((a) => hostFamily(a) === family && !claimed!.has(a));
        return [...named.get(family) ?? [], ...own];
      };
      const families = [...new Set([...named.keys(), ...onlyRecorded.map(hostFamily)])].sort();
      // Where CNI-FORWARD holds exactly the rules ADD made, they go in one nf_tables
      // transaction of our own (no tool to start), under the same lock as the tool's.
      const rest = families.length === 0 ? [] : await withLock(() => {
        const left = families.filter((family) => {
          const addresses = addressesOf(family);
          return addresses.length > 0 && !(usesNftables(family) &&
            execer().nftDeleteRules?.({
                family: nftFamilyOf(family),
                table: "filter",
                chain: FORWARD_CHAIN,
                pick: (rules) => nftContainerRules(rules, addresses),
              }) === true);
        });
        claimed = undefined; // the tool's try reads the records again, under its own lock
        return Promise.resolve(left);
      }, tx);
      if (rest.length > 0) {
        const build = (plan: TablePlan, family: Family) =>
          planForwardDel(plan, addressesOf(family));
        await transact("filter", build, {
          ...tx,
          execer: execer(),
          families: rest,
          // The rules are known: deleting them needs no listing, unless one is gone
          // (then `-D` refuses the batch and the table is listed after all).
          unlisted: {
            assume: (family) => {
              const rules = addressesOf(family).flatMap(containerRules).map(renderRule);
              return new Map([[FORWARD_CHAIN, [...new Set(rules)]]]);
            },
            build,
          },
        });
      }
      removeRecord(dir, args.containerId, args.ifName);
    },

    async check(args: CmdArgs): Promise<void> {
      const conf = parseFirewallConf(args.conf, { check: true });
      const prev = prevResultOf(args.conf);
      if (!prev) throw new Error("missing prevResult from earlier plugin");
      requireIptables(conf, false);
      const addresses = hostAddresses(prev.current);
      for (const family of [...addresses.keys()].sort()) {
        const table = await readTable("filter", { family, execer: execer() });
        const problem = checkForward(new TablePlan(table, new RestoreBatch()), {
          adminChain: conf.adminChain,
          addresses: addresses.get(family)!,
        });
        if (problem) throw new Error(problem);
      }
    },

    async gc(args: CmdArgs): Promise<void> {
      const conf = parseFirewallConf(args.conf, { lenient: true });
      requireIptables(conf, true);
      const valid = validAttachmentList(args.conf);
      if (!valid) return;
      const network = args.conf.name;
      const validIds = new Set(valid.map((a) => a.containerID));
      const isValid = (id: string, ifname: string) =>
        valid.some((a) => a.containerID === id && a.ifname === ifname);
      const dir = records(args);
      const all = listRecords(dir);
      const goneRecords = all.filter((r) => !isValid(r.containerId, r.ifname));
      // Kept: addresses of this network's valid attachments and of any other network's
      // recorded ones (CNI-FORWARD rules name addresses, not networks).
      const keptAddresses = otherNetworksAddresses(dir);
      for (const record of all) {
        if (isValid(record.containerId, record.ifname)) {
          for (const address of record.addresses) keptAddresses.add(address);
        }
      }
      for (const family of [4, 6] as Family[]) {
        let owners: Map<string, Set<string>>;
        try {
          owners = addressOwners(
            await readTable("nat", { family, execer: execer() }).then((t) => t.chains),
          );
        } catch {
          continue; // family unusable: nothing of ours can be there
        }
        const ownerGone = (owner: string) => {
          const { net, id } = JSON.parse(owner) as { net: string; id: string };
          return net === network && !validIds.has(id);
        };
        // Addresses whose every nat-table owner is a gone attachment of this network.
        const stale = new Set(
          [...owners].filter(([address, set]) =>
            [...set].every(ownerGone) && !keptAddresses.has(address)
          ).map(([address]) => address),
        );
        // Addresses recorded for gone attachments that nobody alive claims.
        for (const record of goneRecords) {
          for (const address of record.addresses) {
            if (hostFamily(address) !== family || keptAddresses.has(address)) continue;
            const claimed = owners.get(address);
            if (!claimed || [...claimed].every(ownerGone)) stale.add(address);
          }
        }
        if (stale.size === 0) continue;
        await transact("filter", (plan) => {
          for (const address of stale) {
            for (const rule of containerRules(address)) {
              while (plan.deleteRule(FORWARD_CHAIN, rule)) { /* every copy */ }
            }
          }
        }, { ...tx, execer: execer(), families: [family] });
      }
      for (const record of goneRecords) removeRecord(dir, record.containerId, record.ifname);
    },
  };
}

const MASQ_COMMENT = /^name: "([^"\\]*)" id: "([^"\\]*)"$/;
const DNAT_COMMENT = /^dnat name: "([^"\\]*)" id: "([^"\\]*)"$/;

/**
 * Which (network, container) pairs claim each container address, from the
 * nat table: bridge ipMasq jumps (`-s <ip>/32 ... name: "<net>" id: "<id>"`)
 * and portmap DNAT targets (`--to-destination <ip>:<port>` in a chain whose
 * entry rule says `dnat name: "<net>" id: "<id>"`). Keys are host-form
 * addresses; values are JSON `{net, id}` strings.
 */
export function addressOwners(nat: Map<string, string[]>): Map<string, Set<string>> {
  const owners = new Map<string, Set<string>>();
  const claim = (address: string, net: string, id: string) => {
    const set = owners.get(address) ?? new Set<string>();
    set.add(JSON.stringify({ net, id }));
    owners.set(address, set);
  };
  const value = (tokens: string[], option: string) => {
    const i = tokens.indexOf(option);
    return i === -1 ? undefined : tokens[i + 1];
  };
  for (const rule of nat.get("POSTROUTING") ?? []) {
    const tokens = tokenizeRule(rule);
    const match = MASQ_COMMENT.exec(value(tokens, "--comment") ?? "");
    const at = tokens.indexOf("-s");
    if (match && at !== -1 && tokens[at - 1] !== "!") claim(tokens[at + 1], match[1], match[2]);
  }
  for (const rule of nat.get("CNI-HOSTPORT-DNAT") ?? []) {
    const tokens = tokenizeRule(rule);
    const match = DNAT_COMMENT.exec(value(tokens, "--comment") ?? "");
    const chain = value(tokens, "-j");
    if (!match || !chain) continue;
    for (const inner of nat.get(chain) ?? []) {
      const target = value(tokenizeRule(inner), "--to-destination");
      const host = target?.replace(/^\[(.*)\]:\d+$/, "$1").replace(/^([0-9.]+):\d+$/, "$1");
      const parsed = host ? tryParseIp(host, { keepMapped: true }) : undefined;
      if (parsed) {
        claim(`${inetNtop(parsed)}/${familyBits(parsed.family)}`, match[1], match[2]);
      }
    }
  }
  return owners;
}

/** The firewall plugin (CNI 0.4.0 and later). */
export const plugin: Plugin = {
  name: "firewall",
  supportedVersions: ["0.4.0", "1.0.0", "1.1.0"],
  funcs: firewallFuncs(),
};

/**
 * The `bridge` CNI plugin: a Linux bridge on the host, a veth pair per
 * container (host end a bridge port, container end `CNI_IFNAME`), addresses
 * from an IPAM plugin, optionally the gateway address on the bridge, IP
 * forwarding and masquerading. Behaves like containernetworking/plugins
 * v1.9.1 (same config fields, steps, results and messages), all netlink
 * in-process: the veth is made by one request from the host, its container
 * end created directly in the container namespace.
 *
 * Better than the reference:
 * - an ADD that fails part-way undoes what it did (IPAM lease, veth,
 *   masquerade and spoof-check rules; the bridge stays, as upstream leaves it);
 * - DEL removes the masquerade rules even when the netns is gone (#810);
 * - a repeated ADD of an intact attachment returns the same result (Nomad
 *   retries ADD without DEL); a half-made one is cleaned up and redone. The
 *   result is remembered in the host veth's alias (`ip link` shows
 *   `alias cnibox:<owner> {...}`), so it goes away with the veth;
 * - IPAM runs while the bridge and veth are made; DEL releases the lease and
 *   the rules concurrently;
 * - bad names, negative MTUs, bad MACs and a non-bridge link named like the
 *   bridge are refused before anything changes;
 * - CHECK in layer-2 mode does not fail on the missing IPAM type.
 *
 * @module
 */
import {
  delegateAdd,
  type DelegateArgs,
  delegateCheck,
  delegateDel,
  delegateGc,
  delegateStatus,
} from "../lib/cni/delegate.ts";
import { confField, parsePrevResult, validAttachments } from "../lib/cni/config.ts";
import { isJsonObject } from "../lib/cni/_go.ts";
import { convertResult } from "../lib/cni/result.ts";
import type { CmdArgs, Interface, Plugin, PluginFuncs, Result } from "../lib/cni/types.ts";
import { SUPPORTED_VERSIONS, versionAtLeast } from "../lib/cni/version.ts";
import { defaultExecer, type Execer } from "../lib/firewall/exec.ts";
import { tryParseCidr } from "../lib/ip/cidr.ts";
import { formatMac } from "../lib/ip/mac.ts";
import {
  type Link,
  LinkNotFoundError,
  type NetlinkHandle,
  type NetnsFd,
  NetnsNotFoundError,
  openHandle,
  openNetnsFd,
} from "../lib/netlink/mod.ts";
import { type BridgeConf, parseBridgeConf, parseMac, validateForAdd } from "./_bridge_config.ts";
import {
  attachHostVeth,
  checkBridgeKind,
  configureContainer,
  createVeth,
  deleteLinkIfExists,
  enableForwarding,
  ensureBridge,
  ensureGatewayAddress,
  findLink,
  goErrorText,
  linkAlias,
  randomVethName,
  setLinkAlias,
  setupPortVlans,
  waitPortUp,
} from "./_bridge_link.ts";
import type { MasqOwner } from "./_bridge_masq.ts";
import { decodeRecord, encodeRecord, ownerTag, recordOf } from "./_bridge_record.ts";
import {
  baseInterfaces,
  buildResult,
  type BuiltResult,
  familiesOf,
  type Gateways,
  sameCidr,
} from "./_bridge_result.ts";

/** Options for {@linkcode bridgeFuncs}. */
export interface BridgeOptions {
  /** How iptables/nft are started. @default {defaultExecer()} */
  execer?: Execer;
  /** iptables lock file (see lib/firewall). @default {the firewall layer's default} */
  lockPath?: string;
}

interface Context {
  args: CmdArgs;
  conf: BridgeConf;
  options: BridgeOptions;
  execer: Execer;
}

function context(args: CmdArgs, options: BridgeOptions): Context {
  const conf = parseBridgeConf(args.conf, { cniArgs: args.args });
  return { args, conf, options, execer: options.execer ?? defaultExecer() };
}

function isLayer3(conf: BridgeConf): boolean {
  return conf.ipamType !== "";
}

function masquerades(conf: BridgeConf): boolean {
  return isLayer3(conf) && conf.ipMasq;
}

/** Opens the container namespace with the reference's error texts. */
function openContainerNetns(path: string): NetnsFd {
  try {
    return openNetnsFd(path);
  } catch (error) {
    if (error instanceof NetnsNotFoundError) {
      // Its message is the ns package's (`unknown FS magic on "<path>": ef53`).
      throw new Error(`failed to open netns "${path}": ${error.message}`, { cause: error });
    }
    throw new Error(`failed to open netns "${path}": ${goErrorText(error)}`, { cause: error });
  }
}

/** The host veth whose peer is `container` (checked both ways), if any. */
function hostPeerOf(host: NetlinkHandle, container: Link): Link | undefined {
  if (container.kind !== "veth" || container.linkIndex === undefined) return undefined;
  let peer: Link;
  try {
    peer = host.linkByIndex(container.linkIndex);
  } catch (error) {
    if (error instanceof LinkNotFoundError) return undefined;
    throw error;
  }
  return peer.kind === "veth" && peer.linkIndex === container.index ? peer : undefined;
}

/** The gateways a result puts on the bridge (what `assignAddresses` computed at ADD). */
function gatewaysOf(result: Result): Gateways {
  const out: Gateways = { 4: [], 6: [] };
  for (const ip of result.ips ?? []) {
    const cidr = tryParseCidr(ip.address);
    if (cidr === undefined || ip.gateway === undefined) continue;
    out[cidr.address.family].push({ address: ip.gateway, prefixLength: cidr.prefixLength });
  }
  return out;
}

function masqOwner(ctx: Context): MasqOwner {
  return { network: ctx.conf.name, containerId: ctx.args.containerId, ifName: ctx.args.ifName };
}

// The firewall modules load only when masquerading or spoof checks are configured
// (and the CHECK module only for CHECK): a plugin run pays for every module it loads.

async function addMasq(ctx: Context, result: Result): Promise<void> {
  const { masqBackend, setupMasq } = await import("./_bridge_masq.ts");
  await setupMasq(masqOwner(ctx), (result.ips ?? []).map((ip) => ip.address), {
    backend: masqBackend(ctx.conf.ipMasqBackend),
    execer: ctx.execer,
    lockPath: ctx.options.lockPath,
  });
}

/**
 * Removes the attachment's masquerading: `addresses` (its own, as far as
 * known) let the iptables teardown skip its listing; jumps of `keep` (the
 * addresses the container's other links hold) stay.
 */
async function removeMasq(
  ctx: Context,
  addresses: readonly string[],
  keep: readonly string[],
): Promise<void> {
  const { teardownMasq } = await import("./_bridge_masq.ts");
  const families = familiesOf(addresses);
  await teardownMasq(masqOwner(ctx), families.length > 0 ? families : [4, 6], {
    execer: ctx.execer,
    lockPath: ctx.options.lockPath,
    addresses,
    keep,
  });
}

/** `ip/len` of the global addresses on the container's links other than `ownIndex`. */
function otherLinkAddresses(container: NetlinkHandle, ownIndex: number | undefined): string[] {
  return container.addrList()
    .filter((a) => a.scope === 0 && a.index !== ownIndex)
    .map((a) => `${a.address}/${a.prefixLength}`);
}

async function removeSpoofCheck(ctx: Context): Promise<void> {
  const { spoofNames, teardownSpoofCheck } = await import("./_bridge_spoofchk.ts");
  await teardownSpoofCheck(spoofNames(ctx.args.containerId, ctx.args.ifName), {
    execer: ctx.execer,
  });
}

/** Puts the gateways on the bridge (or its VLAN interface) and turns on forwarding. */
function setupGateways(
  host: NetlinkHandle,
  ctx: Context,
  bridge: Link,
  gateways: Gateways,
  result: Result,
): void {
  const { conf } = ctx;
  let vlanIface: Interface | undefined;
  for (const family of [4, 6] as const) {
    for (const gw of gateways[family]) {
      if (conf.vlan !== 0) {
        let link: Link;
        try {
          link = ensureVlanInterface(host, ctx, bridge);
        } catch (error) {
          throw new Error(`failed to create vlan interface: ${(error as Error).message}`);
        }
        if (vlanIface === undefined) {
          vlanIface = { name: link.name, mac: link.mac };
          result.interfaces!.push(vlanIface);
        }
        withPrefix(
          "failed to set vlan interface for bridge with addr",
          () =>
            ensureGatewayAddress(host, link, gw, {
              forceAddress: conf.forceAddress,
              mac: link.mac,
            }),
        );
      } else {
        withPrefix("failed to set bridge addr", () =>
          ensureGatewayAddress(host, bridge, gw, {
            forceAddress: conf.forceAddress,
            mac: bridge.mac,
          }));
      }
    }
    if (gateways[family].length > 0) enableForwarding(family);
  }
}

function withPrefix(prefix: string, fn: () => void): void {
  try {
    fn();
  } catch (error) {
    throw new Error(`${prefix}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * The `<bridge>.<vlan>` gateway interface: one end of a host veth pair whose
 * other end is a bridge port carrying the VLAN as PVID.
 */
function ensureVlanInterface(host: NetlinkHandle, ctx: Context, bridge: Link): Link {
  const name = `${bridge.name}.${ctx.conf.vlan}`;
  const existing = findLink(host, name);
  if (existing !== undefined) return existing;
  let pair;
  try {
    pair = createVeth(host, name, { container: host, mtu: bridge.mtu });
    attachHostVeth(host, pair.host, bridge, { hairpin: false, isolated: false });
    setupPortVlans(host, { ...ctx.conf, vlans: undefined }, pair.host);
  } catch (error) {
    throw new Error(`faild to create vlan gateway "${name}": ${(error as Error).message}`);
  }
  try {
    host.linkSetUp(pair.container.index);
  } catch (error) {
    throw new Error(`failed to up "${name}": ${goErrorText(error)}`);
  }
  return host.linkByIndex(pair.container.index);
}

/** Waits for the host port, then refreshes the bridge and host-veth MACs in the result. */
async function finishInterfaces(
  host: NetlinkHandle,
  ctx: Context,
  result: Result,
  hostVeth: string,
): Promise<void> {
  const port = ctx.conf.disableContainerInterface
    ? host.linkByName(hostVeth)
    : await waitPortUp(host, hostVeth);
  const bridge = host.linkByName(ctx.conf.bridge);
  if (bridge.kind !== "bridge") {
    throw new Error(`"${ctx.conf.bridge}" already exists but is not a bridge`);
  }
  const [bridgeIface, hostIface] = result.interfaces!;
  bridgeIface.mac = bridge.mac;
  hostIface.mac = port.mac;
}

/**
 * IPAM DEL, masquerade and spoof-check teardown: what outlives the veth.
 * The masquerade teardown keeps the jumps of `keep` (see `removeMasq`).
 */
async function releaseAttachment(
  ctx: Context,
  addresses: readonly string[],
  keep: readonly string[],
  options: { masquerade?: boolean } = {},
): Promise<void> {
  const { conf, args } = ctx;
  // Independent steps, run together; the first error (IPAM's before masquerading's) is reported.
  const [ipam, masq] = await Promise.allSettled([
    isLayer3(conf) ? delegateDel(conf.ipamType, args) : undefined,
    masquerades(conf) && options.masquerade !== false
      ? removeMasq(ctx, addresses, keep)
      : undefined,
    // The reference only logs spoof-check teardown errors.
    conf.macspoofchk ? removeSpoofCheck(ctx).catch(() => {}) : undefined,
  ]);
  for (const outcome of [ipam, masq]) if (outcome.status === "rejected") throw outcome.reason;
}

/** Whether IPAM still holds the result's lease for this container (IPAM CHECK). */
async function ipamHolds(ctx: Context, result: Result): Promise<boolean> {
  const { conf, args } = ctx;
  if (!isLayer3(conf)) return true;
  // CHECK needs config version >= 0.4.0 and a prevResult in that version.
  const version = versionAtLeast(conf.cniVersion, "0.4.0") ? conf.cniVersion : "0.4.0";
  const stdin = { ...args.conf, cniVersion: version, prevResult: convertResult(result, version) };
  const check: DelegateArgs = {
    stdinData: new TextEncoder().encode(JSON.stringify(stdin)),
    env: args.env,
  };
  try {
    await delegateCheck(conf.ipamType, check, { stderr: () => {} });
    return true;
  } catch {
    return false;
  }
}

/**
 * `CNI_IFNAME` already exists in the container. If it is our veth on our
 * bridge, recorded for this container and intact (addresses present, IPAM
 * lease held), re-ensures the host side and returns the same result; if it
 * is on our bridge but incomplete or unrecorded, removes it and returns
 * undefined (ADD starts over); anything else is the reference's error.
 */
async function resumeAttachment(
  host: NetlinkHandle,
  container: NetlinkHandle,
  ctx: Context,
  existing: Link,
  bridge: Link,
): Promise<Result | undefined> {
  const { conf, args } = ctx;
  const peer = hostPeerOf(host, existing);
  const record = peer && decodeRecord(linkAlias(peer));
  const owner = await ownerTag(conf.name, args.containerId);
  if (
    peer === undefined || peer.masterIndex !== bridge.index || (record && record.owner !== owner)
  ) {
    throw new Error(
      `container veth name ("${args.ifName}") peer provided ("${randomVethName()}") already exists`,
    );
  }
  const addresses = container.addrList({ link: existing.index })
    .filter((a) => a.scope === 0)
    .map((a) => `${a.address}/${a.prefixLength}`);
  if (record !== undefined) {
    const result: Result = {
      cniVersion: "1.1.0",
      interfaces: baseInterfaces(
        { name: bridge.name, mac: bridge.mac },
        { name: peer.name, mac: peer.mac },
        { name: existing.name, mac: existing.mac, sandbox: args.netns },
      ),
    };
    if (record.ips.length > 0) result.ips = record.ips.map((ip) => ({ ...ip, interface: 2 }));
    if (record.routes !== undefined) result.routes = record.routes;
    const dns = conf.dns ?? record.dns;
    if (dns !== undefined) result.dns = dns;
    const intact = record.ips.every((ip) => addresses.some((a) => sameCidr(a, ip.address))) &&
      await ipamHolds(ctx, result);
    if (intact) {
      if (isLayer3(conf)) {
        if (conf.isGateway) setupGateways(host, ctx, bridge, gatewaysOf(result), result);
        if (conf.ipMasq) await addMasq(ctx, result);
      } else if (!conf.disableContainerInterface) {
        container.linkSetUp(existing.index);
      }
      await finishInterfaces(host, ctx, result, peer.name);
      return result;
    }
  }
  // Half-made: remove it, keeping the masquerade jumps of the container's other links.
  const keep = otherLinkAddresses(container, existing.index);
  deleteLinkIfExists(container, args.ifName);
  await releaseAttachment(
    ctx,
    [...addresses, ...(record?.ips ?? []).map((ip) => ip.address)],
    keep,
  );
  return undefined;
}

async function cmdAdd(args: CmdArgs, options: BridgeOptions): Promise<Result> {
  const ctx = context(args, options);
  const { conf } = ctx;
  validateForAdd(conf);
  // Open the namespace first so a bad path changes nothing (the reference makes the bridge first).
  using netns = openContainerNetns(args.netns);
  using host = openHandle();
  using container = openHandle({ netns });

  const existing = findLink(container, args.ifName);
  if (existing !== undefined) {
    const resumed = await resumeAttachment(
      host,
      container,
      ctx,
      existing,
      ensureBridge(host, conf),
    );
    if (resumed !== undefined) return resumed;
  }
  // A link of another kind named like the bridge is refused before IPAM is asked for anything.
  checkBridgeKind(findLink(host, conf.bridge), conf.bridge);

  await using undo = new AsyncDisposableStack();
  // Undo steps swallow their own errors: the ADD's error is what the runtime must see.
  const onFailure = (step: () => unknown) =>
    undo.defer(async () => {
      try {
        await step();
      } catch {
        // best effort
      }
    });

  // IPAM runs while the bridge and veth are made (the reference waits); released on failure.
  const ipamAdd = isLayer3(conf) ? delegateAdd(conf.ipamType, args) : undefined;
  if (ipamAdd !== undefined) {
    ipamAdd.catch(() => {}); // awaited below; an early failure elsewhere must not leave it unhandled
    onFailure(async () => {
      if (await ipamAdd.then(() => true, () => false)) await delegateDel(conf.ipamType, args);
    });
  }

  const bridge = ensureBridge(host, conf);
  const veth = createVeth(host, args.ifName, {
    netns,
    container,
    mtu: conf.mtu,
    // Go's notations (dashes, dots) are valid here (validateForAdd); netlink wants the bytes' text.
    mac: conf.mac === undefined ? undefined : formatMac(parseMac(conf.mac)!),
  });
  onFailure(() => deleteLinkIfExists(host, veth.host.name));
  attachHostVeth(host, veth.host, bridge, {
    hairpin: conf.hairpinMode,
    isolated: conf.portIsolation,
  });
  setupPortVlans(host, conf, veth.host);

  const interfaces = baseInterfaces(
    { name: bridge.name, mac: bridge.mac },
    { name: veth.host.name, mac: veth.host.mac },
    { name: veth.container.name, mac: veth.container.mac, sandbox: args.netns },
  );

  if (conf.macspoofchk) {
    const { setupSpoofCheck, spoofNames } = await import("./_bridge_spoofchk.ts");
    await setupSpoofCheck(spoofNames(args.containerId, args.ifName), {
      hostVeth: veth.host.name,
      mac: veth.container.mac ?? "",
      execer: ctx.execer,
    });
    onFailure(() => removeSpoofCheck(ctx));
  }

  let built: BuiltResult;
  if (ipamAdd !== undefined) {
    built = buildResult(interfaces, {
      ipam: await ipamAdd,
      dns: conf.dns,
      isGateway: conf.isGateway,
      isDefaultGateway: conf.isDefaultGateway,
    });
    await configureContainer(container, args.ifName, built.result, {
      netns,
      enableDad: conf.enabledad,
    });
    if (conf.isGateway) setupGateways(host, ctx, bridge, built.gateways, built.result);
    if (conf.ipMasq) {
      const own = (built.result.ips ?? []).map((ip) => ip.address);
      onFailure(() => removeMasq(ctx, own, otherLinkAddresses(container, veth.container.index)));
      await addMasq(ctx, built.result);
    }
  } else {
    built = buildResult(interfaces, { dns: conf.dns });
    if (!conf.disableContainerInterface) {
      try {
        container.linkSetUp(veth.container.index);
      } catch (error) {
        throw new Error(`failed to set "${args.ifName}" up: ${goErrorText(error)}`);
      }
    }
  }
  const { result } = built;
  await finishInterfaces(host, ctx, result, veth.host.name);

  // Remember the result on the veth itself for a repeated ADD (skipped if it does not fit).
  const alias = encodeRecord(
    recordOf(await ownerTag(conf.name, args.containerId), result, {
      keepDns: conf.dns === undefined,
    }),
  );
  if (alias !== undefined) setLinkAlias(host, veth.host.index, alias);
  undo.move();
  return result;
}

/** The container's `ifName` as DEL finds it: its addresses, and the way to delete it. */
interface ContainerLink extends Disposable {
  /** `ip/len` of its global-scope addresses. */
  readonly addresses: string[];
  /** `ip/len` of the global-scope addresses the container's other links hold. */
  readonly otherAddresses: string[];
  /** Deletes the link (nothing if there was none). */
  delete(): void;
}

/** Opens the container's `ifName` for DEL; undefined when the netns is gone. */
function openContainerLink(args: CmdArgs): ContainerLink | undefined {
  let netns: NetnsFd;
  try {
    netns = openNetnsFd(args.netns);
  } catch (error) {
    if (error instanceof NetnsNotFoundError && error.reason === "missing") return undefined;
    throw error;
  }
  let container: NetlinkHandle;
  try {
    container = openHandle({ netns });
  } catch (error) {
    netns.close();
    throw error;
  }
  const close = () => {
    container.close();
    netns.close();
  };
  try {
    const link = findLink(container, args.ifName);
    const text = (a: { address: string; prefixLength: number }) => `${a.address}/${a.prefixLength}`;
    const global = container.addrList().filter((a) => a.scope === 0);
    return {
      addresses: global.filter((a) => a.index === link?.index).map(text),
      otherAddresses: global.filter((a) => a.index !== link?.index).map(text),
      delete() {
        if (link === undefined) return;
        try {
          container.linkDel(link.index);
        } catch (error) {
          throw new Error(`failed to delete "${args.ifName}": ${goErrorText(error)}`);
        }
      },
      [Symbol.dispose]: close,
    };
  } catch (error) {
    close();
    throw error;
  }
}

async function cmdDel(args: CmdArgs, options: BridgeOptions): Promise<void> {
  const ctx = context(args, options);
  using link = args.netns === "" ? undefined : openContainerLink(args);
  const addresses = [...(link?.addresses ?? [])];
  // Families of the masquerade rules to look at: the interface's and prevResult's addresses.
  if (masquerades(ctx.conf)) {
    try {
      addresses.push(...(parsePrevResult(args.conf)?.ips ?? []).map((ip) => ip.address));
    } catch {
      // An unreadable prevResult must not block DEL.
    }
  }
  // The reference deletes the link, releases the lease, then removes the masquerade rules of
  // the addresses the link had. Here the rules go first: their restore returns at the kernel's
  // commit and spends its slow exit (12-16 ms) while the veth's kernel teardown (~20 ms) runs.
  // The lease still goes only after the link, and a failed rule removal still lets both happen
  // before it is reported. The container's interfaces on this network share one masquerade
  // chain: the jumps of addresses its other links hold stay, every other jump into the chain
  // goes (also with the link or the netns already gone: #810), and the chain once unused.
  const keep = link?.otherAddresses ?? [];
  let masqError: unknown;
  if (masquerades(ctx.conf)) {
    await removeMasq(ctx, addresses, keep).catch((error) => masqError = error);
  }
  link?.delete();
  await releaseAttachment(ctx, addresses, keep, { masquerade: false });
  if (masqError !== undefined) throw masqError;
}

async function cmdCheck(args: CmdArgs, options: BridgeOptions): Promise<void> {
  const { conf } = context(args, options);
  using netns = openContainerNetns(args.netns);
  // The reference also delegates CHECK without an IPAM type and then fails; layer 2 skips it.
  if (isLayer3(conf)) await delegateCheck(conf.ipamType, args);
  const { checkAttachment } = await import("./_bridge_check.ts");
  checkAttachment(args, { conf, netns });
}

/**
 * STATUS as upstream's bridge answers it: the IPAM plugin's STATUS, nothing
 * of its own. The rest of the config is not validated: Nomad asks STATUS
 * before every teardown and stops there on a failure.
 */
async function cmdStatus(args: CmdArgs): Promise<void> {
  const ipam = confField(args.conf, "ipam");
  const type = isJsonObject(ipam) ? confField(ipam, "type") : undefined;
  const ipamType = typeof type === "string" ? type : "";
  if (ipamType !== "") await delegateStatus(ipamType, args);
}

/**
 * GC (CNI 1.1; upstream's bridge has none): drops the masquerade rules of
 * containers not in `cni.dev/valid-attachments` and forwards GC to IPAM so
 * their leases go too. Without a valid-attachments list nothing is removed.
 */
async function cmdGc(args: CmdArgs, options: BridgeOptions): Promise<void> {
  const { conf } = context(args, options);
  const valid = validAttachments(args.conf);
  const jobs: Promise<unknown>[] = [];
  if (valid) {
    const { gcMasq } = await import("./_bridge_masq.ts");
    jobs.push(gcMasq(args.conf.name, valid, {
      execer: options.execer ?? defaultExecer(),
      lockPath: options.lockPath,
    }));
  }
  if (isLayer3(conf)) jobs.push(delegateGc(conf.ipamType, args));
  const outcomes = await Promise.allSettled(jobs);
  for (const outcome of outcomes) if (outcome.status === "rejected") throw outcome.reason;
}

/** The bridge plugin's handlers; `options` exist for tests. */
export function bridgeFuncs(options: BridgeOptions = {}): PluginFuncs {
  return {
    add: (args) => cmdAdd(args, options),
    del: (args) => cmdDel(args, options),
    check: (args) => cmdCheck(args, options),
    status: (args) => cmdStatus(args),
    gc: (args) => cmdGc(args, options),
  };
}

/** The bridge plugin (CNI 0.1.0 to 1.1.0). */
export const plugin: Plugin = {
  name: "bridge",
  supportedVersions: SUPPORTED_VERSIONS,
  funcs: bridgeFuncs(),
};

/**
 * The host-local IPAM plugin: behaviour and on-disk format of the reference
 * plugin (containernetworking/plugins v1.9.1), with owner lookups that do not
 * scan the lease directory, plus CNI 1.1 GC (release leases of attachments
 * the runtime no longer knows), which upstream leaves unimplemented. STATUS
 * succeeds, as upstream's missing handler does, even when a range set is
 * full: Nomad asks STATUS before every teardown and stops there on a
 * failure, so reporting exhaustion would block the DELs that end it. The
 * status endpoint shows how full each range set is.
 *
 * @module
 */

import { declaredCniVersion, validAttachments } from "../lib/cni/config.ts";
import type { CmdArgs, Plugin, Result } from "../lib/cni/types.ts";
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from "../lib/cni/version.ts";
import { allocate, check, release } from "../lib/ipam/allocator.ts";
import { type IpamConfig, loadIpamConfig } from "../lib/ipam/config.ts";
import { parseResolvConf } from "../lib/ipam/dns.ts";
import { DiskStore } from "../lib/ipam/store.ts";

/** Loads the IPAM config of an invocation (every verb validates it, as the reference does). */
export function loadConfig(args: CmdArgs): IpamConfig {
  return loadIpamConfig(args.conf, {
    cniArgs: args.args,
    cniVersion: declaredCniVersion(args.conf),
  });
}

/** ADD: one address per range set; the result carries routes and, with `resolvConf`, DNS. */
async function add(args: CmdArgs): Promise<Result> {
  const conf = loadConfig(args);
  const dns = conf.resolvConf === "" ? undefined : parseResolvConf(conf.resolvConf);
  using store = await DiskStore.open(conf.name, { dataDir: conf.dataDir });
  const ips = allocate(store, conf, { id: args.containerId, ifname: args.ifName });
  // Labelled with the version we implement; the skeleton converts it to the config's.
  const result: Result = { cniVersion: CURRENT_VERSION, ips };
  if (conf.routes) result.routes = conf.routes;
  if (dns) result.dns = dns;
  return result;
}

/** DEL: releases the attachment's addresses; unknown attachments succeed. */
async function del(args: CmdArgs): Promise<void> {
  const conf = loadConfig(args);
  using store = await DiskStore.open(conf.name, { dataDir: conf.dataDir });
  release(store, conf, { id: args.containerId, ifname: args.ifName });
}

/** CHECK: the attachment must hold at least one address. */
async function checkCmd(args: CmdArgs): Promise<void> {
  const conf = loadConfig(args);
  using store = await DiskStore.open(conf.name, { dataDir: conf.dataDir });
  check(store, { id: args.containerId, ifname: args.ifName });
}

/**
 * GC: releases every lease whose attachment is not in
 * `cni.dev/valid-attachments`. Without that key there is nothing to compare
 * against, so nothing is released (never wipe a network on a malformed call).
 */
async function gc(args: CmdArgs): Promise<void> {
  const conf = loadConfig(args);
  const valid = validAttachments(args.conf);
  if (valid === undefined) return;
  using store = await DiskStore.open(conf.name, { dataDir: conf.dataDir });
  store.gc(valid);
}

/** The host-local plugin for the skeleton. */
export const plugin: Plugin = {
  name: "host-local",
  supportedVersions: SUPPORTED_VERSIONS,
  funcs: { add, del, check: checkCmd, gc },
};

/**
 * host-local IPAM: configuration, ranges, the on-disk lease store (with its
 * owner index) and allocation semantics of the reference plugin.
 *
 * @example Usage
 * ```ts ignore
 * import { allocate, DiskStore, loadIpamConfig } from "./mod.ts";
 * const conf = loadIpamConfig(netConf, { cniArgs: "" });
 * using store = await DiskStore.open(conf.name, { dataDir: conf.dataDir });
 * const ips = allocate(store, conf, { id: "c1", ifname: "eth0" });
 * ```
 *
 * @module
 */
export * from "./allocator.ts";
export * from "./config.ts";
export * from "./dns.ts";
export * from "./lease_index.ts";
export * from "./range.ts";
export * from "./store.ts";

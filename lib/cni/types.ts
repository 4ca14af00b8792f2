/**
 * CNI data types. Plugins work with the current (1.x) result shape only; the
 * version layer converts to and from older shapes at the edges.
 *
 * @module
 */

/** A network interface in a result. */
export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

/** An address in a result; `interface` indexes `Result.interfaces`. */
export interface IPConfig {
  interface?: number;
  address: string;
  gateway?: string;
}

/** A route in a result. */
export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

/** DNS settings in a config or result. */
export interface DNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A result in the 1.x shape, labelled with the version it is reported as. */
export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IPConfig[];
  routes?: Route[];
  dns?: DNS;
}

/** The CNI verbs. */
export type Command = "ADD" | "DEL" | "CHECK" | "VERSION" | "GC" | "STATUS";

/** An attachment named in `cni.dev/valid-attachments` (GC). */
export interface Attachment {
  containerID: string;
  ifname: string;
}

/**
 * The generic part of a network configuration as a plugin receives it on
 * stdin. Plugin-specific keys stay in the object and are read by the plugin.
 */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  capabilities?: Record<string, boolean>;
  ipam?: { type: string; [key: string]: unknown };
  dns?: DNS;
  runtimeConfig?: Record<string, unknown>;
  args?: Record<string, unknown>;
  prevResult?: unknown;
  [key: string]: unknown;
}

/** What the skeleton hands to a plugin's handlers (Go's `skel.CmdArgs`). */
export interface CmdArgs {
  command: Command;
  containerId: string;
  netns: string;
  ifName: string;
  /** `CNI_ARGS` as given, unparsed. */
  args: string;
  /** `CNI_PATH` split on `:`. */
  path: string[];
  /** `CNI_NETNS_OVERRIDE` was `1`/`true`. */
  netnsOverride: boolean;
  /** The exact stdin bytes (delegated IPAM plugins get them unchanged). */
  stdinData: Uint8Array;
  /** stdin decoded, with `name` and `cniVersion` validated (`cniVersion` defaulted to 0.1.0). */
  conf: NetConf;
  /** The environment the plugin was started with (delegation passes it on). */
  env: Record<string, string>;
}

/** A plugin's handlers. ADD returns a 1.x-shaped result; the skeleton converts and prints it. */
export interface PluginFuncs {
  add(args: CmdArgs): Promise<Result>;
  del(args: CmdArgs): Promise<void>;
  check?(args: CmdArgs): Promise<void>;
  gc?(args: CmdArgs): Promise<void>;
  status?(args: CmdArgs): Promise<void>;
}

/** A plugin as the skeleton runs it. */
export interface Plugin {
  /** The plugin's name as in `CNI <name> plugin <version>`. */
  name: string;
  /** CNI versions this plugin accepts, ascending. */
  supportedVersions: readonly string[];
  funcs: PluginFuncs;
}

/**
 * The bridge plugin's configuration: decoding with the reference plugin's
 * rules and messages (`loadNetConf` of containernetworking/plugins v1.9.1),
 * plus the checks ADD makes before touching the kernel.
 *
 * @module
 */
import { argString, parseCniArgs } from "../lib/cni/args.ts";
import { CniError, ErrorCode } from "../lib/cni/error.ts";
import type { DNS, NetConf } from "../lib/cni/types.ts";
import { decodeStruct, type StructType } from "./_bridge_decode.ts";

/** The bridge name used when the config names none. */
export const DEFAULT_BRIDGE = "cni0";

/** The bridge plugin's view of its network configuration. */
export interface BridgeConf {
  /** Network name (`name`). */
  name: string;
  cniVersion: string;
  /** Bridge device name. @default {"cni0"} */
  bridge: string;
  /** Put the gateway address on the bridge and enable forwarding (implied by `isDefaultGateway`). */
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  /** `"iptables"`, `"nftables"`, or undefined for automatic choice. */
  ipMasqBackend?: string;
  /** 0 means the kernel default. */
  mtu: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  vlan: number;
  /** De-duplicated ascending trunk VLAN ids, or undefined when no trunk is configured. */
  vlans?: number[];
  /** Whether `vlanTrunk` was present at all (it turns on VLAN filtering even when empty). */
  vlanTrunkSet: boolean;
  preserveDefaultVlan: boolean;
  macspoofchk: boolean;
  enabledad: boolean;
  disableContainerInterface: boolean;
  portIsolation: boolean;
  /** IPAM plugin type; empty means layer-2 only. */
  ipamType: string;
  /** The config's `dns`, when any field is set (it then overrides IPAM's). */
  dns?: DNS;
  /** Container MAC from runtimeConfig, args.cni or CNI_ARGS (in that precedence). */
  mac?: string;
}

const BRIDGE_ARGS: StructType = { name: "BridgeArgs", fields: { mac: "string" } };
const VLAN_TRUNK: StructType = {
  name: "VlanTrunk",
  fields: { minID: "int", maxID: "int", id: "int" },
};

// The reference plugin's NetConf, field by field, with Go's type names for messages.
const NET_CONF: StructType = {
  name: "NetConf",
  fields: {
    cniVersion: "string",
    name: "string",
    type: "string",
    capabilities: "map[string]bool",
    ipam: { struct: { name: "IPAM", fields: { type: "string" } }, goType: "types.IPAM" },
    dns: {
      struct: {
        name: "DNS",
        fields: {
          nameservers: "[]string",
          domain: "string",
          search: "[]string",
          options: "[]string",
        },
      },
      goType: "types.DNS",
    },
    prevResult: "map[string]interface {}",
    bridge: "string",
    isGateway: "bool",
    isDefaultGateway: "bool",
    forceAddress: "bool",
    ipMasq: "bool",
    ipMasqBackend: "string",
    mtu: "int",
    hairpinMode: "bool",
    promiscMode: "bool",
    vlan: "int",
    vlanTrunk: { slice: VLAN_TRUNK, goType: "[]*main.VlanTrunk" },
    preserveDefaultVlan: "bool",
    macspoofchk: "bool",
    enabledad: "bool",
    disableContainerInterface: "bool",
    portIsolation: "bool",
    args: {
      struct: {
        name: "",
        fields: { cni: { struct: BRIDGE_ARGS, goType: "main.BridgeArgs" } },
      },
      goType: 'struct { Cni main.BridgeArgs "json:\\"cni,omitempty\\"" }',
    },
    runtimeConfig: {
      struct: { name: "", fields: { mac: "string" } },
      goType: 'struct { Mac string "json:\\"mac,omitempty\\"" }',
    },
  },
};

/** A trunk entry as configured: a single `id` and/or a `minID`..`maxID` range. */
export interface VlanTrunkEntry {
  id?: number;
  minID?: number;
  maxID?: number;
}

/**
 * Expands `vlanTrunk` into a sorted list of unique VLAN ids with the
 * reference plugin's checks and messages; returns undefined for no ids.
 */
export function collectVlanTrunk(entries: (VlanTrunkEntry | undefined)[]): number[] | undefined {
  const ids = new Set<number>();
  for (const entry of entries) {
    if (entry === undefined) continue;
    const { minID, maxID, id } = entry;
    if (minID !== undefined && maxID !== undefined) {
      if (minID <= 0 || minID > 4094) throw new Error("incorrect trunk minID parameter");
      if (maxID <= 0 || maxID > 4094) throw new Error("incorrect trunk maxID parameter");
      if (maxID < minID) throw new Error("minID is greater than maxID in trunk parameter");
      for (let v = minID; v <= maxID; v++) ids.add(v);
    } else if (maxID !== undefined) {
      throw new Error("minID and maxID should be configured simultaneously, minID is missing");
    } else if (minID !== undefined) {
      throw new Error("minID and maxID should be configured simultaneously, maxID is missing");
    }
    if (id !== undefined) {
      if (id <= 0 || id > 4094) throw new Error("incorrect trunk id parameter");
      ids.add(id);
    }
  }
  return ids.size === 0 ? undefined : [...ids].sort((a, b) => a - b);
}

function dnsIsSet(dns: DNS | undefined): dns is DNS {
  return dns !== undefined && (dns.nameservers !== undefined || dns.search !== undefined ||
    dns.options !== undefined || (dns.domain ?? "") !== "");
}

/** Options for {@linkcode parseBridgeConf}. */
export interface ParseBridgeConfOptions {
  /**
   * `CNI_ARGS` as given. Only `MAC` (and `IgnoreUnknown`) are known, so other
   * keys are an error unless `IgnoreUnknown=true`, as in the reference.
   * @default {""}
   */
  cniArgs?: string;
}

/**
 * Reads the bridge fields of a decoded network config. Errors carry the
 * reference plugin's messages (code 999), e.g. `invalid VLAN ID 5000 (must be
 * between 0 and 4094)` or `failed to load netconf: json: cannot unmarshal
 * string into Go struct field NetConf.mtu of type int`.
 */
export function parseBridgeConf(conf: NetConf, options: ParseBridgeConfOptions = {}): BridgeConf {
  let raw: Record<string, unknown>;
  try {
    raw = decodeStruct(conf as Record<string, unknown>, NET_CONF);
  } catch (error) {
    throw new Error(`failed to load netconf: ${(error as Error).message}`, { cause: error });
  }
  const flag = (key: string) => raw[key] === true;
  const vlan = (raw.vlan as number | undefined) ?? 0;
  if (vlan < 0 || vlan > 4094) {
    throw new Error(`invalid VLAN ID ${vlan} (must be between 0 and 4094)`);
  }
  const trunk = raw.vlanTrunk as (VlanTrunkEntry | undefined)[] | undefined;
  const vlans = trunk === undefined ? undefined : collectVlanTrunk(trunk);
  if (vlan > 0 && vlans !== undefined) {
    throw new Error("cannot set vlan and vlanTrunk at the same time");
  }
  const envMac = parseCniArgs(options.cniArgs ?? "", { MAC: argString }).MAC;
  const args = raw.args as { cni?: { mac?: string } } | undefined;
  const runtimeMac = (raw.runtimeConfig as { mac?: string } | undefined)?.mac;
  const mac = [runtimeMac, args?.cni?.mac, envMac].find((m) => m !== undefined && m !== "");
  const dns = raw.dns as DNS | undefined;
  const isDefaultGateway = flag("isDefaultGateway");
  return {
    name: (raw.name as string | undefined) ?? "",
    cniVersion: (raw.cniVersion as string | undefined) ?? "",
    bridge: (raw.bridge as string | undefined) ?? DEFAULT_BRIDGE,
    isGateway: flag("isGateway") || isDefaultGateway,
    isDefaultGateway,
    forceAddress: flag("forceAddress"),
    ipMasq: flag("ipMasq"),
    ipMasqBackend: raw.ipMasqBackend as string | undefined,
    // The reference sets only a positive MTU: a negative one means the kernel's default too.
    mtu: Math.max(0, (raw.mtu as number | undefined) ?? 0),
    hairpinMode: flag("hairpinMode"),
    promiscMode: flag("promiscMode"),
    vlan,
    vlans,
    vlanTrunkSet: trunk !== undefined,
    preserveDefaultVlan: flag("preserveDefaultVlan"),
    macspoofchk: flag("macspoofchk"),
    enabledad: flag("enabledad"),
    disableContainerInterface: flag("disableContainerInterface"),
    portIsolation: flag("portIsolation"),
    ipamType: (raw.ipam as { type?: string } | undefined)?.type ?? "",
    dns: dnsIsSet(dns) ? dns : undefined,
    mac,
  };
}

/**
 * Why `name` cannot be a Linux interface name, or undefined when it can:
 * at most 15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
 */
export function interfaceNameProblem(name: string): string | undefined {
  if (name === "") return "is empty";
  if (new TextEncoder().encode(name).length > 15) return "is longer than 15 bytes";
  if (name === "." || name === "..") return "is . or ..";
  if (/[/:\s]/.test(name)) return "contains / or : or whitespace characters";
  return undefined;
}

/**
 * Parses a MAC address the way Go's `net.ParseMAC` accepts a 6-byte one
 * (`aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` or `aabb.ccdd.eeff`); returns the
 * bytes or undefined when it is not one.
 */
export function parseMac(text: string): Uint8Array | undefined {
  let hex: string[];
  if (/^([0-9a-fA-F]{2}[:]){5}[0-9a-fA-F]{2}$/.test(text)) hex = text.split(":");
  else if (/^([0-9a-fA-F]{2}-){5}[0-9a-fA-F]{2}$/.test(text)) hex = text.split("-");
  else if (/^([0-9a-fA-F]{4}\.){2}[0-9a-fA-F]{4}$/.test(text)) {
    hex = text.replaceAll(".", "").match(/../g) ?? [];
  } else return undefined;
  return new Uint8Array(hex.map((byte) => parseInt(byte, 16)));
}

/**
 * The checks ADD makes before it changes anything. The reference plugin's
 * own checks keep its messages and code 999; the ones it lacks (it would
 * fail half-way or silently ignore the value) use code 7, invalid network
 * config.
 */
export function validateForAdd(conf: BridgeConf): void {
  if (conf.ipamType !== "" && conf.disableContainerInterface) {
    throw new Error("cannot use IPAM when DisableContainerInterface flag is set");
  }
  if (conf.hairpinMode && conf.promiscMode) {
    throw new Error("cannot set hairpin mode and promiscuous mode at the same time");
  }
  const problem = interfaceNameProblem(conf.bridge);
  if (problem !== undefined) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `invalid bridge name ${JSON.stringify(conf.bridge)}: name ${problem}`,
    );
  }
  if (
    conf.ipMasq && conf.ipamType !== "" && conf.ipMasqBackend !== undefined &&
    conf.ipMasqBackend !== "iptables" && conf.ipMasqBackend !== "nftables"
  ) {
    throw new Error(`unknown ipmasq backend ${JSON.stringify(conf.ipMasqBackend)}`);
  }
  // The reference fails on this only once the bridge exists (in veth creation).
  if (conf.mac !== undefined && parseMac(conf.mac) === undefined) {
    throw new Error(`failed to make veth pair: address ${conf.mac}: invalid MAC address`);
  }
}

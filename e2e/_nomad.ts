/**
 * What Nomad does around a CNI call, re-stated in TypeScript so the
 * end-to-end tests feed cnibox exactly Nomad's inputs and read its results
 * the way Nomad does (hashicorp/nomad v2.0.x with go-cni v1.1.13, see
 * shared/reference/nomad-and-podman.md part A):
 *
 * - the default bridge conflist (client/allocrunner/cni/bridge.go), byte for byte;
 * - CNI_ARGS for ADD/CHECK (`IgnoreUnknown=true` + `NOMAD_*`; DEL gets none);
 * - port mappings as go-cni serialises them (PascalCase, tcp and udp, `HostIP: ""`);
 * - the plugin fingerprint (first whitespace token that go-version's
 *   `NewSemver` accepts) and the `semver >= x` constraint check;
 * - the allocation address picked from a result (go-cni's interface map,
 *   then Nomad's `cniToAllocNet`).
 *
 * Test-only; nothing here touches the system.
 *
 * @module
 */

/** Nomad's default bridge conflist as it builds it (tab-indented, field order), dataDir `/var/run/cni`. */
export const NOMAD_CONFLIST_URL: URL = new URL(
  "../testdata/e2e/nomad_bridge.conflist",
  import.meta.url,
);

/** The plugins Nomad's bridge mode constrains (each must report `>= 0.4.0`). */
export const NOMAD_BRIDGE_PLUGINS = [
  "bridge",
  "firewall",
  "host-local",
  "loopback",
  "portmap",
] as const;

/** Reads Nomad's conflist with its hard-coded dataDir moved to `dataDir` (all other bytes kept). */
export async function nomadConflist(dataDir: string): Promise<string> {
  const text = await Deno.readTextFile(NOMAD_CONFLIST_URL);
  return text.replace(`"dataDir": "/var/run/cni"`, `"dataDir": ${JSON.stringify(dataDir)}`);
}

/** Identity of an allocation as Nomad passes it in CNI_ARGS. */
export interface NomadAlloc {
  /** Allocation ID (a UUID): also the CNI container ID. */
  id: string;
  /** @default {"e2e"} */
  jobId?: string;
  /** @default {"web"} */
  group?: string;
}

/**
 * CNI_ARGS of Nomad's ADD and CHECK. Nomad builds them from a Go map, so the
 * order is random; `IgnoreUnknown` is placed in the middle here on purpose
 * (its position must not matter).
 */
export function nomadCniArgs(alloc: NomadAlloc): string {
  return [
    "NOMAD_REGION=global",
    "NOMAD_NAMESPACE=default",
    "IgnoreUnknown=true",
    `NOMAD_JOB_ID=${alloc.jobId ?? "e2e"}`,
    `NOMAD_GROUP_NAME=${alloc.group ?? "web"}`,
    `NOMAD_ALLOC_ID=${alloc.id}`,
  ].join(";");
}

/** One entry of go-cni's `PortMapping` (a struct without JSON tags: PascalCase keys). */
export interface GoCniPortMapping {
  HostPort: number;
  ContainerPort: number;
  Protocol: "tcp" | "udp";
  HostIP: string;
}

/**
 * Nomad's mappings for one port (`getPortMapping`): a tcp and a udp entry,
 * `ContainerPort` = the port's `to` (or the host port), `HostIP` blank.
 */
export function nomadPortMappings(hostPort: number, to = hostPort): GoCniPortMapping[] {
  return (["tcp", "udp"] as const).map((Protocol) => ({
    HostPort: hostPort,
    ContainerPort: to,
    Protocol,
    HostIP: "",
  }));
}

// hashicorp/go-version SemverRegexpRaw, anchored as NewSemver anchors it.
const SEMVER = new RegExp(
  "^v?([0-9]+(\\.[0-9]+)*?)" +
    "(-([0-9]+[0-9A-Za-z\\-~]*(\\.[0-9A-Za-z\\-~]+)*)|(-([A-Za-z\\-~]+[0-9A-Za-z\\-~]*(\\.[0-9A-Za-z\\-~]+)*)))?" +
    "(\\+([0-9A-Za-z\\-~]+(\\.[0-9A-Za-z\\-~]+)*))??$",
);

/** A version as go-version parses it. */
export interface SemVer {
  segments: number[];
  prerelease: string;
}

/** go-version's `NewSemver`; undefined where Go returns an error. */
export function parseSemver(text: string): SemVer | undefined {
  const match = SEMVER.exec(text);
  if (!match) return undefined;
  const segments = match[1].split(".").map(Number);
  while (segments.length < 3) segments.push(0);
  return { segments, prerelease: match[7] || match[4] || "" };
}

/**
 * The version Nomad's CNI fingerprint reads from a plugin's bare run
 * (`plugins_cni.go` `detectOnePlugin`): the first whitespace-separated token
 * of stdout+stderr that parses as semver, or undefined (attribute unset).
 */
export function fingerprintVersion(output: string): string | undefined {
  return output.split(/\s+/).find((token) => token !== "" && parseSemver(token) !== undefined);
}

/**
 * Nomad's `semver` constraint `>= minimum`: numeric segments compared in
 * order, and a prerelease never satisfies a constraint without one.
 */
export function satisfiesAtLeast(version: string, minimum: string): boolean {
  const have = parseSemver(version);
  const want = parseSemver(minimum);
  if (!have || !want) return false;
  if (have.prerelease !== "" && want.prerelease === "") return false;
  const length = Math.max(have.segments.length, want.segments.length);
  for (let i = 0; i < length; i++) {
    const a = have.segments[i] ?? 0;
    const b = want.segments[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

interface ResultLike {
  interfaces?: { name: string; sandbox?: string }[];
  ips?: { interface?: number; address: string }[];
}

/** The address Nomad records for an allocation, and the interface it came from. */
export interface AllocAddress {
  /** The address without prefix length. */
  address: string;
  interfaceName: string;
}

/**
 * The allocation address Nomad takes from a CNI result: go-cni files each IP
 * under its interface (no index: the default `eth0`; an index past the
 * interface list makes the result invalid, and an index equal to its length
 * crashes go-cni, so both are refused here), then Nomad picks the first
 * interface by sorted name that has a sandbox and an IP, else the first with
 * an IP. Throws like Nomad when there is none.
 */
export function nomadAllocAddress(result: unknown, defaultInterface = "eth0"): AllocAddress {
  const { interfaces = [], ips = [] } = result as ResultLike;
  const byName = new Map<string, { sandbox: string; ips: string[] }>();
  byName.set(defaultInterface, { sandbox: "", ips: [] });
  for (const iface of interfaces) byName.set(iface.name, { sandbox: iface.sandbox ?? "", ips: [] });
  for (const ip of ips) {
    if (ip.interface !== undefined && (ip.interface < 0 || ip.interface >= interfaces.length)) {
      throw new RangeError(
        `invalid result: ips[].interface ${ip.interface} with ${interfaces.length} interfaces`,
      );
    }
    const name = ip.interface === undefined ? defaultInterface : interfaces[ip.interface].name;
    byName.get(name)!.ips.push(ip.address.split("/")[0]);
  }
  const names = [...byName.keys()].sort();
  const pick =
    names.find((name) => byName.get(name)!.sandbox !== "" && byName.get(name)!.ips.length) ??
      names.find((name) => byName.get(name)!.ips.length > 0);
  if (pick === undefined) {
    throw new Error("failed to configure network: no interface with an address");
  }
  return { address: byName.get(pick)!.ips[0], interfaceName: pick };
}

/**
 * The loopback plugin: brings `lo` up in the container's namespace (ADD),
 * down again (DEL), and checks that it is up (CHECK). `CNI_IFNAME` is
 * ignored, as upstream does.
 *
 * @module
 */
import { declaredCniVersion, parsePrevResult } from "../lib/cni/config.ts";
import { fieldTypeError, goField, isJsonObject } from "../lib/cni/_go.ts";
import type { CmdArgs, IPConfig, NetConf, Plugin, Result } from "../lib/cni/types.ts";
import { SUPPORTED_VERSIONS } from "../lib/cni/version.ts";
import { AF_INET, AF_INET6, openHandle } from "../lib/netlink/mod.ts";
import { NetnsNotFoundError } from "../lib/sys/netns.ts";

const LOOPBACK = "lo";

function isLoopbackAddress(address: string): boolean {
  return address === "::1" || address.startsWith("127.");
}

/**
 * prevResult as upstream's `parseNetConf` reads it, before the namespace is
 * touched: a bad one fails the ADD with lo left as it was.
 */
function prevResultOf(conf: NetConf): Result | undefined {
  const raw = goField(conf, "prevResult");
  if (raw !== undefined && raw !== null && !isJsonObject(raw)) {
    const error = fieldTypeError(raw, "NetConf.prevResult", "map[string]interface {}");
    throw new Error(`failed to parse network config: ${error.message}`);
  }
  try {
    return parsePrevResult(conf);
  } catch (error) {
    throw new Error(`failed to parse prevResult: ${(error as Error).message}`, { cause: error });
  }
}

function add(args: CmdArgs): Promise<Result> {
  const prevResult = prevResultOf(args.conf);
  using handle = openHandle({ netns: args.netns });
  handle.linkSetUp(LOOPBACK);
  const addresses = handle.addrList({ link: LOOPBACK });
  for (const { address } of addresses) {
    if (!isLoopbackAddress(address)) {
      throw new Error(`loopback interface found with non-loopback address "${address}"`);
    }
  }

  if (prevResult) return Promise.resolve(prevResult);

  // Labelled with the config's version but 1.x-shaped, exactly as upstream
  // builds it: the skeleton's same-version conversion leaves it unchanged.
  const ips: IPConfig[] = [];
  for (const family of [AF_INET, AF_INET6]) {
    const first = addresses.find((address) => address.family === family);
    if (first) ips.push({ interface: 0, address: `${first.address}/${first.prefixLength}` });
  }
  const result: Result = {
    cniVersion: declaredCniVersion(args.conf),
    interfaces: [{ name: LOOPBACK, mac: "00:00:00:00:00:00", sandbox: args.netns }],
  };
  if (ips.length > 0) result.ips = ips;
  return Promise.resolve(result);
}

function del(args: CmdArgs): Promise<void> {
  if (args.netns === "") return Promise.resolve();
  try {
    using handle = openHandle({ netns: args.netns });
    handle.linkSetDown(LOOPBACK);
  } catch (error) {
    // The namespace is already gone: nothing is left to undo.
    if (!(error instanceof NetnsNotFoundError && error.reason === "missing")) throw error;
  }
  return Promise.resolve();
}

function check(args: CmdArgs): Promise<void> {
  using handle = openHandle({ netns: args.netns });
  if (!handle.linkByName(LOOPBACK).up) throw new Error("loopback interface is down");
  return Promise.resolve();
}

/** The loopback plugin for the skeleton. */
export const plugin: Plugin = {
  name: "loopback",
  supportedVersions: SUPPORTED_VERSIONS,
  funcs: { add, del, check },
};

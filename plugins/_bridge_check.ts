/**
 * The bridge plugin's CHECK: the attachment in `prevResult` still exists as
 * made (bridge, container veth, host veth on the bridge with the container
 * end as peer, addresses with their subnet routes, routes), with the
 * reference's checks and messages (`cmdCheck`, `ValidateExpectedInterfaceIPs`,
 * `ValidateExpectedRoute`).
 *
 * @module
 */
import { parsePrevResult } from "../lib/cni/config.ts";
import { toCurrentResult } from "../lib/cni/result.ts";
import type { CmdArgs, Interface, Result, Route } from "../lib/cni/types.ts";
import {
  AF_INET,
  AF_INET6,
  type Link,
  type NetlinkHandle,
  type NetnsFd,
  openHandle,
} from "../lib/netlink/mod.ts";
import { type Cidr, formatIp, parseIp, tryParseCidr } from "../lib/ip/cidr.ts";
import type { BridgeConf } from "./_bridge_config.ts";
import { findLink } from "./_bridge_link.ts";
import { goIpNet, sameCidr, sameIp, sameNetwork } from "./_bridge_result.ts";

function validateInterface(
  handle: NetlinkHandle,
  iface: Interface | undefined,
  inSandbox: boolean,
): Link {
  if (iface === undefined || !iface.name) throw new Error("Interface name missing ");
  const link = findLink(handle, iface.name);
  if (link === undefined) throw new Error(`Interface name ${iface.name} not found`);
  if (inSandbox && !iface.sandbox) {
    throw new Error(`Interface ${iface.name} is expected to be in a sandbox`);
  }
  if (!inSandbox && iface.sandbox) {
    throw new Error(`Interface ${iface.name} should not be in sandbox`);
  }
  return link;
}

/**
 * Checks the attachment described by `args.conf.prevResult` against the
 * kernel (IPAM's CHECK is the caller's). Throws the reference's messages,
 * e.g. `Required prevResult missing` or `Failed to match addr 10.1.0.5/24 on
 * interface eth0`.
 */
export function checkAttachment(
  args: CmdArgs,
  options: { conf: BridgeConf; netns: NetnsFd },
): void {
  const { conf, netns } = options;
  if (args.conf.prevResult === undefined || args.conf.prevResult === null) {
    throw new Error("Required prevResult missing");
  }
  const result = toCurrentResult(parsePrevResult(args.conf)!);
  const interfaces = result.interfaces ?? [];
  const brMap = interfaces.find((i) => i.name === conf.bridge);
  const contMap = interfaces.find((i) => i.name === args.ifName && i.sandbox === args.netns);

  using host = openHandle();
  using container = openHandle({ netns });
  const brLink = validateInterface(host, brMap, false);
  if (brLink.kind !== "bridge") {
    throw new Error(`Interface ${brMap!.name} does not have link type of bridge`);
  }
  if (brMap!.mac && brMap!.mac !== brLink.mac) {
    throw new Error(`Bridge interface ${brMap!.name} Mac doesn't match: ${brMap!.mac}`);
  }
  if (brLink.promisc !== conf.promiscMode) {
    throw new Error(
      `Bridge interface ${
        brMap!.name
      } configured Promisc Mode ${conf.promiscMode} doesn't match current state: ${brLink.promisc} `,
    );
  }
  if (args.netns !== (contMap?.sandbox ?? "")) {
    throw new Error(
      `Sandbox in prevResult ${
        contMap?.sandbox ?? ""
      } doesn't match configured netns: ${args.netns}`,
    );
  }
  const contLink = validateInterface(container, contMap, true);
  if (contLink.kind !== "veth") {
    throw new Error(`Error: Container interface ${contLink.name} not of type veth`);
  }
  if (contLink.linkIndex === undefined) {
    throw new Error(`Unable to obtain veth peer index for veth ${contLink.name}`);
  }
  if (contMap!.mac && contMap!.mac !== contLink.mac) {
    throw new Error(
      `Interface ${contMap!.name} Mac ${contMap!.mac} doesn't match container Mac: ${contLink.mac}`,
    );
  }
  let vethFound = false;
  for (const iface of interfaces) {
    if (iface.name === brMap!.name || iface.name === contMap!.name) continue;
    const link = validateInterface(host, iface, false);
    if (link.kind !== "veth") continue;
    if (link.linkIndex === undefined) {
      throw new Error(`Unable to obtain veth peer index for veth ${link.name}`);
    }
    if (link.index !== contLink.linkIndex || link.linkIndex !== contLink.index) continue;
    if (link.masterIndex !== brLink.index) continue;
    if (iface.mac && iface.mac !== link.mac) {
      throw new Error(`Interface ${iface.name} Mac doesn't match: ${iface.mac} not found`);
    }
    vethFound = true;
    break;
  }
  if (!vethFound) throw new Error(`CNI veth created for bridge ${conf.bridge} was not found`);
  checkAddresses(container, contLink, result);
  checkRoutes(container, result);
}

/** Each result address is on the interface with its connected route (`ValidateExpectedInterfaceIPs`). */
function checkAddresses(container: NetlinkHandle, link: Link, result: Result): void {
  const present = container.addrList({ link: link.index });
  const routes = container.routeList();
  for (const ip of result.ips ?? []) {
    const cidr = tryParseCidr(ip.address);
    if (cidr === undefined) continue;
    const found = present.some((a) => sameCidr(`${a.address}/${a.prefixLength}`, ip.address));
    if (!found) throw new Error(`Failed to match addr ${ip.address} on interface ${link.name}`);
    const hasRoute = routes.some((r) =>
      r.dst !== undefined && sameNetwork(`${r.dst.address}/${r.dst.prefixLength}`, ip.address)
    );
    if (!hasRoute) {
      throw new Error(`Failed to find Gateway ${ip.gateway ?? "<nil>"} for interface ${link.name}`);
    }
  }
}

/** Each result route is in the main table (`ValidateExpectedRoute`); a default route by dst only. */
function checkRoutes(container: NetlinkHandle, result: Result): void {
  const routes = container.routeList();
  for (const route of result.routes ?? []) {
    const dst = tryParseCidr(route.dst);
    if (dst === undefined) throw new Error(`Invalid static route found ${JSON.stringify(route)}`);
    const family = dst.address.family === 4 ? AF_INET : AF_INET6;
    const found = routes.some((r) => {
      if (r.family !== family) return false;
      if (dst.prefixLength === 0) return r.dst === undefined;
      if (
        r.dst === undefined || !sameNetwork(`${r.dst.address}/${r.dst.prefixLength}`, route.dst)
      ) {
        return false;
      }
      // A route given without gw was installed via the family's gateway; accept that.
      return route.gw === undefined || (r.gw !== undefined && sameIp(r.gw, route.gw));
    });
    if (!found) {
      throw new Error(`Expected Route ${goRouteText(route, dst)} not found in routing table`);
    }
  }
}

/**
 * The route as libcni's `Route.String()` prints it: `{Dst:{IP:0.0.0.0
 * Mask:00000000} GW:<nil> MTU:0 AdvMSS:0 Priority:0 Table:<nil>
 * Scope:<nil>}` (Go's `%+v` of the destination, which keeps host bits, and
 * its mask in hex).
 */
export function goRouteText(route: Route, dst: Cidr): string {
  const gw = route.gw === undefined ? "<nil>" : formatIp(parseIp(route.gw));
  const number = (value: number | undefined) => value === undefined ? "<nil>" : String(value);
  return `{Dst:${goIpNet(dst, "%+v")} GW:${gw} MTU:${route.mtu ?? 0} ` +
    `AdvMSS:${route.advmss ?? 0} Priority:${route.priority ?? 0} Table:${number(route.table)} ` +
    `Scope:${number(route.scope)}}`;
}

/**
 * The bridge plugin's use of lib/firewall's ipMasq rules: backend choice as
 * the reference makes it, setup for a result's addresses, and a teardown
 * that needs no addresses (the per-container chain and the nftables rules
 * are found by their names), so DEL can clean up after the netns is gone;
 * it keeps the jumps of addresses the container's other interfaces hold.
 *
 * @module
 */
import { type Execer, findCommand, FirewallToolError } from "../lib/firewall/exec.ts";
import { gcIpMasq, setupIpMasq, teardownIpMasq } from "../lib/firewall/ipmasq.ts";
import type { IpFamily } from "../lib/ip/cidr.ts";
import type { Attachment } from "../lib/cni/types.ts";

/** Whose rules: the network, container and interface of one attachment. */
export interface MasqOwner {
  network: string;
  containerId: string;
  ifName: string;
}

/** How to run the tools. */
export interface MasqOptions {
  execer: Execer;
  /** iptables lock file. @default {lib/firewall's default} */
  lockPath?: string;
  /** Teardown: the attachment's addresses (`ip/len`) as far as known (see `teardownIpMasq`). */
  addresses?: readonly string[];
  /** Teardown: addresses (`ip/len`) the container's other interfaces hold; their jumps stay. */
  keep?: readonly string[];
}

/**
 * The backend for `ipMasqBackend` (validated before): as configured, else
 * iptables unless only nft is installed (the reference's automatic choice).
 */
export function masqBackend(configured: string | undefined): "iptables" | "nftables" {
  if (configured === "iptables" || configured === "nftables") return configured;
  return findCommand("iptables") === undefined && findCommand("nft") !== undefined
    ? "nftables"
    : "iptables";
}

/** Masquerades traffic from `addresses` (`ip/len`, as in the result) leaving their subnets. */
export async function setupMasq(
  owner: MasqOwner,
  addresses: readonly string[],
  options: MasqOptions & { backend: "iptables" | "nftables" },
): Promise<void> {
  await setupIpMasq(owner.network, addresses, {
    containerId: owner.containerId,
    ifName: owner.ifName,
    backend: options.backend,
    execer: options.execer,
    lockPath: options.lockPath,
  });
}

/**
 * Removes an attachment's masquerading from both backends (iptables: every
 * POSTROUTING jump into the container's chain but those of `keep`, for
 * `families`, and the chain once unused; nftables: the rules carrying its
 * instance hash). A backend
 * whose tool is not installed is skipped; other errors are joined.
 */
export async function teardownMasq(
  owner: MasqOwner,
  families: readonly IpFamily[],
  options: MasqOptions,
): Promise<void> {
  const outcomes = await Promise.allSettled([
    teardownIpMasq(owner.network, {
      containerId: owner.containerId,
      families,
      addresses: options.addresses,
      keep: options.keep,
      execer: options.execer,
      lockPath: options.lockPath,
    }),
    teardownIpMasq(owner.network, {
      backend: "nftables",
      containerId: owner.containerId,
      ifName: owner.ifName,
      execer: options.execer,
    }),
  ]);
  const errors = outcomes.flatMap((outcome) =>
    outcome.status === "rejected" && !missingTool(outcome.reason)
      ? [(outcome.reason as Error).message]
      : []
  );
  if (errors.length > 0) throw new Error(errors.join("\n"));
}

/** The tool (iptables or nft) is not installed: nothing of that backend can exist. */
function missingTool(error: unknown): boolean {
  return error instanceof FirewallToolError && error.code === 127;
}

/**
 * CNI 1.1 GC (which upstream's bridge lacks): removes this network's
 * masquerade rules of containers not in `valid`, in both backends, as DEL
 * tears down both. Returns the container ids cleaned up.
 */
export async function gcMasq(
  network: string,
  valid: readonly Attachment[],
  options: MasqOptions,
): Promise<string[]> {
  const outcomes = await Promise.allSettled(
    (["iptables", "nftables"] as const).map((backend) =>
      gcIpMasq(network, valid, { backend, execer: options.execer, lockPath: options.lockPath })
    ),
  );
  const errors = outcomes.flatMap((outcome) =>
    outcome.status === "rejected" && !missingTool(outcome.reason)
      ? [(outcome.reason as Error).message]
      : []
  );
  if (errors.length > 0) throw new Error(errors.join("\n"));
  return outcomes.flatMap((outcome) => outcome.status === "fulfilled" ? outcome.value : []);
}

/**
 * Chain and rule-owner names derived by hashing, exactly as the reference
 * plugins derive them (SHA-512 over the raw concatenation, lowercase hex,
 * truncated), so rules made by either implementation are found by the other.
 *
 * @module
 */

/** The longest chain name iptables accepts. */
export const MAX_CHAIN_NAME_LENGTH = 28;

/** Lowercase hex SHA-512 of the UTF-8 bytes of `text`. */
export async function sha512Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-512", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Options for {@linkcode formatChainName}. */
export interface ChainNameOptions {
  /** Text after `CNI-`: `"DN-"` for portmap DNAT, `"SN-"` for legacy SNAT. @default {""} */
  prefix?: string;
}

/**
 * The per-container chain name `CNI-[prefix]<hex>` truncated to 28 characters,
 * hashing `network + containerId` (Go's `utils.FormatChainName`).
 *
 * @example Usage
 * ```ts
 * import { assertEquals } from "@std/assert";
 * assertEquals(await formatChainName("mynet", "abc123"), "CNI-70a29d9dc18bc4d652ea5d59");
 * ```
 */
export async function formatChainName(
  network: string,
  containerId: string,
  options: ChainNameOptions = {},
): Promise<string> {
  const name = `CNI-${options.prefix ?? ""}${await sha512Hex(network + containerId)}`;
  return name.slice(0, MAX_CHAIN_NAME_LENGTH);
}

/** The 16-hex-digit network hash of the nftables ipMasq backend. */
export async function nftNetworkHash(network: string): Promise<string> {
  return (await sha512Hex(network)).slice(0, 16);
}

/** The `<netHash>-<hash(ifname:containerId)>` instance hash of the nftables ipMasq backend. */
export async function nftInstanceHash(
  network: string,
  options: { ifName: string; containerId: string },
): Promise<string> {
  const instance = (await sha512Hex(`${options.ifName}:${options.containerId}`)).slice(0, 16);
  return `${await nftNetworkHash(network)}-${instance}`;
}

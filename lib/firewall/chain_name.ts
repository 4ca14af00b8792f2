/**
 * Chain and rule-owner names derived by hashing, exactly as the reference
 * plugins derive them (SHA-512 over the raw concatenation, lowercase hex,
 * truncated), so rules made by either implementation are found by the other.
 *
 * @module
 */

/** The longest chain name iptables accepts. */
export const MAX_CHAIN_NAME_LENGTH = 28;

// A plugin run hashes the same text for several names (portmap's DN- and SN- chains, a chain
// named again after planning) and each WebCrypto digest is an async op that cost 0.5-4 ms when
// first awaited in a plugin run, so digests are kept per process (bounded, for long runs).
const digests = new Map<string, Promise<string>>();
const MAX_KEPT_DIGESTS = 256;

/** Lowercase hex SHA-512 of the UTF-8 bytes of `text`. */
export function sha512Hex(text: string): Promise<string> {
  let digest = digests.get(text);
  if (digest === undefined) {
    if (digests.size >= MAX_KEPT_DIGESTS) digests.clear();
    digest = crypto.subtle.digest("SHA-512", new TextEncoder().encode(text)).then((bytes) =>
      Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("")
    );
    digests.set(text, digest);
  }
  return digest;
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

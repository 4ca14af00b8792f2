/**
 * Private IP helpers with Go's `net` semantics, used where the CNI library
 * parses and prints addresses: `net.ParseIP`, `net.ParseCIDR`, `IP.String()`
 * and `IPNet.String()`. Addresses are kept as 16 bytes (IPv4 as v4-mapped),
 * the way Go stores them.
 *
 * @module
 */

/** A parsed CIDR as Go keeps it: the address (unmasked) and prefix length. */
export interface GoCidr {
  /** 16 bytes; IPv4 addresses are v4-mapped. */
  ip: Uint8Array;
  prefix: number;
  /** The mask is 4 bytes long (the text was an IPv4 address). */
  mask4: boolean;
}

function parseV4(text: string, out: Uint8Array, offset: number): boolean {
  const fields = text.split(".");
  if (fields.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const f = fields[i];
    // netip rejects empty fields, non-digits, values > 255 and leading zeros.
    if (!/^[0-9]{1,3}$/.test(f) || (f.length > 1 && f[0] === "0")) return false;
    const n = Number(f);
    if (n > 255) return false;
    out[offset + i] = n;
  }
  return true;
}

function parseV6(text: string): Uint8Array | undefined {
  const ip = new Uint8Array(16);
  let ellipsis = -1;
  let i = 0; // byte index
  let s = text;
  if (s.startsWith("::")) {
    ellipsis = 0;
    s = s.slice(2);
    if (s === "") return ip;
  }
  while (i < 16) {
    const m = /^[0-9a-fA-F]{1,4}/.exec(s);
    if (!m) return undefined;
    // An embedded IPv4 address takes the last 4 bytes.
    if (s.length > m[0].length && s[m[0].length] === ".") {
      if (ellipsis < 0 && i !== 12) return undefined;
      if (i + 4 > 16) return undefined;
      if (!parseV4(s, ip, i)) return undefined;
      i += 4;
      s = "";
      break;
    }
    if (s.length > m[0].length && /[0-9a-fA-F]/.test(s[m[0].length])) return undefined;
    const v = parseInt(m[0], 16);
    ip[i] = v >> 8;
    ip[i + 1] = v & 0xff;
    i += 2;
    s = s.slice(m[0].length);
    if (s === "") break;
    if (s[0] !== ":") return undefined;
    if (s === ":") return undefined;
    s = s.slice(1);
    if (s[0] === ":") {
      if (ellipsis >= 0) return undefined;
      ellipsis = i;
      s = s.slice(1);
      if (s === "") break;
    }
  }
  if (s !== "") return undefined;
  if (i < 16) {
    if (ellipsis < 0) return undefined;
    const n = 16 - i;
    for (let j = i - 1; j >= ellipsis; j--) ip[j + n] = ip[j];
    ip.fill(0, ellipsis, ellipsis + n);
  } else if (ellipsis >= 0) {
    // "::" must stand for at least one group of zeros.
    return undefined;
  }
  return ip;
}

/** Go's `net.ParseIP`: 16 bytes, or `undefined` when invalid. */
export function parseIp(text: string): Uint8Array | undefined {
  if (text.includes(":")) return text.includes("%") ? undefined : parseV6(text);
  const ip = new Uint8Array(16);
  ip[10] = ip[11] = 0xff;
  return parseV4(text, ip, 12) ? ip : undefined;
}

/** Go's `net.ParseCIDR` keeping the unmasked address (`types.ParseCIDR`), or `undefined`. */
export function parseCidr(text: string): GoCidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const addr = text.slice(0, slash);
  const mask = text.slice(slash + 1);
  const ip = parseIp(addr);
  if (!ip) return undefined;
  const mask4 = !addr.includes(":");
  // dtoi: decimal digits only, leading zeros allowed.
  if (!/^[0-9]+$/.test(mask)) return undefined;
  const prefix = Number(mask);
  if (prefix > (mask4 ? 32 : 128)) return undefined;
  return { ip, prefix, mask4 };
}

/** Go's `IP.To4() != nil`: an IPv4 or v4-mapped address. */
export function isV4(ip: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (ip[i] !== 0) return false;
  return ip[10] === 0xff && ip[11] === 0xff;
}

/** Go's `IP.String()`. */
export function formatIp(ip: Uint8Array): string {
  if (isV4(ip)) return `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((ip[i] << 8) | ip[i + 1]);
  // RFC 5952: the longest run (>= 2) of zero groups becomes "::", the first on ties.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (list: number[]) => list.map((g) => g.toString(16)).join(":");
  if (best < 0) return hex(groups);
  return hex(groups.slice(0, best)) + "::" + hex(groups.slice(best + bestLen));
}

/** Go's `IPNet.String()` for a CIDR from {@linkcode parseCidr}. */
export function formatCidr(cidr: GoCidr): string {
  if (isV4(cidr.ip)) {
    // A 16-byte mask on a v4-mapped address keeps only its last 32 bits.
    const bits = cidr.mask4 ? cidr.prefix : Math.min(32, Math.max(0, cidr.prefix - 96));
    return `${formatIp(cidr.ip)}/${bits}`;
  }
  return `${formatIp(cidr.ip)}/${cidr.prefix}`;
}

/** Go's `net.ParseMAC` + `HardwareAddr.String()`; `undefined` when invalid. */
export function parseMacAddress(text: string): string | undefined {
  let bytes: string[];
  if (text.length < 14) return undefined;
  if (text[2] === ":" || text[2] === "-") {
    const sep = text[2];
    if ((text.length + 1) % 3 !== 0) return undefined;
    bytes = text.split(sep);
    if (bytes.some((b) => !/^[0-9a-fA-F]{2}$/.test(b))) return undefined;
  } else if (text[4] === ".") {
    if ((text.length + 1) % 5 !== 0) return undefined;
    const groups = text.split(".");
    if (groups.some((g) => !/^[0-9a-fA-F]{4}$/.test(g))) return undefined;
    bytes = groups.flatMap((g) => [g.slice(0, 2), g.slice(2)]);
  } else {
    return undefined;
  }
  if (bytes.length !== 6 && bytes.length !== 8 && bytes.length !== 20) return undefined;
  return bytes.map((b) => b.toLowerCase()).join(":");
}

/**
 * resolv.conf parsing for host-local's `resolvConf` option, as the
 * reference's `parseResolvConf` reads it.
 *
 * @module
 */

import type { DNS } from "../cni/types.ts";
import { goOsError } from "./_os_error.ts";

/**
 * Parses resolv.conf text: blank lines, `#`/`;` comments and lines with
 * fewer than two fields are skipped; `nameserver` appends its address,
 * `domain` sets the domain, `search` and `options` append all their fields.
 */
export function parseResolvConfText(text: string): DNS {
  const dns: DNS = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.length === 0 || line[0] === "#" || line[0] === ";") continue;
    const fields = line.split(/\s+/);
    if (fields.length < 2) continue;
    switch (fields[0]) {
      case "nameserver":
        (dns.nameservers ??= []).push(fields[1]);
        break;
      case "domain":
        dns.domain = fields[1];
        break;
      case "search":
        (dns.search ??= []).push(...fields.slice(1));
        break;
      case "options":
        (dns.options ??= []).push(...fields.slice(1));
        break;
    }
  }
  return dns;
}

/**
 * Reads and parses a resolv.conf file.
 * @throws {Error} Go's `open <path>: <reason>` when the file cannot be read.
 */
export function parseResolvConf(path: string): DNS {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    throw goOsError("open", path, error);
  }
  return parseResolvConfText(text);
}

/**
 * `cnibox exec`: run a network's plugin chain like cnitool, with libcni's
 * semantics (see `lib/runtime`).
 *
 * ```
 * cnibox exec add|check|del <network> <netns-path>
 * cnibox exec gc|status <network> [<netns-path>]
 * ```
 *
 * Environment (cnitool's): `NETCONFPATH` (default /etc/cni/net.d),
 * `CNI_PATH`, `CNI_IFNAME` (default eth0; `-i/--ifname` overrides),
 * `CNI_ARGS` (`K=V;K2=V2`), `CAP_ARGS` (a JSON object of capability
 * arguments). Additions: `CNI_CONTAINERID` overrides cnitool's derived ID
 * (`cnitool-` + the first 20 hex digits of SHA-512 of the absolute netns
 * path) and `CNI_CACHE_DIR` moves the result cache (default /var/lib/cni).
 *
 * Output: `add` prints the final result to stdout as cnitool does (4-space
 * indented JSON, no trailing newline). On failure the error text (cnitool's
 * wording: `plugin type="bridge" failed (add): <msg>; <details>`) goes to
 * stderr and the exit status is 1; nothing is printed on stdout.
 *
 * `gc` with a netns argument behaves like cnitool: no valid attachments, so
 * every cached attachment of the network is deleted and plugins get GC
 * without `cni.dev/valid-attachments`. `gc` without a netns argument is our
 * extension: cached attachments whose netns path still exists (or that
 * recorded none) are valid, all others are deleted, and the valid ones are
 * passed to the plugins.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { resolve } from "@std/path";
import { CniError } from "../lib/cni/error.ts";
import { encodeResult } from "../lib/cni/result.ts";
import type { Attachment } from "../lib/cni/types.ts";
import { defaultCacheDir, listCacheEntries } from "../lib/runtime/cache.ts";
import { DEFAULT_NETCONF_DIR, loadConfList } from "../lib/runtime/conflist.ts";
import {
  addNetworkList,
  checkNetworkList,
  delNetworkList,
  gcNetworkList,
  type RuntimeConf,
  type RuntimeOptions,
  statusNetworkList,
} from "../lib/runtime/runtime.ts";

const USAGE = `usage: cnibox exec [-i <ifname>] <verb> <network> [<netns-path>]
  cnibox exec add    <net> <netns>     attach; prints the result JSON
  cnibox exec check  <net> <netns>     verify an attachment against the cached result
  cnibox exec del    <net> <netns>     detach
  cnibox exec gc     <net> [<netns>]   delete stale cached attachments, then GC the plugins
  cnibox exec status <net>             ask every plugin whether it is ready
env: NETCONFPATH, CNI_PATH, CNI_IFNAME, CNI_CONTAINERID, CNI_ARGS, CAP_ARGS, CNI_CACHE_DIR
`;

const VERBS = ["add", "check", "del", "gc", "status"] as const;
type Verb = (typeof VERBS)[number];

/** Injection points for tests; the defaults are the real process. */
export interface ExecCommandOptions {
  /** The environment read (and passed on to plugins). @default {Deno.env.toObject()} */
  env?: Record<string, string>;
  /** Receives stdout text. @default writes to the process's stdout */
  stdout?: (text: string) => void;
  /** Receives stderr text. @default writes to the process's stderr */
  stderr?: (text: string) => void;
}

function writer(file: { writeSync(p: Uint8Array): number }): (text: string) => void {
  return (text) => {
    const bytes = new TextEncoder().encode(text);
    let off = 0;
    while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
  };
}

/** cnitool's container ID for a netns path: `cnitool-` + 20 hex digits of its SHA-512. */
export async function containerIdFor(netnsPath: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-512", new TextEncoder().encode(netnsPath));
  return `cnitool-${new Uint8Array(digest).slice(0, 10).toHex()}`;
}

/** cnitool's `CNI_ARGS` parsing: `K=V` pairs separated by `;`, both sides non-empty. */
export function parseCniArgs(value: string): [string, string][] {
  return value.split(";").map((pair) => {
    const kv = pair.split("=");
    if (kv.length !== 2 || kv[0] === "" || kv[1] === "") {
      throw new SyntaxError(`invalid CNI_ARGS pair ${JSON.stringify(pair)}`);
    }
    return [kv[0], kv[1]];
  });
}

function parseCapArgs(value: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch (error) {
    throw new SyntaxError(`CAP_ARGS is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (raw === null) return {};
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw new TypeError(`CAP_ARGS must be a JSON object, got ${JSON.stringify(raw)}`);
  }
  return raw as Record<string, unknown>;
}

function errorText(error: unknown): string {
  if (error instanceof CniError && error.details) return `${error.message}; ${error.details}`;
  return error instanceof Error ? error.message : String(error);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs `cnibox exec ...`; returns the exit status. */
export async function run(args: string[], options: ExecCommandOptions = {}): Promise<number> {
  const env = options.env ?? Deno.env.toObject();
  const out = options.stdout ?? writer(Deno.stdout);
  const err = options.stderr ?? writer(Deno.stderr);

  let flags;
  try {
    flags = parseArgs(args, {
      string: ["ifname"],
      boolean: ["help"],
      alias: { i: "ifname", h: "help" },
    });
  } catch (error) {
    err(`cnibox exec: ${errorText(error)}\n${USAGE}`);
    return 1;
  }
  if (flags.help) {
    out(USAGE);
    return 0;
  }
  const [verb, network, netnsArg] = flags._;
  const needsNetns = verb === "add" || verb === "check" || verb === "del";
  if (
    !VERBS.includes(verb as Verb) || !network || (needsNetns && !netnsArg) || flags._.length > 3
  ) {
    err(USAGE);
    return 1;
  }

  try {
    const list = await loadConfList(env.NETCONFPATH || DEFAULT_NETCONF_DIR, network);
    const runtime: RuntimeOptions = {
      path: (env.CNI_PATH ?? "").split(":").filter((p) => p !== ""),
      cacheDir: defaultCacheDir(env),
      env,
      stderr: (chunk) => err(new TextDecoder().decode(chunk)),
    };
    const netns = netnsArg ? resolve(netnsArg) : "";
    const rt: RuntimeConf = {
      containerId: env.CNI_CONTAINERID || (netns ? await containerIdFor(netns) : ""),
      netns,
      ifName: (flags.ifname as string | undefined) || env.CNI_IFNAME || "eth0",
      args: env.CNI_ARGS ? parseCniArgs(env.CNI_ARGS) : [],
      capabilityArgs: env.CAP_ARGS ? parseCapArgs(env.CAP_ARGS) : {},
    };

    switch (verb as Verb) {
      case "add": {
        const result = await addNetworkList(list, rt, runtime);
        out(encodeResult(result, result.cniVersion));
        break;
      }
      case "check":
        await checkNetworkList(list, rt, runtime);
        break;
      case "del":
        await delNetworkList(list, rt, runtime);
        break;
      case "gc": {
        let validAttachments: Attachment[] | undefined;
        if (!netnsArg) {
          validAttachments = [];
          const cached = await listCacheEntries(runtime.cacheDir!, { networkName: list.name });
          for (const entry of cached) {
            if (!entry.netns || await exists(entry.netns)) {
              validAttachments.push({ containerID: entry.containerId, ifname: entry.ifName });
            }
          }
        }
        await gcNetworkList(list, { ...runtime, validAttachments });
        break;
      }
      case "status":
        await statusNetworkList(list, runtime);
        break;
    }
    return 0;
  } catch (error) {
    err(`${errorText(error)}\n`);
    return 1;
  }
}

// deno-lint-ignore-file no-console -- a CLI command talks to its user on stdout.
/**
 * `cnibox serve`: the read-only status endpoint (see `lib/status/app.ts`) on
 * a loopback TCP address or a unix socket.
 *
 * ```
 * cnibox serve [--listen 127.0.0.1:9584 | --socket <path>] [--allow-remote]
 *              [--cni-config-dir <dir>]... [--cni-path <dir>]... [--cache-dir <dir>]
 *              [--data-dir <dir>]... [--journal <path>]
 * ```
 *
 * It only reads: configs, plugin binaries (their first bytes), the libcni
 * result cache, host-local lease files and the run journal. The one thing it
 * runs is CNI STATUS for networks whose config is 1.1.0, which the spec
 * defines as side-effect free.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { CNIBOX_VERSION, SUPPORTED_VERSIONS, UPSTREAM_RELEASE } from "../lib/cni/version.ts";
import { tryParseIp } from "../lib/ip/cidr.ts";
import { statusNetworkList } from "../lib/runtime/runtime.ts";
import { createStatusApp, type StatusDeps } from "../lib/status/app.ts";
import { journalPath } from "../lib/status/journal.ts";
import { PLUGINS } from "../applets.ts";

/** Default TCP address. */
export const DEFAULT_LISTEN = "127.0.0.1:9584";
/** Default config directories: CNI's usual one and Nomad's `cni_config_dir`. */
export const DEFAULT_CONFIG_DIRS: readonly string[] = ["/etc/cni/net.d", "/opt/cni/config"];
/** Default plugin directory. */
export const DEFAULT_PLUGIN_DIRS: readonly string[] = ["/opt/cni/bin"];
/** Default libcni cache directory. */
export const DEFAULT_CACHE_DIR = "/var/lib/cni";

const USAGE = `usage: cnibox serve [flags]
  --listen <host:port>     TCP address (default ${DEFAULT_LISTEN}); loopback only unless --allow-remote
  --socket <path>          serve on a unix socket instead of TCP
  --allow-remote           permit a non-loopback --listen address
  --cni-config-dir <dir>   network configs (repeatable; default ${DEFAULT_CONFIG_DIRS.join(", ")})
  --cni-path <dir>         plugin binaries (repeatable; default ${DEFAULT_PLUGIN_DIRS.join(", ")})
  --cache-dir <dir>        libcni result cache (default ${DEFAULT_CACHE_DIR})
  --data-dir <dir>         extra host-local data dir, e.g. Nomad's /var/run/cni (repeatable)
  --journal <path>         plugin-run journal (default $CNIBOX_JOURNAL or /run/cnibox/journal)
Routes: / (dashboard), /healthz, /v1/version, /v1/networks[/{name}], /v1/leases?network=,
        /v1/attachments, /metrics
`;

/** A TCP address to listen on. */
export interface ListenAddress {
  hostname: string;
  port: number;
}

/**
 * Parses `host:port`, `[v6]:port` or `:port` (all interfaces). Throws
 * `SyntaxError` for anything else and `RangeError` for a bad port.
 */
export function parseListen(text: string): ListenAddress {
  const match = text.match(/^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/);
  if (!match) {
    throw new SyntaxError(`Cannot parse listen address "${text}": expected host:port`);
  }
  const port = Number(match[3]);
  if (port > 65535) {
    throw new RangeError(`Cannot listen on "${text}": port ${port} is out of range`);
  }
  const hostname = match[1] ?? (match[2] === "" ? "0.0.0.0" : match[2]);
  return { hostname, port };
}

/** Whether a listen hostname is loopback-only: `localhost`, 127.0.0.0/8 or `::1`. */
export function isLoopback(hostname: string): boolean {
  if (hostname.toLowerCase() === "localhost") return true;
  const ip = tryParseIp(hostname);
  if (!ip) return false;
  return ip.family === 4 ? ip.value >> 24n === 127n : ip.value === 1n;
}

/** Options for {@linkcode startServer}. */
export interface ServeOptions {
  /** Where to read from and what to report; see `StatusDeps`. */
  deps: StatusDeps;
  /** TCP address; ignored when `socket` is set. @default {parseListen(DEFAULT_LISTEN)} */
  listen?: ListenAddress;
  /** Unix socket path instead of TCP. */
  socket?: string;
  /** Permit a non-loopback TCP address. @default {false} */
  allowRemote?: boolean;
}

/** A running server. */
export interface RunningServer extends AsyncDisposable {
  /** `http://host:port/` for TCP, `unix:<path>` for a socket. */
  url: string;
  /** The bound TCP address (with the real port when 0 was asked for). */
  addr?: ListenAddress;
  /** Stops accepting and waits for open requests. */
  shutdown(): Promise<void>;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
}

async function removeStaleSocket(path: string): Promise<void> {
  try {
    const info = await Deno.lstat(path);
    if (!info.isSocket) {
      throw new Error(
        `Cannot listen on unix socket "${path}": the path exists and is not a socket`,
      );
    }
    // A socket someone still answers on belongs to a running server: leave it alone.
    let live: Deno.UnixConn | undefined;
    try {
      live = await Deno.connect({ transport: "unix", path });
    } catch {
      // Nobody listens: a leftover of a server that did not clean up.
    }
    if (live) {
      live.close();
      throw new Error(`Cannot listen on unix socket "${path}": another server is listening on it`);
    }
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/**
 * Starts the status server. Refuses a non-loopback address unless
 * `allowRemote`; on TCP without `allowRemote` only loopback `Host` headers
 * are answered (against DNS rebinding).
 *
 * @example Usage
 * ```ts ignore
 * await using server = await startServer({ deps, listen: { hostname: "127.0.0.1", port: 0 } });
 * await fetch(new URL("/healthz", server.url));
 * ```
 */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const listen = options.listen ?? parseListen(DEFAULT_LISTEN);
  if (options.socket === undefined && !options.allowRemote && !isLoopback(listen.hostname)) {
    throw new RangeError(
      `Refusing to listen on non-loopback address "${listen.hostname}": the status endpoint ` +
        `shows container addresses and IDs; pass --allow-remote to do it anyway`,
    );
  }
  const deps: StatusDeps = { ...options.deps };
  if (options.socket === undefined && !options.allowRemote && deps.allowedHosts === undefined) {
    const self = listen.hostname.includes(":") ? `[${listen.hostname}]` : listen.hostname;
    deps.allowedHosts = ["localhost", "127.0.0.1", "[::1]", self];
  }
  const app = createStatusApp(deps);
  const handler = (request: Request) => app.fetch(request);
  const onError = () => new Response('{"error":"internal error"}', { status: 500 });
  if (options.socket !== undefined) {
    await removeStaleSocket(options.socket);
    const server = Deno.serve(
      { transport: "unix", path: options.socket, onListen: () => {}, onError },
      handler,
    );
    // Lease and attachment data is as private as the cache files it comes from.
    await Deno.chmod(options.socket, 0o660);
    const path = options.socket;
    const shutdown = async () => {
      await server.shutdown();
      await Deno.remove(path).catch(() => {});
    };
    return {
      url: `unix:${path}`,
      shutdown,
      finished: server.finished,
      [Symbol.asyncDispose]: shutdown,
    };
  }
  const server = Deno.serve(
    { hostname: listen.hostname, port: listen.port, onListen: () => {}, onError },
    handler,
  );
  const addr = { hostname: server.addr.hostname, port: server.addr.port };
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return {
    url: `http://${host}:${addr.port}/`,
    addr,
    shutdown: () => server.shutdown(),
    finished: server.finished,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

function list(value: unknown, fallback: readonly string[]): string[] {
  return Array.isArray(value) && value.length > 0 ? value as string[] : [...fallback];
}

/** Builds the status app's dependencies from parsed flags; `env` is what STATUS plugins inherit. */
export function depsFromFlags(
  flags: Record<string, unknown>,
  env: Record<string, string> = Deno.env.toObject(),
): StatusDeps {
  const pluginDirs = list(flags["cni-path"], DEFAULT_PLUGIN_DIRS);
  return {
    configDirs: list(flags["cni-config-dir"], DEFAULT_CONFIG_DIRS),
    pluginDirs,
    cacheDir: typeof flags["cache-dir"] === "string" ? flags["cache-dir"] : DEFAULT_CACHE_DIR,
    dataDirs: list(flags["data-dir"], []),
    journalPath: typeof flags.journal === "string" ? flags.journal : journalPath(env),
    inventoryTtlMs: 1000,
    version: {
      cnibox: CNIBOX_VERSION,
      upstreamRelease: UPSTREAM_RELEASE,
      cniVersions: [...SUPPORTED_VERSIONS],
      plugins: Object.keys(PLUGINS),
    },
    runStatus: (netList, signal) =>
      statusNetworkList(netList, {
        path: pluginDirs,
        env,
        signal,
        stderr: () => {}, // a plugin's chatter on stderr is not an error
      }),
  };
}

/** `cnibox serve`: runs until SIGINT or SIGTERM; returns the exit status. */
export async function run(args: string[]): Promise<number> {
  let flags;
  try {
    flags = parseArgs(args, {
      string: ["listen", "socket", "cache-dir", "journal"],
      collect: ["cni-config-dir", "cni-path", "data-dir"],
      boolean: ["allow-remote", "help"],
      alias: { h: "help" },
    });
  } catch (error) {
    console.error(`cnibox serve: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (flags.help) {
    console.log(USAGE);
    return 0;
  }
  if (flags._.length > 0) {
    console.error(`cnibox serve: unexpected argument "${flags._[0]}"\n${USAGE}`);
    return 2;
  }
  let server: RunningServer;
  try {
    server = await startServer({
      deps: depsFromFlags(flags, Deno.env.toObject()),
      listen: parseListen(typeof flags.listen === "string" ? flags.listen : DEFAULT_LISTEN),
      ...(typeof flags.socket === "string" ? { socket: flags.socket } : {}),
      allowRemote: flags["allow-remote"] === true,
    });
  } catch (error) {
    console.error(`cnibox serve: ${(error as Error).message}`);
    return 1;
  }
  console.log(`cnibox serve: listening on ${server.url} (read-only)`);
  const stop = () => void server.shutdown();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await server.finished;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  return 0;
}

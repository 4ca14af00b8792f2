/**
 * The status endpoint as a Hono app: networks, leases, cached attachments,
 * Prometheus metrics and an HTML dashboard, all read-only.
 *
 * Everything the app reads comes through {@linkcode StatusDeps}, so tests use
 * `createStatusApp(deps).request(path)` over temporary directories. Serving
 * (`Deno.serve`) lives in `commands/serve.ts` only.
 *
 * Safety: only GET and HEAD are answered (others get 405); a network name from
 * the path or the query must match CNI's name pattern before it is used for
 * anything, so it can never name a path outside the configured directories;
 * with `allowedHosts` set, requests for other `Host`s are refused (a DNS
 * rebinding page cannot read the API through a victim's browser).
 *
 * @module
 */
import { type Context, Hono, type TypedResponse } from "hono";
import { CniError } from "../cni/error.ts";
import type { NetworkConfigList } from "../runtime/conflist.ts";
import { versionAtLeast } from "../cni/version.ts";
import { type DashboardData, type NetworkStatusView, renderDashboard } from "./dashboard.ts";
import {
  type AttachmentStatus,
  collectInventory,
  type Inventory,
  type NetworkSummary,
  type StatusSources,
} from "./inventory.ts";
import { JournalTail } from "./journal_reader.ts";
import { isValidNetworkName } from "./leases.ts";
import { renderMetrics, RunCounters } from "./metrics.ts";

/** Program identity for `/v1/version`. */
export interface VersionInfo {
  /** cnibox's own version. */
  cnibox: string;
  /** The containernetworking/plugins release the plugins behave as. */
  upstreamRelease?: string;
  /** CNI spec versions the plugins speak. */
  cniVersions: readonly string[];
  /** Plugins bundled in the program. */
  plugins: readonly string[];
}

/** Runs CNI STATUS for a network list; resolves when every plugin is fine, throws (a `CniError`) otherwise. */
export type StatusRunner = (list: NetworkConfigList, signal: AbortSignal) => Promise<void>;

/** What the app reads from; see {@linkcode StatusSources} for the directories. */
export interface StatusDeps extends StatusSources {
  /** Plugin-run journal to derive run metrics from; `""`/unset: no run metrics. */
  journalPath?: string;
  /** Identity for `/v1/version`. @default {cnibox "unknown", no plugins} */
  version?: VersionInfo;
  /** How to run CNI STATUS; unset: STATUS is reported as `not-run`. */
  runStatus?: StatusRunner;
  /**
   * How long one read of the on-disk state is reused; bursts of requests
   * (scrapers, reloads) then cost one scan. @default {0} (every request reads)
   */
  inventoryTtlMs?: number;
  /** How long a STATUS result is reused. @default {10000} */
  statusTtlMs?: number;
  /** How long one STATUS run may take before it counts as failed. @default {5000} */
  statusTimeoutMs?: number;
  /**
   * Hostnames (without port) the `Host` header may name; unset: any. Set it
   * when listening on TCP to defeat DNS rebinding.
   */
  allowedHosts?: readonly string[];
}

/** The JSON shape of a network's STATUS. */
export type StatusJson = NetworkStatusView & { details?: string };

const ALLOWED_METHODS = "GET, HEAD";
const HTML_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * A failed plugin's message without its stderr, which libcni quotes when the
 * plugin printed no error (`netplugin failed: "<stderr>": exit status 1`):
 * plugins may log their config there, secrets included, and HTTP clients
 * are not the plugin's log.
 */
function withoutStderr(error: CniError): string {
  const match = /^netplugin failed: "(?:[^"\\]|\\.)*": ([^"]*)$/s.exec(error.message);
  return match ? `netplugin failed (its stderr is not shown): ${match[1]}` : error.message;
}

function networkJson(network: NetworkSummary, status: StatusJson | undefined) {
  const { hostLocal: _hostLocal, ...rest } = network;
  return status ? { ...rest, status } : rest;
}

function attachmentJson(a: AttachmentStatus) {
  const { cachedAt, ...rest } = a;
  return { ...rest, cachedAt: cachedAt === null ? null : new Date(cachedAt).toISOString() };
}

function hostOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const bracket = header.match(/^\[([^\]]+)\](?::\d+)?$/);
  if (bracket) return `[${bracket[1].toLowerCase()}]`;
  const colon = header.lastIndexOf(":");
  return (colon >= 0 ? header.slice(0, colon) : header).toLowerCase();
}

// Chained route definitions, so the app's type carries every route (typed clients).
function buildApp(deps: StatusDeps) {
  const now = deps.now ?? Date.now;
  const counters = new RunCounters();
  const tail = deps.journalPath ? new JournalTail(deps.journalPath) : undefined;
  const statusCache = new Map<string, { at: number | undefined; value: Promise<StatusJson> }>();
  const allowedHosts = deps.allowedHosts ? new Set(deps.allowedHosts.map(hostOf)) : undefined;

  const inventoryCache = new Map<string, { at: number; value: Promise<Inventory> }>();
  const inventory = (network?: string): Promise<Inventory> => {
    const ttl = deps.inventoryTtlMs ?? 0;
    const read = () => collectInventory(deps, network === undefined ? {} : { network });
    if (ttl <= 0) return read();
    const key = network ?? "\0all";
    const hit = inventoryCache.get(key);
    if (hit && now() - hit.at < ttl) return hit.value;
    const value = read();
    inventoryCache.set(key, { at: now(), value });
    value.catch(() => inventoryCache.delete(key)); // a failed read is not reused
    if (inventoryCache.size > 100) inventoryCache.delete(inventoryCache.keys().next().value!);
    return value;
  };

  // The big lists are rendered once per inventory read: requests within its TTL send the
  // same bytes (1000 attachments are a 1 MB body, 9 ms to render each time).
  const rendered = new WeakMap<Inventory, Map<string, Uint8Array<ArrayBuffer>>>();
  const cachedJson = <T>(
    c: Context,
    inv: Inventory,
    key: string,
    render: () => T,
  ): Response & TypedResponse<T, 200, "json"> => {
    let bodies = rendered.get(inv);
    if (bodies === undefined) rendered.set(inv, bodies = new Map());
    let body = bodies.get(key);
    if (body === undefined) {
      body = new TextEncoder().encode(JSON.stringify(render()));
      bodies.set(key, body);
    }
    // Typed as c.json would type it, for typed clients (`hono/client`).
    return c.body(body, 200, { "Content-Type": "application/json" }) as unknown as
      & Response
      & TypedResponse<T, 200, "json">;
  };

  /** STATUS of one list, reused for `statusTtlMs`; concurrent callers share one run. */
  const statusOf = (list: NetworkConfigList): Promise<StatusJson> => {
    if (!versionAtLeast(list.cniVersion, "1.1.0")) {
      return Promise.resolve({ state: "not-supported" });
    }
    const runner = deps.runStatus;
    if (!runner) return Promise.resolve({ state: "not-run" });
    const key = `${list.file ?? ""}\0${list.name}`;
    const hit = statusCache.get(key);
    // A run in progress is shared; a finished one is reused for the TTL from its end.
    if (hit && (hit.at === undefined || now() - hit.at < (deps.statusTtlMs ?? 10_000))) {
      return hit.value;
    }
    const entry: { at: number | undefined; value: Promise<StatusJson> } = {
      at: undefined,
      value: Promise.resolve({ state: "not-run" }),
    };
    entry.value = (async (): Promise<StatusJson> => {
      const timeoutMs = deps.statusTimeoutMs ?? 5_000;
      const signal = AbortSignal.timeout(timeoutMs);
      try {
        // The answer does not wait for a runner that ignores the signal (a plugin that
        // survives SIGTERM, or whose children keep its pipes open).
        const run = runner(list, signal);
        run.catch(() => {});
        await Promise.race([
          run,
          new Promise<never>((_resolve, reject) =>
            signal.addEventListener(
              "abort",
              () => reject(new Error(`STATUS timed out after ${timeoutMs} ms`)),
              { once: true },
            )
          ),
        ]);
        return { state: "ok" };
      } catch (error) {
        if (error instanceof CniError) {
          const json: StatusJson = { state: "failed", code: error.code, msg: withoutStderr(error) };
          if (error.details) json.details = error.details;
          return json;
        }
        return { state: "failed", msg: error instanceof Error ? error.message : String(error) };
      } finally {
        entry.at = now();
      }
    })();
    const value = entry.value;
    statusCache.set(key, entry);
    if (statusCache.size > 1000) statusCache.delete(statusCache.keys().next().value!);
    return value;
  };

  const statuses = async (inv: Inventory): Promise<Record<string, StatusJson>> => {
    const out: Record<string, StatusJson> = {};
    await Promise.all(
      inv.lists.filter((n) => !n.shadowedBy).map(async (n) => {
        out[n.name] = await statusOf(n.list);
      }),
    );
    return out;
  };

  const wantStatus = (query: string | undefined) => !/^(0|false|no)$/i.test(query ?? "");

  const app = new Hono()
    .use("*", async function guard(c, next) {
      if (c.req.method !== "GET" && c.req.method !== "HEAD") {
        c.header("Allow", ALLOWED_METHODS);
        return c.json({ error: `method ${c.req.method} not allowed` }, 405);
      }
      // Deno.serve builds the URL from the Host header; app.request() has only the URL.
      const host = hostOf(c.req.header("host") ?? new URL(c.req.url).host);
      if (allowedHosts && !allowedHosts.has(host)) {
        return c.json({ error: "host not allowed" }, 403);
      }
      await next();
      c.header("X-Content-Type-Options", "nosniff");
      c.header("Cache-Control", "no-store");
      c.header("Referrer-Policy", "no-referrer");
      return undefined;
    })
    .get("/healthz", (c) => c.text("ok"))
    .get("/v1/version", (c) =>
      c.json(
        deps.version ?? { cnibox: "unknown", cniVersions: [], plugins: [] },
      ))
    .get("/v1/networks", async (c) => {
      const inv = await inventory();
      const st = wantStatus(c.req.query("status")) ? await statuses(inv) : {};
      return c.json({
        networks: inv.networks.map((n) => networkJson(n, n.shadowedBy ? undefined : st[n.name])),
        errors: inv.configErrors,
      });
    })
    .get("/v1/networks/:name", async (c) => {
      const name = c.req.param("name");
      if (!isValidNetworkName(name)) {
        return c.json({ error: "invalid network name", name }, 400);
      }
      const inv = await inventory(name);
      const matches = inv.networks.filter((n) => n.name === name);
      const used = matches.find((n) => !n.shadowedBy);
      const leases = inv.leases.filter((l) => l.network === name);
      const attachments = inv.attachments.filter((a) => a.network === name);
      if (!used && leases.length === 0 && attachments.length === 0) {
        return c.json({ error: "network not found", name }, 404);
      }
      const list = inv.lists.find((n) => n.name === name && !n.shadowedBy);
      const status = list && wantStatus(c.req.query("status"))
        ? await statusOf(list.list)
        : undefined;
      return c.json({
        ...(used
          ? { ...networkJson(used, status), configured: true, hostLocal: used.hostLocal }
          : { name, configured: false, file: null, hostLocal: [] }),
        shadowed: matches.filter((n) => n.shadowedBy).map((n) => n.file),
        leases,
        attachments: attachments.map(attachmentJson),
      });
    })
    .get("/v1/leases", async (c) => {
      const network = c.req.query("network");
      if (network !== undefined && !isValidNetworkName(network)) {
        return c.json({ error: "invalid network name", name: network }, 400);
      }
      const inv = await inventory(network);
      return cachedJson(c, inv, "leases", () => ({ leases: inv.leases, errors: inv.errors }));
    })
    .get("/v1/attachments", async (c) => {
      const network = c.req.query("network");
      if (network !== undefined && !isValidNetworkName(network)) {
        return c.json({ error: "invalid network name", name: network }, 400);
      }
      const inv = await inventory(network);
      return cachedJson(c, inv, "attachments", () => ({
        attachments: inv.attachments.map(attachmentJson),
        staleLeases: inv.leases.filter((l) => l.stale),
        errors: inv.errors,
      }));
    })
    .get("/metrics", async (c) => {
      const inv = await inventory();
      if (tail) counters.add(await tail.poll());
      return c.body(renderMetrics(inv, tail ? { runs: counters } : {}), 200, {
        "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
      });
    })
    .get("/", async (c) => {
      const inv = await inventory();
      const data: DashboardData = { inventory: inv, statuses: await statuses(inv), now: now() };
      if (deps.version) data.version = deps.version.cnibox;
      c.header("Content-Security-Policy", HTML_CSP);
      return c.html(renderDashboard(data));
    });

  app.notFound((c) => c.json({ error: "not found", path: c.req.path }, 404));
  app.onError((error, c) =>
    c.json({ error: "internal error", message: error instanceof Error ? error.message : "" }, 500)
  );
  return app;
}

/** The app's type, for typed clients (`hono/client`). */
export type StatusApp = ReturnType<typeof buildApp>;

/**
 * Creates the status app. Routes: `/healthz`, `/v1/version`, `/v1/networks`,
 * `/v1/networks/:name`, `/v1/leases?network=`, `/v1/attachments?network=`,
 * `/metrics`, `/` (dashboard).
 *
 * @example Usage
 * ```ts ignore
 * const app = createStatusApp({
 *   configDirs: ["/etc/cni/net.d"], pluginDirs: ["/opt/cni/bin"],
 *   cacheDir: "/var/lib/cni", dataDirs: [],
 * });
 * const res = await app.request("/healthz"); // 200 "ok"
 * ```
 */
export function createStatusApp(deps: StatusDeps): StatusApp {
  return buildApp(deps);
}

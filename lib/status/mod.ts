/**
 * The status endpoint's library: a read-only inventory of CNI state
 * (network configs, host-local leases, the libcni result cache), its JSON
 * routes, Prometheus metrics and HTML dashboard as a Hono app, and the
 * plugin-run journal.
 *
 * This entry loads hono. Plugin code must import `./journal.ts` directly,
 * which imports nothing.
 *
 * @example Usage
 * ```ts ignore
 * import { createStatusApp } from "./mod.ts";
 * const app = createStatusApp({
 *   configDirs: ["/etc/cni/net.d"], pluginDirs: ["/opt/cni/bin"],
 *   cacheDir: "/var/lib/cni", dataDirs: [],
 * });
 * Deno.serve({ hostname: "127.0.0.1", port: 9584 }, app.fetch);
 * ```
 *
 * @module
 */
export * from "./app.ts";
export * from "./attachments.ts";
export * from "./dashboard.ts";
export * from "./inventory.ts";
export * from "./journal.ts";
export * from "./journal_reader.ts";
export * from "./leases.ts";
export * from "./metrics.ts";
export * from "./networks.ts";
export * from "./ranges.ts";

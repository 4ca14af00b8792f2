/**
 * The CNI protocol layer: versions, results, network configuration,
 * `CNI_ARGS`, the plugin skeleton and delegation. Plugins that care about
 * start-up cost may import the individual modules instead.
 *
 * @module
 */

export * from "./error.ts";
export * from "./types.ts";
export * from "./version.ts";
export * from "./result.ts";
export * from "./config.ts";
export * from "./args.ts";
export * from "./skel.ts";
export * from "./delegate.ts";
export { goQuote, goQuoteList } from "./_go.ts";

/**
 * The runtime side of CNI, as libcni implements it: load network config
 * lists, run their plugins for ADD/CHECK/DEL/GC/STATUS, and keep the result
 * cache that other libcni-based tools share.
 *
 * @module
 */
export * from "./conflist.ts";
export * from "./invoke.ts";
export * from "./cache.ts";
export * from "./runtime.ts";

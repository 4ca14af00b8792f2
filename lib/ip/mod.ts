/**
 * IP addresses and CIDR blocks with Go `net` text semantics.
 *
 * @module
 */
export * from "./cidr.ts";

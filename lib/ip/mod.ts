/**
 * IP addresses, CIDR blocks and MAC addresses with Go `net` text semantics
 * (and glibc `inet_ntop` text where rules and `ip` output need it).
 *
 * @module
 */
export * from "./cidr.ts";
export * from "./mac.ts";

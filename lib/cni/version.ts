/**
 * CNI spec versions: what we support, what we report, how versions compare
 * (Go's `version.ParseVersion` rules and messages) and which result family
 * (result shape) each version belongs to.
 *
 * @module
 */

import { goAtoi, goQuote } from "./_go.ts";

/** Every CNI spec version the plugins accept, ascending (upstream `version.All`). */
export const SUPPORTED_VERSIONS: readonly string[] = Object.freeze([
  "0.1.0",
  "0.2.0",
  "0.3.0",
  "0.3.1",
  "0.4.0",
  "1.0.0",
  "1.1.0",
]);

/** The spec version the library implements (`version.Current()`), reported by VERSION. */
export const CURRENT_VERSION = "1.1.0";

/** The containernetworking/plugins release whose behaviour we match. */
export const UPSTREAM_RELEASE = "1.9.1";

/** This program's own version. */
export const CNIBOX_VERSION = "0.1.0";

/** The version printed in a plugin's "about" line. */
export const PLUGIN_VERSION_STRING = `v${UPSTREAM_RELEASE}+cnibox.${CNIBOX_VERSION}`;

/** The result shapes, named after the Go packages that implement them. */
export type ResultFamily = "020" | "040" | "100";

/** The versions each result family accepts (Go's `supportedVersions` per package). */
export const FAMILY_VERSIONS: Readonly<Record<ResultFamily, readonly string[]>> = Object.freeze({
  "020": Object.freeze(["", "0.1.0", "0.2.0"]),
  "040": Object.freeze(["0.3.0", "0.3.1", "0.4.0"]),
  "100": Object.freeze(["1.0.0", "1.1.0"]),
});

/** The version each family's result type assumes when it carries none. */
export const FAMILY_IMPLEMENTED: Readonly<Record<ResultFamily, string>> = Object.freeze({
  "020": "0.2.0",
  "040": "0.4.0",
  "100": "1.1.0",
});

/** The result family of a version, or `undefined` for a version no result type accepts. */
export function versionFamily(version: string): ResultFamily | undefined {
  for (const family of ["020", "040", "100"] as const) {
    if (FAMILY_VERSIONS[family].includes(version)) return family;
  }
  return undefined;
}

/**
 * Parses `"major.minor.micro"` with Go's `version.ParseVersion` rules (missing
 * parts are 0). Throws `SyntaxError`/`RangeError` with Go's message.
 */
export function parseVersion(version: string): [number, number, number] {
  if (version === "") {
    throw new SyntaxError(`invalid version ${goQuote(version)}: the version is empty`);
  }
  const parts = version.split(".");
  if (parts.length >= 4) {
    throw new SyntaxError(`invalid version ${goQuote(version)}: too many parts`);
  }
  const names = ["major", "minor", "micro"];
  const out: [number, number, number] = [0, 0, 0];
  parts.forEach((part, i) => {
    try {
      out[i] = goAtoi(part);
    } catch (error) {
      const message = `failed to convert ${names[i]} version part ${goQuote(part)}: ${
        (error as Error).message
      }`;
      throw error instanceof RangeError ? new RangeError(message) : new SyntaxError(message);
    }
  });
  return out;
}

/** Compares two versions: -1, 0 or 1. Throws like {@linkcode parseVersion}. */
export function compareVersions(a: string, b: string): -1 | 0 | 1 {
  const x = parseVersion(a);
  const y = parseVersion(b);
  for (let i = 0; i < 3; i++) {
    if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

/** Go's `version.GreaterThanOrEqualTo(version, min)`. Throws like {@linkcode parseVersion}. */
export function versionAtLeast(version: string, min: string): boolean {
  return compareVersions(version, min) >= 0;
}

/** The plugin's "about" line, printed to stderr when `CNI_COMMAND` is unset. */
export function aboutText(pluginName: string): string {
  return `CNI ${pluginName} plugin ${PLUGIN_VERSION_STRING}`;
}

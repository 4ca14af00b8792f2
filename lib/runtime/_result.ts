/**
 * How libcni reads a plugin's ADD output (`invoke.ExecPluginWithResult`): a
 * result without `cniVersion` is taken to be in the config's version
 * (`fixupResultVersion`, containernetworking/cni#895), then decoded by the
 * result type of that version (`create.Create`). Results are kept as
 * `lib/cni` results, which remember their own shape, so re-marshalling one
 * (for `prevResult`, the cache, or printing) gives what Go would.
 *
 * @module
 */
import { convertResult, decodeVersionField, parseResult } from "../cni/result.ts";
import type { Result } from "../cni/types.ts";
import { goTypeName, isObject } from "./_json.ts";

const decoder = new TextDecoder();

/** The `cniVersion` of a config as libcni's `ConfigDecoder` reads it ("" means 0.1.0). */
export function configVersion(netconf: Uint8Array | string): string {
  let raw: unknown;
  try {
    raw = JSON.parse(typeof netconf === "string" ? netconf : decoder.decode(netconf));
  } catch (error) {
    throw new SyntaxError(
      `decoding version from network config: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return decodeVersionField(raw);
}

/**
 * Decodes a plugin's ADD stdout into a result, defaulting its version to the
 * config's. Throws like libcni for unparsable output or unknown versions.
 */
export function decodeResult(stdout: Uint8Array, netconf: Uint8Array | string): Result {
  const text = decoder.decode(stdout);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new SyntaxError(
      `failed to unmarshal raw result: ${(error as Error).message} result ${text}`,
      { cause: error },
    );
  }
  if (raw === null) raw = {};
  if (!isObject(raw)) {
    throw new TypeError(
      `failed to unmarshal raw result: expected a JSON object, got ${
        goTypeName(raw)
      } result ${text}`,
    );
  }
  let version = raw.cniVersion;
  if (typeof version !== "string" || version === "") {
    version = configVersion(netconf);
    raw = { ...raw, cniVersion: version };
  }
  return parseResult(raw, version as string);
}

/** The JSON Go marshals for a result (its own version and shape). */
export function resultJson(result: Result): Record<string, unknown> {
  return convertResult(result, result.cniVersion);
}

/**
 * A cached result (raw JSON) converted to `toVersion` (libcni
 * `getCachedResult`: `CreateFromBytes` + `GetAsVersion`).
 */
export function cachedResultAs(raw: Record<string, unknown>, toVersion: string): Result {
  const result = parseResult(raw);
  let converted: Record<string, unknown>;
  try {
    converted = convertResult(result, toVersion);
  } catch (error) {
    throw new RangeError(
      `failed to convert cached result to config version ${JSON.stringify(toVersion)}: ${
        (error as Error).message
      }`,
      { cause: error },
    );
  }
  return parseResult(converted, toVersion);
}

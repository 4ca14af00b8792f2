/**
 * The network configuration a plugin reads on stdin: the skeleton's checks
 * (valid JSON, a valid `name`, a `cniVersion` string), `prevResult` decoding
 * per the Go library's `version.ParsePrevResult`, and small readers for
 * `runtimeConfig` and GC's valid attachments.
 *
 * @module
 */

import { CniError, ErrorCode } from "./error.ts";
import type { Attachment, NetConf, Result } from "./types.ts";
import {
  fieldTypeError,
  goField,
  goJsonDecode,
  isJsonObject,
  jsonKind,
  valueTypeError,
} from "./_go.ts";
import { decodeVersionField, parseResult } from "./result.ts";

/** Container IDs and network names (Go's `cniReg`). */
export const VALID_NAME: RegExp = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

/** Configs whose `cniVersion` was absent or empty (defaulted to 0.1.0). */
const DEFAULTED = new WeakSet<object>();

/**
 * The skeleton's `validateConfig`: stdin must be JSON with a non-empty `name`
 * made of valid characters. Returns the decoded object.
 *
 * @throws {CniError} code 6 `error unmarshall network config: ...` or code 7.
 */
export function decodeNetConfName(bytes: Uint8Array): Record<string, unknown> {
  const prefix = "error unmarshall network config: ";
  let value: unknown;
  try {
    value = goJsonDecode(bytes);
  } catch (error) {
    throw new CniError(ErrorCode.DecodingFailure, prefix + (error as Error).message);
  }
  if (value !== null && !isJsonObject(value)) {
    const type = 'struct { Name string "json:\\"name\\"" }';
    throw new CniError(ErrorCode.DecodingFailure, prefix + valueTypeError(value, type).message);
  }
  const conf = value ?? {};
  const name = goField(conf, "name");
  if (name !== undefined && name !== null && typeof name !== "string") {
    const msg = fieldTypeError(name, ".name", "string").message;
    throw new CniError(ErrorCode.DecodingFailure, prefix + msg);
  }
  if (!name) throw new CniError(ErrorCode.InvalidNetworkConfig, "missing network name");
  if (!VALID_NAME.test(name)) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      "invalid characters found in network name",
      name,
    );
  }
  return conf;
}

/**
 * Go's `version.ConfigDecoder.Decode`: the config's `cniVersion`, or
 * `"0.1.0"` when absent or empty.
 *
 * @throws {CniError} code 6 when `cniVersion` is not a string.
 */
export function decodeConfigVersion(conf: unknown): string {
  try {
    return decodeVersionField(conf);
  } catch (error) {
    throw new CniError(ErrorCode.DecodingFailure, (error as Error).message);
  }
}

/**
 * Parses and checks a network configuration as the skeleton does: JSON with
 * a valid `name` and a string `cniVersion` (default `"0.1.0"`). Keys match
 * case-insensitively like Go's decoder; `name` and `cniVersion` are stored
 * under their canonical spelling.
 *
 * @example Usage
 * ```ts
 * const conf = parseNetConf(new TextEncoder().encode('{"name":"net","type":"bridge"}'));
 * conf.cniVersion; // "0.1.0"
 * ```
 */
export function parseNetConf(bytes: Uint8Array | string): NetConf {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  return netConfFrom(decodeNetConfName(data));
}

/**
 * Finishes a config from {@linkcode decodeNetConfName}: decodes `cniVersion`
 * (default `"0.1.0"`) and stores `name`, `cniVersion` and `type` under their
 * canonical keys. The skeleton calls the two steps apart because Go reports
 * an unknown command before a bad `cniVersion`.
 *
 * @throws {CniError} code 6 when `cniVersion` is not a string.
 */
export function netConfFrom(raw: Record<string, unknown>): NetConf {
  const version = decodeConfigVersion(raw);
  const conf = raw as NetConf;
  conf.name = goField(raw, "name") as string;
  const declared = goField(raw, "cniVersion");
  if (declared === undefined || declared === null || declared === "") DEFAULTED.add(conf);
  conf.cniVersion = version;
  const type = goField(raw, "type");
  conf.type = typeof type === "string" ? type : "";
  return conf;
}

/**
 * The `cniVersion` as the config declared it: `""` when it was absent (Go
 * plugins see the empty string; a result labelled `""` prints as 0.1.0).
 */
export function declaredCniVersion(conf: NetConf): string {
  return DEFAULTED.has(conf) ? "" : conf.cniVersion;
}

/** A case-insensitive (Go-style, last match wins) read of a config key. */
export function confField(conf: Record<string, unknown>, key: string): unknown {
  return goField(conf, key);
}

/**
 * Go's `version.ParsePrevResult`: decodes `prevResult` with the config's
 * version. A `prevResult` without `cniVersion` gets the config's; one whose
 * own version belongs to another result family is an error. Returns
 * `undefined` when there is no `prevResult`.
 *
 * @throws {Error} `could not parse prevResult: result type supports [1.0.0 1.1.0] but unmarshalled CNIVersion is "0.4.0"`.
 */
export function parsePrevResult(conf: NetConf): Result | undefined {
  const raw = goField(conf, "prevResult");
  if (raw === undefined || raw === null) return undefined;
  if (!isJsonObject(raw)) {
    throw fieldTypeError(raw, "PluginConf.prevResult", "map[string]interface {}");
  }
  const version = declaredCniVersion(conf);
  // Go injects "CNIVersion" (that spelling) when missing, then re-marshals the
  // map, which sorts keys, so a real "cniVersion" decoded after it wins.
  const withVersion: Record<string, unknown> = { ...raw };
  if (!Object.hasOwn(raw, "CNIVersion") || raw.CNIVersion === "") {
    withVersion.CNIVersion = version;
  }
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(withVersion).sort()) sorted[key] = withVersion[key];
  try {
    return parseResult(sorted, version);
  } catch (error) {
    throw new PrevResultError(`could not parse prevResult: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * A prevResult that is an object but not a result of its version: the
 * library's `ParsePrevResult` error, which some plugins wrap once more.
 */
export class PrevResultError extends Error {
  override name = "PrevResultError";
}

/** Reads `runtimeConfig.<key>` (libcni inserts only capabilities the plugin declares). */
export function runtimeConfigValue(conf: NetConf, key: string): unknown {
  const rc = goField(conf, "runtimeConfig");
  return isJsonObject(rc) ? goField(rc, key) : undefined;
}

/**
 * GC's `cni.dev/valid-attachments`, or `undefined` when absent.
 *
 * @throws {TypeError} when the value is not a list of `{containerID, ifname}` objects.
 */
export function validAttachments(conf: NetConf): Attachment[] | undefined {
  const field = "PluginConf.cni.dev/valid-attachments";
  const raw = goField(conf, "cni.dev/valid-attachments");
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw)) throw fieldTypeError(raw, field, "[]types.GCAttachment");
  return raw.map((item) => {
    if (!isJsonObject(item)) {
      throw new TypeError(
        `json: cannot unmarshal ${
          jsonKind(item)
        } into Go struct field ${field} of type types.GCAttachment`,
      );
    }
    const containerID = goField(item, "containerID") ?? "";
    const ifname = goField(item, "ifname") ?? "";
    if (typeof containerID !== "string") {
      throw fieldTypeError(containerID, "GCAttachment.containerID", "string");
    }
    if (typeof ifname !== "string") throw fieldTypeError(ifname, "GCAttachment.ifname", "string");
    // Go would read a missing id as "" and GC would then release everything
    // of the network; an incomplete entry is refused instead.
    if (containerID === "" || ifname === "") {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `invalid cni.dev/valid-attachments entry ${
          JSON.stringify(item)
        }: containerID and ifname are required`,
      );
    }
    return { containerID, ifname };
  });
}

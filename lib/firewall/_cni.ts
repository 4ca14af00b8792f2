/**
 * CNI-side helpers the chained firewall plugins share, over lib/cni:
 * `prevResult` both as given (to pass through unchanged) and in the 1.x
 * shape (to read), and the container ids of a GC request. Private to
 * lib/firewall and its plugins.
 *
 * @module
 */
import { parsePrevResult, PrevResultError, validAttachments } from "../cni/config.ts";
import { toCurrentResult } from "../cni/result.ts";
import type { Attachment, NetConf, Result } from "../cni/types.ts";

/** A chained plugin's previous result. */
export interface PrevResult {
  /** As parsed: portmap's ADD returns it unchanged (the skeleton converts it), as upstream's. */
  given: Result;
  /** The same in the 1.x shape, to read from; firewall's ADD returns this, as upstream's. */
  current: Result;
}

/**
 * `conf.prevResult`, or undefined if there is none. Errors read as upstream
 * firewall's and portmap's `parseConf`: they wrap the library's parse error
 * in a second "could not parse prevResult: ", and a failed conversion in
 * "could not convert result to current version: ".
 */
export function prevResultOf(conf: NetConf): PrevResult | undefined {
  let given: Result | undefined;
  try {
    given = parsePrevResult(conf);
  } catch (error) {
    if (!(error instanceof PrevResultError)) throw error;
    throw new Error(`could not parse prevResult: ${error.message}`, { cause: error });
  }
  if (!given) return undefined;
  let current: Result;
  try {
    current = toCurrentResult(given);
  } catch (error) {
    throw new Error(`could not convert result to current version: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return { given, current };
}

/** `cni.dev/valid-attachments` (or its misspelt twin); undefined if the request has none. */
export function validAttachmentList(conf: NetConf): Attachment[] | undefined {
  return validAttachments(conf) ??
    (Array.isArray(conf["cni.dev/attachments"])
      ? validAttachments({ ...conf, "cni.dev/valid-attachments": conf["cni.dev/attachments"] })
      : undefined);
}

/** Container ids of `cni.dev/valid-attachments`; undefined if the request has none. */
export function validAttachmentIds(conf: NetConf): Set<string> | undefined {
  const list = validAttachmentList(conf);
  return list ? new Set(list.map((a) => a.containerID)) : undefined;
}

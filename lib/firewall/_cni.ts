/**
 * CNI-side helpers the chained firewall plugins share, over lib/cni:
 * `prevResult` both as given (to pass through unchanged) and in the 1.x
 * shape (to read), and the container ids of a GC request. Private to
 * lib/firewall and its plugins.
 *
 * @module
 */
import { parsePrevResult, validAttachments } from "../cni/config.ts";
import { toCurrentResult } from "../cni/result.ts";
import type { Attachment, NetConf, Result } from "../cni/types.ts";

/** A chained plugin's previous result. */
export interface PrevResult {
  /** As parsed, to return from ADD unchanged (the skeleton converts it). */
  given: Result;
  /** The same in the 1.x shape, to read addresses and interfaces from. */
  current: Result;
}

/** `conf.prevResult`, or undefined if there is none. Throws the library's parse errors. */
export function prevResultOf(conf: NetConf): PrevResult | undefined {
  const given = parsePrevResult(conf);
  return given ? { given, current: toCurrentResult(given) } : undefined;
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

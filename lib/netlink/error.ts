/**
 * Errors the kernel reports over netlink, kept as errno values (never parsed
 * from text), plus the predicates callers branch on.
 *
 * @module
 */
import { Errno, errnoDescription, errnoName } from "../sys/errno.ts";
import { OsError } from "../sys/libc.ts";

/** The kernel refused a netlink request (`NLMSG_ERROR` with a negative errno). */
export class NetlinkError extends Error {
  override name = "NetlinkError";
  /** Positive errno, e.g. 17 for EEXIST. */
  readonly errno: number;
  /** The errno name, e.g. "EEXIST". */
  readonly code: string;
  /** What was attempted, e.g. `add link "br0"`. */
  readonly op: string;
  /** The kernel's extended-ack message, when it sent one. */
  readonly extack: string | undefined;

  constructor(errno: number, op: string, extack?: string, options?: ErrorOptions) {
    super(
      `Cannot ${op}: ${errnoDescription(errno)} (${errnoName(errno)})${
        extack ? `: ${extack}` : ""
      }`,
      options,
    );
    this.errno = errno;
    this.code = errnoName(errno);
    this.op = op;
    this.extack = extack;
  }
}

/** No link with that name or index exists (errno ENODEV), like Go's `LinkNotFoundError`. */
export class LinkNotFoundError extends NetlinkError {
  override name = "LinkNotFoundError";
  /** The name or index that was looked up. */
  readonly link: string | number;

  constructor(link: string | number, options?: ErrorOptions) {
    super(Errno.ENODEV, `find link ${JSON.stringify(link)}`, undefined, options);
    this.link = link;
  }
}

function errnoOf(error: unknown): number | undefined {
  if (error instanceof NetlinkError || error instanceof OsError) return error.errno;
  return undefined;
}

/** True for EEXIST: the link, address or route is already there. */
export function isExist(error: unknown): boolean {
  return errnoOf(error) === Errno.EEXIST;
}

/**
 * True when the object was not there: ENODEV (link), ENOENT, ESRCH (route
 * delete) or EADDRNOTAVAIL (address delete). Use it to make deletes idempotent.
 */
export function isNotFound(error: unknown): boolean {
  const errno = errnoOf(error);
  return errno === Errno.ENODEV || errno === Errno.ENOENT || errno === Errno.ESRCH ||
    errno === Errno.EADDRNOTAVAIL;
}

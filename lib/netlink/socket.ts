/**
 * A raw `AF_NETLINK` socket with request/response handling: sequence and
 * port-id checks, ACKs, multi-part dumps with `NLM_F_DUMP_INTR` retries, and
 * `NLMSG_ERROR` turned into {@linkcode NetlinkError} with the extended-ack
 * text. Protocol-agnostic: `NETLINK_ROUTE` by default, `NETLINK_NETFILTER`
 * works the same way.
 *
 * Requires `--allow-ffi`. The socket belongs to the network namespace of the
 * thread that opened it (see `openHandle({ netns })`).
 *
 * @module
 */
import {
  AF_NETLINK,
  NETLINK_CAP_ACK,
  NETLINK_EXT_ACK,
  NETLINK_ROUTE,
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
  NLMSGERR_ATTR_MSG,
  SOL_NETLINK,
} from "./consts.ts";
import {
  align4,
  decodeNlMessages,
  decodeRawAttrs,
  encodeNlMessage,
  LE,
  type NlMessage,
  NLMSG_HDRLEN,
  strz,
} from "./codec.ts";
import { NetlinkError } from "./error.ts";
import { Errno } from "../sys/errno.ts";
import {
  bind,
  close,
  getsockname,
  MSG_DONTWAIT,
  MSG_TRUNC,
  OsError,
  recvfrom,
  sendto,
  setsockopt,
  SO_RCVTIMEO,
  SOCK_CLOEXEC,
  SOCK_RAW,
  socket,
  SOL_SOCKET,
  tryRecvfrom,
} from "../sys/libc.ts";

/** Options for {@linkcode NetlinkSocket.open}. */
export interface NetlinkSocketOptions {
  /**
   * Netlink protocol, e.g. `NETLINK_ROUTE` (0) or `NETLINK_NETFILTER` (12).
   * @default {0}
   */
  protocol?: number;
  /**
   * Fail a receive that waits longer than this (`SO_RCVTIMEO`); 0 waits forever.
   * @default {0}
   */
  receiveTimeoutMs?: number;
  /**
   * Multicast groups to join at bind (`nl_groups`, bit `n - 1` for group
   * `n`), for sockets that listen to notifications.
   * @default {0}
   */
  groups?: number;
}

/** One request: the message type, extra flags, and the payload after `nlmsghdr`. */
export interface NetlinkRequest {
  /** `nlmsg_type`, e.g. `RTM_NEWLINK`. */
  type: number;
  /**
   * Extra `nlmsg_flags`. `NLM_F_REQUEST` is always set; `NLM_F_ACK` is added
   * unless `NLM_F_DUMP` is given, so every non-dump request ends with an ACK.
   * @default {0}
   */
  flags?: number;
  /** Bytes after the `nlmsghdr` (e.g. an encoded `ifinfomsg` with attributes). */
  payload: Uint8Array;
  /**
   * What is attempted, for error messages (`Cannot <op>: ...`).
   * @default {"send netlink request type <type>"}
   */
  op?: string;
}

/** How many times an interrupted dump is restarted before giving up (as netlinksafe). */
export const DUMP_ATTEMPTS = 5;
const RECEIVE_BUFFER = 65536;

/** A netlink socket bound to a kernel-assigned port id; close it or use `using`. */
export class NetlinkSocket implements Disposable {
  #fd: number;
  #seq: number;
  #portId: number;
  #buffer = new Uint8Array(RECEIVE_BUFFER);
  #sender = new Uint8Array(12);
  /** The netlink protocol this socket speaks. */
  readonly protocol: number;

  private constructor(fd: number, protocol: number, portId: number) {
    this.#fd = fd;
    this.protocol = protocol;
    this.#portId = portId;
    // Random start so replies to an earlier process's socket cannot be mistaken for ours.
    this.#seq = (Math.random() * 0x7fffffff) >>> 0;
  }

  /**
   * Opens a socket in the calling thread's network namespace, with extended
   * ACKs on (`NETLINK_EXT_ACK`) and ACKs capped to the request header.
   *
   * @example Usage
   * ```ts ignore
   * using socket = NetlinkSocket.open({ protocol: NETLINK_NETFILTER });
   * ```
   */
  static open(options: NetlinkSocketOptions = {}): NetlinkSocket {
    const protocol = options.protocol ?? NETLINK_ROUTE;
    const fd = socket(AF_NETLINK, { type: SOCK_RAW | SOCK_CLOEXEC, protocol });
    try {
      const address = new Uint8Array(12); // struct sockaddr_nl, nl_pid 0: kernel assigns
      new DataView(address.buffer).setUint16(0, AF_NETLINK, LE);
      new DataView(address.buffer).setUint32(8, options.groups ?? 0, LE);
      bind(fd, address);
      getsockname(fd, address);
      const portId = new DataView(address.buffer).getUint32(4, LE);
      for (const name of [NETLINK_EXT_ACK, NETLINK_CAP_ACK]) {
        try {
          setsockopt(fd, { level: SOL_NETLINK, name, value: int32(1) });
        } catch (error) {
          // Old kernels lack these options; errors then come without text.
          if (!(error instanceof OsError && error.errno === Errno.ENOPROTOOPT)) throw error;
        }
      }
      const timeout = options.receiveTimeoutMs ?? 0;
      if (timeout > 0) {
        const timeval = new Uint8Array(16);
        const view = new DataView(timeval.buffer);
        view.setBigInt64(0, BigInt(Math.floor(timeout / 1000)), LE);
        view.setBigInt64(8, BigInt((timeout % 1000) * 1000), LE);
        setsockopt(fd, { level: SOL_SOCKET, name: SO_RCVTIMEO, value: timeval });
      }
      return new NetlinkSocket(fd, protocol, portId);
    } catch (error) {
      close(fd);
      throw error;
    }
  }

  /** The raw fd; throws once closed. */
  get fd(): number {
    if (this.#fd < 0) throw new TypeError("Cannot use netlink socket: closed");
    return this.#fd;
  }

  /** The port id the kernel assigned (`nl_pid`); replies carry it in `nlmsg_pid`. */
  get portId(): number {
    return this.#portId;
  }

  /**
   * Sends one request and returns the data messages of the reply (copied).
   * A non-dump request returns after its ACK; a dump (`NLM_F_DUMP`) after
   * `NLMSG_DONE`, restarted up to {@linkcode DUMP_ATTEMPTS} times when the
   * kernel flags it `NLM_F_DUMP_INTR`. Throws {@linkcode NetlinkError} for an
   * error reply, `OsError` for a failed syscall.
   */
  request(request: NetlinkRequest): NlMessage[] {
    const flags = request.flags ?? 0;
    const dump = (flags & NLM_F_DUMP) === NLM_F_DUMP;
    const op = request.op ?? `send netlink request type ${request.type}`;
    for (let attempt = 1;; attempt++) {
      const { messages, interrupted } = this.#exchange(request, flags, dump, op);
      if (!interrupted) return messages;
      if (attempt >= DUMP_ATTEMPTS) {
        throw new NetlinkError(
          Errno.EINTR,
          op,
          `dump interrupted by concurrent changes ${DUMP_ATTEMPTS} times`,
        );
      }
    }
  }

  #exchange(
    request: NetlinkRequest,
    flags: number,
    dump: boolean,
    op: string,
  ): { messages: NlMessage[]; interrupted: boolean } {
    const seq = this.#seq = (this.#seq + 1) >>> 0;
    const wire = encodeNlMessage(
      {
        type: request.type,
        flags: NLM_F_REQUEST | flags | (dump ? 0 : NLM_F_ACK),
        seq,
        pid: 0,
      },
      request.payload,
    );
    sendto(this.fd, wire, { address: KERNEL_ADDRESS });
    const messages: NlMessage[] = [];
    let interrupted = false;
    for (;;) {
      for (const message of this.#receiveFromKernel()) {
        const { header } = message;
        // Late replies to an earlier request (e.g. after a timeout) are skipped.
        if (header.seq !== seq || header.pid !== this.#portId) continue;
        if (header.type === NLMSG_ERROR) {
          const errno = -new DataView(
            message.payload.buffer,
            message.payload.byteOffset,
            4,
          ).getInt32(0, LE);
          if (errno === 0) return { messages, interrupted };
          throw new NetlinkError(errno, op, extackMessage(header.flags, message.payload));
        }
        if (header.type === NLMSG_DONE) {
          const errno = message.payload.length >= 4
            ? -new DataView(message.payload.buffer, message.payload.byteOffset, 4).getInt32(0, LE)
            : 0;
          if (errno > 0) {
            const tlvs = header.flags & NLM_F_ACK_TLVS
              ? extackAttrs(message.payload.subarray(4))
              : undefined;
            throw new NetlinkError(errno, op, tlvs);
          }
          return { messages, interrupted };
        }
        if (header.type === NLMSG_NOOP) continue;
        if (header.type === NLMSG_OVERRUN) {
          throw new NetlinkError(Errno.ENOBUFS, op, "netlink overrun");
        }
        if (header.flags & NLM_F_DUMP_INTR) interrupted = true;
        messages.push({ header, payload: message.payload.slice() });
      }
    }
  }

  /**
   * Sends `requests` in one datagram with consecutive sequence numbers (an
   * nfnetlink batch: begin, commands, end) and returns once the kernel has
   * acknowledged every request that asks for it (`ack: false` opts out, as
   * batch begin and end markers do). Throws {@linkcode NetlinkError} for the
   * first error reply: the kernel then rolled the whole batch back.
   */
  batch(requests: readonly (NetlinkRequest & { ack?: boolean })[], op: string): void {
    const first = (this.#seq + 1) >>> 0;
    const pending = new Set<number>();
    const parts = requests.map((request, i) => {
      const seq = (first + i) >>> 0;
      const ack = request.ack ?? true;
      if (ack) pending.add(seq);
      return encodeNlMessage(
        {
          type: request.type,
          flags: NLM_F_REQUEST | (request.flags ?? 0) | (ack ? NLM_F_ACK : 0),
          seq,
          pid: 0,
        },
        request.payload,
      );
    });
    this.#seq = (first + requests.length - 1) >>> 0;
    const wire = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
    parts.reduce((at, part) => (wire.set(part, at), at + part.length), 0);
    sendto(this.fd, wire, { address: KERNEL_ADDRESS });
    const last = this.#seq;
    const ours = (seq: number) => ((seq - first) >>> 0) <= ((last - first) >>> 0);
    while (pending.size > 0) {
      for (const { header, payload } of this.#receiveFromKernel()) {
        if (header.type !== NLMSG_ERROR || header.pid !== this.#portId || !ours(header.seq)) {
          continue;
        }
        const errno = -new DataView(payload.buffer, payload.byteOffset, 4).getInt32(0, LE);
        if (errno !== 0) throw new NetlinkError(errno, op, extackMessage(header.flags, payload));
        pending.delete(header.seq);
      }
    }
  }

  /**
   * Waits for one datagram; returns its messages (views into the receive
   * buffer, valid until the next receive), none when the kernel did not send it.
   */
  #receiveFromKernel(): NlMessage[] {
    const n = recvfrom(this.fd, this.#buffer, { address: this.#sender, flags: MSG_TRUNC });
    if (n > this.#buffer.length) {
      throw new RangeError(
        `Cannot receive netlink reply: ${n} bytes exceed the ${this.#buffer.length}-byte buffer`,
      );
    }
    // Only the kernel (nl_pid 0) may answer.
    if (new DataView(this.#sender.buffer).getUint32(4, LE) !== 0) return [];
    return decodeNlMessages(this.#buffer.subarray(0, n));
  }

  /**
   * Receives the messages of the datagrams from the kernel that are waiting
   * (poll `fd` to wait for notifications); never blocks. Copies the payloads.
   */
  receive(): NlMessage[] {
    const messages: NlMessage[] = [];
    for (;;) {
      const n = tryRecvfrom(this.fd, this.#buffer, {
        address: this.#sender,
        flags: MSG_TRUNC | MSG_DONTWAIT,
      });
      if (n === null) return messages;
      if (n > this.#buffer.length) {
        throw new RangeError(
          `Cannot receive netlink message: ${n} bytes exceed the ${this.#buffer.length}-byte buffer`,
        );
      }
      // Only the kernel (nl_pid 0) speaks for nf_tables; anything else is skipped.
      if (new DataView(this.#sender.buffer).getUint32(4, LE) !== 0) continue;
      for (const { header, payload } of decodeNlMessages(this.#buffer.subarray(0, n))) {
        messages.push({ header, payload: payload.slice() });
      }
    }
  }

  /** Closes the socket (idempotent). */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    close(fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

const KERNEL_ADDRESS = (() => {
  const address = new Uint8Array(12);
  new DataView(address.buffer).setUint16(0, AF_NETLINK, LE);
  return address;
})();

function int32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setInt32(0, value, LE);
  return out;
}

function extackAttrs(data: Uint8Array): string | undefined {
  try {
    for (const attr of decodeRawAttrs(data)) {
      if (attr.type === NLMSGERR_ATTR_MSG) return strz.decode(attr.data) || undefined;
    }
  } catch {
    // A malformed TLV area only loses the optional text.
  }
  return undefined;
}

// NLMSG_ERROR payload: int error; struct nlmsghdr of the request, followed by
// the request payload unless NLM_F_CAPPED; then TLVs if NLM_F_ACK_TLVS.
function extackMessage(flags: number, payload: Uint8Array): string | undefined {
  if (!(flags & NLM_F_ACK_TLVS) || payload.length < 4 + NLMSG_HDRLEN) return undefined;
  let offset = 4 + NLMSG_HDRLEN;
  if (!(flags & NLM_F_CAPPED)) {
    const echoedLength = new DataView(payload.buffer, payload.byteOffset + 4, 4).getUint32(0, LE);
    offset = 4 + align4(echoedLength);
  }
  if (offset > payload.length) return undefined;
  return extackAttrs(payload.subarray(offset));
}

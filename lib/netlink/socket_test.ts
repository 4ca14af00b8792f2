import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import { createNetns, ROOT } from "../testing/netns.ts";
import { withNetns } from "../sys/netns.ts";
import {
  AF_UNSPEC,
  NETLINK_NETFILTER,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  RTM_GETLINK,
  RTM_NEWLINK,
} from "./consts.ts";
import { isExist, NetlinkError } from "./error.ts";
import { decodeLinkMessage, encodeLinkMessage, type LinkMessage } from "./messages.ts";
import { NetlinkSocket } from "./socket.ts";

const IFINFO = { family: AF_UNSPEC, type: 0, index: 0, flags: 0, change: 0 };

function names(socket: NetlinkSocket): string[] {
  const replies = socket.request({
    type: RTM_GETLINK,
    flags: NLM_F_DUMP,
    payload: encodeLinkMessage({ header: IFINFO, attrs: [] }),
  });
  return replies.map((reply) => {
    const attr = decodeLinkMessage(reply.payload).attrs.find((a) => a.kind === "ifname");
    return attr?.kind === "ifname" ? attr.value : "";
  });
}

Deno.test("NetlinkSocket.open() binds a kernel-assigned port and closes idempotently", () => {
  const socket = NetlinkSocket.open();
  assert(socket.portId > 0, `port id ${socket.portId}`);
  assertEquals(socket.protocol, 0);
  socket.close();
  socket.close();
  assertThrows(() => socket.fd, TypeError, "closed");
});

Deno.test("NetlinkSocket.open() speaks other protocols (NETLINK_NETFILTER)", () => {
  using socket = NetlinkSocket.open({ protocol: NETLINK_NETFILTER, receiveTimeoutMs: 1000 });
  assertEquals(socket.protocol, NETLINK_NETFILTER);
  assert(socket.portId > 0);
});

Deno.test("request() dumps links of the current namespace", () => {
  using socket = NetlinkSocket.open();
  assert(names(socket).includes("lo"));
});

Deno.test({
  name: "request() turns NLMSG_ERROR into NetlinkError with errno and extended ack",
  ignore: !ROOT,
  async fn() {
    await using ns = await createNetns("cbx-nl");
    using socket = withNetns(ns.path, () => NetlinkSocket.open());
    const create = (name: string, kind: string) =>
      socket.request({
        type: RTM_NEWLINK,
        flags: NLM_F_CREATE | NLM_F_EXCL,
        payload: encodeLinkMessage(
          {
            header: IFINFO,
            attrs: [{ kind: "ifname", value: name }, {
              kind: "linkinfo",
              value: [{ kind: "kind", value: kind }],
            }],
          } satisfies LinkMessage,
        ),
        op: `add "${name}"`,
      });
    const exists = assertThrows(() => create("lo", "bridge"), NetlinkError);
    assertEquals(exists.errno, 17);
    assertEquals(exists.code, "EEXIST");
    assert(isExist(exists));
    assertMatch(exists.message, /^Cannot add "lo": File exists \(EEXIST\)/);
    const unknown = assertThrows(() => create("x0", "cbxnokind"), NetlinkError);
    assertEquals(unknown.code, "EOPNOTSUPP");
    assertEquals(unknown.extack, "Unknown device type");
    assertEquals(
      unknown.message,
      `Cannot add "x0": Operation not supported (EOPNOTSUPP): Unknown device type`,
    );
    // The socket keeps working after errors: sequence numbers stay in step.
    assertEquals(create("br9", "bridge"), []);
    assert(names(socket).includes("br9"));
  },
});

Deno.test({
  name: "a socket opened inside a netns sees only that namespace",
  ignore: !ROOT,
  async fn() {
    await using a = await createNetns("cbx-nl");
    await using b = await createNetns("cbx-nl");
    await a.exec("ip", ["link", "add", "only-a", "type", "bridge"]);
    using inA = withNetns(a.path, () => NetlinkSocket.open());
    using inB = withNetns(b.path, () => NetlinkSocket.open());
    using home = NetlinkSocket.open();
    assertEquals(names(inA).sort(), ["lo", "only-a"]);
    assertEquals(names(inB), ["lo"]);
    assert(!names(home).includes("only-a"));
  },
});

import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { decodeRawAttrs, encodeRawAttrs } from "../netlink/codec.ts";
import { NLA_F_NESTED } from "../netlink/consts.ts";
import { createNetns, mustSh, ROOT } from "../testing/netns.ts";
import { deleteConntrackByDstPort, filteredFlushAttrs } from "./conntrack.ts";

const MODULE = new URL("./conntrack.ts", import.meta.url).href;

Deno.test("filteredFlushAttrs() carries a partial original tuple and a filter on protocol and port", () => {
  const attrs = decodeRawAttrs(filteredFlushAttrs(17, 5353));
  assertEquals(attrs.map((a) => a.type), [1 | NLA_F_NESTED, 25 | NLA_F_NESTED]);
  const [proto] = decodeRawAttrs(attrs[0].data);
  assertEquals(proto.type, 2 | NLA_F_NESTED);
  assertEquals(decodeRawAttrs(proto.data).map((a) => [a.type, [...a.data]]), [
    [1, [17]],
    [3, [0x14, 0xe9]],
  ]);
  // orig flags: CTA_FILTER_F_CTA_PROTO_NUM | CTA_FILTER_F_CTA_PROTO_DST_PORT; reply flags: none.
  assertEquals(decodeRawAttrs(attrs[1].data).map((a) => [a.type, [...a.data]]), [
    [1, [0x28, 0, 0, 0]],
    [2, [0, 0, 0, 0]],
  ]);
});

// Filtered flushes came with Linux 6.12; older kernels refuse them and get the dump.
const [major, minor] = Deno.osRelease().split(".").map(Number);
const FILTERED_FLUSH = major > 6 || (major === 6 && minor >= 12);

Deno.test("deleteConntrackByDstPort() refuses ports outside 0-65535 before opening a socket", () => {
  for (const port of [70000, -1, 1.5]) {
    assertThrows(
      () => deleteConntrackByDstPort([53, port], { family: 4 }),
      RangeError,
      `Invalid port ${port}: must be 0-65535`,
    );
  }
});

type InNs = (cmd: string, args: string[]) => Promise<string>;
/** Source, destination, protocol and destination port of a flow. */
type Flow = [string, string, "udp" | "tcp" | "sctp", number];

/** udp 5353, udp 53, tcp 5353 (IPv4) and udp 5353 (IPv6). */
const FOUR_FLOWS: Flow[] = [
  ["10.1.1.1", "10.2.2.2", "udp", 5353],
  ["10.1.1.1", "10.2.2.2", "udp", 53],
  ["10.1.1.1", "10.2.2.2", "tcp", 5353],
  ["fd00::1", "fd00::2", "udp", 5353],
];

/** Runs `fn` in a fresh namespace holding `flows`. */
async function withFlows(fn: (inNs: InNs) => Promise<void>, flows: Flow[] = FOUR_FLOWS) {
  await using ns = await createNetns("cbx-ct");
  const inNs: InNs = (cmd, args) => mustSh("ip", ["netns", "exec", ns.name, cmd, ...args]);
  for (const [src, dst, proto, dport] of flows) {
    await inNs("conntrack", [
      ...["-I", "-s", src, "-d", dst, "-p", proto, "--sport", "1000", "--dport", String(dport)],
      "--timeout",
      "100",
      ...(proto === "udp" ? [] : ["--state", "ESTABLISHED"]),
      ...(proto === "sctp" ? ["--orig-vtag", "1", "--reply-vtag", "2"] : []),
    ]);
  }
  await fn(inNs);
}

async function flowsLeft(inNs: InNs): Promise<string[]> {
  const left = await inNs("conntrack", ["-L", "-o", "extended"]);
  return left.trim().split("\n").filter((line) => line !== "")
    .map((line) => `${line.split(/\s+/).slice(0, 3).join(" ")} ${/dport=(\d+)/.exec(line)![1]}`)
    .sort();
}

for (const kernelFilter of [true, false]) {
  Deno.test({
    name: `deleteConntrackByDstPort() deletes only matching UDP flows of one family, ${
      kernelFilter ? "filtered by the kernel" : "by a dump"
    } (kernel)`,
    ignore: !ROOT,
    async fn() {
      await withFlows(async (inNs) => {
        const script = `import { deleteConntrackByDstPort } from "${MODULE}";
          console.log(deleteConntrackByDstPort([5353, 9999], { family: 4, kernelFilter: ${kernelFilter} }));`;
        assertEquals(
          (await inNs(Deno.execPath(), ["eval", script])).trim(),
          kernelFilter && FILTERED_FLUSH ? "filtered flush" : "dump",
        );
        assertEquals(await flowsLeft(inNs), [
          "ipv4 2 tcp 5353",
          "ipv4 2 udp 53",
          "ipv6 10 udp 5353",
        ]);
      });
    },
  });
}

Deno.test({
  name:
    "the filtered flush without its filter is refused, not read as a flush of everything (kernel)",
  ignore: !ROOT,
  async fn() {
    // Kernels without filtered flushes see exactly this: a partial tuple for an exact delete.
    const unfiltered = encodeRawAttrs(
      decodeRawAttrs(filteredFlushAttrs(17, 5353)).filter((a) => (a.type & 0x7fff) !== 25),
    );
    await withFlows(async (inNs) => {
      const script = `import { NetlinkSocket } from "${
        new URL("../netlink/socket.ts", import.meta.url).href
      }";
        using socket = NetlinkSocket.open({ protocol: 12 });
        try {
          socket.request({ type: (1 << 8) | 2, payload: Uint8Array.of(2, 0, 0, 0, ${
        [...unfiltered].join(",")
      }), op: "delete" });
          console.log("accepted");
        } catch (error) { console.log(error.code); }`;
      assertEquals((await inNs(Deno.execPath(), ["eval", script])).trim(), "EINVAL");
      assertEquals((await flowsLeft(inNs)).length, 4);
    });
  },
});

Deno.test({
  name: "deleteConntrackByDstPort() reports a failure other than a refused filter (kernel)",
  ignore: !ROOT,
  async fn() {
    await withFlows(async (inNs) => {
      // Without CAP_NET_ADMIN the flush is refused with EPERM, which must not fall back silently.
      const script = `import { deleteConntrackByDstPort } from "${MODULE}";
        deleteConntrackByDstPort([5353], { family: 4 });`;
      await assertRejects(
        () =>
          inNs("setpriv", [
            ...["--inh-caps=-all", "--bounding-set=-net_admin", "--"],
            ...[Deno.execPath(), "eval", script],
          ]),
        Error,
        "Cannot flush conntrack entries for port 5353: Operation not permitted (EPERM)",
      );
      assertEquals((await flowsLeft(inNs)).length, 4);
    });
  },
});

Deno.test({
  name: "a kernel that refuses the filtered flush gets the dump, with the same outcome (kernel)",
  ignore: !ROOT,
  async fn() {
    await withFlows(async (inNs) => {
      // A socket that answers filtered flushes the way kernels before 6.12 do.
      const script = `import { deleteConntrackByDstPort } from "${MODULE}";
        import { NetlinkSocket } from "${new URL("../netlink/socket.ts", import.meta.url).href}";
        import { NetlinkError } from "${new URL("../netlink/error.ts", import.meta.url).href}";
        using real = NetlinkSocket.open({ protocol: 12 });
        const refused = [];
        const socket = { request(req) {
          if (req.op.startsWith("flush")) { refused.push(req.op); throw new NetlinkError(95, req.op); }
          return real.request(req);
        } };
        const method = deleteConntrackByDstPort([5353, 9999], { family: 4, socket });
        console.log(JSON.stringify([method, refused]));`;
      assertEquals(JSON.parse(await inNs(Deno.execPath(), ["eval", script])), [
        "dump",
        ["flush conntrack entries for port 5353"],
      ]);
      assertEquals(await flowsLeft(inNs), ["ipv4 2 tcp 5353", "ipv4 2 udp 53", "ipv6 10 udp 5353"]);
    });
  },
});

Deno.test({
  name: "SCTP flows are found by a dump: the kernel's filter would ignore their port (kernel)",
  ignore: !ROOT,
  async fn() {
    const sctp = (dport: number): Flow => ["10.1.1.1", "10.2.2.2", "sctp", dport];
    await withFlows(async (inNs) => {
      const script = `import { deleteConntrackByDstPort, IPPROTO } from "${MODULE}";
        console.log(deleteConntrackByDstPort([5353], { family: 4, protocol: IPPROTO.sctp }));`;
      assertEquals((await inNs(Deno.execPath(), ["eval", script])).trim(), "dump");
      assertEquals(await flowsLeft(inNs), ["ipv4 2 sctp 53"]);
    }, [sctp(5353), sctp(53)]);
  },
});

// deno-lint-ignore-file no-console -- a probe reports what it received.
/**
 * A tiny TCP/UDP peer for the demo and the end-to-end tests, started inside a
 * namespace with `ip netns exec` (the UDP modes need `--unstable-net`, which
 * `Deno.listenDatagram` still requires):
 *
 *   _netprobe.ts serve <port> <reply>      answer every TCP connection with <reply>
 *   _netprobe.ts serve-udp <port> <reply>  answer every UDP datagram with <reply>
 *   _netprobe.ts get <host> <port>         print what a TCP server sends (exit 1 on failure)
 *   _netprobe.ts get-udp <host> <port>     send one datagram, print the reply (exit 1 on timeout)
 *
 * @module
 */

const [mode, a, b] = Deno.args;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function serve(port: number, reply: string): Promise<void> {
  const listener = Deno.listen({ hostname: "0.0.0.0", port });
  console.log("ready");
  for await (const conn of listener) {
    await conn.write(encoder.encode(reply)).catch(() => {});
    conn.close();
  }
}

async function serveUdp(port: number, reply: string): Promise<void> {
  const socket = Deno.listenDatagram({ hostname: "0.0.0.0", port, transport: "udp" });
  console.log("ready");
  for await (const [, from] of socket) await socket.send(encoder.encode(reply), from);
}

async function get(host: string, port: number): Promise<void> {
  const conn = await Deno.connect({ hostname: host, port });
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(4096);
  for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
    chunks.push(buffer.slice(0, n));
  }
  conn.close();
  console.log(chunks.map((chunk) => decoder.decode(chunk)).join(""));
}

async function getUdp(host: string, port: number): Promise<void> {
  const socket = Deno.listenDatagram({ hostname: "0.0.0.0", port: 0, transport: "udp" });
  await socket.send(encoder.encode("ping"), { transport: "udp", hostname: host, port });
  const timer = setTimeout(() => Deno.exit(1), 2000);
  const [data] = await socket.receive();
  clearTimeout(timer);
  console.log(decoder.decode(data));
  socket.close();
}

const timeout = setTimeout(() => {
  if (mode.startsWith("get")) Deno.exit(1);
}, 3000);
switch (mode) {
  case "serve":
    await serve(Number(a), b);
    break;
  case "serve-udp":
    await serveUdp(Number(a), b);
    break;
  case "get":
    await get(a, Number(b));
    break;
  case "get-udp":
    await getUdp(a, Number(b));
    break;
  default:
    console.error("usage: _netprobe.ts serve|serve-udp <port> <reply> | get|get-udp <host> <port>");
    Deno.exit(2);
}
clearTimeout(timeout);

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { join } from "@std/path";
import { fakePlugins } from "../lib/runtime/_testing.ts";
import { createStatusApp } from "../lib/status/app.ts";
import { statusFixture } from "../lib/status/_testing.ts";
import { depsFromFlags, isLoopback, parseListen, startServer } from "./serve.ts";

Deno.test("parseListen() reads host:port, [v6]:port and :port", () => {
  assertEquals(parseListen("127.0.0.1:9584"), { hostname: "127.0.0.1", port: 9584 });
  assertEquals(parseListen("[::1]:80"), { hostname: "::1", port: 80 });
  assertEquals(parseListen("localhost:0"), { hostname: "localhost", port: 0 });
  assertEquals(parseListen(":9584"), { hostname: "0.0.0.0", port: 9584 });
  assertThrows(() => parseListen("127.0.0.1"), SyntaxError, "expected host:port");
  assertThrows(() => parseListen("::1:80"), SyntaxError);
  assertThrows(() => parseListen("host:99999"), RangeError, "out of range");
});

Deno.test("isLoopback() accepts only loopback names and addresses", () => {
  for (const host of ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1"]) {
    assertEquals(isLoopback(host), true, host);
  }
  for (const host of ["0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "example.com", "::2"]) {
    assertEquals(isLoopback(host), false, host);
  }
});

Deno.test("depsFromFlags() applies the documented defaults", () => {
  const deps = depsFromFlags({}, { CNIBOX_JOURNAL: "/tmp/j" });
  assertEquals(deps.inventoryTtlMs, 1000);
  assertEquals(deps.configDirs, ["/etc/cni/net.d", "/opt/cni/config"]);
  assertEquals(deps.pluginDirs, ["/opt/cni/bin"]);
  assertEquals(deps.cacheDir, "/var/lib/cni");
  assertEquals(deps.dataDirs, []);
  assertEquals(deps.journalPath, "/tmp/j");
  assert(deps.runStatus);
  const custom = depsFromFlags({ "cni-config-dir": ["/a", "/b"], "data-dir": ["/var/run/cni"] });
  assertEquals(custom.configDirs, ["/a", "/b"]);
  assertEquals(custom.dataDirs, ["/var/run/cni"]);
});

Deno.test("startServer() refuses a non-loopback address unless allowed", async () => {
  await using fx = await statusFixture();
  let refused: unknown;
  try {
    await startServer({ deps: fx.sources, listen: { hostname: "0.0.0.0", port: 0 } });
  } catch (error) {
    refused = error;
  }
  assert(refused instanceof RangeError);
  assertStringIncludes(refused.message, "--allow-remote");
  await using server = await startServer({
    deps: fx.sources,
    listen: { hostname: "0.0.0.0", port: 0 },
    allowRemote: true,
  });
  const res = await fetch(`http://127.0.0.1:${server.addr!.port}/healthz`);
  assertEquals(await res.text(), "ok");
});

Deno.test("a served instance answers 10k requests in a row", async () => {
  await using fx = await statusFixture();
  // As `cnibox serve` runs it: on-disk state re-read at most once a second.
  await using server = await startServer({
    deps: { ...fx.sources, inventoryTtlMs: 1000, now: Date.now },
    listen: { hostname: "127.0.0.1", port: 0 },
  });
  const routes: [string, number][] = [
    ["/healthz", 200],
    ["/v1/version", 200],
    ["/v1/networks", 200],
    ["/v1/networks/alpha", 200],
    ["/v1/leases?network=beta", 200],
    ["/v1/attachments", 200],
    ["/metrics", 200],
    ["/", 200],
    ["/v1/networks/..%2f..%2fetc", 400],
    ["/nope", 404],
  ];
  const counts = new Map<number, number>();
  const start = performance.now();
  for (let i = 0; i < 10_000; i++) {
    const [path, status] = routes[i % routes.length];
    const res = await fetch(new URL(path, server.url));
    await res.arrayBuffer();
    if (res.status !== status) throw new Error(`request ${i} ${path}: ${res.status}`);
    counts.set(res.status, (counts.get(res.status) ?? 0) + 1);
  }
  const ms = performance.now() - start;
  assertEquals(counts.get(200), 8000);
  assertEquals(counts.get(400), 1000);
  assertEquals(counts.get(404), 1000);
  assert(ms < 120_000, `10k requests took ${ms.toFixed(0)} ms`);
  assertEquals(await (await fetch(new URL("/healthz", server.url))).text(), "ok");
});

async function raw(port: number, request: Uint8Array | string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(typeof request === "string" ? new TextEncoder().encode(request) : request);
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    const deadline = setTimeout(() => conn.close(), 3000);
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        chunks.push(buf.slice(0, n));
      }
    } catch {
      // closed by the deadline or reset by the server
    } finally {
      clearTimeout(deadline);
    }
    return new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

Deno.test("the served endpoint survives malformed requests and raw traversal paths", async () => {
  await using fx = await statusFixture();
  await Deno.mkdir(join(fx.root, "outside"));
  await Deno.writeTextFile(join(fx.root, "outside", "10.66.0.1"), "secret-id\r\neth0");
  await using server = await startServer({
    deps: fx.sources,
    listen: { hostname: "127.0.0.1", port: 0 },
  });
  const port = server.addr!.port;
  const requests: (string | Uint8Array)[] = [
    "GARBAGE\r\n\r\n",
    "GET\r\n\r\n",
    "GET / HTTP/9.9\r\nHost: localhost\r\n\r\n",
    "GET /v1/networks/../../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET /v1/networks/..%2f..%2foutside HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET /v1/leases?network=../outside HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET /v1/leases?network=..%2Foutside HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET http://evil.example/v1/leases HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    "GET /v1/leases HTTP/1.0\r\n\r\n",
    "GET /v1/networks/a\x00b HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    `GET /${"a".repeat(100_000)} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
    `GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ${"b".repeat(200_000)}\r\n\r\n`,
    "POST /v1/networks HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    "GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    new Uint8Array([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]), // TLS hello
    new Uint8Array(4096).fill(0xff),
  ];
  for (const request of requests) {
    const answer = await raw(port, request);
    assertEquals(answer.includes("secret-id"), false);
    const status = Number(answer.match(/^HTTP\/1\.[01] (\d{3})/)?.[1] ?? 0);
    // Either no HTTP answer (connection dropped) or a client error / refusal, never a 5xx.
    assert(
      status === 0 || (status >= 400 && status < 500) || status === 200,
      `${status}: ${answer.slice(0, 80)}`,
    );
    if (status === 200) {
      // Only the plain "/" and the wildcard-host probes may succeed, and never with lease data
      // from outside the configured dirs.
      assertEquals(answer.includes("10.66.0.1"), false);
    }
  }
  const traversal = await raw(
    port,
    "GET /v1/networks/..%2f..%2foutside HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
  );
  assertStringIncludes(traversal, "HTTP/1.1 400");
  const foreign = await raw(
    port,
    "GET /v1/leases HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
  );
  assertStringIncludes(foreign, "HTTP/1.1 403");
  assertEquals(await (await fetch(new URL("/healthz", server.url))).text(), "ok");
});

Deno.test("startServer() serves on a unix socket and removes it on shutdown", async () => {
  await using fx = await statusFixture();
  const path = join(fx.root, "status.sock");
  await Deno.writeTextFile(join(fx.root, "not-a-socket"), "");
  let refused = false;
  try {
    await startServer({ deps: fx.sources, socket: join(fx.root, "not-a-socket") });
  } catch {
    refused = true;
  }
  assert(refused, "a regular file must not be replaced by the socket");
  const server = await startServer({ deps: fx.sources, socket: path });
  assertEquals(server.url, `unix:${path}`);
  assertEquals((await Deno.stat(path)).mode! & 0o777, 0o660);
  const conn = await Deno.connect({ transport: "unix", path });
  await conn.write(
    new TextEncoder().encode(
      "GET /v1/networks/beta HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ),
  );
  let text = "";
  const buf = new Uint8Array(65536);
  while (true) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  conn.close();
  assertStringIncludes(text, "HTTP/1.1 200");
  assertStringIncludes(text, '"name":"beta"');
  // A second server does not take the socket of a running one.
  await assertRejects(
    () => startServer({ deps: fx.sources, socket: path }),
    Error,
    "another server is listening on it",
  );
  assertEquals((await Deno.stat(path)).isSocket, true);
  await server.shutdown();
  let gone = false;
  try {
    await Deno.lstat(path);
  } catch {
    gone = true;
  }
  assert(gone, "socket file left behind");
});

Deno.test("STATUS of 1.1.0 networks runs the plugins through lib/runtime", async () => {
  await using fx = await statusFixture();
  await using fake = await fakePlugins(["bridge", "firewall", "portmap"]);
  await fake.answer("firewall", "STATUS", "fail", '{"code":50,"msg":"iptables is missing"}');
  const { runStatus } = depsFromFlags({ "cni-path": [fake.binDir] }, fake.env);
  const app = createStatusApp({ ...fx.sources, runStatus });
  const body = await (await app.request("/v1/networks")).json();
  assertEquals(body.networks[0].status, { state: "failed", code: 50, msg: "iptables is missing" });
  // STATUS goes to the plugins in order and stops at the first failure; 0.4.0 "beta" gets none.
  assertEquals(await fake.calls(), ["bridge STATUS", "firewall STATUS"]);
  const conf = await fake.stdin("bridge", "STATUS");
  assertEquals([conf.name, conf.cniVersion], ["alpha", "1.1.0"]);
});

const HAVE_IPV6_LOOPBACK = (() => {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "startServer() on [::1] answers requests addressed to [::1]",
  ignore: !HAVE_IPV6_LOOPBACK,
  async fn() {
    await using fx = await statusFixture();
    await using server = await startServer({
      deps: fx.sources,
      listen: { hostname: "::1", port: 0 },
    });
    assertEquals(server.url, `http://[::1]:${server.addr!.port}/`);
    const res = await fetch(new URL("/healthz", server.url));
    assertEquals(res.status, 200);
    assertEquals(await res.text(), "ok");
  },
});

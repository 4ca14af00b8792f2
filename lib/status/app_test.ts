import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { join } from "@std/path";
import { CniError, ErrorCode } from "../cni/error.ts";
import type { NetworkConfigList } from "../runtime/conflist.ts";
import { createStatusApp, type StatusDeps } from "./app.ts";
import { recordRun } from "./journal.ts";
import { statusFixture } from "./_testing.ts";

const VERSION = {
  cnibox: "9.9.9",
  upstreamRelease: "1.9.1",
  cniVersions: ["1.0.0", "1.1.0"],
  plugins: ["bridge"],
};

async function json(res: Response): Promise<Record<string, unknown>> {
  assertEquals(res.headers.get("content-type")?.split(";")[0], "application/json");
  return await res.json();
}

Deno.test("GET /healthz answers ok with safety headers", async () => {
  await using fx = await statusFixture();
  const res = await createStatusApp(fx.sources).request("/healthz");
  assertEquals(res.status, 200);
  assertEquals(await res.text(), "ok");
  assertEquals(res.headers.get("x-content-type-options"), "nosniff");
  assertEquals(res.headers.get("cache-control"), "no-store");
});

Deno.test("GET /v1/version reports program, CNI versions and plugins", async () => {
  await using fx = await statusFixture();
  const res = await createStatusApp({ ...fx.sources, version: VERSION }).request("/v1/version");
  assertEquals(await json(res), VERSION);
});

Deno.test("GET /v1/networks lists networks, plugin lookup, config errors and STATUS", async () => {
  await using fx = await statusFixture();
  const ran: string[] = [];
  const deps: StatusDeps = {
    ...fx.sources,
    runStatus: (list: NetworkConfigList) => {
      ran.push(list.name);
      return Promise.reject(
        new CniError(ErrorCode.PluginNotAvailable, "no IPs left", "10.22.0.0/24"),
      );
    },
  };
  const body = await json(await createStatusApp(deps).request("/v1/networks"));
  const networks = body.networks as Record<string, unknown>[];
  assertEquals(networks.map((n) => n.name), ["alpha", "beta", "alpha", "gamma"]);
  assertEquals(networks[0].status, {
    state: "failed",
    code: 50,
    msg: "no IPs left",
    details: "10.22.0.0/24",
  });
  assertEquals(networks[1].status, { state: "not-supported" }); // 0.4.0 has no STATUS
  assertEquals(networks[2].status, undefined); // shadowed: runtimes never use it
  assertEquals(networks[2].shadowedBy, join(fx.configDir, "10-alpha.conflist"));
  assertEquals(networks[3].status, { state: "not-supported" });
  assertEquals((networks[0].plugins as { type: string; cnibox: boolean }[]).map((p) => p.cnibox), [
    true,
    true,
    false,
    false,
  ]);
  assertEquals("list" in networks[0], false);
  assertEquals("hostLocal" in networks[0], false);
  assertEquals((body.errors as { file: string }[]).map((e) => e.file), [
    join(fx.configDir, "30-broken.conflist"),
  ]);
  assertEquals(ran, ["alpha"]);
});

Deno.test("GET /v1/networks reuses a STATUS result for the TTL and can skip STATUS", async () => {
  await using fx = await statusFixture();
  let clock = 1_000_000;
  let runs = 0;
  const app = createStatusApp({
    ...fx.sources,
    now: () => clock,
    statusTtlMs: 5000,
    runStatus: () => {
      runs++;
      return Promise.resolve();
    },
  });
  const first = await json(await app.request("/v1/networks"));
  assertEquals((first.networks as { status?: unknown }[])[0].status, { state: "ok" });
  await app.request("/v1/networks");
  assertEquals(runs, 1);
  clock += 6000;
  await app.request("/v1/networks");
  assertEquals(runs, 2);
  const skipped = await json(await app.request("/v1/networks?status=0"));
  assertEquals((skipped.networks as { status?: unknown }[])[0].status, undefined);
  assertEquals(runs, 2);
});

Deno.test("GET /v1/networks/:name adds host-local ranges, leases and attachments", async () => {
  await using fx = await statusFixture();
  const body = await json(await createStatusApp(fx.sources).request("/v1/networks/beta"));
  assertEquals(body.name, "beta");
  assertEquals(body.configured, true);
  const hostLocal = body.hostLocal as {
    rangeSets: { ranges: { capacity: number; used: number; free: number }[] }[];
  }[];
  assertEquals(
    hostLocal[0].rangeSets.map((s) => s.ranges.map((r) => [r.capacity, r.used, r.free])),
    [[[2, 2, 0]], [[254, 1, 253]]],
  );
  assertEquals((body.leases as { ip: string }[]).map((l) => l.ip), [
    "10.33.0.5",
    "10.33.0.6",
    "fd33::2",
  ]);
  assertEquals((body.attachments as { containerId: string }[]).map((a) => a.containerId), [
    "c-b1",
  ]);
  const alpha = await json(await createStatusApp(fx.sources).request("/v1/networks/alpha"));
  assertEquals(alpha.shadowed, [join(fx.configDir, "40-alpha-copy.conflist")]);
  assertEquals(alpha.file, join(fx.configDir, "10-alpha.conflist"));
});

Deno.test("GET /v1/networks/:name shows a network known only from leases", async () => {
  await using fx = await statusFixture();
  const body = await json(await createStatusApp(fx.sources).request("/v1/networks/nomad"));
  assertEquals(body.configured, false);
  assertEquals((body.leases as { ip: string }[]).map((l) => l.ip), ["172.26.64.5"]);
  const res = await createStatusApp(fx.sources).request("/v1/networks/nothing-here");
  assertEquals(res.status, 404);
  assertEquals((await json(res)).error, "network not found");
});

Deno.test("GET /v1/leases lists every lease and filters by network", async () => {
  await using fx = await statusFixture();
  const app = createStatusApp(fx.sources);
  const all = await json(await app.request("/v1/leases"));
  assertEquals((all.leases as unknown[]).length, 8);
  const beta = await json(await app.request("/v1/leases?network=beta"));
  assertEquals(
    (beta.leases as Record<string, unknown>[]).map((l) => [l.ip, l.containerId, l.ifname]),
    [["10.33.0.5", "c-b1", "eth1"], ["10.33.0.6", "c-legacy", ""], ["fd33::2", "c-b1", "eth1"]],
  );
});

Deno.test("GET /v1/attachments lists attachments and flags stale ones and orphan leases", async () => {
  await using fx = await statusFixture();
  const body = await json(await createStatusApp(fx.sources).request("/v1/attachments"));
  const attachments = body.attachments as Record<string, unknown>[];
  assertEquals(attachments.map((a) => [a.containerId, a.netnsExists, a.stale]), [
    ["c-gone", false, true],
    ["c-live", true, false],
    ["c-b1", true, false],
  ]);
  assertEquals(attachments[1].cachedAt, "2026-01-15T11:58:30.000Z");
  assertEquals(attachments[1].ageSeconds, 90);
  assertEquals(attachments[1].portMappings, [
    { hostPort: 8080, containerPort: 80, protocol: "tcp" },
    { hostPort: 8080, containerPort: 80, protocol: "udp" },
  ]);
  assertEquals(
    (body.staleLeases as Record<string, unknown>[]).map((l) => [l.ip, l.staleReason]),
    [
      ["10.22.0.3", "netns-gone"],
      ["10.22.0.9", "no-attachment"],
      ["10.22.0.10", "no-attachment"],
      ["10.33.0.6", "no-attachment"],
      ["172.26.64.5", "no-attachment"],
    ],
  );
});

Deno.test("GET /metrics renders Prometheus text including runs from the journal", async () => {
  await using fx = await statusFixture();
  const journal = join(fx.root, "journal");
  const app = createStatusApp({ ...fx.sources, journalPath: journal });
  recordRun({ plugin: "bridge", command: "ADD", outcome: "ok", durationMs: 40 }, { path: journal });
  const first = await app.request("/metrics");
  assertEquals(first.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assertStringIncludes(
    await first.text(),
    'cnibox_plugin_runs_total{plugin="bridge",command="ADD",outcome="ok"} 1\n',
  );
  recordRun({ plugin: "bridge", command: "ADD", outcome: "ok", durationMs: 40 }, { path: journal });
  const second = await (await app.request("/metrics")).text();
  assertStringIncludes(
    second,
    'cnibox_plugin_runs_total{plugin="bridge",command="ADD",outcome="ok"} 2\n',
  );
  assertStringIncludes(
    second,
    'cnibox_leases_used{network="alpha",range_set="0",range="0",subnet="10.22.0.0/24"} 4\n',
  );
});

Deno.test("GET / serves the HTML dashboard with a strict CSP", async () => {
  await using fx = await statusFixture();
  const res = await createStatusApp({ ...fx.sources, version: VERSION }).request("/");
  assertEquals(res.status, 200);
  assertMatch(res.headers.get("content-type") ?? "", /^text\/html/);
  assertStringIncludes(res.headers.get("content-security-policy") ?? "", "default-src 'none'");
  const html = await res.text();
  assertStringIncludes(html, "<title>cnibox status</title>");
  assertStringIncludes(html, "cnibox 9.9.9");
  assertEquals(html.includes("<img"), false);
});

Deno.test("HEAD is answered like GET without a body; other methods get 405", async () => {
  await using fx = await statusFixture();
  const app = createStatusApp(fx.sources);
  const head = await app.request("/healthz", { method: "HEAD" });
  assertEquals(head.status, 200);
  assertEquals(await head.text(), "");
  for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
    for (const path of ["/healthz", "/v1/networks/alpha", "/nope"]) {
      const res = await app.request(path, { method });
      assertEquals(res.status, 405, `${method} ${path}`);
      assertEquals(res.headers.get("allow"), "GET, HEAD");
      assertEquals((await json(res)).error, `method ${method} not allowed`);
    }
  }
});

Deno.test("unknown paths get a JSON 404", async () => {
  await using fx = await statusFixture();
  const app = createStatusApp(fx.sources);
  for (const path of ["/nope", "/v1", "/v1/networks/alpha/extra", "/v1/networks/", "/etc/passwd"]) {
    const res = await app.request(path);
    assertEquals(res.status, 404, path);
    assertEquals((await json(res)).error, "not found");
  }
});

Deno.test("path traversal in {name} and in query strings never reads outside the configured dirs", async () => {
  await using fx = await statusFixture();
  // A network directory just outside the data dir, which a traversal would reach.
  await Deno.mkdir(join(fx.root, "outside"));
  await Deno.writeTextFile(join(fx.root, "outside", "10.66.0.1"), "secret-id\r\neth0");
  const opened: string[] = [];
  const app = createStatusApp(fx.sources);
  const attempts = [
    "/v1/networks/..%2f..%2fetc",
    "/v1/networks/..%2F..%2F..%2Fetc%2Fpasswd",
    "/v1/networks/%2e%2e",
    "/v1/networks/..",
    "/v1/networks/.hidden",
    "/v1/networks/a%00b",
    "/v1/networks/%E0%A4%A",
    "/v1/networks/..%5c..%5cetc",
    "/v1/leases?network=../outside",
    "/v1/leases?network=..%2foutside",
    "/v1/leases?network=%2e%2e%2foutside",
    "/v1/leases?network=",
    "/v1/attachments?network=../../etc",
  ];
  for (const path of attempts) {
    const res = await app.request(path);
    assert(res.status === 400 || res.status === 404, `${path}: ${res.status}`);
    const text = await res.text();
    assertEquals(text.includes("secret-id"), false, path);
    opened.push(`${path} ${res.status}`);
  }
  assertEquals(opened.filter((o) => o.endsWith(" 400")).length >= 10, true, opened.join("\n"));
});

Deno.test("requests for another Host are refused when allowedHosts is set", async () => {
  await using fx = await statusFixture();
  const app = createStatusApp({ ...fx.sources, allowedHosts: ["localhost", "127.0.0.1", "[::1]"] });
  assertEquals((await app.request("http://localhost:9584/healthz")).status, 200);
  assertEquals((await app.request("http://127.0.0.1:9584/healthz")).status, 200);
  assertEquals((await app.request("http://[::1]:9584/healthz")).status, 200);
  const evil = await app.request("http://evil.example:9584/v1/attachments");
  assertEquals(evil.status, 403);
  assertEquals((await evil.json()).error, "host not allowed");
});

Deno.test("a STATUS runner that hangs is cut off by the timeout", async () => {
  await using fx = await statusFixture();
  const app = createStatusApp({
    ...fx.sources,
    statusTimeoutMs: 50,
    runStatus: (_list, signal) =>
      new Promise((_resolve, reject) => {
        signal.addEventListener("abort", () => reject(new Error("STATUS timed out")));
      }),
  });
  const body = await json(await app.request("/v1/networks/alpha"));
  assertEquals(body.status, { state: "failed", msg: "STATUS timed out" });
});

Deno.test("a STATUS runner that ignores the abort still answers at the timeout", async () => {
  await using fx = await statusFixture();
  const app = createStatusApp({
    ...fx.sources,
    statusTimeoutMs: 50,
    runStatus: () => new Promise(() => {}),
  });
  const body = await json(await app.request("/v1/networks/alpha"));
  assertEquals(body.status, { state: "failed", msg: "STATUS timed out after 50 ms" });
});

Deno.test("a failed STATUS does not show the plugin's stderr, which libcni quotes in its message", async () => {
  await using fx = await statusFixture();
  const app = createStatusApp({
    ...fx.sources,
    runStatus: () =>
      Promise.reject(
        new CniError(
          0,
          'netplugin failed: "config: {\\"apiToken\\": \\"TOPSECRET\\"}\\n": exit status 1',
        ),
      ),
  });
  const body = await json(await app.request("/v1/networks/alpha"));
  assertEquals(body.status, {
    state: "failed",
    code: 0,
    msg: "netplugin failed (its stderr is not shown): exit status 1",
  });
});

Deno.test("a STATUS result is reused for the TTL counted from the end of its run", async () => {
  await using fx = await statusFixture();
  let clock = 0;
  let runs = 0;
  let finish = () => {};
  const app = createStatusApp({
    ...fx.sources,
    now: () => clock,
    statusTtlMs: 10_000,
    statusTimeoutMs: 60_000,
    runStatus: () => {
      runs++;
      return new Promise<void>((resolve) => finish = resolve);
    },
  });
  const first = app.request("/v1/networks/alpha");
  await new Promise((resolve) => setTimeout(resolve, 20));
  clock = 15_000; // the run took longer than the TTL
  finish();
  assertEquals((await json(await first)).status, { state: "ok" });
  clock = 20_000;
  assertEquals((await json(await app.request("/v1/networks/alpha"))).status, { state: "ok" });
  assertEquals(runs, 1);
  clock = 25_001;
  const third = app.request("/v1/networks/alpha");
  await new Promise((resolve) => setTimeout(resolve, 20));
  finish();
  await third;
  assertEquals(runs, 2);
});

Deno.test("inventoryTtlMs reuses one read of the state for a burst of requests", async () => {
  await using fx = await statusFixture();
  let clock = 0;
  const app = createStatusApp({ ...fx.sources, now: () => clock, inventoryTtlMs: 1000 });
  const count = async () =>
    ((await json(await app.request("/v1/leases"))).leases as unknown[]).length;
  assertEquals(await count(), 8);
  await Deno.writeTextFile(join(fx.dataDir, "alpha", "10.22.0.77"), "new\r\neth0");
  assertEquals(await count(), 8); // within the TTL
  clock += 1001;
  assertEquals(await count(), 9);
});

Deno.test("with an inventory TTL, list bodies stay per query, typed as JSON, and fresh after the TTL", async () => {
  await using fx = await statusFixture();
  let clock = 0;
  const app = createStatusApp({ ...fx.sources, now: () => clock, inventoryTtlMs: 1000 });
  for (const path of ["/v1/leases", "/v1/attachments"]) {
    const res = await app.request(path);
    assertEquals(res.headers.get("content-type"), "application/json");
    await res.body?.cancel();
  }
  const leases = async (query: string) =>
    ((await json(await app.request(`/v1/leases${query}`))).leases as unknown[]).length;
  const attachments = async (query: string) =>
    ((await json(await app.request(`/v1/attachments${query}`))).attachments as unknown[]).length;
  assertEquals([await leases(""), await leases("?network=beta")], [8, 3]);
  assertEquals([await attachments(""), await attachments("?network=beta")], [3, 1]);
  // A second request within the TTL gets the same rendering, the next read a new one.
  await Deno.writeTextFile(join(fx.dataDir, "beta", "10.33.0.77"), "new\r\neth1");
  assertEquals(await leases("?network=beta"), 3);
  clock += 1001;
  assertEquals(await leases("?network=beta"), 4);
});

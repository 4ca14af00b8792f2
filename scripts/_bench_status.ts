/**
 * Scenario 5 of the bench: the status endpoint (`cnibox serve`) over a large
 * state: 1000 cached attachments (libcni cache files written with
 * `writeCacheEntry`) and 4000 host-local leases, plus a journal of plugin
 * runs. Measures `/v1/attachments` and `/metrics`: latency while the
 * server's inventory is fresh (it is reused for 1 s), latency of a request
 * that has to read the state again, and requests per second with a few
 * concurrent clients. Traffic stays on 127.0.0.1. cnibox only: the
 * reference has no status endpoint.
 *
 * @module
 */
import { formatRunEntry } from "../lib/status/journal.ts";
import { writeCacheEntry } from "../lib/runtime/cache.ts";
import { nomadConflist } from "./_bench_host.ts";
import { makeRow, type Row, summarize, type Summary } from "./_bench_stats.ts";

/** Sizes of scenario 5. */
export interface StatusSizes {
  attachments: number;
  leases: number;
  /** Sequential requests per path for the warm latency. */
  requests: number;
  /** Requests per path that each wait out the inventory TTL first. */
  coldRequests: number;
  /** Seconds of the throughput run per path. */
  seconds: number;
  /** Concurrent clients of the throughput run. */
  clients: number;
}

/** What scenario 5 found, besides its table rows. */
export interface StatusReport {
  rows: Row[];
  /** Response sizes and the attachment count the server reported. */
  details: Record<string, unknown>;
}

/** The n-th address of 172.26.64.0/20 counting from .2. */
function nomadIp(i: number): string {
  const n = i + 2;
  return `172.26.${64 + (n >> 8)}.${n & 255}`;
}

/** Builds the state the endpoint reads: config, cache, leases, journal. */
export async function writeStatusState(root: string, sizes: StatusSizes): Promise<void> {
  const dataDir = `${root}/ipam`;
  const conflist = nomadConflist(dataDir);
  await Deno.mkdir(`${root}/net.d`, { recursive: true });
  await Deno.mkdir(`${dataDir}/nomad`, { recursive: true });
  await Deno.writeTextFile(`${root}/net.d/nomad.conflist`, conflist);
  const config = new TextEncoder().encode(conflist);
  const ids: string[] = [];
  for (let i = 0; i < sizes.leases; i++) {
    const id = i < sizes.attachments ? crypto.randomUUID() : `orphan-${i}`;
    ids.push(id);
    await Deno.writeTextFile(`${dataDir}/nomad/${nomadIp(i)}`, `${id}\r\neth0`);
  }
  await Deno.writeTextFile(`${dataDir}/nomad/last_reserved_ip.0`, nomadIp(sizes.leases - 1));
  for (let i = 0; i < sizes.attachments; i++) {
    await writeCacheEntry(`${root}/cache`, {
      containerId: ids[i],
      config,
      ifName: "eth0",
      networkName: "nomad",
      netns: `/var/run/netns/cbx-bn-gone-${i}`,
      cniArgs: [["IgnoreUnknown", "true"], ["NOMAD_ALLOC_ID", ids[i]]],
      capabilityArgs: {
        portMappings: [{ HostPort: 20000 + i, ContainerPort: 8080, Protocol: "tcp", HostIP: "" }],
      },
      result: {
        cniVersion: "0.4.0",
        interfaces: [{ name: "eth0", sandbox: `/var/run/netns/cbx-bn-gone-${i}` }],
        ips: [{ version: "4", interface: 0, address: `${nomadIp(i)}/20`, gateway: "172.26.64.1" }],
      },
    });
  }
  const lines: string[] = [];
  const plugins = ["loopback", "bridge", "host-local", "firewall", "portmap"];
  for (let i = 0; i < 2000; i++) {
    lines.push(formatRunEntry({
      plugin: plugins[i % plugins.length],
      command: i % 2 === 0 ? "ADD" : "DEL",
      outcome: i % 97 === 0 ? "error" : "ok",
      code: i % 97 === 0 ? 999 : undefined,
      durationMs: 5 + (i % 40),
      network: "nomad",
      containerId: ids[i % ids.length],
      ifname: "eth0",
    }));
  }
  await Deno.writeTextFile(`${root}/journal`, lines.join("\n") + "\n");
}

async function readListening(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`cnibox serve exited before listening: ${text}`);
    text += value;
    const url = text.match(/listening on (http:\/\/\S+)/)?.[1];
    if (url) {
      // Keep draining so the server never blocks on a full pipe.
      (async () => {
        while (!(await reader.read()).done) { /* discard */ }
      })().catch(() => {});
      return url;
    }
  }
}

async function get(url: string): Promise<{ ms: number; bytes: number; body: string }> {
  const t0 = performance.now();
  const res = await fetch(url);
  const body = await res.text();
  const ms = performance.now() - t0;
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${body.slice(0, 200)}`);
  return { ms, bytes: body.length, body };
}

/** Runs scenario 5 with the `cnibox` launcher in `binDir`; `root` is a scratch directory. */
export async function statusScenario(
  options: { binDir: string; root: string },
  sizes: StatusSizes,
  log: (text: string) => void,
): Promise<StatusReport> {
  const { binDir, root } = options;
  await writeStatusState(root, sizes);
  const child = new Deno.Command(`${binDir}/cnibox`, {
    args: [
      "serve",
      "--listen",
      "127.0.0.1:0",
      "--cni-config-dir",
      `${root}/net.d`,
      "--cni-path",
      binDir,
      "--cache-dir",
      `${root}/cache`,
      "--data-dir",
      `${root}/ipam`,
      "--journal",
      `${root}/journal`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    clearEnv: true,
  }).spawn();
  const rows: Row[] = [];
  const details: Record<string, unknown> = {};
  try {
    const base = await readListening(child.stdout);
    log(`status: serving on ${base}`);
    const label = `${sizes.attachments} attachments, ${sizes.leases} leases`;
    for (const path of ["/v1/attachments", "/metrics"]) {
      const url = new URL(path, base).href;
      const first = await get(url);
      details[path] = { bytes: first.bytes, firstMs: first.ms };
      if (path === "/v1/attachments") {
        details.attachmentsReported = (JSON.parse(first.body).attachments as unknown[]).length;
      }
      const warm: number[] = [];
      for (let i = 0; i < sizes.requests; i++) warm.push((await get(url)).ms);
      const cold: number[] = [];
      for (let i = 0; i < sizes.coldRequests; i++) {
        // The server reuses one read of the state for 1 s; wait it out to measure a full read.
        await new Promise((resolve) => setTimeout(resolve, 1100));
        cold.push((await get(url)).ms);
      }
      let done = 0;
      const until = performance.now() + sizes.seconds * 1000;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: sizes.clients }, async () => {
        while (performance.now() < until) {
          await get(url);
          done++;
        }
      }));
      const rps = done / ((performance.now() - t0) / 1000);
      rows.push(makeRow({ scenario: "5 status", metric: `GET ${path} (${label}), latency` }, {
        cnibox: warm,
      }));
      if (cold.length > 0) {
        rows.push(makeRow({
          scenario: "5 status",
          metric: `GET ${path}, latency with a fresh read of the state`,
        }, { cnibox: cold }));
      }
      rows.push(makeRow({
        scenario: "5 status",
        metric: `GET ${path}, ${sizes.clients} clients for ${sizes.seconds} s`,
      }, { unit: "req/s", cnibox: [rps] }));
      const summary: Summary = summarize(warm);
      log(
        `status: ${path}: median ${summary.median.toFixed(2)} ms, fresh read ${
          cold.length ? summarize(cold).median.toFixed(1) : "-"
        } ms, ${rps.toFixed(0)} req/s`,
      );
    }
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await child.status;
  }
  return { rows, details };
}

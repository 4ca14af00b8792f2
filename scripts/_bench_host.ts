/**
 * One implementation under test: its private "host" namespace, its work
 * directories, and the driver process (`_bench_driver.ts`) running inside
 * that namespace. Container namespaces ("allocations") are created here from
 * the caller's mount namespace so the driver and the plugins see them.
 *
 * Everything lives in namespaces named `cbx-bn-<pid>-<n>` and in one temp
 * directory; {@linkcode BenchHost.close} removes all of it.
 *
 * @module
 */
import { createNetns, type TestNetns } from "../lib/testing/netns.ts";
import type { Alloc, DriverRequest } from "./_bench_driver.ts";

/** Namespace name prefix of everything the bench creates. */
export const NETNS_PREFIX = "cbx-bn";

/** Which plugins an implementation runs. */
export interface Impl {
  /** "reference" or "cnibox". */
  name: string;
  /** Its plugin directory (`CNI_PATH`). */
  dir: string;
  /** Plugins this implementation lacks and takes from the reference instead. */
  borrowed: string[];
}

/** An allocation with its container namespace. */
export interface LiveAlloc extends Alloc {
  ns: TestNetns;
  /** The allocation's address once ADD succeeded. */
  ip?: string;
}

const DRIVER = new URL("./_bench_driver.ts", import.meta.url).pathname;
export { nomadConflist } from "../lib/testing/nomad.ts";
import { nomadConflist } from "../lib/testing/nomad.ts";

const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/** A reply of the driver. */
export type DriverReply = Record<string, unknown> & { ok: boolean; error?: string; ms?: number };

/** One implementation's host namespace plus its driver. */
export class BenchHost implements AsyncDisposable {
  readonly impl: Impl;
  readonly host: TestNetns;
  /** Work directory of this implementation (ipam data, cache, journal). */
  readonly work: string;
  readonly journal: string;
  readonly dataDir: string;
  readonly cacheDir: string;
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;
  #allocs = new Set<LiveAlloc>();
  #port = 20000;
  #closed = false;

  private constructor(impl: Impl, host: TestNetns, work: string, child: Deno.ChildProcess) {
    this.impl = impl;
    this.host = host;
    this.work = work;
    this.journal = `${work}/journal`;
    this.dataDir = `${work}/ipam`;
    this.cacheDir = `${work}/cache`;
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#lines = lines(child.stdout)[Symbol.asyncIterator]();
  }

  /** Creates the host namespace, starts the driver in it and initialises it. */
  static async start(impl: Impl, options: { work: string }): Promise<BenchHost> {
    const host = await createNetns(NETNS_PREFIX);
    const work = `${options.work}/${impl.name}`;
    await Deno.mkdir(`${work}/ipam`, { recursive: true });
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          host.name,
          Deno.execPath(),
          "run",
          "-A",
          "--quiet",
          "--config",
          CONFIG,
          DRIVER,
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
    } catch (error) {
      await host.remove();
      throw error;
    }
    const bench = new BenchHost(impl, host, work, child);
    await bench.request({
      op: "init",
      path: [impl.dir],
      conflist: nomadConflist(bench.dataDir),
      cacheDir: bench.cacheDir,
      env: {
        PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
        CNIBOX_JOURNAL: bench.journal,
      },
    });
    return bench;
  }

  /** Sends one request and waits for its reply; throws when the driver reports an error. */
  async request(request: DriverRequest): Promise<DriverReply> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(request) + "\n"));
    const next = await this.#lines.next();
    if (next.done) throw new Error(`The ${this.impl.name} driver exited`);
    const reply = JSON.parse(next.value) as DriverReply;
    if (!reply.ok) throw new Error(`${this.impl.name} ${request.op}: ${reply.error}`);
    return reply;
  }

  /** Creates a container namespace and the Nomad-style attachment for it (tcp+udp on a fresh host port). */
  async newAlloc(): Promise<LiveAlloc> {
    const ns = await createNetns(NETNS_PREFIX);
    const id = crypto.randomUUID();
    const port = this.#port++;
    const alloc: LiveAlloc = {
      ns,
      containerId: id,
      netns: ns.path,
      ifName: "eth0",
      args: [
        ["IgnoreUnknown", "true"],
        ["NOMAD_REGION", "global"],
        ["NOMAD_NAMESPACE", "default"],
        ["NOMAD_JOB_ID", "bench"],
        ["NOMAD_GROUP_NAME", "bench"],
        ["NOMAD_ALLOC_ID", id],
      ],
      // go-cni's PascalCase keys, each port for tcp and udp, HostIP "" (nomad-and-podman.md 0.2).
      capabilityArgs: {
        portMappings: ["tcp", "udp"].map((protocol) => ({
          HostPort: port,
          ContainerPort: 8080,
          Protocol: protocol,
          HostIP: "",
        })),
      },
    };
    this.#allocs.add(alloc);
    return alloc;
  }

  /** Deletes an allocation's namespace (after its DEL). */
  async dropAlloc(alloc: LiveAlloc): Promise<void> {
    this.#allocs.delete(alloc);
    await alloc.ns.remove();
  }

  /** ADD through `lib/runtime`; returns the driver-measured wall ms and CPU ms of all processes. */
  async add(alloc: LiveAlloc): Promise<{ ms: number; cpuMs: number }> {
    const reply = await this.request({ op: "add", alloc: wire(alloc) });
    alloc.ip = reply.ip as string | undefined;
    return { ms: reply.ms!, cpuMs: reply.cpuMs as number };
  }

  /** DEL through `lib/runtime`; returns the driver-measured wall ms and CPU ms of all processes. */
  async del(alloc: LiveAlloc): Promise<{ ms: number; cpuMs: number }> {
    const reply = await this.request({ op: "del", alloc: wire(alloc) });
    return { ms: reply.ms!, cpuMs: reply.cpuMs as number };
  }

  /** Runs a command in the host namespace (untimed checks). */
  async inHost(cmd: string, args: string[]): Promise<string> {
    const out = await this.host.exec(cmd, args);
    if (out.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${out.stderr.trim()}`);
    return out.stdout;
  }

  /** Stops the driver and deletes every namespace and file of this implementation. */
  async close(options: { keep?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.request({ op: "quit" });
    } catch {
      // The driver is gone already.
    }
    await this.#writer.close().catch(() => {});
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // Exited.
    }
    await this.#child.status;
    for (const alloc of this.#allocs) await alloc.ns.remove();
    this.#allocs.clear();
    await this.host.remove();
    if (!options.keep) await Deno.remove(this.work, { recursive: true }).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The part of an allocation the driver needs (no namespace handle). */
export function wire(alloc: LiveAlloc): Alloc {
  const { ns: _ns, ip: _ip, ...rest } = alloc;
  return rest;
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
    }
  }
}

// deno-lint-ignore-file no-console -- the demo narrates what it does.
/**
 * `deno task demo`: a throwaway Nomad-style bridge network, entirely inside
 * private network namespaces (a "host" and two allocations), driven through
 * `cnibox exec` with Nomad's own conflist and inputs. It shows the addresses
 * handed out, traffic between the allocations and through a mapped port, what
 * the status endpoint reports, and then tears everything down, checking that
 * no rule, link or lease is left.
 *
 * Nothing outside the namespaces it creates (and a temp dir) is touched.
 *
 * @module
 */
import { pluginDir } from "../lib/testing/harness.ts";
import { nomadConflist } from "../lib/testing/nomad.ts";
import { createNetns, sh, type TestNetns } from "../lib/testing/netns.ts";

const root = new URL("..", import.meta.url).pathname;
const probe = `${root}scripts/_netprobe.ts`;
const network = "nomad";
const hostPort = 28080;

function step(text: string): void {
  console.log(`\n\x1b[1m== ${text}\x1b[0m`);
}

interface Allocation {
  id: string;
  ns: TestNetns;
  ip?: string;
}

async function main(): Promise<number> {
  const work = await Deno.makeTempDir({ prefix: "cnibox-demo-" });
  const confDir = `${work}/net.d`;
  const cacheDir = `${work}/cache`;
  const dataDir = `${work}/run-cni`;
  await Deno.mkdir(confDir);
  await Deno.writeTextFile(`${confDir}/nomad.conflist`, nomadConflist(dataDir));

  step("installing the plugins (launchers over this checkout) and creating namespaces");
  const bin = await pluginDir();
  console.log(
    `plugins in ${bin}: ${[...Deno.readDirSync(bin)].map((e) => e.name).sort().join(", ")}`,
  );
  const fingerprint = await sh(`${bin}/bridge`, []);
  console.log(`bare run, as Nomad fingerprints it: ${fingerprint.stderr.split("\n")[0]}`);
  await using host = await createNetns("cnibox-demo-host");
  const allocations: Allocation[] = [
    { id: crypto.randomUUID(), ns: await createNetns("cnibox-demo-alloc") },
    { id: crypto.randomUUID(), ns: await createNetns("cnibox-demo-alloc") },
  ];
  const children: Deno.ChildProcess[] = [];
  try {
    const cniEnv = (alloc: Allocation, withArgs: boolean) => ({
      PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
      NETCONFPATH: confDir,
      CNI_PATH: bin,
      CNI_CACHE_DIR: cacheDir,
      CNIBOX_JOURNAL: `${work}/journal`,
      CNI_IFNAME: "eth0",
      CNI_CONTAINERID: alloc.id,
      // Nomad sends these on ADD and CHECK, and an empty CNI_ARGS on DEL.
      CNI_ARGS: withArgs
        ? `IgnoreUnknown=true;NOMAD_REGION=global;NOMAD_NAMESPACE=default;NOMAD_JOB_ID=demo;NOMAD_ALLOC_ID=${alloc.id}`
        : "",
      // Nomad (go-cni) sends PascalCase keys, tcp and udp for each port, and HostIP "".
      CAP_ARGS: JSON.stringify({
        portMappings: alloc === allocations[1]
          ? [
            { HostPort: hostPort, ContainerPort: 8080, Protocol: "tcp", HostIP: "" },
            { HostPort: hostPort, ContainerPort: 8080, Protocol: "udp", HostIP: "" },
          ]
          : [],
      }),
    });
    const exec = (verb: string, alloc: Allocation) =>
      sh(
        "ip",
        ["netns", "exec", host.name, `${bin}/cnibox`, "exec", verb, network, alloc.ns.path],
        {
          env: cniEnv(alloc, verb !== "del"),
          clearEnv: true,
        },
      );

    step(
      `ADD: two allocations join network "${network}" (loopback, bridge+host-local, firewall, portmap)`,
    );
    for (const alloc of allocations) {
      const out = await exec("add", alloc);
      if (out.code !== 0) throw new Error(`ADD failed for ${alloc.id}: ${out.stderr}${out.stdout}`);
      const result = JSON.parse(out.stdout);
      // Nomad's rule: the first interface (by name) with a sandbox that has an address.
      const sandboxed = result.interfaces.findIndex((i: { sandbox?: string }) => i.sandbox);
      alloc.ip = result.ips.find((ip: { interface: number }) => ip.interface === sandboxed).address
        .split("/")[0];
      console.log(`allocation ${alloc.id.slice(0, 8)}: ${alloc.ip} via ${result.ips[0].gateway}`);
    }
    for (const alloc of allocations) {
      const out = await exec("check", alloc);
      console.log(`CHECK ${alloc.id.slice(0, 8)}: ${out.code === 0 ? "ok" : out.stderr.trim()}`);
    }

    step("traffic");
    const [a, b] = allocations;
    const server = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        b.ns.name,
        Deno.execPath(),
        "run",
        "-A",
        probe,
        "serve",
        "8080",
        `hello from ${b.id.slice(0, 8)}`,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    children.push(server);
    await server.stdout.getReader().read(); // "ready"
    const get = async (ns: TestNetns, target: string, port: number) => {
      const out = await sh("ip", [
        "netns",
        "exec",
        ns.name,
        Deno.execPath(),
        "run",
        "-A",
        probe,
        "get",
        target,
        String(port),
      ]);
      return out.code === 0 ? out.stdout.trim() : `FAILED (${out.stderr.trim() || out.code})`;
    };
    console.log(`alloc A -> alloc B ${b.ip}:8080 over the bridge: ${await get(a.ns, b.ip!, 8080)}`);
    console.log(`host -> alloc B ${b.ip}:8080: ${await get(host, b.ip!, 8080)}`);
    console.log(
      `host -> 127.0.0.1:${hostPort} (portmap): ${await get(host, "127.0.0.1", hostPort)}`,
    );
    console.log(
      `alloc A -> gateway 172.26.64.1:${hostPort} (portmap, hairpin via host): ${await get(
        a.ns,
        "172.26.64.1",
        hostPort,
      )}`,
    );

    step("what the host's firewall now holds (iptables-save, CNI rules only)");
    const save = await host.exec("iptables-save", []);
    console.log(save.stdout.split("\n").filter((l) => /CNI|NOMAD/.test(l)).join("\n"));

    step("the status endpoint (cnibox serve) inside the host namespace");
    await showStatus(
      host,
      bin,
      { confDir, cacheDir, dataDir, journal: `${work}/journal` },
      children,
    );

    step("DEL: tear both allocations down (Nomad sends an empty CNI_ARGS)");
    for (const alloc of allocations) {
      const out = await exec("del", alloc);
      console.log(`DEL ${alloc.id.slice(0, 8)}: ${out.code === 0 ? "ok" : out.stderr.trim()}`);
    }
    const after = (await host.exec("iptables-save", [])).stdout.split("\n")
      .filter((l) => /^-A .*CNI-(DN|[0-9a-f]{24})|^:CNI-(DN-)?[0-9a-f]/.test(l));
    const leases = [...Deno.readDirSync(`${dataDir}/${network}`)].map((e) => e.name)
      .filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n));
    const veths = JSON.parse(
      (await host.exec("ip", ["-j", "link", "show", "type", "veth"])).stdout || "[]",
    );
    console.log(
      `left behind: ${after.length} per-allocation rules/chains, ${leases.length} leases, ${veths.length} veths`,
    );
    return after.length + leases.length + veths.length === 0 ? 0 : 1;
  } finally {
    for (const child of children) {
      try {
        child.kill("SIGTERM");
        await child.status;
      } catch { /* already gone */ }
    }
    for (const alloc of allocations) await alloc.ns.remove();
    await Deno.remove(work, { recursive: true });
  }
}

async function showStatus(
  host: TestNetns,
  bin: string,
  dirs: { confDir: string; cacheDir: string; dataDir: string; journal: string },
  children: Deno.ChildProcess[],
): Promise<void> {
  const port = 9584;
  const serve = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      host.name,
      `${bin}/cnibox`,
      "serve",
      "--listen",
      `127.0.0.1:${port}`,
      "--cni-config-dir",
      dirs.confDir,
      "--cni-path",
      bin,
      "--cache-dir",
      dirs.cacheDir,
      "--data-dir",
      dirs.dataDir,
      "--journal",
      dirs.journal,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  children.push(serve);
  const fetchJson = async (path: string) => {
    for (let attempt = 0; attempt < 50; attempt++) {
      const out = await sh("ip", [
        "netns",
        "exec",
        host.name,
        "curl",
        "-sf",
        `http://127.0.0.1:${port}${path}`,
      ]);
      if (out.code === 0) return JSON.parse(out.stdout);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`status endpoint did not answer ${path}`);
  };
  const net = await fetchJson(`/v1/networks/${network}`);
  console.log(
    `GET /v1/networks/${network}: ${net.plugins.length} plugins, all found and cnibox: ${
      net.plugins.every((p: { cnibox: boolean }) => p.cnibox)
    }`,
  );
  console.log(
    JSON.stringify(net.ranges ?? net.leases ?? {}, null, 2).split("\n").slice(0, 24).join("\n"),
  );
  const { attachments } = await fetchJson("/v1/attachments");
  console.log(`GET /v1/attachments: ${attachments.length} attachments`);
  for (const a of attachments) {
    const ports = a.portMappings.map((
      p: { hostPort: number; containerPort: number; protocol: string },
    ) => `${p.hostPort}->${p.containerPort}/${p.protocol}`);
    console.log(
      `  ${a.containerId.slice(0, 8)} ${a.ifname} ${a.ips.join(",")} ports [${
        ports.join(" ")
      }] stale=${a.stale}`,
    );
  }
  const metrics = await sh("ip", [
    "netns",
    "exec",
    host.name,
    "curl",
    "-sf",
    `http://127.0.0.1:${port}/metrics`,
  ]);
  console.log("GET /metrics (excerpt):");
  console.log(
    metrics.stdout.split("\n").filter((l) => /^cnibox_(leases|plugin_runs_total)/.test(l)).slice(
      0,
      12,
    ).join("\n"),
  );
}

if (import.meta.main) {
  Deno.exit(await main());
}

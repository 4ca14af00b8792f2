/**
 * A confined podman for the end-to-end tests: Debian's podman 4.3 with its
 * CNI backend, run under `nsenter --net=<private netns>` so every bridge,
 * veth, iptables rule and port reservation lands in a namespace the test
 * owns, never in the machine's own. (`ip netns exec` does not work here: its
 * private mount namespace hides the netns bind mounts podman makes from the
 * next podman command.)
 *
 * Everything podman keeps lives in a temp dir: storage (`--root`,
 * `--runroot`, vfs driver), its `tmp_dir` with file locks (not the
 * machine-wide SHM locks), the conflists and the host-local dataDir. The
 * configuration is the working recipe of shared/reference/nomad-and-podman.md
 * B4: `network_backend = "cni"`, `cni_plugin_dirs` = the plugins under test,
 * `runtime = "runc"` (crun refuses this hybrid-cgroup host), explicit
 * `default_ulimits` (no CAP_SYS_RESOURCE here), and an image imported from
 * busybox-static. Podman's own CNI result cache stays in `/var/lib/cni`;
 * entries of the test's networks (`cbxe2e*`) are removed on dispose.
 *
 * Test-only.
 *
 * @module
 */
import { type CommandOutput, createNetns, sh, type TestNetns } from "../lib/testing/netns.ts";
import { readConflist } from "./_env.ts";

/** The image the tests run, imported from busybox-static (no registry). */
export const IMAGE = "localhost/cbxe2e-busybox:test";

/** Where podman's CNI backend caches results (libcni's default, not configurable in 4.3). */
export const PODMAN_CNI_CACHE = "/var/lib/cni";

/** Path of busybox when it is statically linked (usable as a whole image), else undefined. */
export function staticBusybox(path = "/bin/busybox"): string | undefined {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch {
    return undefined;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // ELF64 little-endian only (this machine); a PT_INTERP program header means dynamic.
  if (view.getUint32(0) !== 0x7f454c46 || bytes[4] !== 2 || bytes[5] !== 1) return undefined;
  const phoff = Number(view.getBigUint64(0x20, true));
  const phentsize = view.getUint16(0x36, true);
  const phnum = view.getUint16(0x38, true);
  for (let i = 0; i < phnum; i++) {
    if (view.getUint32(phoff + i * phentsize, true) === 3) return undefined;
  }
  return path;
}

/** Podman's major version, or undefined when podman does not run. */
export async function podmanMajor(): Promise<number | undefined> {
  try {
    const out = await sh("podman", ["--version"]);
    const match = out.stdout.match(/version (\d+)\./);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** A confined podman and its private host namespace. */
export interface PodmanRig extends AsyncDisposable {
  ns: TestNetns;
  work: string;
  /** host-local dataDir of the rig's networks. */
  dataDir: string;
  /** Runs `podman <args>` confined; never throws for a non-zero exit. */
  podman(args: string[]): Promise<CommandOutput>;
  /** Runs `podman <args>` confined; throws with stderr on failure; returns trimmed stdout. */
  mustPodman(args: string[]): Promise<string>;
}

function containersConf(work: string, pluginDir: string, defaultNetwork: string): string {
  return `# cnibox e2e: podman confined to a temp dir and a private network namespace
[containers]
default_ulimits = ["nofile=1024:20000", "nproc=32768:32768"]

[network]
network_backend = "cni"
cni_plugin_dirs = [${JSON.stringify(pluginDir)}]
network_config_dir = ${JSON.stringify(`${work}/net.d`)}
default_network = ${JSON.stringify(defaultNetwork)}

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
lock_type = "file"
tmp_dir = ${JSON.stringify(`${work}/tmp`)}
`;
}

/** Builds a busybox-only root filesystem tarball and returns its path. */
async function busyboxTarball(work: string, busybox: string): Promise<string> {
  const rootfs = `${work}/rootfs`;
  for (const dir of ["bin", "etc", "proc", "sys", "dev", "tmp", "www"]) {
    await Deno.mkdir(`${rootfs}/${dir}`, { recursive: true });
  }
  await Deno.copyFile(busybox, `${rootfs}/bin/busybox`);
  await Deno.chmod(`${rootfs}/bin/busybox`, 0o755);
  const applets = (await sh(busybox, ["--list"])).stdout.split("\n").filter(Boolean);
  for (const applet of applets) {
    if (applet !== "busybox") await Deno.symlink("busybox", `${rootfs}/bin/${applet}`);
  }
  await Deno.writeTextFile(`${rootfs}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
  await Deno.writeTextFile(`${rootfs}/etc/group`, "root:x:0:\n");
  await Deno.writeTextFile(`${rootfs}/www/index.html`, "served by podman\n");
  const tarball = `${work}/rootfs.tar`;
  const out = await sh("tar", ["-C", rootfs, "-cf", tarball, "."]);
  if (out.code !== 0) throw new Error(`tar failed: ${out.stderr}`);
  return tarball;
}

/** Mount points at or below `dir` (podman's shm mounts), deepest first. */
async function mountsUnder(dir: string): Promise<string[]> {
  const info = await Deno.readTextFile("/proc/self/mountinfo");
  return info.split("\n").map((line) => line.split(" ")[4]).filter((point) =>
    point !== undefined && (point === dir || point.startsWith(`${dir}/`))
  ).sort().reverse();
}

/**
 * Creates the confined podman: private netns, temp dir, config, the given
 * conflists and the busybox image.
 */
export async function createPodmanRig(options: {
  pluginDir: string;
  busybox: string;
  /** Conflist fixtures in testdata/e2e. */
  conflists: string[];
  defaultNetwork: string;
  /** Extra conflist texts (file name → text), e.g. a broken one. */
  extraConflists?: Record<string, string>;
}): Promise<PodmanRig> {
  const work = await Deno.makeTempDir({ prefix: "cbx-e2e-podman-" });
  const ns = await createNetns("cbx-e2e-pm");
  const dataDir = `${work}/ipam`;
  const env = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    CONTAINERS_CONF: `${work}/containers.conf`,
    HOME: `${work}/home`,
  };
  const podman = async (args: string[]) => {
    const t0 = performance.now();
    const r = await sh("nsenter", [
      `--net=${ns.path}`,
      "podman",
      "--root",
      `${work}/root`,
      "--runroot",
      `${work}/runroot`,
      "--storage-driver",
      "vfs",
      ...args,
    ], { env, clearEnv: true });
    if (Deno.env.get("CNIBOX_E2E_DEBUG")) {
      // deno-lint-ignore no-console -- opt-in timing of podman commands.
      console.error(
        `podman ${args.slice(0, 3).join(" ")}: ${Math.round(performance.now() - t0)} ms`,
      );
    }
    return r;
  };
  const mustPodman = async (args: string[]) => {
    const out = await podman(args);
    if (out.code !== 0) {
      throw new Error(`podman ${args.join(" ")} exited ${out.code}: ${out.stderr.trim()}`);
    }
    return out.stdout.trim();
  };
  const networks: string[] = [];
  const rig: PodmanRig = {
    ns,
    work,
    dataDir,
    podman,
    mustPodman,
    async [Symbol.asyncDispose]() {
      await podman(["rm", "--all", "--force", "--time", "0"]);
      for (const point of await mountsUnder(work)) await sh("umount", ["-l", point]);
      await ns.remove();
      await Deno.remove(work, { recursive: true }).catch(() => {});
      for (const name of await cacheEntries(networks)) {
        await Deno.remove(`${PODMAN_CNI_CACHE}/results/${name}`).catch(() => {});
      }
    },
  };
  try {
    await Deno.mkdir(`${work}/net.d`, { recursive: true });
    await Deno.mkdir(`${work}/home`);
    await Deno.writeTextFile(
      env.CONTAINERS_CONF,
      containersConf(work, options.pluginDir, options.defaultNetwork),
    );
    const files: [string, string][] = [];
    for (const fixture of options.conflists) {
      files.push([fixture, await readConflist(fixture, dataDir)]);
    }
    files.push(...Object.entries(options.extraConflists ?? {}));
    for (const [i, [file, text]] of files.entries()) {
      networks.push(JSON.parse(text).name);
      await Deno.writeTextFile(`${work}/net.d/${50 + i}-${file}`, text);
    }
    await mustPodman(["import", await busyboxTarball(work, options.busybox), IMAGE]);
  } catch (error) {
    await rig[Symbol.asyncDispose]();
    throw error;
  }
  return rig;
}

/** Podman's cached CNI results for networks whose names are given (file names). */
export async function cacheEntries(networks: string[]): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(`${PODMAN_CNI_CACHE}/results`)) {
      if (networks.some((net) => entry.name.startsWith(`${net}-`))) names.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.sort();
}

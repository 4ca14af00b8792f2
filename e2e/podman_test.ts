/**
 * podman (Debian 4.3, CNI backend) running containers on cnibox's plugins,
 * confined to a private network namespace and a temp dir (see `_podman.ts`):
 * podman's VERSION validation, addresses and routes from the conflist,
 * container ↔ container, host → container, host → 127.0.0.1:<hostPort> via
 * `-p`, a second network alongside, and `podman rm` leaving nothing behind.
 *
 * Needs root and Debian's `podman`, `runc` and `busybox-static`
 * (scripts/setup.sh installs them); skipped with the reason otherwise.
 * Run: `deno test -A e2e/podman_test.ts`.
 *
 * @module
 */
import { assert, assertEquals, assertNotEquals, assertStringIncludes } from "@std/assert";
import { announceSkip, pluginsUnderTest, skipReason } from "./_env.ts";
import { firewallLeftovers, hostLinkNames, inSubnet, leases, veths } from "./_net.ts";
import { NOMAD_BRIDGE_PLUGINS } from "./_nomad.ts";
import {
  cacheEntries,
  createPodmanRig,
  IMAGE,
  podmanMajor,
  type PodmanRig,
  staticBusybox,
} from "./_podman.ts";

const BUSYBOX = staticBusybox();
const MAJOR = await podmanMajor();
const SKIP = skipReason({
  podman: "podman",
  runc: "runc",
  conmon: "conmon",
  nsenter: "util-linux",
  curl: "curl",
  ip: "iproute2",
  "iptables-save": "iptables",
  "ip6tables-save": "iptables",
}) ??
  (BUSYBOX === undefined
    ? "no statically linked /bin/busybox (apt-get install busybox-static)"
    : undefined) ??
  (MAJOR !== undefined && MAJOR >= 5
    ? `podman ${MAJOR} has no CNI backend (Debian's podman 4.3 has)`
    : undefined);
announceSkip("podman tests (e2e/podman_test.ts)", SKIP);

/** The first network: Nomad-shaped chain on bridge cbxe2e0. */
const NET = "cbxe2e";
/** The second network: bridge cbxe2e1, cniVersion 1.0.0. */
const NET2 = "cbxe2e1";
/** A network with a plugin missing from the plugin dir: podman must drop it. */
const BROKEN = {
  "cbxe2ebad.conflist": JSON.stringify({
    cniVersion: "0.4.0",
    name: "cbxe2ebad",
    plugins: [{ type: "loopback" }, { type: "tuning" }],
  }),
};

interface Container {
  name: string;
  id: string;
  ip: string;
  gateway: string;
  sandboxKey: string;
}

async function inspect(rig: PodmanRig, name: string, network: string): Promise<Container> {
  const [info] = JSON.parse(await rig.mustPodman(["inspect", name]));
  const net = info.NetworkSettings.Networks[network];
  assert(net, `${name} is not on ${network}: ${JSON.stringify(info.NetworkSettings.Networks)}`);
  return {
    name,
    id: info.Id,
    ip: net.IPAddress,
    gateway: net.Gateway,
    sandboxKey: info.NetworkSettings.SandboxKey,
  };
}

/** busybox httpd in the background, its port optionally published with `-p`. */
async function startWeb(rig: PodmanRig, name: string, network: string, publish?: string) {
  await rig.mustPodman([
    "run",
    "-d",
    "--name",
    name,
    "--network",
    network,
    ...(publish ? ["-p", publish] : []),
    IMAGE,
    "httpd",
    "-f",
    "-p",
    "8080",
    "-h",
    "/www",
  ]);
  return await inspect(rig, name, network);
}

/** GET from the private host namespace, retrying while httpd starts. */
async function hostGet(rig: PodmanRig, url: string): Promise<string> {
  let last = "";
  for (let attempt = 0; attempt < 30; attempt++) {
    const out = await rig.ns.exec("curl", ["-sS", "--max-time", "2", url]);
    if (out.code === 0) return out.stdout.trim();
    last = out.stderr.trim();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`GET ${url} from ${rig.ns.name} failed: ${last}`);
}

Deno.test("podman VERSION probe: every plugin answers podman's exact call", async () => {
  const dir = await pluginsUnderTest();
  for (const name of NOMAD_BRIDGE_PLUGINS) {
    // What podman's CNI backend sends before each ADD and DEL (captured with a spy).
    const child = new Deno.Command(`${dir}/${name}`, {
      env: {
        PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
        CNI_COMMAND: "VERSION",
        CNI_CONTAINERID: "",
        CNI_NETNS: "dummy",
        CNI_IFNAME: "dummy",
        CNI_PATH: "dummy",
      },
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode('{"cniVersion":"1.0.0"}'));
    await writer.close();
    const out = await child.output();
    const text = new TextDecoder().decode(out.stdout);
    assertEquals(out.code, 0, `${name}: ${text}${new TextDecoder().decode(out.stderr)}`);
    const reply = JSON.parse(text);
    for (const version of ["0.4.0", "1.0.0"]) {
      assert(reply.supportedVersions.includes(version), `${name} lacks ${version}: ${text}`);
    }
  }
});

Deno.test({
  name: "podman runs containers on cnibox's plugins, confined, and podman rm leaves nothing",
  ignore: SKIP !== undefined,
  async fn() {
    const plugins = await pluginsUnderTest();
    const realLinksBefore = await hostLinkNames();
    await using rig = await createPodmanRig({
      pluginDir: plugins,
      busybox: BUSYBOX!,
      conflists: ["podman_nomad.conflist", "podman_second.conflist"],
      extraConflists: BROKEN,
      defaultNetwork: NET,
    });

    // Podman calls VERSION on every plugin of each conflist and silently drops a conflist whose
    // plugin is missing or fails: ours must be listed, the broken one must not.
    const listed = await rig.podman(["network", "ls", "--format", "{{.Name}}"]);
    assertEquals(listed.code, 0, listed.stderr);
    assertEquals(listed.stdout.split("\n").filter(Boolean).sort(), [NET, NET2]);
    assertStringIncludes(listed.stderr, "cbxe2ebad");
    assertEquals(
      /Error validating CNI config file \S*podman_(nomad|second)/.test(listed.stderr),
      false,
    );

    // An address from the conflist subnet, default route via the bridge.
    const web = await startWeb(rig, "cbxe2e-web", NET, "18080:8080");
    assert(inSubnet(web.ip, "10.99.0.0/24"), web.ip);
    assertEquals(web.gateway, "10.99.0.1");
    const routes = await rig.mustPodman(["exec", web.name, "ip", "-4", "route"]);
    assertStringIncludes(routes, "default via 10.99.0.1 dev eth0");
    assertEquals(await cacheEntries([NET]), [`${NET}-${web.id}-eth0`]);

    // host -> container, host -> 127.0.0.1:<hostPort> (portmap), container -> container.
    assertEquals(await hostGet(rig, `http://${web.ip}:8080/`), "served by podman");
    assertEquals(await hostGet(rig, "http://127.0.0.1:18080/"), "served by podman");
    const fromPeer = await rig.mustPodman([
      "run",
      "--rm",
      "--network",
      NET,
      IMAGE,
      "wget",
      "-qO-",
      `http://${web.ip}:8080/`,
    ]);
    assertEquals(fromPeer, "served by podman");

    // A second network on another bridge works alongside.
    const other = await startWeb(rig, "cbxe2e-web1", NET2);
    assert(inSubnet(other.ip, "10.97.0.0/24"), other.ip);
    assertEquals(await hostGet(rig, `http://${other.ip}:8080/`), "served by podman");
    assertEquals((await rig.ns.exec("ip", ["link", "show", "cbxe2e0"])).code, 0);
    assertEquals((await rig.ns.exec("ip", ["link", "show", "cbxe2e1"])).code, 0);
    const owners = { ids: [web.id, other.id], ips: [web.ip, other.ip] };
    assert((await firewallLeftovers(rig.ns, owners)).length > 0, "no per-container rules?");
    assertEquals((await veths(rig.ns)).length, 2);

    // Nothing ever appeared in the machine's own network namespace.
    const realLinksNow = await hostLinkNames();
    assertEquals(realLinksNow.filter((name) => !realLinksBefore.includes(name)), []);

    await rig.mustPodman(["rm", "--force", "--time", "0", web.name, other.name]);
    assertEquals(await firewallLeftovers(rig.ns, owners), []);
    assertEquals(await veths(rig.ns), []);
    assertEquals(await leases(rig.dataDir, NET), []);
    assertEquals(await leases(rig.dataDir, NET2), []);
    assertEquals(await cacheEntries([NET, NET2]), []);
    for (const key of [web.sandboxKey, other.sandboxKey]) {
      assertNotEquals(key, "");
      assertEquals(await Deno.stat(key).then(() => true, () => false), false, `${key} remains`);
    }
  },
});

import { assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import {
  fingerprintVersion,
  nomadAllocAddress,
  nomadCniArgs,
  nomadConflist,
  nomadPortMappings,
  parseSemver,
  satisfiesAtLeast,
} from "./_nomad.ts";

Deno.test("nomadConflist() keeps Nomad's bytes and moves only dataDir", async () => {
  const text = await nomadConflist("/tmp/x y");
  assertStringIncludes(text, '\t\t\t\t"dataDir": "/tmp/x y"\n');
  assertEquals(text.includes("/var/run/cni"), false);
  const conf = JSON.parse(text);
  assertEquals(conf.cniVersion, "0.4.0");
  assertEquals(conf.plugins.map((p: { type: string }) => p.type), [
    "loopback",
    "bridge",
    "firewall",
    "portmap",
  ]);
  assertEquals(conf.plugins[2].iptablesAdminChainName, "NOMAD-ADMIN");
  assertEquals(text.endsWith("}"), true); // json.MarshalIndent: no trailing newline
});

Deno.test("nomadCniArgs() sends IgnoreUnknown and the NOMAD_* pairs", () => {
  const args = nomadCniArgs({ id: "0b6d6fe4-3f69-4b3a-9d1c-7c2b1de0a111" });
  const pairs = Object.fromEntries(args.split(";").map((pair) => pair.split("=")));
  assertEquals(pairs.IgnoreUnknown, "true");
  assertEquals(pairs.NOMAD_ALLOC_ID, "0b6d6fe4-3f69-4b3a-9d1c-7c2b1de0a111");
  assertEquals(Object.keys(pairs).length, 6);
});

Deno.test("nomadPortMappings() emits go-cni's PascalCase tcp and udp entries", () => {
  assertEquals(nomadPortMappings(28080, 8080), [
    { HostPort: 28080, ContainerPort: 8080, Protocol: "tcp", HostIP: "" },
    { HostPort: 28080, ContainerPort: 8080, Protocol: "udp", HostIP: "" },
  ]);
  assertEquals(nomadPortMappings(9000)[1].ContainerPort, 9000);
});

Deno.test("parseSemver() follows go-version's NewSemver", () => {
  assertEquals(parseSemver("v1.9.1+cnibox.0.1.0"), { segments: [1, 9, 1], prerelease: "" });
  assertEquals(parseSemver("1.4"), { segments: [1, 4, 0], prerelease: "" });
  assertEquals(parseSemver("1.3.0-rc.1")?.prerelease, "rc.1");
  assertEquals(parseSemver("unknown"), undefined);
  assertEquals(parseSemver("0.1.0,"), undefined);
  assertEquals(parseSemver("1.2.3beta"), undefined); // semver needs the "-" separator
});

Deno.test("fingerprintVersion() takes the first semver token like Nomad", () => {
  assertEquals(
    fingerprintVersion(
      "CNI bridge plugin v1.9.1+cnibox.0.1.0\nCNI protocol versions supported: 0.1.0, 0.2.0\n",
    ),
    "v1.9.1+cnibox.0.1.0",
  );
  // Debian's packaged plugins: no version on line 1, so Nomad takes the last protocol
  // version of line 2 (no trailing comma): 1.0.0, too old for its CHECK path (>= 1.3.0).
  const debian = fingerprintVersion(
    "CNI bridge plugin version unknown\nCNI protocol versions supported: 0.1.0, 0.4.0, 1.0.0\n",
  );
  assertEquals(debian, "1.0.0");
  assertEquals(fingerprintVersion("CNI bridge plugin version unknown\n"), undefined);
});

Deno.test("satisfiesAtLeast() applies Nomad's semver >= constraint", () => {
  assertEquals(satisfiesAtLeast("v1.9.1+cnibox.0.1.0", "1.3.0"), true);
  assertEquals(satisfiesAtLeast("v1.9.1+cnibox.0.1.0", "0.4.0"), true);
  assertEquals(satisfiesAtLeast("1.2.9", "1.3.0"), false);
  assertEquals(satisfiesAtLeast("0.4.0", "0.4.0"), true);
  assertEquals(satisfiesAtLeast("1.3.0-rc.1", "1.3.0"), false);
  assertEquals(satisfiesAtLeast("unknown", "0.4.0"), false);
});

Deno.test("nomadAllocAddress() picks the first sorted interface with a sandbox", () => {
  const result = {
    interfaces: [
      { name: "nomad", mac: "aa" },
      { name: "veth1234", mac: "bb" },
      { name: "eth0", mac: "cc", sandbox: "/var/run/netns/x" },
    ],
    ips: [{ interface: 2, address: "172.26.64.5/20", gateway: "172.26.64.1" }],
  };
  assertEquals(nomadAllocAddress(result), { address: "172.26.64.5", interfaceName: "eth0" });
});

Deno.test("nomadAllocAddress() shows the gateway when the result points at the bridge", () => {
  // Nomad #17257: an index on the host side makes Nomad report the wrong address.
  const result = {
    interfaces: [{ name: "nomad" }, { name: "eth0", sandbox: "/x" }],
    ips: [{ interface: 0, address: "172.26.64.1/20" }],
  };
  assertEquals(nomadAllocAddress(result).address, "172.26.64.1");
});

Deno.test("nomadAllocAddress() files IPs without an index under eth0", () => {
  assertEquals(nomadAllocAddress({ ips: [{ address: "10.1.0.2/24" }] }), {
    address: "10.1.0.2",
    interfaceName: "eth0",
  });
});

Deno.test("nomadAllocAddress() rejects an out-of-range interface index", () => {
  const result = {
    interfaces: [{ name: "eth0", sandbox: "/x" }],
    ips: [{ interface: 1, address: "10.1.0.2/24" }],
  };
  assertThrows(() => nomadAllocAddress(result), RangeError, "ips[].interface 1");
  assertThrows(() => nomadAllocAddress({ interfaces: [{ name: "lo" }] }), Error, "no interface");
});

import { assertEquals } from "@std/assert";
import { probeOutput } from "./probe.ts";
import { runPlugin } from "./skel.ts";
import type { PluginIo } from "./skel.ts";
import { SUPPORTED_VERSIONS } from "./version.ts";

const VERSIONS = ["0.4.0", "1.0.0", "1.1.0"];

Deno.test("probeOutput() answers a bare run on stderr and VERSION on stdout, nothing else", () => {
  assertEquals(probeOutput("firewall", VERSIONS, ""), {
    stderr:
      "CNI firewall plugin v1.9.1+cnibox.0.1.0\nCNI protocol versions supported: 0.4.0, 1.0.0, 1.1.0\n",
  });
  assertEquals(probeOutput("firewall", VERSIONS, "VERSION"), {
    stdout: '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}\n',
  });
  for (const command of ["ADD", "DEL", "CHECK", "GC", "STATUS", "version"]) {
    assertEquals(probeOutput("firewall", VERSIONS, command), undefined, command);
  }
});

Deno.test("the skeleton prints the probe answers byte for byte", async () => {
  for (const command of ["", "VERSION"]) {
    let stdout = "";
    let stderr = "";
    const io: PluginIo = {
      env: command ? { CNI_COMMAND: command } : {},
      readStdin: () => Promise.reject(new Error("a probe must not read stdin")),
      writeStdout: (text) => void (stdout += text),
      writeStderr: (text) => void (stderr += text),
    };
    const plugin = {
      name: "loopback",
      supportedVersions: SUPPORTED_VERSIONS,
      funcs: {
        add: () => Promise.reject(new Error("ADD")),
        del: () => Promise.reject(new Error("DEL")),
      },
    };
    assertEquals(await runPlugin(plugin, io), 0);
    const expected = probeOutput("loopback", SUPPORTED_VERSIONS, command)!;
    assertEquals("stdout" in expected ? stdout : stderr, Object.values(expected)[0]);
    assertEquals("stdout" in expected ? stderr : stdout, "");
  }
});

import { assert, assertEquals } from "@std/assert";
import * as consts from "./consts.ts";

const HEADERS = [
  "sys/socket.h",
  "linux/netlink.h",
  "linux/rtnetlink.h",
  "linux/if_link.h",
  "linux/if_addr.h",
  "linux/if_bridge.h",
  "linux/veth.h",
  "linux/if.h",
];

async function hasCompiler(): Promise<boolean> {
  try {
    const out = await new Deno.Command("cc", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return out.success && (await Deno.stat("/usr/include/linux/rtnetlink.h")).isFile;
  } catch {
    return false;
  }
}

const COMPILER = await hasCompiler();

Deno.test({
  name: "consts match the installed kernel uapi headers",
  ignore: !COMPILER,
  async fn() {
    const names = Object.keys(consts).sort();
    assert(names.length > 150, `only ${names.length} constants exported`);
    const dir = await Deno.makeTempDir({ prefix: "cbx_nl_consts_" });
    try {
      const lines = names.map((name) => `  printf("${name} %ld\\n", (long)(${name}));`);
      const source = HEADERS.map((h) => `#include <${h}>`).join("\n") +
        `\n#include <stdio.h>\nint main(void) {\n${lines.join("\n")}\n  return 0;\n}\n`;
      await Deno.writeTextFile(`${dir}/c.c`, source);
      const build = await new Deno.Command("cc", {
        args: ["-o", `${dir}/c`, `${dir}/c.c`],
        stderr: "piped",
      }).output();
      assert(build.success, new TextDecoder().decode(build.stderr));
      const run = await new Deno.Command(`${dir}/c`, { stdout: "piped" }).output();
      const fromC: Record<string, number> = {};
      for (const line of new TextDecoder().decode(run.stdout).trim().split("\n")) {
        const [name, value] = line.split(" ");
        // NLA_TYPE_MASK is a negative int in C; ours is the 16-bit mask.
        fromC[name] = name === "NLA_TYPE_MASK" ? Number(value) & 0xffff : Number(value);
      }
      const ours = Object.fromEntries(names.map((n) => [n, (consts as Record<string, number>)[n]]));
      assertEquals(ours, fromC);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

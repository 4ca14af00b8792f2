import { assertEquals } from "@std/assert";
import { firewalldRunning } from "./firewalld.ts";

async function fakeRoot(options: { bus: boolean; comms: string[] }): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "cbx-fw-root-" });
  if (options.bus) {
    await Deno.mkdir(`${root}/run/dbus`, { recursive: true });
    await Deno.writeTextFile(`${root}/run/dbus/system_bus_socket`, "");
  }
  for (const [i, comm] of options.comms.entries()) {
    await Deno.mkdir(`${root}/proc/${100 + i}`, { recursive: true });
    await Deno.writeTextFile(`${root}/proc/${100 + i}/comm`, `${comm}\n`);
  }
  await Deno.mkdir(`${root}/proc/self`, { recursive: true });
  return root;
}

Deno.test("firewalldRunning() is false without a system bus, whatever runs", async () => {
  const root = await fakeRoot({ bus: false, comms: ["firewalld"] });
  assertEquals(firewalldRunning({ root }), false);
  await Deno.remove(root, { recursive: true });
});

Deno.test("firewalldRunning() needs a firewalld process next to the bus", async () => {
  const without = await fakeRoot({ bus: true, comms: ["dbus-daemon", "sshd"] });
  assertEquals(firewalldRunning({ root: without }), false);
  const withIt = await fakeRoot({ bus: true, comms: ["dbus-daemon", "firewalld"] });
  assertEquals(firewalldRunning({ root: withIt }), true);
  await Deno.remove(without, { recursive: true });
  await Deno.remove(withIt, { recursive: true });
});

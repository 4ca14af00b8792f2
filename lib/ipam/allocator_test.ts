import { assertEquals, assertThrows } from "@std/assert";
import { allocate, check, release } from "./allocator.ts";
import { type IpamConfig, loadIpamConfig } from "./config.ts";
import { DiskStore } from "./store.ts";

const C1 = { id: "c1", ifname: "eth0" };

function config(
  dataDir: string,
  ipam: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): IpamConfig {
  return loadIpamConfig({
    cniVersion: "1.0.0",
    name: "net1",
    ipam: { type: "host-local", dataDir, ...ipam },
    ...extra,
  });
}

function files(conf: IpamConfig): string[] {
  return [...Deno.readDirSync(`${conf.dataDir}/${conf.name}`)].map((e) => e.name)
    .filter((n) => n !== "lock" && !n.startsWith("last_")).sort();
}

async function run<T>(conf: IpamConfig, fn: (s: DiskStore) => T): Promise<T> {
  using store = await DiskStore.open(conf.name, { dataDir: conf.dataDir });
  return fn(store);
}

async function withDataDir(fn: (dataDir: string) => Promise<void>): Promise<void> {
  const dataDir = Deno.makeTempDirSync({ prefix: "cbx-hl-alloc-" });
  try {
    await fn(dataDir);
  } finally {
    Deno.removeSync(dataDir, { recursive: true });
  }
}

Deno.test("allocate() hands out .2 first, then continues round robin after a release", () =>
  withDataDir(async (dataDir) => {
    const conf = config(dataDir, { subnet: "10.9.0.0/29" });
    assertEquals(await run(conf, (s) => allocate(s, conf, C1)), [{
      address: "10.9.0.2/29",
      gateway: "10.9.0.1",
    }]);
    await run(conf, (s) => release(s, conf, C1));
    assertEquals(await run(conf, (s) => allocate(s, conf, C1)), [{
      address: "10.9.0.3/29",
      gateway: "10.9.0.1",
    }]);
  }));

Deno.test("allocate() gives one address per range set, dual stack in set order", () =>
  withDataDir(async (dataDir) => {
    const conf = config(dataDir, {
      ranges: [[{ subnet: "fd00:9::/64", gateway: "fd00:9::ff" }], [{ subnet: "10.9.0.0/24" }]],
    });
    assertEquals(await run(conf, (s) => allocate(s, conf, C1)), [
      { address: "fd00:9::1/64", gateway: "fd00:9::ff" },
      { address: "10.9.0.2/24", gateway: "10.9.0.1" },
    ]);
  }));

Deno.test("allocate() refuses a second address for the same attachment", () =>
  withDataDir(async (dataDir) => {
    const conf = config(dataDir, { subnet: "10.9.0.0/24" });
    await run(conf, (s) => allocate(s, conf, C1));
    await run(conf, (s) => {
      const error = assertThrows(() => allocate(s, conf, C1));
      assertEquals(
        error.message,
        "failed to allocate for range 0: 10.9.0.2 has been allocated to c1, duplicate allocation is not allowed",
      );
      // Another interface of the same container is a different attachment.
      assertEquals(allocate(s, conf, { id: "c1", ifname: "eth1" }).length, 1);
    });
  }));

Deno.test("allocate() honours requested IPs and reports the reference's errors", () =>
  withDataDir(async (dataDir) => {
    const conf = config(dataDir, { subnet: "10.9.0.0/24" }, {
      runtimeConfig: { ips: ["10.9.0.77/24"] },
    });
    assertEquals(await run(conf, (s) => allocate(s, conf, C1)), [{
      address: "10.9.0.77/24",
      gateway: "10.9.0.1",
    }]);
    const again = config(dataDir, { subnet: "10.9.0.0/24" }, {
      runtimeConfig: { ips: ["10.9.0.77"] },
    });
    await run(again, (s) => {
      assertThrows(
        () => allocate(s, again, { id: "c2", ifname: "eth0" }),
        Error,
        "failed to allocate for range 0: requested IP address 10.9.0.77 is not available in range set 10.9.0.1-10.9.0.254",
      );
    });
    const gw = config(dataDir, { subnet: "10.9.0.0/24" }, { runtimeConfig: { ips: ["10.9.0.1"] } });
    await run(gw, (s) => {
      assertThrows(
        () => allocate(s, gw, { id: "c3", ifname: "eth0" }),
        Error,
        "failed to allocate for range 0: requested ip 10.9.0.1 is subnet's gateway",
      );
    });
    const outside = config(dataDir, { subnet: "10.9.0.0/24" }, {
      runtimeConfig: { ips: ["10.5.0.1", "10.9.0.255"] },
    });
    await run(outside, (s) => {
      assertThrows(
        () => allocate(s, outside, { id: "c4", ifname: "eth0" }),
        Error,
        "failed to allocate all requested IPs: 10.5.0.1 10.9.0.255",
      );
    });
    assertEquals(files(conf), ["10.9.0.77"], "a failed ADD left a lease behind");
  }));

Deno.test("allocate() releases earlier range sets when a later one is exhausted", () =>
  withDataDir(async (dataDir) => {
    const conf = config(dataDir, {
      ranges: [[{ subnet: "10.9.0.0/24" }], [{ subnet: "10.8.0.0/30" }]],
    });
    await run(conf, (s) => allocate(s, conf, { id: "first", ifname: "eth0" }));
    await run(conf, (s) => {
      assertThrows(
        () => allocate(s, conf, C1),
        Error,
        "failed to allocate for range 1: no IP addresses available in range set: 10.8.0.1-10.8.0.2",
      );
    });
    assertEquals(files(conf), ["10.8.0.2", "10.9.0.2"]);
  }));

Deno.test("release() runs once per range set, so a second set also sweeps legacy files", () =>
  withDataDir(async (dataDir) => {
    const one = config(dataDir, { subnet: "10.9.0.0/24" });
    const two = config(dataDir, {
      ranges: [[{ subnet: "10.9.0.0/24" }], [{ subnet: "fd00::/64" }]],
    });
    await run(one, (s) => allocate(s, one, C1));
    Deno.writeTextFileSync(`${dataDir}/net1/10.9.0.50`, "c1");
    await run(one, (s) => release(s, one, C1));
    assertEquals(files(one), ["10.9.0.50"]);
    // The legacy file still counts as this container's address.
    await run(
      one,
      (s) => assertThrows(() => allocate(s, one, C1), Error, "10.9.0.50 has been allocated to c1"),
    );
    Deno.writeTextFileSync(`${dataDir}/net1/10.9.0.51`, "c1\r\neth0");
    await run(two, (s) => release(s, two, C1));
    assertEquals(files(one), []);
  }));

Deno.test("check() needs an address held by the attachment (or a legacy file of the container)", () =>
  withDataDir(async (dataDir) => {
    const conf = config(dataDir, { subnet: "10.9.0.0/24" });
    await run(conf, (s) => {
      assertThrows(
        () => check(s, C1),
        Error,
        "host-local: Failed to find address added by container c1",
      );
      allocate(s, conf, C1);
      check(s, C1);
    });
    Deno.writeTextFileSync(`${dataDir}/net1/10.9.0.60`, "old");
    await run(conf, (s) => check(s, { id: "old", ifname: "eth7" }));
  }));

Deno.test("allocate() finds the last hole of a crowded range and then reports exhaustion", () =>
  withDataDir(async (dataDir) => {
    const conf = config(dataDir, { subnet: "10.7.0.0/24" });
    Deno.mkdirSync(`${dataDir}/net1`);
    for (let i = 2; i < 255; i++) {
      if (i !== 200) Deno.writeTextFileSync(`${dataDir}/net1/10.7.0.${i}`, `x${i}\r\neth0`);
    }
    Deno.writeTextFileSync(`${dataDir}/net1/last_reserved_ip.0`, "10.7.0.3");
    assertEquals(await run(conf, (s) => allocate(s, conf, C1)), [{
      address: "10.7.0.200/24",
      gateway: "10.7.0.1",
    }]);
    await run(conf, (s) => {
      assertThrows(
        () => allocate(s, conf, { id: "c2", ifname: "eth0" }),
        Error,
        "failed to allocate for range 0: no IP addresses available in range set: 10.7.0.1-10.7.0.254",
      );
    });
    assertEquals(Deno.readTextFileSync(`${dataDir}/net1/last_reserved_ip.0`), "10.7.0.200");
  }));

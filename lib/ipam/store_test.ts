import { assert, assertEquals, assertNotEquals } from "@std/assert";
import { formatIp, parseIp } from "../ip/cidr.ts";
import { INDEX_ROOT } from "./lease_index.ts";
import { DiskStore, leaseDirOf, leaseKey, parseLeaseKey, readLeases } from "./store.ts";

const NET = "net1";

function tempDataDir(): string {
  return Deno.makeTempDirSync({ prefix: "cbx-hl-store-" });
}

function mode(path: string): string {
  return (Deno.statSync(path).mode! & 0o777).toString(8);
}

function ips(list: { family: 4 | 6; value: bigint }[]): string[] {
  return list.map(formatIp);
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

async function withStore<T>(dataDir: string, fn: (s: DiskStore) => T, index = true): Promise<T> {
  using store = await DiskStore.open(NET, { dataDir, index });
  return fn(store);
}

Deno.test("leaseDirOf() joins the data dir and the network, defaulting like the reference", () => {
  assertEquals(leaseDirOf("n", ""), "/var/lib/cni/networks/n");
  assertEquals(leaseDirOf("n", "/run/cni/"), "/run/cni/n");
  assertEquals(leaseDirOf("n", "/"), "/n");
  // Cleaned lexically like Go's filepath.Join, whatever `link` is on disk.
  assertEquals(leaseDirOf("n", "/d/link/../dd2"), "/d/dd2/n");
  assertEquals(leaseDirOf("n", "/d/./x//y/"), "/d/x/y/n");
  assertEquals(leaseDirOf("n", "rel/../data"), "data/n");
  assertEquals(leaseKey(" c1 ", "eth0"), "c1\r\neth0");
  assertEquals(parseLeaseKey("c1\r\neth0"), { containerId: "c1", ifname: "eth0" });
  assertEquals(parseLeaseKey("legacy"), { containerId: "legacy" });
});

Deno.test("DiskStore.reserve() writes the reference's files and modes", async () => {
  const dataDir = tempDataDir();
  try {
    await withStore(dataDir, (s) => {
      assert(s.reserve(" c1 ", "eth0", parseIp("10.0.0.2"), "0"));
      assert(!s.reserve("c2", "eth0", parseIp("10.0.0.2"), "0"), "taken address reserved twice");
      assert(s.reserve("c2", "eth1", parseIp("fd00::2"), "1"));
    });
    const dir = `${dataDir}/${NET}`;
    assertEquals(names(dir), [
      "10.0.0.2",
      "fd00::2",
      "last_reserved_ip.0",
      "last_reserved_ip.1",
      "lock",
    ]);
    assertEquals(Deno.readTextFileSync(`${dir}/10.0.0.2`), "c1\r\neth0");
    assertEquals(Deno.readTextFileSync(`${dir}/fd00::2`), "c2\r\neth1");
    assertEquals(Deno.readTextFileSync(`${dir}/last_reserved_ip.0`), "10.0.0.2");
    assertEquals(Deno.readTextFileSync(`${dir}/last_reserved_ip.1`), "fd00::2");
    assertEquals(mode(`${dir}/10.0.0.2`), "600");
    assertEquals(mode(`${dir}/last_reserved_ip.0`), "600");
    assertEquals(mode(dir), "755");
    assertEquals(Deno.readTextFileSync(`${dir}/lock`), "");
    // The index lives beside the lease directory, never inside it.
    assert(Deno.statSync(`${dataDir}/${INDEX_ROOT}/${NET}/stamp`).isFile);
  } finally {
    Deno.removeSync(dataDir, { recursive: true });
  }
});

Deno.test("DiskStore.reserve() makes a lease appear with its owner, and a stale scratch file cannot damage one", async () => {
  const dataDir = tempDataDir();
  try {
    const dir = `${dataDir}/${NET}`;
    const scratch = `${dataDir}/${INDEX_ROOT}/${NET}/lease.tmp`;
    await withStore(dataDir, (s) => assert(s.reserve("c1", "eth0", parseIp("10.0.0.2"), "0")));
    assertEquals(Deno.statSync(`${dir}/10.0.0.2`).nlink, 1, "the scratch name was not removed");
    // A kill between link and unlink leaves the scratch file as a second name of the lease.
    Deno.linkSync(`${dir}/10.0.0.2`, scratch);
    await withStore(dataDir, (s) => {
      assert(!s.reserve("c2", "eth0", parseIp("10.0.0.2"), "0"), "taken address reserved twice");
      assert(s.reserve("c3", "eth0", parseIp("10.0.0.3"), "0"));
    });
    assertEquals(Deno.readTextFileSync(`${dir}/10.0.0.2`), "c1\r\neth0");
    assertEquals(Deno.readTextFileSync(`${dir}/10.0.0.3`), "c3\r\neth0");
    assertEquals(mode(`${dir}/10.0.0.3`), "600");
    assertEquals(names(`${dataDir}/${INDEX_ROOT}/${NET}`).includes("lease.tmp"), false);
  } finally {
    Deno.removeSync(dataDir, { recursive: true });
  }
});

Deno.test("DiskStore.reserve() leaves an existing last_reserved_ip file's mode alone", async () => {
  const dataDir = tempDataDir();
  try {
    Deno.mkdirSync(`${dataDir}/${NET}`);
    Deno.writeTextFileSync(`${dataDir}/${NET}/last_reserved_ip.0`, "10.0.0.9", { mode: 0o644 });
    await withStore(dataDir, (s) => s.reserve("c1", "eth0", parseIp("10.0.0.3"), "0"));
    assertEquals(mode(`${dataDir}/${NET}/last_reserved_ip.0`), "644");
    assertEquals(Deno.readTextFileSync(`${dataDir}/${NET}/last_reserved_ip.0`), "10.0.0.3");
  } finally {
    Deno.removeSync(dataDir, { recursive: true });
  }
});

Deno.test("DiskStore.lastReservedIp() parses the raw content only", async () => {
  const dataDir = tempDataDir();
  try {
    Deno.mkdirSync(`${dataDir}/${NET}`);
    Deno.writeTextFileSync(`${dataDir}/${NET}/last_reserved_ip.0`, "10.0.0.9");
    Deno.writeTextFileSync(`${dataDir}/${NET}/last_reserved_ip.1`, "10.0.0.9\n");
    await withStore(dataDir, (s) => {
      assertEquals(formatIp(s.lastReservedIp("0")!), "10.0.0.9");
      assertEquals(s.lastReservedIp("1"), undefined); // Go's ParseIP does not trim
      assertEquals(s.lastReservedIp("2"), undefined);
    });
  } finally {
    Deno.removeSync(dataDir, { recursive: true });
  }
});

for (const index of [true, false]) {
  const label = index ? "indexed" : "scanning";

  Deno.test(`DiskStore (${label}) getById() and findById() see exact and legacy leases in walk order`, async () => {
    const dataDir = tempDataDir();
    try {
      const dir = `${dataDir}/${NET}`;
      Deno.mkdirSync(dir);
      Deno.writeTextFileSync(`${dir}/10.0.0.9`, "c1\r\neth0");
      Deno.writeTextFileSync(`${dir}/10.0.0.10`, "c1");
      Deno.writeTextFileSync(`${dir}/10.0.0.11`, " c1\r\neth1\n");
      Deno.writeTextFileSync(`${dir}/not-an-ip`, "c1\r\neth0");
      await withStore(dataDir, (s) => {
        assertEquals(ips(s.getById("c1", "eth0")), ["10.0.0.10", "10.0.0.9"]);
        assertEquals(ips(s.getById("c1", "eth1")), ["10.0.0.10", "10.0.0.11"]);
        assertEquals(ips(s.getById("c2", "eth0")), []);
        assert(s.findById("c1", "eth9")); // the legacy file matches any ifname
        assert(!s.findById("c2", "eth0"));
      }, index);
    } finally {
      Deno.removeSync(dataDir, { recursive: true });
    }
  });

  Deno.test(`DiskStore (${label}) releaseById() deletes exact matches, else legacy files`, async () => {
    const dataDir = tempDataDir();
    try {
      const dir = `${dataDir}/${NET}`;
      Deno.mkdirSync(dir);
      Deno.writeTextFileSync(`${dir}/10.0.0.2`, "c1\r\neth0");
      Deno.writeTextFileSync(`${dir}/fd00::2`, "c1\r\neth0");
      Deno.writeTextFileSync(`${dir}/10.0.0.3`, "c1");
      Deno.writeTextFileSync(`${dir}/10.0.0.4`, "c1\r\neth1");
      await withStore(dataDir, (s) => s.releaseById("c1", "eth0"), index);
      assertEquals(names(dir), ["10.0.0.3", "10.0.0.4", "lock"]);
      await withStore(dataDir, (s) => s.releaseById("c1", "eth0"), index);
      assertEquals(names(dir), ["10.0.0.4", "lock"]);
      await withStore(dataDir, (s) => s.releaseById("nobody", "eth0"), index);
      assertEquals(names(dir), ["10.0.0.4", "lock"]);
    } finally {
      Deno.removeSync(dataDir, { recursive: true });
    }
  });

  Deno.test(`DiskStore (${label}) gc() keeps valid attachments and bookkeeping files`, async () => {
    const dataDir = tempDataDir();
    try {
      const dir = `${dataDir}/${NET}`;
      await withStore(dataDir, (s) => {
        s.reserve("keep", "eth0", parseIp("10.0.0.1"), "0");
        s.reserve("gone", "eth0", parseIp("10.0.0.2"), "0");
        s.reserve("twoif", "eth0", parseIp("10.0.0.3"), "0");
        s.reserve("twoif", "eth1", parseIp("10.0.0.4"), "0");
      }, index);
      Deno.writeTextFileSync(`${dir}/10.0.0.9`, "legacy-id");
      Deno.writeTextFileSync(`${dir}/10.0.0.10`, "stale-legacy");
      Deno.writeTextFileSync(`${dir}/10.0.0.11`, ""); // a writer killed between create and write
      const released = await withStore(dataDir, (s) =>
        s.gc([
          { containerID: "keep", ifname: "eth0" },
          { containerID: "twoif", ifname: "eth0" },
          { containerID: "legacy-id", ifname: "eth0" },
        ]), index);
      assertEquals(ips(released), ["10.0.0.10", "10.0.0.11", "10.0.0.2", "10.0.0.4"]);
      assertEquals(names(dir), ["10.0.0.1", "10.0.0.3", "10.0.0.9", "last_reserved_ip.0", "lock"]);
      // The freed address is allocatable again, and an empty valid list frees everything.
      await withStore(
        dataDir,
        (s) => assert(s.reserve("new", "eth0", parseIp("10.0.0.2"), "0")),
        index,
      );
      await withStore(dataDir, (s) => s.gc([]), index);
      assertEquals(names(dir), ["last_reserved_ip.0", "lock"]);
    } finally {
      Deno.removeSync(dataDir, { recursive: true });
    }
  });
}

Deno.test("readLeases() lists a lease directory without locking", async () => {
  const dataDir = tempDataDir();
  try {
    await withStore(dataDir, (s) => {
      s.reserve("c1", "eth0", parseIp("10.0.0.2"), "0");
      s.reserve("c2", "eth0", parseIp("fd00::2"), "1");
    });
    Deno.writeTextFileSync(`${dataDir}/${NET}/10.0.0.7`, "old");
    const dir = leaseDirOf(NET, dataDir);
    const leases = readLeases(dir).sort((a, b) => a.name.localeCompare(b.name));
    assertEquals(leases.map((l) => [l.name, l.containerId, l.ifname]), [
      ["10.0.0.2", "c1", "eth0"],
      ["10.0.0.7", "old", undefined],
      ["fd00::2", "c2", "eth0"],
    ]);
    assertEquals(readLeases(`${dataDir}/missing`), []);
  } finally {
    Deno.removeSync(dataDir, { recursive: true });
  }
});

Deno.test("DiskStore index is trusted after our own change and rebuilt after a foreign one", async () => {
  const dataDir = tempDataDir();
  try {
    const dir = `${dataDir}/${NET}`;
    await withStore(dataDir, (s) => {
      assert(s.index!.rebuilt, "a fresh directory starts with a scan");
      s.reserve("c1", "eth0", parseIp("10.0.0.2"), "0");
    });
    const info = Deno.statSync(dir);
    // Our stamp: mtime moved back so that mtime != ctime.
    assert(info.mtime!.getTime() < info.ctime!.getTime() - 5000);
    await withStore(dataDir, (s) => {
      assert(!s.index!.rebuilt, "our own change forced a rescan");
      assertEquals(ips(s.getById("c1", "eth0")), ["10.0.0.2"]);
    });
    // Another implementation adds a lease: the directory's mtime == ctime again.
    Deno.writeTextFileSync(`${dir}/10.0.0.3`, "ref\r\neth0", { mode: 0o644 });
    await withStore(dataDir, (s) => {
      assert(s.index!.rebuilt, "a foreign change went unnoticed");
      assertEquals(ips(s.getById("ref", "eth0")), ["10.0.0.3"]);
      s.releaseById("ref", "eth0");
    });
    // ... and removes one.
    await withStore(dataDir, (s) => assert(!s.index!.rebuilt));
    Deno.removeSync(`${dir}/10.0.0.2`);
    await withStore(dataDir, (s) => {
      assert(s.index!.rebuilt);
      assert(!s.findById("c1", "eth0"));
    });
  } finally {
    Deno.removeSync(dataDir, { recursive: true });
  }
});

Deno.test("DiskStore verifies index hits against the lease file", async () => {
  const dataDir = tempDataDir();
  try {
    const dir = `${dataDir}/${NET}`;
    await withStore(dataDir, (s) => s.reserve("c1", "eth0", parseIp("10.0.0.2"), "0"));
    // Rewrite the file in place: the directory does not change, the content does.
    const f = Deno.openSync(`${dir}/10.0.0.2`, { write: true, truncate: true });
    f.writeSync(new TextEncoder().encode("c9\r\neth0"));
    f.close();
    await withStore(dataDir, (s) => {
      assert(!s.index!.rebuilt);
      assertEquals(ips(s.getById("c1", "eth0")), [], "acted on a stale index entry");
      assertEquals(ips(s.getById("c9", "eth0")), ["10.0.0.2"]);
      s.releaseById("c1", "eth0");
    });
    assertEquals(names(dir), ["10.0.0.2", "last_reserved_ip.0", "lock"]);
  } finally {
    Deno.removeSync(dataDir, { recursive: true });
  }
});

Deno.test("DiskStore rebuilds from a torn index bucket", async () => {
  const dataDir = tempDataDir();
  try {
    await withStore(dataDir, (s) => s.reserve("c1", "eth0", parseIp("10.0.0.2"), "0"));
    const indexDir = `${dataDir}/${INDEX_ROOT}/${NET}`;
    for (const entry of Deno.readDirSync(indexDir)) {
      if (entry.name !== "stamp") {
        Deno.writeTextFileSync(`${indexDir}/${entry.name}`, '{"c1\\r\\neth0":[');
      }
    }
    await withStore(dataDir, (s) => {
      assertEquals(ips(s.getById("c1", "eth0")), ["10.0.0.2"]);
      assert(s.index!.rebuilt);
    });
  } finally {
    Deno.removeSync(dataDir, { recursive: true });
  }
});

Deno.test("DiskStore.open() serialises holders of the lock", async () => {
  const dataDir = tempDataDir();
  try {
    const first = await DiskStore.open(NET, { dataDir });
    let second: DiskStore | undefined;
    const pending = DiskStore.open(NET, { dataDir }).then((s) => (second = s));
    await new Promise((r) => setTimeout(r, 100));
    assertEquals(second, undefined, "lock taken twice");
    first.close();
    await pending;
    assertNotEquals(second, undefined);
    second!.close();
  } finally {
    Deno.removeSync(dataDir, { recursive: true });
  }
});

Deno.test("DiskStore.open() reports Go-style errors", async () => {
  const dataDir = tempDataDir();
  try {
    Deno.writeTextFileSync(`${dataDir}/file`, "");
    const error = await DiskStore.open(NET, { dataDir: `${dataDir}/file` }).then(
      () => undefined,
      (e: Error) => e,
    );
    assertEquals(error?.message, `mkdir ${dataDir}/file/${NET}: not a directory`);
  } finally {
    Deno.removeSync(dataDir, { recursive: true });
  }
});

Deno.test("DiskStore ADD/DEL cost stays flat from 1 to 4000 leases (report)", async () => {
  const dataDir = tempDataDir();
  try {
    const dir = `${dataDir}/${NET}`;
    Deno.mkdirSync(dir);
    const rows: string[] = [];
    const ops = 20;
    const measure = async (label: string, index: boolean) => {
      const add: number[] = [];
      const del: number[] = [];
      let rebuilds = 0;
      for (let i = 0; i < ops; i++) {
        const id = `bench-${label}-${i}`;
        let t = performance.now();
        await withStore(dataDir, (s) => {
          if (s.getById(id, "eth0").length === 0) {
            s.reserve(id, "eth0", parseIp(`10.200.${i}.${index ? 1 : 2}`), "0");
          }
          if (s.index?.rebuilt) rebuilds++;
        }, index);
        add.push(performance.now() - t);
        t = performance.now();
        await withStore(dataDir, (s) => {
          s.releaseById(id, "eth0");
          if (s.index?.rebuilt) rebuilds++;
        }, index);
        del.push(performance.now() - t);
      }
      const median = (v: number[]) => v.sort((a, b) => a - b)[v.length >> 1].toFixed(2);
      rows.push(
        `${label.padEnd(28)} ${index ? "index" : "scan "}  ADD ${median(add)} ms  DEL ${
          median(del)
        } ms`,
      );
      return rebuilds;
    };
    // Warm up: the first run after foreign changes rebuilds once.
    await withStore(dataDir, (s) => s.index);
    assertEquals(await measure("1 lease", true), 0, "steady-state ops rescanned the directory");
    await measure("1 lease", false);
    for (let i = 0; i < 4000; i++) {
      Deno.writeTextFileSync(`${dir}/10.100.${i >> 8}.${i & 255}`, `c${i}\r\neth0`);
    }
    let t = performance.now();
    await withStore(dataDir, (s) => assert(s.index!.rebuilt));
    rows.push(`one rebuild after 4000 foreign leases: ${(performance.now() - t).toFixed(1)} ms`);
    assertEquals(await measure("4000 leases", true), 0, "steady-state ops rescanned the directory");
    t = performance.now();
    await withStore(
      dataDir,
      (s) => assertEquals(ips(s.getById("c3999", "eth0")), ["10.100.15.159"]),
    );
    rows.push(`indexed lookup among 4000: ${(performance.now() - t).toFixed(2)} ms`);
    await measure("4000 leases", false);
    // deno-lint-ignore no-console -- a benchmark-style test reports its numbers
    console.log(
      `\nhost-local store, in-process, median of ${ops} (open + op + close):\n  ${
        rows.join("\n  ")
      }`,
    );
  } finally {
    Deno.removeSync(dataDir, { recursive: true });
  }
});

import { assert, assertEquals } from "@std/assert";
import { INDEX_ROOT, LeaseIndex, scanLeaseDir } from "./lease_index.ts";

function setup(): { root: string; dir: string; indexDir: string } {
  const root = Deno.makeTempDirSync({ prefix: "cbx-hl-index-" });
  const dir = `${root}/net1`;
  Deno.mkdirSync(dir);
  return { root, dir, indexDir: `${root}/${INDEX_ROOT}/net1` };
}

Deno.test("scanLeaseDir() reads regular files named like IPs only", () => {
  const { root, dir } = setup();
  try {
    Deno.writeTextFileSync(`${dir}/10.0.0.2`, "c1\r\neth0\n");
    Deno.writeTextFileSync(`${dir}/fd00::2`, "c2");
    Deno.writeTextFileSync(`${dir}/last_reserved_ip.0`, "10.0.0.2");
    Deno.writeTextFileSync(`${dir}/lock`, "");
    Deno.mkdirSync(`${dir}/10.0.0.3`);
    const leases = scanLeaseDir(dir).sort((a, b) => a.name.localeCompare(b.name));
    assertEquals(leases, [{ name: "10.0.0.2", key: "c1\r\neth0" }, { name: "fd00::2", key: "c2" }]);
    assertEquals(scanLeaseDir(`${root}/missing`), []);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("LeaseIndex.persist() stamps the directory so the next open trusts it", () => {
  const { root, dir, indexDir } = setup();
  try {
    Deno.writeTextFileSync(`${dir}/10.0.0.2`, "c1\r\neth0");
    const first = LeaseIndex.open(dir);
    assert(first.rebuilt);
    assertEquals(first.indexDir, indexDir);
    assertEquals(first.lookup("c1\r\neth0"), ["10.0.0.2"]);
    first.persist();
    const stamp = JSON.parse(Deno.readTextFileSync(`${indexDir}/stamp`));
    const info = Deno.statSync(dir);
    assertEquals(stamp.mtimeMs, info.mtime!.getTime());
    assert(stamp.ctimeMs - stamp.mtimeMs >= 9000, "mtime was not moved back");
    const second = LeaseIndex.open(dir);
    assert(!second.rebuilt);
    assertEquals(second.lookup("c1\r\neth0"), ["10.0.0.2"]);
    assertEquals(second.lookup("nobody"), []);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("LeaseIndex rebuilds when a change was not persisted (crash before the stamp)", () => {
  const { root, dir } = setup();
  try {
    LeaseIndex.open(dir).persist();
    const index = LeaseIndex.open(dir);
    assert(!index.rebuilt);
    Deno.writeTextFileSync(`${dir}/10.0.0.7`, "c7\r\neth0");
    index.add("c7\r\neth0", "10.0.0.7");
    // No persist(): the process died here.
    const next = LeaseIndex.open(dir);
    assert(next.rebuilt);
    assertEquals(next.lookup("c7\r\neth0"), ["10.0.0.7"]);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("LeaseIndex ignores a stamp whose mtime equals its ctime", () => {
  const { root, dir, indexDir } = setup();
  try {
    LeaseIndex.open(dir).persist();
    // Forge a stamp as a kernel change would leave the directory: mtime and
    // ctime in the same second (retry if the second turns over in between).
    let now = Deno.statSync(dir);
    for (let i = 0; i < 5; i++) {
      Deno.utimeSync(dir, now.atime!, new Date(Math.floor(Date.now() / 1000) * 1000));
      now = Deno.statSync(dir);
      if (Math.floor(now.mtime!.getTime() / 1000) === Math.floor(now.ctime!.getTime() / 1000)) {
        break;
      }
    }
    const forged = {
      format: 1,
      buckets: 256,
      dev: now.dev,
      ino: now.ino,
      mtimeMs: now.mtime!.getTime(),
      ctimeMs: now.ctime!.getTime(),
    };
    Deno.writeTextFileSync(`${indexDir}/stamp`, JSON.stringify(forged));
    assert(LeaseIndex.open(dir).rebuilt);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("LeaseIndex keeps colliding keys apart and removes empty buckets", () => {
  const { root, dir, indexDir } = setup();
  try {
    const index = LeaseIndex.open(dir);
    // 600 keys over 256 buckets: collisions are certain.
    for (let i = 0; i < 600; i++) index.add(`c${i}\r\neth0`, `10.1.${i >> 8}.${i & 255}`);
    index.add("c1\r\neth0", "10.9.9.9");
    index.persist();
    const again = LeaseIndex.open(dir, { rebuild: false });
    // The stamp matched (nothing changed the lease directory), so buckets were read back.
    assert(!again.rebuilt);
    assertEquals(again.lookup("c1\r\neth0"), ["10.1.0.1", "10.9.9.9"]);
    assertEquals(again.lookup("c599\r\neth0"), ["10.1.2.87"]);
    for (let i = 0; i < 600; i++) again.remove(`c${i}\r\neth0`, `10.1.${i >> 8}.${i & 255}`);
    again.remove("c1\r\neth0", "10.9.9.9");
    again.persist();
    assertEquals([...Deno.readDirSync(indexDir)].map((e) => e.name), ["stamp"]);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

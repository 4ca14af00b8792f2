import { assert, assertEquals, assertThrows } from "@std/assert";
import { createNetns, ROOT } from "../testing/netns.ts";
import { close, fstatIdentity, open } from "./libc.ts";
import {
  isSameNetns,
  netnsExists,
  NetnsNotFoundError,
  openNetnsFd,
  THREAD_NETNS_PATH,
  withNetns,
} from "./netns.ts";

/** dev/ino of the namespace the JS thread is in right now. */
function currentNetnsId(): string {
  const fd = open(THREAD_NETNS_PATH);
  try {
    const { dev, ino } = fstatIdentity(fd);
    return `${dev}:${ino}`;
  } finally {
    close(fd);
  }
}

function netnsId(path: string): string {
  using ns = openNetnsFd(path);
  const { dev, ino } = fstatIdentity(ns.fd);
  return `${dev}:${ino}`;
}

Deno.test('openNetnsFd() rejects a missing path as "missing"', () => {
  const error = assertThrows(() => openNetnsFd("/var/run/netns/cbx-nl-none"), NetnsNotFoundError);
  assertEquals(error.reason, "missing");
  assertEquals(error.path, "/var/run/netns/cbx-nl-none");
  assertEquals(
    error.message,
    // The Go plugins' wording, which runtimes and the reference's error JSON carry.
    `failed to Statfs "/var/run/netns/cbx-nl-none": no such file or directory`,
  );
  assertEquals(netnsExists("/var/run/netns/cbx-nl-none"), false);
});

Deno.test("openNetnsFd() rejects a regular file, a directory and a mount namespace", async () => {
  const file = await Deno.makeTempFile({ prefix: "cbx_nl_" });
  try {
    for (const path of [file, "/tmp", "/proc/self/ns/mnt"]) {
      const error = assertThrows(() => openNetnsFd(path), NetnsNotFoundError, path);
      assertEquals(error.reason, "not-netns", path);
      assertEquals(netnsExists(path), false, path);
    }
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("openNetnsFd() accepts the thread's own namespace and isSameNetns() matches it", () => {
  using ns = openNetnsFd(THREAD_NETNS_PATH);
  assert(ns.open && ns.fd >= 0);
  assert(isSameNetns(ns, "/proc/self/ns/net"));
  assert(netnsExists("/proc/self/ns/net"));
  ns.close();
  assertEquals(ns.open, false);
  assertThrows(() => ns.fd, TypeError, "closed");
  ns.close(); // idempotent
});

Deno.test({
  name: "isSameNetns() tells two namespaces apart",
  ignore: !ROOT,
  async fn() {
    await using a = await createNetns("cbx-nl");
    await using b = await createNetns("cbx-nl");
    assert(isSameNetns(a.path, a.path));
    assert(!isSameNetns(a.path, b.path));
    assert(!isSameNetns(a.path, THREAD_NETNS_PATH));
    assert(netnsExists(a.path));
  },
});

Deno.test({
  name: "withNetns() runs fn inside the namespace and switches back",
  ignore: !ROOT,
  async fn() {
    await using a = await createNetns("cbx-nl");
    const home = currentNetnsId();
    const inside = withNetns(a.path, () => currentNetnsId());
    assertEquals(inside, netnsId(a.path));
    assert(inside !== home);
    assertEquals(currentNetnsId(), home);
    // An open fd works as the target as well.
    using fd = openNetnsFd(a.path);
    assertEquals(withNetns(fd, () => currentNetnsId()), inside);
    assertEquals(currentNetnsId(), home);
  },
});

Deno.test({
  name: "withNetns() restores the namespace when fn throws",
  ignore: !ROOT,
  async fn() {
    await using a = await createNetns("cbx-nl");
    const home = currentNetnsId();
    assertThrows(
      () =>
        withNetns(a.path, () => {
          throw new RangeError("boom");
        }),
      RangeError,
      "boom",
    );
    assertEquals(currentNetnsId(), home);
  },
});

Deno.test({
  name: "withNetns() rejects an async callback after switching back",
  ignore: !ROOT,
  async fn() {
    await using a = await createNetns("cbx-nl");
    const home = currentNetnsId();
    let ranInside = "";
    assertThrows(
      () =>
        withNetns(a.path, async () => {
          ranInside = currentNetnsId();
          await Promise.resolve();
        }),
      TypeError,
      "must be synchronous",
    );
    assertEquals(ranInside, netnsId(a.path));
    assertEquals(currentNetnsId(), home);
  },
});

Deno.test({
  name: "withNetns() on a missing path throws before switching",
  ignore: !ROOT,
  fn() {
    const home = currentNetnsId();
    let called = false;
    assertThrows(
      () => withNetns("/var/run/netns/cbx-nl-gone", () => (called = true)),
      NetnsNotFoundError,
    );
    assertEquals(called, false);
    assertEquals(currentNetnsId(), home);
  },
});

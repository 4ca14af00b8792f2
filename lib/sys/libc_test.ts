import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import { ROOT } from "../testing/netns.ts";
import { Errno } from "./errno.ts";
import {
  CLONE_NEWNET,
  close,
  errno,
  gettid,
  MSG_DONTWAIT,
  open,
  OsError,
  read,
  recvfrom,
  setns,
  SOCK_CLOEXEC,
  SOCK_RAW,
  socket,
  tryRecvfrom,
} from "./libc.ts";

Deno.test("setns() on a bad fd throws OsError with EBADF read from errno", () => {
  const error = assertThrows(() => setns(9999, CLONE_NEWNET), OsError);
  assertEquals(error.errno, Errno.EBADF);
  assertEquals(error.code, "EBADF");
  assertEquals(error.syscall, "setns");
  assertEquals(error.message, "Cannot setns: Bad file descriptor (EBADF)");
  // errno stays readable right after the failure on this thread.
  assertEquals(errno(), Errno.EBADF);
});

Deno.test("open() names the path and ENOENT", () => {
  const error = assertThrows(() => open("/nonexistent/cbx-nl"), OsError);
  assertEquals(error.errno, Errno.ENOENT);
  assertMatch(error.message, /^Cannot open "\/nonexistent\/cbx-nl": No such file or directory/);
});

Deno.test("a receive that would block: tryRecvfrom() is null, recvfrom() throws EAGAIN", () => {
  const AF_NETLINK = 16; // lib/netlink/consts.ts; sys does not import netlink
  const fd = socket(AF_NETLINK, { type: SOCK_RAW | SOCK_CLOEXEC });
  try {
    const buffer = new Uint8Array(64);
    assertEquals(tryRecvfrom(fd, buffer, { flags: MSG_DONTWAIT }), null);
    const error = assertThrows(() => recvfrom(fd, buffer, { flags: MSG_DONTWAIT }), OsError);
    assertEquals(error.errno, Errno.EAGAIN);
    assertEquals(error.syscall, "recvfrom");
  } finally {
    close(fd);
  }
});

Deno.test("open() and read() return file contents", () => {
  const fd = open("/proc/self/stat");
  try {
    const buffer = new Uint8Array(4096);
    const n = read(fd, buffer);
    const text = new TextDecoder().decode(buffer.subarray(0, n));
    assert(text.startsWith(`${Deno.pid} (`), text.slice(0, 40));
  } finally {
    close(fd);
  }
  assertThrows(() => close(fd), OsError, "EBADF");
});

Deno.test("gettid() is the JS thread that /proc/thread-self names", () => {
  // Under `deno test` JS runs on a worker thread, not the main one; setns and
  // errno follow whichever thread runs JS, so both must be read there.
  assertEquals(Deno.readLinkSync("/proc/thread-self"), `${Deno.pid}/task/${gettid()}`);
  assertEquals(gettid(), gettid());
});

Deno.test("libc symbols are all synchronous (nonblocking: false)", () => {
  const source = Deno.readTextFileSync(new URL("./libc.ts", import.meta.url));
  const symbols = source.match(/^ {2}\w+: \{(?: parameters:|\n\s+parameters:)/gm) ?? [];
  // syscall() (every system call goes through it), __errno_location() and the
  // four functions posix_spawn needs (lib/sys/spawn.ts).
  assertEquals(symbols.length, 6, `found ${symbols.length} symbols`);
  assertEquals(source.match(/nonblocking: true/g), null);
  assertEquals(source.match(/nonblocking: false(?!`)/g)?.length, symbols.length);
  assertEquals(source.match(/Deno\.dlopen\(/g)?.length, 1);
});

Deno.test({
  name: "OsError keeps EPERM-style errors apart from programming errors",
  ignore: !ROOT,
  fn() {
    // /proc/sys/kernel/ostype is read-only even for root.
    const error = assertThrows(() => open("/proc/sys/kernel/ostype", { flags: 1 }), OsError);
    assert(error.errno === Errno.EACCES || error.errno === Errno.EPERM, error.message);
  },
});

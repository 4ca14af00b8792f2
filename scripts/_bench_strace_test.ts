import { assertEquals } from "@std/assert";
import { formatCounts, mergeTraces, parseExecTrace, parseOpenTrace } from "./_bench_strace.ts";

// Shapes taken from real `strace -f --seccomp-bpf -ttt -e trace=execve` logs of
// /usr/lib/cni/firewall and of a cnibox launcher on this machine.
const REFERENCE = `\
24541 1795329010.469546 execve("/usr/lib/cni/firewall", ["/usr/lib/cni/firewall"], 0x7fffa2872e48 /* 40 vars */) = 0
24546 1795329010.473607 execve("/usr/sbin/iptables", ["/usr/sbin/iptables", "--version"], 0xc0000c0160 /* 40 vars */) = 0
24546 1795329010.474742 +++ exited with 0 +++
24541 1795329010.474764 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=24546} ---
24547 1795329010.477384 execve("/usr/sbin/ip6tables", ["/usr/sbin/ip6tables", "--version"], 0xc0000c0420 /* 40 vars */) = 0
24547 1795329010.478463 +++ exited with 0 +++
24548 1795329010.480986 execve("/usr/sbin/iptables", ["/usr/sbin/iptables", "-t", "filter", "-S", "--wait"], 0xc000130160 /* 40 vars */ <unfinished ...>
24549 1795329010.481000 execve("/usr/sbin/nft", ["nft"], 0x0 /* 1 var */) = -1 ENOENT (No such file or directory)
24548 1795329010.481100 <... execve resumed>) = 0
24548 1795329010.482986 +++ exited with 0 +++
24541 1795329010.490000 +++ exited with 0 +++
`;

const OURS = `\
24564 1795329010.527778 execve("/tmp/bin/firewall", ["/tmp/bin/firewall"], 0x7ffebaaad3a8 /* 41 vars */) = 0
24564 1795329010.530607 execve("/opt/deno/deno", ["/tmp/bin/firewall", "run", "-A", "/work/main/main.ts"], 0x55 /* 36 vars */) = 0
24564 1795329010.531000 openat(AT_FDCWD, "/root/.npmrc", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)
24564 1795329010.550226 openat(AT_FDCWD, "/work/main/main.ts", O_RDONLY|O_CLOEXEC) = 21
24564 1795329010.551000 openat(AT_FDCWD, "/work/main/applets.ts", O_RDONLY|O_CLOEXEC) = 21
24564 1795329010.552000 openat(AT_FDCWD, "/work/main/lib/status/app.ts", O_RDONLY|O_CLOEXEC) = 21
24564 1795329010.559776 openat(AT_FDCWD, "/root/.cache/deno/gen/file/work/main/main.ts.js", O_RDONLY|O_CLOEXEC) = 21
24564 1795329010.559800 openat(AT_FDCWD, "/root/.cache/deno/gen/file/work/main/main.ts.js", O_RDONLY|O_CLOEXEC) = 21
24564 1795329010.569776 openat(AT_FDCWD, "/root/.cache/deno/gen/file/work/main/plugins/firewall.ts.js", O_RDONLY|O_CLOEXEC) = 21
24564 1795329010.570000 openat(AT_FDCWD, "/root/.cache/deno/npm/registry.npmjs.org/hono/registry.json", O_RDONLY|O_CLOEXEC) = 22
24565 1795329010.570100 +++ exited with 0 +++
24570 1795329010.581004 execve("/usr/sbin/iptables-save", ["/usr/sbin/iptables-save", "-t", "filter"], 0x55 /* 41 vars */) = 0
24570 1795329010.584372 +++ exited with 0 +++
24564 1795329010.588870 +++ exited with 0 +++
`;

Deno.test("parseExecTrace() counts a Go plugin's children and their time", () => {
  const trace = parseExecTrace(REFERENCE);
  assertEquals(trace.execs, { iptables: 2, ip6tables: 1 });
  assertEquals(trace.processes, 3);
  assertEquals(trace.self, ["firewall"]);
  assertEquals(Math.round(trace.wallMs * 1000) / 1000, 20.454);
  // 1.135 + 2.0 (exec at the unfinished line until exit)
  assertEquals(Math.round(trace.childMs.iptables * 1000) / 1000, 3.135);
  assertEquals(Math.round(trace.childMs.ip6tables * 1000) / 1000, 1.079);
});

Deno.test("parseExecTrace() keeps a launcher's exec of deno as the plugin itself", () => {
  const trace = parseExecTrace(OURS);
  assertEquals(trace.self, ["firewall", "deno"]);
  assertEquals(trace.execs, { "iptables-save": 1 });
  // Threads that exit without exec are not children.
  assertEquals(trace.processes, 1);
});

Deno.test("mergeTraces() adds counts and times; formatCounts() sorts by count", () => {
  const merged = mergeTraces([parseExecTrace(REFERENCE), parseExecTrace(OURS)]);
  assertEquals(merged.execs, { iptables: 2, ip6tables: 1, "iptables-save": 1 });
  assertEquals(merged.processes, 4);
  assertEquals(formatCounts(merged.execs), "iptables=2, ip6tables=1, iptables-save=1");
  assertEquals(formatCounts({}), "none");
});

Deno.test("parseOpenTrace() tells sources read from modules evaluated and npm code from metadata", () => {
  const trace = parseOpenTrace(OURS);
  assertEquals(trace.sources, 3);
  assertEquals(trace.evaluated, 2);
  assertEquals(trace.npm, []);
  assertEquals(trace.npmMetadata, ["hono"]);
  assertEquals(trace.phases, { start: 22.448, readGraph: 9.55, loadModules: 10, rest: 19.094 });
  const withCode = parseOpenTrace(
    `1 2.0 openat(AT_FDCWD, "/root/.cache/deno/npm/registry.npmjs.org/hono/4.6.0/dist/index.js", O_RDONLY) = 3\n`,
  );
  assertEquals(withCode.npm, ["hono"]);
  assertEquals(withCode.phases, undefined);
});

Deno.test("parseOpenTrace() counts a plugin bundle as a source read and a module evaluated", () => {
  const dir = "/work/main/dist/bundles/0123456789abcdef01234567";
  const trace = parseOpenTrace([
    `7 1.000 execve("/opt/deno", ["/opt/cni/bin/loopback"], 0x1 /* 3 vars */) = 0`,
    `7 1.020 openat(AT_FDCWD, "${dir}/loopback.js", O_RDONLY|O_CLOEXEC) = 9`,
    `7 1.024 openat(AT_FDCWD, "${dir}/loopback.run.js", O_RDONLY|O_CLOEXEC) = 9`,
    `7 1.040 +++ exited with 0 +++`,
    "",
  ].join("\n"));
  assertEquals(trace.sources, 2);
  assertEquals(trace.evaluated, 2);
  assertEquals(trace.phases, { start: 20, readGraph: 0, loadModules: 4, rest: 16 });
});

/**
 * Test helpers for kernel tests: root gating and throwaway network namespaces.
 *
 * Namespaces are created with `ip netns add` (so their paths live under
 * `/var/run/netns`) and always deleted afterwards. Tests must only touch
 * namespaces they created here, never the machine's own interfaces.
 *
 * @module
 */
import { DEFAULT_RECORD_ROOT } from "../firewall/records.ts";

/** True when the tests run as root (kernel tests are skipped otherwise, by name). */
export const ROOT: boolean = Deno.uid() === 0;

/** Output of a finished command. */
export interface CommandOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; never throws for a non-zero exit. */
export async function sh(
  cmd: string,
  args: string[],
  options: { stdin?: string; env?: Record<string, string>; clearEnv?: boolean } = {},
): Promise<CommandOutput> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: options.env,
    clearEnv: options.clearEnv,
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Runs a command and throws with its stderr when it fails; returns stdout. */
export async function mustSh(cmd: string, args: string[]): Promise<string> {
  const out = await sh(cmd, args);
  if (out.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} exited ${out.code}: ${out.stderr.trim()}`);
  }
  return out.stdout;
}

/** A named network namespace owned by a test. */
export interface TestNetns extends AsyncDisposable {
  /** Name as `ip netns` knows it. */
  name: string;
  /** Path for `CNI_NETNS` and `setns`. */
  path: string;
  /** Runs a command inside the namespace (`ip netns exec`). */
  exec(
    cmd: string,
    args: string[],
    options?: { stdin?: string; env?: Record<string, string> },
  ): Promise<CommandOutput>;
  /** Deletes the namespace (idempotent). */
  remove(): Promise<void>;
}

let counter = 0;

/**
 * Creates a namespace named `<prefix>-<pid>-<n>` with `lo` up.
 * Use with `await using ns = await createNetns("cbx-x")`.
 */
export async function createNetns(prefix: string): Promise<TestNetns> {
  const name = `${prefix}-${Deno.pid}-${counter++}`;
  await mustSh("ip", ["netns", "add", name]);
  await mustSh("ip", ["-n", name, "link", "set", "lo", "up"]);
  const ns: TestNetns = {
    name,
    path: `/var/run/netns/${name}`,
    exec: (cmd, args, options) => sh("ip", ["netns", "exec", name, cmd, ...args], options),
    remove: async () => {
      const inode = await Deno.stat(ns.path).then((info) => info.ino, () => undefined);
      await sh("ip", ["netns", "del", name]);
      // Firewall records are kept per namespace inode, and the kernel hands a deleted
      // namespace's inode to a later one: a later test must not find this one's records.
      if (inode) {
        await Deno.remove(`${DEFAULT_RECORD_ROOT}/${inode}`, { recursive: true }).catch(() => {});
      }
    },
    [Symbol.asyncDispose]: () => ns.remove(),
  };
  return ns;
}

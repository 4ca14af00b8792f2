/**
 * Test helper: a temporary CNI_PATH full of fake plugins
 * (`testdata/runtime/fake_plugin.sh` under several names) that record their
 * stdin, environment and call order, and answer with canned output.
 *
 * @module
 */
import { fromFileUrl, join } from "@std/path";

const SCRIPT = fromFileUrl(new URL("../../testdata/runtime/fake_plugin.sh", import.meta.url));

/** A temporary plugin directory plus accessors for what the plugins saw. */
export interface FakePlugins extends AsyncDisposable {
  /** Temporary root; also holds `net.d/` and `cache/` for tests that want them. */
  root: string;
  /** The plugin directory (use as CNI_PATH). */
  binDir: string;
  /** Where the plugins record calls and read canned answers. */
  fakeDir: string;
  /** Base environment the plugins need (PATH, FAKE_DIR). */
  env: Record<string, string>;
  /** Lines "<type> <CMD> <containerID> <ifname>" in call order. */
  calls(): Promise<string[]>;
  /** Parsed stdin of the latest `<type> <cmd>` call. */
  stdin(type: string, cmd: string): Promise<Record<string, unknown>>;
  /** Raw stdin of the latest `<type> <cmd>` call. */
  stdinText(type: string, cmd: string): Promise<string>;
  /** CNI_* and FAKE_* environment of the latest `<type> <cmd>` call. */
  envOf(type: string, cmd: string): Promise<Record<string, string>>;
  /** Sets a canned answer file: out, stderr, fail or exit. */
  answer(
    type: string,
    cmd: string,
    kind: "out" | "stderr" | "fail" | "exit",
    text: string,
  ): Promise<void>;
}

/** Creates a temporary CNI_PATH with one fake plugin per name in `types`. */
export async function fakePlugins(types: readonly string[]): Promise<FakePlugins> {
  const root = await Deno.makeTempDir({ prefix: "cbx-rt-" });
  const binDir = join(root, "bin");
  const fakeDir = join(root, "fake");
  await Deno.mkdir(binDir);
  await Deno.mkdir(fakeDir);
  for (const type of types) {
    await Deno.copyFile(SCRIPT, join(binDir, type));
    await Deno.chmod(join(binDir, type), 0o755);
  }
  const read = (name: string) => Deno.readTextFile(join(fakeDir, name));
  return {
    root,
    binDir,
    fakeDir,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", FAKE_DIR: fakeDir },
    async calls() {
      try {
        return (await read("calls")).split("\n").filter((l) => l !== "").map((l) => l.trimEnd());
      } catch {
        return [];
      }
    },
    async stdin(type, cmd) {
      return JSON.parse(await read(`${type}.${cmd}.stdin`));
    },
    stdinText: (type, cmd) => read(`${type}.${cmd}.stdin`),
    async envOf(type, cmd) {
      const out: Record<string, string> = {};
      for (const line of (await read(`${type}.${cmd}.env`)).split("\n")) {
        const eq = line.indexOf("=");
        if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
      }
      return out;
    },
    answer: (type, cmd, kind, text) =>
      Deno.writeTextFile(join(fakeDir, `${type}.${cmd}.${kind}`), text),
    [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }),
  };
}

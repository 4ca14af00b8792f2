// deno-lint-ignore-file no-console -- a build script reports to its user.
/**
 * `deno task compile`: builds `dist/cnibox` with `deno compile` and puts a
 * symlink per plugin name beside it, ready to copy into a CNI plugin dir.
 *
 * `deno compile` downloads its runtime (`denort`) the first time; where that
 * download is impossible this script says so and exits 1. `deno task install
 * <dir>` (launchers over this checkout) works without it.
 *
 * @module
 */
import { PLUGIN_FILES, PLUGINS, RUNTIME_FILES } from "../applets.ts";

const root = new URL("..", import.meta.url).pathname;
const dist = `${root}dist`;

await Deno.mkdir(dist, { recursive: true });
const out = await new Deno.Command(Deno.execPath(), {
  // -A is baked in: plugins write /proc/sys and use FFI (see main.ts).
  // Plugins and the CNI runtime are imported by computed URL (see applets.ts), so each is
  // included by name.
  args: [
    "compile",
    "-A",
    "--no-check",
    ...[...Object.values(PLUGIN_FILES), ...Object.values(RUNTIME_FILES)]
      .flatMap((file) => ["--include", `${root}${file}`]),
    "--output",
    `${dist}/cnibox`,
    `${root}main.ts`,
  ],
  stdout: "inherit",
  stderr: "piped",
}).output();
const stderr = new TextDecoder().decode(out.stderr);
if (!out.success) {
  console.error(stderr.trim());
  if (/denort|dl\.deno\.land|download|dns error|error sending request/i.test(stderr)) {
    console.error(
      "\ncompile: deno compile could not download its runtime (denort), so no binary was built." +
        "\nOn a machine that can reach the Deno download server this task works as is; here, use" +
        "\n`deno task install <dir>` to install launchers that run this checkout instead.",
    );
  }
  Deno.exit(1);
}
for (const name of Object.keys(PLUGINS)) {
  const link = `${dist}/${name}`;
  await Deno.remove(link).catch(() => {});
  await Deno.symlink("cnibox", link);
}
console.log(`built ${dist}/cnibox and symlinks: ${Object.keys(PLUGINS).join(", ")}`);

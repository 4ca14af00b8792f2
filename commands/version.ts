// deno-lint-ignore-file no-console -- a CLI command talks to its user on stdout.
/**
 * `cnibox version`: program version, the upstream release whose behaviour the
 * plugins match, and the CNI versions they speak.
 *
 * @module
 */
import { CNIBOX_VERSION, SUPPORTED_VERSIONS, UPSTREAM_RELEASE } from "../lib/cni/version.ts";
import { PLUGINS } from "../applets.ts";

/** Prints version information; `--json` prints it as one JSON object. */
export function run(args: string[]): Promise<number> {
  const info = {
    cnibox: CNIBOX_VERSION,
    upstreamRelease: UPSTREAM_RELEASE,
    cniVersions: [...SUPPORTED_VERSIONS],
    plugins: Object.keys(PLUGINS),
  };
  if (args.includes("--json")) {
    console.log(JSON.stringify(info));
  } else {
    console.log(
      `cnibox ${info.cnibox} (plugins behave as containernetworking/plugins v${info.upstreamRelease})`,
    );
    console.log(`CNI versions: ${info.cniVersions.join(", ")}`);
    console.log(`plugins: ${info.plugins.join(", ")}`);
  }
  return Promise.resolve(0);
}

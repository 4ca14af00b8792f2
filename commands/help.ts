// deno-lint-ignore-file no-console -- a CLI command talks to its user on stdout.
/**
 * `cnibox help`: what the program is and which commands it has.
 *
 * @module
 */

const HELP =
  `cnibox: the CNI plugins loopback, bridge, host-local, firewall and portmap in one program.

Run under a plugin's name (a symlink or launcher named bridge, portmap, ...) it is that
plugin. Run as anything else it is this command-line interface:

  cnibox version                    program and CNI versions, bundled plugins
  cnibox install [--force] [--sources] <dir>
                                    put runnable plugins (and cnibox) into <dir>, e.g. Nomad's cni_path
                                    (from a checkout: launchers over per-plugin bundles, or with
                                    --sources over the sources)
  cnibox exec <verb> <network> [<netns>]
                                    run a network's plugin chain like cnitool (verbs add, check,
                                    del, gc, status; env NETCONFPATH, CNI_PATH, CNI_IFNAME,
                                    CNI_CONTAINERID, CNI_ARGS, CAP_ARGS, CNI_CACHE_DIR)
  cnibox serve [--listen 127.0.0.1:9584 | --socket <path>] [--cni-config-dir D] [--cni-path D]
               [--cache-dir D] [--data-dir D] [--allow-remote]
                                    read-only status endpoint: networks, leases, attachments, metrics
  cnibox gc <network> [--dry-run]   release what belongs to attachments whose netns is gone
  cnibox <plugin>                   run a plugin without a symlink (CNI env and stdin as usual)
  cnibox help                       this text
`;

/** Prints the help text. */
export function run(_args: string[]): Promise<number> {
  console.log(HELP);
  return Promise.resolve(0);
}

/**
 * Is firewalld running? The reference asks D-Bus for the owner of
 * `org.fedoraproject.FirewallD1`; without a D-Bus client we answer from the
 * file system: no system bus socket means no firewalld (the common case,
 * one `stat`), otherwise a process whose name is `firewalld` must exist.
 *
 * @module
 */

/** Options for {@linkcode firewalldRunning}. */
export interface FirewalldProbeOptions {
  /** Root of the file system to look at (for tests). @default {""} */
  root?: string;
}

const BUS_SOCKETS = ["/run/dbus/system_bus_socket", "/var/run/dbus/system_bus_socket"];

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * True when the D-Bus system bus socket exists and a `firewalld` process runs.
 *
 * @example Usage
 * ```ts ignore
 * if (firewalldRunning()) throw new Error("use the firewalld backend");
 * ```
 */
export function firewalldRunning(options: FirewalldProbeOptions = {}): boolean {
  const root = options.root ?? "";
  if (!BUS_SOCKETS.some((path) => exists(root + path))) return false;
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = Deno.readDirSync(`${root}/proc`);
  } catch {
    return false;
  }
  for (const entry of entries) {
    if (!/^[0-9]+$/.test(entry.name)) continue;
    try {
      if (Deno.readTextFileSync(`${root}/proc/${entry.name}/comm`).trim() === "firewalld") {
        return true;
      }
    } catch {
      // the process exited while we looked
    }
  }
  return false;
}

/**
 * The two probes a plugin answers without a config: a bare run (no
 * `CNI_COMMAND`: Nomad's fingerprint reads the version from stderr) and
 * `VERSION` (podman asks every plugin before each ADD and DEL). Kept apart
 * from the skeleton so a probe loads this module and the version table
 * only; the skeleton answers probes through it too, so both paths print
 * the same bytes.
 *
 * @module
 */
import { aboutText, CURRENT_VERSION } from "./version.ts";

/** What a probe prints: the about text on stderr, or the version info on stdout. */
export type ProbeOutput = { stderr: string } | { stdout: string };

/**
 * The answer to a probe, or undefined when `command` is not one. A bare run
 * is `command === ""`; `VERSION` needs no other environment and no stdin.
 *
 * @example Usage
 * ```ts
 * import { assertEquals } from "@std/assert";
 * const out = probeOutput("loopback", ["1.0.0"], "VERSION");
 * assertEquals(out, { stdout: '{"cniVersion":"1.1.0","supportedVersions":["1.0.0"]}\n' });
 * ```
 */
export function probeOutput(
  name: string,
  supportedVersions: readonly string[],
  command: string,
): ProbeOutput | undefined {
  if (command === "") {
    return {
      stderr: `${aboutText(name)}\nCNI protocol versions supported: ${
        supportedVersions.join(", ")
      }\n`,
    };
  }
  if (command === "VERSION") {
    return {
      stdout: JSON.stringify({ cniVersion: CURRENT_VERSION, supportedVersions }) + "\n",
    };
  }
  return undefined;
}

/** Writes a probe's answer to the process's stdout or stderr. */
export function writeProbe(output: ProbeOutput): void {
  const encoder = new TextEncoder();
  if ("stdout" in output) writeAllSync(Deno.stdout, encoder.encode(output.stdout));
  else writeAllSync(Deno.stderr, encoder.encode(output.stderr));
}

function writeAllSync(target: { writeSync(p: Uint8Array): number }, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += target.writeSync(data.subarray(off));
}

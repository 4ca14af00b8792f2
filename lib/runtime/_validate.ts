/**
 * libcni's checks on runtime input before an ADD (`pkg/utils`): container ID,
 * network name and interface name. Failures are CNI errors with the codes
 * libcni uses.
 *
 * @module
 */
import { CniError, ErrorCode } from "../cni/error.ts";

const VALID_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;
const MAX_IFNAME_BYTES = 15;
// Go's unicode.IsSpace.
const SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

/** Throws unless `id` is a valid container ID. */
export function validateContainerId(id: string): void {
  if (id === "") throw new CniError(ErrorCode.UnknownContainer, "missing containerID");
  if (!VALID_NAME.test(id)) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      "invalid characters in containerID",
      id,
    );
  }
}

/** Throws unless `name` is a valid network name. */
export function validateNetworkName(name: string): void {
  if (name === "") throw new CniError(ErrorCode.InvalidNetworkConfig, "missing network name:");
  if (!VALID_NAME.test(name)) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      "invalid characters found in network name",
      name,
    );
  }
}

/** Throws unless `name` is a valid interface name (the kernel's rules). */
export function validateInterfaceName(name: string): void {
  const code = ErrorCode.InvalidEnvironmentVariables;
  if (name.length === 0) throw new CniError(code, "interface name is empty");
  if (new TextEncoder().encode(name).length > MAX_IFNAME_BYTES) {
    throw new CniError(
      code,
      "interface name is too long",
      `interface name should be less than ${MAX_IFNAME_BYTES + 1} characters`,
    );
  }
  if (name === "." || name === "..") throw new CniError(code, "interface name is . or ..");
  if (name.includes("/") || name.includes(":") || SPACE.test(name)) {
    throw new CniError(code, "interface name contains / or : or whitespace characters");
  }
}

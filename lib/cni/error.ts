/**
 * CNI errors: the numeric codes of the spec (plus the Go library's extras) and
 * the one error class that carries them to the skeleton, which prints it.
 *
 * @module
 */

/** Error codes as the CNI spec and the Go library (`pkg/types`) number them. */
export const ErrorCode = {
  Unknown: 0,
  IncompatibleCniVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironmentVariables: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  InvalidNetNs: 8,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
  Internal: 999,
} as const;

/** One of the {@linkcode ErrorCode} values, or a plugin-specific code >= 100. */
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode] | number;

/** The JSON object a plugin prints on failure (the Go library never adds `cniVersion`). */
export interface ErrorJson {
  code: number;
  msg: string;
  details?: string;
}

/**
 * An error that reaches the runtime with a CNI code. Anything else a plugin
 * throws is reported as code 999 (`ErrInternal`) with its message, which is
 * what the reference plugins do with plain Go errors.
 */
export class CniError extends Error {
  override name = "CniError";
  /** The CNI error code. */
  readonly code: ErrorCodeValue;
  /** Optional extra text, printed as `details` when not empty. */
  readonly details: string;

  constructor(code: ErrorCodeValue, msg: string, details = "", options?: ErrorOptions) {
    super(msg, options);
    this.code = code;
    this.details = details;
  }

  /** The error as the CNI error object. */
  toJSON(): ErrorJson {
    const json: ErrorJson = { code: this.code, msg: this.message };
    if (this.details) json.details = this.details;
    return json;
  }
}

/** Converts anything thrown into a {@linkcode CniError}; plain errors become code 999. */
export function toCniError(error: unknown): CniError {
  if (error instanceof CniError) return error;
  if (error instanceof Error) {
    return new CniError(ErrorCode.Internal, error.message, "", { cause: error });
  }
  return new CniError(ErrorCode.Internal, String(error));
}

/** Renders the error JSON as the Go library prints it: 4-space indent, no trailing newline. */
export function renderError(error: CniError): string {
  return JSON.stringify(error.toJSON(), null, 4);
}

/**
 * JSON the way Go's `encoding/json` writes a `map[string]interface{}`: compact,
 * object keys sorted at every level, and `<`, `>`, `&`, U+2028, U+2029
 * escaped. libcni round-trips every plugin config through such a map, so this
 * is what plugins receive on stdin.
 *
 * @module
 */

/** Serializes `value` like Go's `json.Marshal` of generic maps and slices. */
export function marshalGo(value: unknown): string {
  return escapeGo(JSON.stringify(sortKeys(value)) ?? "null");
}

/** Like {@linkcode marshalGo}, indented with 4 spaces (Go's `MarshalIndent(v, "", "    ")`). */
export function marshalGoIndent(value: unknown): string {
  return escapeGo(JSON.stringify(sortKeys(value), null, 4) ?? "null");
}

/** Returns a copy of `value` whose objects have their keys in sorted order. */
export function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(obj).sort()) {
      if (obj[key] !== undefined) out[key] = sortKeys(obj[key]);
    }
    return out;
  }
  return value;
}

// These characters only ever occur inside string literals of the output, so a
// textual replacement is safe.
function escapeGo(text: string): string {
  return text.replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Go's `%q` for a plain string (close enough: JSON quoting). */
export function quoteGo(value: string): string {
  return JSON.stringify(value);
}

/** Whether `value` is a plain JSON object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Go's `%T` name of a decoded JSON value, for error messages. */
export function goTypeName(value: unknown): string {
  if (value === null) return "<nil>";
  if (Array.isArray(value)) return "[]interface {}";
  switch (typeof value) {
    case "string":
      return "string";
    case "number":
      return "float64";
    case "boolean":
      return "bool";
    default:
      return "map[string]interface {}";
  }
}

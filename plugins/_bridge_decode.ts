/**
 * Decodes a JSON object into typed fields the way Go's `encoding/json` fills
 * a struct, so the bridge config is read with the reference plugin's rules:
 * keys match case-insensitively (exact match preferred, last key wins),
 * `null` leaves the default, and a value of the wrong JSON type is reported
 * as `json: cannot unmarshal <value> into Go struct field <Struct>.<path> of
 * type <type>`, where `<Struct>` is the Go type directly holding the field
 * (empty for anonymous structs). Go reports the first such error.
 *
 * @module
 */

/** A struct type: its Go name (`""` when anonymous) and its fields by json tag. */
export interface StructType {
  name: string;
  fields: Record<string, FieldType>;
}

/** The Go field types the bridge config uses. */
export type FieldType =
  | "string"
  | "bool"
  | "int"
  | "[]string"
  | "map[string]bool"
  | "map[string]interface {}"
  | { struct: StructType; goType: string }
  | { slice: StructType; goType: string };

/** A decoded struct: only the keys that were present with a non-null value. */
export type Decoded = Record<string, unknown>;

/** Thrown for the first value of the wrong JSON type; the message is Go's. */
export class GoTypeError extends TypeError {
  override name = "GoTypeError";
}

function jsonKind(value: unknown): string {
  if (Array.isArray(value)) return "array";
  if (typeof value === "object") return "object";
  if (typeof value === "boolean") return "bool";
  return typeof value;
}

class Decoder {
  errors: string[] = [];

  #fail(what: string, owner: string, path: string, goType: string): undefined {
    this.errors.push(
      `json: cannot unmarshal ${what} into Go struct field ${owner}${path} of type ${goType}`,
    );
    return undefined;
  }

  value(value: unknown, type: FieldType, owner: string, path: string): unknown {
    if (value === null) return undefined;
    const kind = jsonKind(value);
    if (typeof type === "string") {
      const fail = (what = kind, goType: string = type) => this.#fail(what, owner, path, goType);
      switch (type) {
        case "string":
          return typeof value === "string" ? value : fail();
        case "bool":
          return typeof value === "boolean" ? value : fail();
        case "int":
          if (typeof value !== "number") return fail();
          return Number.isSafeInteger(value) ? value : fail(`number ${value}`);
        case "[]string":
          if (!Array.isArray(value)) return fail();
          return value.map((item) =>
            item === null ? "" : typeof item === "string" ? item : fail(jsonKind(item), "string")
          );
        default:
          return kind === "object" ? value : fail();
      }
    }
    if ("struct" in type) {
      if (kind !== "object") return this.#fail(kind, owner, path, type.goType);
      return this.struct(value as Record<string, unknown>, type.struct, path);
    }
    if (!Array.isArray(value)) return this.#fail(kind, owner, path, type.goType);
    return value.map((item) => {
      if (item === null) return undefined;
      if (jsonKind(item) !== "object") {
        return this.#fail(jsonKind(item), owner, path, `main.${type.slice.name}`);
      }
      return this.struct(item as Record<string, unknown>, type.slice, path);
    });
  }

  struct(object: Record<string, unknown>, type: StructType, path: string): Decoded {
    const out: Decoded = {};
    const names = Object.keys(type.fields);
    for (const [key, value] of Object.entries(object)) {
      const field = names.find((name) => name === key) ??
        names.find((name) => name.toLowerCase() === key.toLowerCase());
      if (field === undefined) continue;
      const decoded = this.value(value, type.fields[field], type.name, `${path}.${field}`);
      if (decoded !== undefined) out[field] = decoded;
    }
    return out;
  }
}

/**
 * Decodes `object` as the Go struct `type`. Throws {@linkcode GoTypeError}
 * with Go's message for the first mistyped value.
 */
export function decodeStruct(object: Record<string, unknown>, type: StructType): Decoded {
  const decoder = new Decoder();
  const out = decoder.struct(object, type, "");
  if (decoder.errors.length > 0) throw new GoTypeError(decoder.errors[0]);
  return out;
}

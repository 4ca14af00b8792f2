/**
 * A small schema-driven decoder that walks an already parsed JSON value the
 * way Go's `encoding/json` decodes it into a struct, so config errors carry
 * the reference plugin's exact messages:
 *
 * - keys match struct fields exactly or case-insensitively, later keys win;
 * - a wrong JSON kind is remembered (`json: cannot unmarshal number into Go
 *   struct field Range.ipam.ranges.subnet of type string`) and decoding goes
 *   on; the first one is thrown at the end;
 * - an error from a custom unmarshaler (an unparsable CIDR or IP) aborts at
 *   once and wins over remembered kind errors.
 *
 * @module
 */

/** Where a value sits: the Go struct holding the field and the JSON field path. */
export interface Site {
  struct: string;
  path: string[];
}

/** Decoding state: the first remembered kind error. */
export class GoDecoder {
  #saved: TypeError | undefined;

  /** Remembers a kind error (only the first one counts, as in Go). */
  save(error: TypeError): void {
    this.#saved ??= error;
  }

  /** Throws the remembered kind error, if any. */
  finish(): void {
    if (this.#saved) throw this.#saved;
  }
}

/** Decodes one JSON value; `undefined` means "left unset" (Go's zero value). */
export type Schema<T> = (value: unknown, site: Site, dec: GoDecoder) => T | undefined;

/** Go's name for the kind of a JSON value in unmarshal errors. */
export function jsonKind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "boolean") return "bool";
  if (typeof value === "number") return "number";
  return typeof value === "string" ? "string" : "object";
}

/** The `UnmarshalTypeError` Go reports for `value` at `site`. */
export function kindError(
  value: unknown,
  site: Site,
  goType: string,
  kind = jsonKind(value),
): TypeError {
  const where = site.path.length === 0
    ? "Go value"
    : `Go struct field ${site.struct}.${site.path.join(".")}`;
  return new TypeError(`json: cannot unmarshal ${kind} into ${where} of type ${goType}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Go `string`: null leaves it unset. */
export function goString(): Schema<string> {
  return (value, site, dec) => {
    if (value === null || typeof value === "string") return value ?? undefined;
    dec.save(kindError(value, site, "string"));
    return undefined;
  };
}

/** Go `int` (or `*int`): integral numbers only. */
export function goInt(goType = "int"): Schema<number> {
  return (value, site, dec) => {
    if (value === null) return undefined;
    if (typeof value === "number" && Number.isInteger(value)) return value;
    const kind = typeof value === "number" ? `number ${value}` : jsonKind(value);
    dec.save(kindError(value, site, goType, kind));
    return undefined;
  };
}

/** A Go `encoding.TextUnmarshaler` (net.IP, ip.IP): strings go to `parse`, which may throw. */
export function goText<T>(goType: string, parse: (text: string) => T | undefined): Schema<T> {
  return (value, site, dec) => {
    if (value === null) return undefined;
    if (typeof value === "string") return parse(value);
    dec.save(kindError(value, site, goType));
    return undefined;
  };
}

/** A Go slice: null leaves it unset, elements keep the slice's site. */
export function goSlice<T>(goType: string, elem: Schema<T>): Schema<(T | undefined)[]> {
  return (value, site, dec) => {
    if (value === null) return undefined;
    if (!Array.isArray(value)) {
      dec.save(kindError(value, site, goType));
      return undefined;
    }
    return value.map((item) => elem(item, site, dec));
  };
}

/** Fields of a Go struct by JSON name. */
export type Fields = Record<string, Schema<unknown>>;

/** ASCII case folding, enough for the plugin's field names. */
function fold(key: string): string {
  return key.toLowerCase();
}

/**
 * A Go struct (or pointer to one): JSON keys are matched to `fields` exactly,
 * else case-insensitively; unknown keys are ignored.
 */
export function goStruct(
  goType: string,
  structName: string,
  fields: Fields,
): Schema<Record<string, unknown>> {
  const folded = new Map(Object.keys(fields).map((name) => [fold(name), name]));
  return (value, site, dec) => {
    if (value === null) return undefined;
    if (!isObject(value)) {
      dec.save(kindError(value, site, goType));
      return undefined;
    }
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const name = Object.hasOwn(fields, key) ? key : folded.get(fold(key));
      if (name === undefined) continue;
      const decoded = fields[name](item, { struct: structName, path: [...site.path, name] }, dec);
      if (decoded === undefined) delete out[name];
      else out[name] = decoded;
    }
    return out;
  };
}

/**
 * Decodes a value that Go hands to a type with its own `UnmarshalJSON` which
 * itself calls `json.Unmarshal`: kind errors inside are reported with the
 * outer site (Go overwrites the error context) and abort decoding.
 */
export function goNested<T>(inner: Schema<T>): Schema<T> {
  return (value, site) => {
    const dec = new GoDecoder();
    const innerSite = { struct: "", path: [] };
    let out: T | undefined;
    try {
      out = inner(value, innerSite, dec);
      dec.finish();
    } catch (error) {
      if (error instanceof TypeError && error.message.startsWith("json: cannot unmarshal ")) {
        const match = / of type (.*)$/.exec(error.message);
        const kind = /^json: cannot unmarshal (.*?) into /.exec(error.message)?.[1];
        throw kindError(value, site, match?.[1] ?? "", kind);
      }
      throw error;
    }
    return out;
  };
}

/** Decodes `value` with `schema`, throwing Go's first error. */
export function goDecode<T>(schema: Schema<T>, value: unknown, structName: string): T | undefined {
  const dec = new GoDecoder();
  const out = schema(value, { struct: structName, path: [] }, dec);
  dec.finish();
  return out;
}

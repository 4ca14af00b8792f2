/**
 * Private helpers that reproduce the Go standard library's text formats where
 * they leak into CNI messages: `%q` quoting, `encoding/json` syntax and type
 * error messages, Go's JSON output escaping, `encoding/json`'s
 * case-insensitive struct field matching, and `filepath.Join`'s lexical
 * cleaning (which decides where files go).
 *
 * @module
 */

const HEX = "0123456789abcdef";

/**
 * Go's `filepath.Join`: the non-empty elements joined by "/" and cleaned
 * lexically (no repeated "/", no "." and no "name/.." pairs; ".." at the
 * root is dropped), without asking the file system, so `a/link/../b` is
 * `a/b` whatever `link` points to.
 *
 * @example Usage
 * ```ts
 * import { assertEquals } from "@std/assert";
 * assertEquals(goJoinPath("/var/lib/cni/", "../networks//n"), "/var/lib/networks/n");
 * ```
 */
export function goJoinPath(...elements: string[]): string {
  const joined = elements.filter((e) => e !== "").join("/");
  if (joined === "") return "";
  const absolute = joined.startsWith("/");
  const parts: string[] = [];
  for (const part of joined.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === ".." && parts.length > 0 && parts[parts.length - 1] !== "..") parts.pop();
    else if (part !== ".." || !absolute) parts.push(part);
  }
  const out = (absolute ? "/" : "") + parts.join("/");
  return out === "" ? "." : out;
}

function isPrintable(ch: string): boolean {
  // strconv.IsPrint: letters, marks, numbers, punctuation, symbols and ASCII space.
  return ch === " " || /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u.test(ch);
}

/** Go's `strconv.Quote` (`%q` of a string). */
export function goQuote(text: string): string {
  let out = '"';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"' || ch === "\\") out += "\\" + ch;
    else if (cp >= 0x20 && cp < 0x7f) out += ch;
    else if (cp === 0x07) out += "\\a";
    else if (cp === 0x08) out += "\\b";
    else if (cp === 0x0c) out += "\\f";
    else if (cp === 0x0a) out += "\\n";
    else if (cp === 0x0d) out += "\\r";
    else if (cp === 0x09) out += "\\t";
    else if (cp === 0x0b) out += "\\v";
    else if (cp < 0x20 || cp === 0x7f) out += "\\x" + HEX[cp >> 4] + HEX[cp & 15];
    else if (isPrintable(ch)) out += ch;
    else if (cp < 0x10000) out += "\\u" + cp.toString(16).padStart(4, "0");
    else out += "\\U" + cp.toString(16).padStart(8, "0");
  }
  return out + '"';
}

/** Go's `%q` of a `[]string`: `["a" "b"]`. */
export function goQuoteList(items: readonly string[]): string {
  return `[${items.map(goQuote).join(" ")}]`;
}

/** Go's `%v`/`%s` of a `[]string`: `[a b]`. */
export function goList(items: readonly string[]): string {
  return `[${items.join(" ")}]`;
}

/**
 * Escapes JSON text the way Go's `encoding/json` does on output: `<`, `>`,
 * `&`, U+2028 and U+2029 become `\u` escapes. They can only occur inside
 * strings, so replacing them in the serialized text is safe.
 */
export function goJsonEscape(json: string): string {
  return json.replace(
    /[<>&\u2028\u2029]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
  );
}

/** `JSON.stringify(value, null, 4)` with Go's escaping (`json.MarshalIndent(v, "", "    ")`). */
export function goMarshalIndent(value: unknown): string {
  return goJsonEscape(JSON.stringify(value, null, 4));
}

/** The JSON kind name Go uses in `json: cannot unmarshal <kind> into ...`. */
export function jsonKind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  switch (typeof value) {
    case "string":
      return "string";
    case "number":
      return "number";
    case "boolean":
      return "bool";
    default:
      return "object";
  }
}

/** True for a JSON object (not null, not an array). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Go's `foldName`: upper-case then lower-case each character. */
function foldKey(key: string): string {
  let out = "";
  for (const ch of key) {
    const upper = ch.toUpperCase();
    out += upper.length === ch.length ? upper.toLowerCase() : ch.toLowerCase();
  }
  return out;
}

/**
 * Looks a key up the way Go decodes a JSON object into a struct: names match
 * case-insensitively and the last matching key in the object wins.
 */
export function goField(obj: Record<string, unknown>, name: string): unknown {
  const folded = foldKey(name);
  let found: unknown = undefined;
  for (const key of Object.keys(obj)) {
    if (key === name || foldKey(key) === folded) found = obj[key];
  }
  return found;
}

/** Go's `quoteChar` from `encoding/json/scanner.go`, on a raw byte. */
function quoteByte(c: number): string {
  if (c === 0x27) return "'\\''";
  if (c === 0x22) return "'\"'";
  const q = goQuote(String.fromCharCode(c));
  return "'" + q.slice(1, -1) + "'";
}

/**
 * Returns Go's `encoding/json` syntax error message for invalid JSON bytes, or
 * `undefined` if Go would accept them (`scanner.go`, state for state). Runs
 * only after `JSON.parse` failed, so it costs nothing on valid input.
 */
export function goJsonSyntaxError(bytes: Uint8Array): string | undefined {
  const stack: ("key" | "value" | "array")[] = [];
  let state = "beginValue";
  let literal = "";
  let pos = 0;
  let hexLeft = 0;
  const err = (c: number, context: string) => `invalid character ${quoteByte(c)} ${context}`;
  const isSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
  const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
  const isHex = (c: number) => isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
  const LITERALS: Record<number, string> = { 0x74: "true", 0x66: "false", 0x6e: "null" };

  // One scanner step; returns an error message or undefined.
  const step = (c: number): string | undefined => {
    switch (state) {
      case "beginValueOrEmpty":
        if (isSpace(c)) return undefined;
        if (c === 0x5d) return endValue(c);
        return beginValue(c);
      case "beginValue":
        return beginValue(c);
      case "beginStringOrEmpty":
        if (isSpace(c)) return undefined;
        if (c === 0x7d) {
          stack[stack.length - 1] = "value";
          return endValue(c);
        }
        return beginString(c);
      case "beginString":
        return beginString(c);
      case "inString":
        if (c === 0x22) state = "endValue";
        else if (c === 0x5c) state = "inStringEsc";
        else if (c < 0x20) return err(c, "in string literal");
        return undefined;
      case "inStringEsc":
        if ([0x62, 0x66, 0x6e, 0x72, 0x74, 0x5c, 0x2f, 0x22].includes(c)) state = "inString";
        else if (c === 0x75) {
          state = "escU";
          hexLeft = 4;
        } else return err(c, "in string escape code");
        return undefined;
      case "escU":
        if (!isHex(c)) return err(c, "in \\u hexadecimal character escape");
        if (--hexLeft === 0) state = "inString";
        return undefined;
      case "neg":
        if (c === 0x30) state = "zero";
        else if (c >= 0x31 && c <= 0x39) state = "one";
        else return err(c, "in numeric literal");
        return undefined;
      case "one":
        if (isDigit(c)) return undefined;
        return zero(c);
      case "zero":
        return zero(c);
      case "dot":
        if (!isDigit(c)) return err(c, "after decimal point in numeric literal");
        state = "dot0";
        return undefined;
      case "dot0":
        if (isDigit(c)) return undefined;
        if (c === 0x65 || c === 0x45) {
          state = "exp";
          return undefined;
        }
        return endValue(c);
      case "exp":
        if (c === 0x2b || c === 0x2d) {
          state = "expSign";
          return undefined;
        }
        return expSign(c);
      case "expSign":
        return expSign(c);
      case "exp0":
        if (isDigit(c)) return undefined;
        return endValue(c);
      case "literal":
        if (c !== literal.charCodeAt(pos)) {
          return err(c, `in literal ${literal} (expecting '${literal[pos]}')`);
        }
        if (++pos === literal.length) state = "endValue";
        return undefined;
      case "endValue":
        return endValue(c);
      default: // endTop
        return isSpace(c) ? undefined : err(c, "after top-level value");
    }
  };
  const beginValue = (c: number): string | undefined => {
    if (isSpace(c)) return undefined;
    if (c === 0x7b) {
      stack.push("key");
      state = "beginStringOrEmpty";
    } else if (c === 0x5b) {
      stack.push("array");
      state = "beginValueOrEmpty";
    } else if (c === 0x22) state = "inString";
    else if (c === 0x2d) state = "neg";
    else if (c === 0x30) state = "zero";
    else if (c >= 0x31 && c <= 0x39) state = "one";
    else if (LITERALS[c]) {
      state = "literal";
      literal = LITERALS[c];
      pos = 1;
    } else return err(c, "looking for beginning of value");
    return undefined;
  };
  const beginString = (c: number): string | undefined => {
    if (isSpace(c)) return undefined;
    if (c !== 0x22) return err(c, "looking for beginning of object key string");
    state = "inString";
    return undefined;
  };
  const zero = (c: number): string | undefined => {
    if (c === 0x2e) state = "dot";
    else if (c === 0x65 || c === 0x45) state = "exp";
    else return endValue(c);
    return undefined;
  };
  const expSign = (c: number): string | undefined => {
    if (!isDigit(c)) return err(c, "in exponent of numeric literal");
    state = "exp0";
    return undefined;
  };
  const endValue = (c: number): string | undefined => {
    if (stack.length === 0) {
      state = "endTop";
      return step(c);
    }
    state = "endValue";
    if (isSpace(c)) return undefined;
    const top = stack[stack.length - 1];
    if (top === "key") {
      if (c !== 0x3a) return err(c, "after object key");
      stack[stack.length - 1] = "value";
      state = "beginValue";
    } else if (top === "value") {
      if (c === 0x2c) {
        stack[stack.length - 1] = "key";
        state = "beginString";
      } else if (c === 0x7d) {
        stack.pop();
        return endValue(0x20);
      } else return err(c, "after object key:value pair");
    } else if (c === 0x2c) state = "beginValue";
    else if (c === 0x5d) {
      stack.pop();
      return endValue(0x20);
    } else return err(c, "after array element");
    return undefined;
  };

  for (const c of bytes) {
    const e = step(c);
    if (e) return e;
  }
  if (state === "endTop") return undefined;
  // Go's scanner.eof(): feed one space, then complain about the end.
  const e = step(0x20);
  if (e) return e;
  return state === "endTop" ? undefined : "unexpected end of JSON input";
}

const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Decodes JSON bytes like Go's `json.Unmarshal` into `interface{}`; throws a
 * `SyntaxError` carrying Go's message for invalid input.
 */
export function goJsonDecode(bytes: Uint8Array): unknown {
  const text = decoder.decode(bytes);
  const tooDeep = nestingBeyond(text, GO_MAX_JSON_DEPTH);
  if (tooDeep !== undefined) {
    throw new SyntaxError(`invalid character '${tooDeep}' exceeded max depth`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    const msg = goJsonSyntaxError(bytes) ?? (error as Error).message;
    throw new SyntaxError(msg, { cause: error });
  }
}

/** Go's `encoding/json` refuses documents nested deeper than this. */
const GO_MAX_JSON_DEPTH = 10000;

/**
 * The bracket that takes `text` past `limit` levels of nesting, if any. Go
 * rejects such input, and without the check a hostile config could be
 * accepted (and a deep one could exhaust V8's parser stack).
 */
function nestingBeyond(text: string, limit: number): string | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return text[i];
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return undefined;
}

/** `json: cannot unmarshal <kind> into Go struct field <struct>.<field> of type <type>`. */
export function fieldTypeError(value: unknown, field: string, type: string): TypeError {
  return new TypeError(
    `json: cannot unmarshal ${jsonKind(value)} into Go struct field ${field} of type ${type}`,
  );
}

/** `json: cannot unmarshal <kind> into Go value of type <type>`. */
export function valueTypeError(value: unknown, type: string): TypeError {
  return new TypeError(`json: cannot unmarshal ${jsonKind(value)} into Go value of type ${type}`);
}

/** Go's `strconv.Atoi` with its error messages. */
export function goAtoi(text: string): number {
  if (!/^[+-]?[0-9]+$/.test(text)) {
    throw new SyntaxError(`strconv.Atoi: parsing ${goQuote(text)}: invalid syntax`);
  }
  const value = BigInt(text);
  if (value > 9223372036854775807n || value < -9223372036854775808n) {
    throw new RangeError(`strconv.Atoi: parsing ${goQuote(text)}: value out of range`);
  }
  return Number(value);
}

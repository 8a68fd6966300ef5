/**
 * A strict JSON parser for untrusted headers and index files.
 *
 * Why not JSON.parse: it silently keeps the last of two equal keys, so a header that names a tensor twice
 * (or an index that maps one tensor to two shards) would pass unseen; it turns 2^64 into a lossy double; and
 * it puts "__proto__" keys through object semantics. This parser returns objects as Maps (insertion order,
 * no prototype), keeps numbers as their source text, rejects duplicate keys at every level, and bounds
 * nesting so hostile input cannot exhaust the stack.
 */
import { AbliterateError, type ErrorCode } from "../errors.js";

/** A JSON number kept as its source text, so integers beyond 2^53 are never rounded before validation. */
export class JsonNumber {
  constructor(readonly text: string) {}
  /** True for a non-negative integer written without fraction or exponent (what the crate accepts as usize). */
  isNonNegativeInteger(): boolean {
    return /^(0|[1-9][0-9]*)$/.test(this.text);
  }
}

/**
 * Plain non-negative integers of up to 15 digits (always exact as doubles) come back as JS numbers, which is
 * what shapes and offsets are; every other number stays a JsonNumber holding its text.
 */
export type JsonValue = null | boolean | string | number | JsonNumber | JsonValue[] | JsonObject;
export type JsonObject = Map<string, JsonValue>;

/** serde_json's default recursion limit; headers nest three levels deep at most. */
const MAX_DEPTH = 128;

const enum Char {
  Tab = 0x09,
  Newline = 0x0a,
  Return = 0x0d,
  Space = 0x20,
  Quote = 0x22,
  Plus = 0x2b,
  Comma = 0x2c,
  Minus = 0x2d,
  Dot = 0x2e,
  Zero = 0x30,
  Nine = 0x39,
  Colon = 0x3a,
  OpenBracket = 0x5b,
  Backslash = 0x5c,
  CloseBracket = 0x5d,
  OpenBrace = 0x7b,
  CloseBrace = 0x7d,
}

export interface ParseStrictJsonParams {
  text: string;
  /** The file the text came from; every error names it. */
  file: string;
  /** The error code to throw with. */
  code: ErrorCode;
  /** What the text is, for messages ("header", "index"). */
  what: string;
}

export function parseStrictJson({ text, file, code, what }: ParseStrictJsonParams): JsonValue {
  let pos = 0;

  const fail = (problem: string): never => {
    throw new AbliterateError(code, `${what} is not valid JSON: ${problem} at character ${pos}`, { file });
  };

  const skipWhitespace = (): void => {
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === Char.Space || c === Char.Newline || c === Char.Tab || c === Char.Return) pos++;
      else return;
    }
  };

  const expectLiteral = (literal: string, value: JsonValue): JsonValue => {
    if (text.startsWith(literal, pos)) {
      pos += literal.length;
      return value;
    }
    return fail("unexpected token");
  };

  const isDigit = (c: number): boolean => c >= Char.Zero && c <= Char.Nine;

  const parseNumber = (): number | JsonNumber => {
    const start = pos;
    if (text.charCodeAt(pos) === Char.Minus) pos++;
    if (text.charCodeAt(pos) === Char.Zero) pos++;
    else if (isDigit(text.charCodeAt(pos))) while (isDigit(text.charCodeAt(pos))) pos++;
    else fail("malformed number");
    if (text.charCodeAt(pos) === Char.Dot) {
      pos++;
      if (!isDigit(text.charCodeAt(pos))) fail("malformed number");
      while (isDigit(text.charCodeAt(pos))) pos++;
    }
    const e = text.charCodeAt(pos);
    if (e === 0x65 || e === 0x45) {
      pos++;
      const sign = text.charCodeAt(pos);
      if (sign === Char.Plus || sign === Char.Minus) pos++;
      if (!isDigit(text.charCodeAt(pos))) fail("malformed number");
      while (isDigit(text.charCodeAt(pos))) pos++;
    }
    const numberText = text.slice(start, pos);
    return pos - start <= 15 && /^(0|[1-9][0-9]*)$/.test(numberText) ? Number(numberText) : new JsonNumber(numberText);
  };

  const parseHex4 = (): number => {
    if (pos + 4 > text.length) fail("truncated \\u escape");
    let value = 0;
    for (let i = 0; i < 4; i++) {
      const c = text.charCodeAt(pos++);
      const digit =
        c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
      if (digit < 0) fail("bad \\u escape");
      value = value * 16 + digit;
    }
    return value;
  };

  const parseString = (): string => {
    pos++; // opening quote
    let result = "";
    let runStart = pos;
    for (;;) {
      if (pos >= text.length) fail("unterminated string");
      const c = text.charCodeAt(pos);
      if (c === Char.Quote) {
        result += text.slice(runStart, pos);
        pos++;
        return result;
      }
      if (c < 0x20) fail("control character in string");
      if (c !== Char.Backslash) {
        pos++;
        continue;
      }
      result += text.slice(runStart, pos);
      pos++;
      const escape = text.charCodeAt(pos++);
      switch (escape) {
        case Char.Quote: result += '"'; break;
        case Char.Backslash: result += "\\"; break;
        case 0x2f: result += "/"; break;
        case 0x62: result += "\b"; break;
        case 0x66: result += "\f"; break;
        case 0x6e: result += "\n"; break;
        case 0x72: result += "\r"; break;
        case 0x74: result += "\t"; break;
        case 0x75: {
          const unit = parseHex4();
          if (unit >= 0xd800 && unit <= 0xdbff) {
            // A high surrogate must be followed by an escaped low surrogate: Rust strings cannot hold a lone one.
            if (text.charCodeAt(pos) !== Char.Backslash || text.charCodeAt(pos + 1) !== 0x75) fail("lone surrogate");
            pos += 2;
            const low = parseHex4();
            if (low < 0xdc00 || low > 0xdfff) fail("lone surrogate");
            result += String.fromCharCode(unit, low);
          } else if (unit >= 0xdc00 && unit <= 0xdfff) {
            fail("lone surrogate");
          } else {
            result += String.fromCharCode(unit);
          }
          break;
        }
        default:
          pos--;
          fail("bad escape");
      }
      runStart = pos;
    }
  };

  const parseValue = (depth: number): JsonValue => {
    skipWhitespace();
    const c = text.charCodeAt(pos);
    switch (c) {
      case Char.OpenBrace: return parseObject(depth + 1);
      case Char.OpenBracket: return parseArray(depth + 1);
      case Char.Quote: return parseString();
      case 0x74: return expectLiteral("true", true);
      case 0x66: return expectLiteral("false", false);
      case 0x6e: return expectLiteral("null", null);
      default:
        if (c === Char.Minus || isDigit(c)) return parseNumber();
        return fail(pos >= text.length ? "unexpected end" : "unexpected character");
    }
  };

  const parseArray = (depth: number): JsonValue[] => {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
    pos++;
    const items: JsonValue[] = [];
    skipWhitespace();
    if (text.charCodeAt(pos) === Char.CloseBracket) {
      pos++;
      return items;
    }
    for (;;) {
      items.push(parseValue(depth));
      skipWhitespace();
      const c = text.charCodeAt(pos++);
      if (c === Char.CloseBracket) return items;
      if (c !== Char.Comma) {
        pos--;
        fail("expected ',' or ']'");
      }
    }
  };

  const parseObject = (depth: number): JsonObject => {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
    pos++;
    const entries: JsonObject = new Map();
    skipWhitespace();
    if (text.charCodeAt(pos) === Char.CloseBrace) {
      pos++;
      return entries;
    }
    for (;;) {
      skipWhitespace();
      if (text.charCodeAt(pos) !== Char.Quote) fail("expected a string key");
      const keyAt = pos;
      const key = parseString();
      if (entries.has(key)) {
        pos = keyAt;
        fail(`duplicate key ${quoteForMessage(key)}`);
      }
      skipWhitespace();
      if (text.charCodeAt(pos) !== Char.Colon) fail("expected ':'");
      pos++;
      entries.set(key, parseValue(depth));
      skipWhitespace();
      const c = text.charCodeAt(pos++);
      if (c === Char.CloseBrace) return entries;
      if (c !== Char.Comma) {
        pos--;
        fail("expected ',' or '}'");
      }
    }
  };

  const value = parseValue(0);
  skipWhitespace();
  if (pos !== text.length) fail("trailing characters after the JSON value");
  return value;
}

export function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return value instanceof Map;
}

/** A short description of a JSON value's kind, for error messages. */
export function describeJsonValue(value: JsonValue | undefined): string {
  if (value === undefined) return "missing";
  if (value === null) return "null";
  if (value instanceof Map) return "an object";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "number") return `the number ${value}`;
  if (value instanceof JsonNumber) return `the number ${value.text.length > 40 ? value.text.slice(0, 40) + "…" : value.text}`;
  if (typeof value === "string") return "a string";
  return `the boolean ${String(value)}`;
}

/**
 * Converts to ordinary JS values for informational data (index metadata): objects become plain objects built
 * from own properties (a "__proto__" key stays a key), numbers become JS numbers (possibly rounded, so never
 * use this for offsets or sizes that must be exact).
 */
export function toPlainJson(value: JsonValue): unknown {
  if (value instanceof JsonNumber) return Number(value.text);
  if (typeof value === "number") return value;
  if (value instanceof Map) return Object.fromEntries([...value].map(([key, item]) => [key, toPlainJson(item)]));
  if (Array.isArray(value)) return value.map(toPlainJson);
  return value;
}

/** JSON-quotes a string for an error message, shortened so a hostile 1 MB name cannot flood the terminal. */
export function quoteForMessage(text: string, limit = 120): string {
  return JSON.stringify(text.length > limit ? `${text.slice(0, limit)}…` : text);
}

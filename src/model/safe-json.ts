/**
 * JSON from files that may be hostile. JSON.parse alone is not enough: its error messages quote a
 * snippet of the text (Node 20: `Unexpected token 'x', "secret..." is not valid JSON`), it silently
 * keeps the last of two equal keys, it accepts any nesting depth (a 100,000-deep value parses, then
 * overflows the stack of whatever walks it), and a `__proto__` key becomes an own property that object
 * spreads and merges then turn into a prototype or drop. So the text is first scanned here, without
 * recursion beyond `maxDepth`, to check the grammar (RFC 8259), the depth, and the keys; errors give the
 * line, the column and the key path, never the text. Then JSON.parse builds the value.
 */
import { NerEngineError } from "../errors.js";
import { readBoundedFile, decodeUtf8, type BoundedReadOptions } from "./bounded-read.js";

/** Deeper than any real config or tokenizer file (those nest < 10 levels; serde_json's own limit is 128). */
export const MAX_JSON_DEPTH = 64;

/** Keys that are refused in configuration files: they are never settings, only prototype tricks. */
export const PROTO_KEYS: readonly string[] = ["__proto__", "constructor", "prototype"];

export interface SafeJsonOptions {
  /** Start of the message for a syntax error; default "not valid JSON". */
  invalid?: string;
  maxDepth?: number;
  /** Refuse an object naming the same key twice (JSON.parse would keep the last). Default true. */
  rejectDuplicateKeys?: boolean;
  /** Refuse __proto__ / constructor / prototype keys, except directly under these key paths. */
  rejectProtoKeys?: boolean;
  protoKeysAllowedUnder?: readonly (readonly string[])[];
  /** Put the line into `where` (`file:line`) rather than into the message. */
  lineInWhere?: boolean;
  /** Line number of the text's first line (JSON lines files); default 1. */
  firstLine?: number;
}

class ScanError extends Error {
  constructor(readonly reason: string, readonly offset: number) {
    super(reason);
  }
}

/** A run of string characters that need no attention (sticky: matched at lastIndex). */
const PLAIN = /[^"\\\u0000-\u001f]*/y;
const WS = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const DIGIT = (c: number) => c >= 0x30 && c <= 0x39;

/** A key path as `a.b[0]."odd key"`; array indices are numbers. */
function pathString(path: readonly (string | number)[]): string {
  if (path.length === 0) return "(root)";
  return path
    .map((k, i) => {
      if (typeof k === "number") return `[${k}]`;
      const key = /^[A-Za-z_$][\w$-]*$/.test(k) ? k : JSON.stringify(k.length > 40 ? `${k.slice(0, 37)}...` : k);
      return i === 0 ? key : `.${key}`;
    })
    .join("");
}

/** Validates `text` as JSON under `opts` (throws ScanError). */
function scan(text: string, opts: SafeJsonOptions): void {
  const maxDepth = opts.maxDepth ?? MAX_JSON_DEPTH;
  const dupes = opts.rejectDuplicateKeys ?? true;
  const proto = opts.rejectProtoKeys ?? false;
  const allowed = (opts.protoKeysAllowedUnder ?? []).map((p) => p.join("\u0000"));
  const needKeys = dupes || proto;
  const n = text.length;
  let i = 0;
  const path: (string | number)[] = [];

  const skipWs = () => {
    while (i < n && WS(text.charCodeAt(i))) i++;
  };
  /** Scans a string starting at its opening quote; returns its value when `want`. */
  const string = (want: boolean): string => {
    const start = ++i;
    let escaped = false;
    for (;;) {
      PLAIN.lastIndex = i; // skip the run of ordinary characters at once
      PLAIN.test(text);
      i = PLAIN.lastIndex;
      if (i >= n) throw new ScanError("unterminated string", start - 1);
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) throw new ScanError("control character inside a string (escape it)", i);
      if (c === 0x5c) {
        escaped = true;
        const e = text.charCodeAt(i + 1);
        if (e === 0x75) {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) throw new ScanError("invalid \\u escape", i);
          i += 6;
          continue;
        }
        if (!'"\\/bfnrt'.includes(text[i + 1] ?? "x")) throw new ScanError("invalid escape sequence", i);
        i += 2;
        continue;
      }
      i++;
    }
    const end = i++;
    if (!want) return "";
    return escaped ? (JSON.parse(text.slice(start - 1, end + 1)) as string) : text.slice(start, end);
  };
  const number = () => {
    const start = i;
    if (text.charCodeAt(i) === 0x2d) i++;
    if (text.charCodeAt(i) === 0x30) i++;
    else if (DIGIT(text.charCodeAt(i))) while (DIGIT(text.charCodeAt(i))) i++;
    else throw new ScanError("invalid number", start);
    if (text.charCodeAt(i) === 0x2e) {
      i++;
      if (!DIGIT(text.charCodeAt(i))) throw new ScanError("invalid number", start);
      while (DIGIT(text.charCodeAt(i))) i++;
    }
    const e = text.charCodeAt(i);
    if (e === 0x65 || e === 0x45) {
      i++;
      const s = text.charCodeAt(i);
      if (s === 0x2b || s === 0x2d) i++;
      if (!DIGIT(text.charCodeAt(i))) throw new ScanError("invalid number", start);
      while (DIGIT(text.charCodeAt(i))) i++;
    }
  };
  const value = (depth: number): void => {
    skipWs();
    if (i >= n) throw new ScanError("unexpected end of input", i);
    const c = text.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) {
      if (depth >= maxDepth) throw new ScanError(`nested deeper than ${maxDepth} levels (under ${pathString(path.slice(0, 8))}${path.length > 8 ? "..." : ""})`, i);
      if (c === 0x7b) object(depth + 1);
      else array(depth + 1);
    } else if (c === 0x22) string(false);
    else if (c === 0x2d || DIGIT(c)) number();
    else if (text.startsWith("true", i)) i += 4;
    else if (text.startsWith("false", i)) i += 5;
    else if (text.startsWith("null", i)) i += 4;
    else throw new ScanError(i === 0 && c === 0xfeff ? "starts with a byte-order mark" : "unexpected character", i);
  };
  const object = (depth: number) => {
    i++;
    skipWs();
    if (text.charCodeAt(i) === 0x7d) {
      i++;
      return;
    }
    const seen = dupes ? new Set<string>() : undefined;
    for (;;) {
      skipWs();
      if (text.charCodeAt(i) !== 0x22) throw new ScanError(i >= n ? "unexpected end of input" : "expected a key (a string in double quotes)", i);
      const at = i;
      const key = string(needKeys);
      if (seen) {
        if (seen.has(key)) throw new ScanError(`key ${pathString([...path, key])} appears twice in one object (the second would silently replace the first)`, at);
        seen.add(key);
      }
      if (proto && PROTO_KEYS.includes(key) && !allowed.includes(path.join("\u0000"))) {
        throw new ScanError(`key ${pathString([...path, key])} is not allowed: "${key}" is never a setting (it would change or hide the object's prototype)`, at);
      }
      skipWs();
      if (text.charCodeAt(i) !== 0x3a) throw new ScanError(i >= n ? "unexpected end of input" : "expected ':' after a key", i);
      i++;
      path.push(key);
      value(depth);
      path.pop();
      skipWs();
      const c = text.charCodeAt(i);
      if (c === 0x2c) {
        i++;
        continue;
      }
      if (c === 0x7d) {
        i++;
        return;
      }
      throw new ScanError(i >= n ? "unexpected end of input" : "expected ',' or '}' in an object", i);
    }
  };
  const array = (depth: number) => {
    i++;
    skipWs();
    if (text.charCodeAt(i) === 0x5d) {
      i++;
      return;
    }
    for (let index = 0; ; index++) {
      path.push(index);
      value(depth);
      path.pop();
      skipWs();
      const c = text.charCodeAt(i);
      if (c === 0x2c) {
        i++;
        continue;
      }
      if (c === 0x5d) {
        i++;
        return;
      }
      throw new ScanError(i >= n ? "unexpected end of input" : "expected ',' or ']' in an array", i);
    }
  };

  value(0);
  skipWs();
  if (i < n) throw new ScanError("unexpected text after the JSON value", i);
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let k = 0; k < offset && k < text.length; k++) {
    if (text.charCodeAt(k) === 0x0a) {
      line++;
      lineStart = k + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * Parses `text` (from `source`, a file name) after the checks above. Errors are NerEngineErrors naming
 * `source`, the line and column, and for key problems the key path; never a piece of the text.
 */
export function parseJsonText(text: string, source: string, opts: SafeJsonOptions = {}): unknown {
  try {
    scan(text, opts);
  } catch (e) {
    if (!(e instanceof ScanError)) throw e;
    const { line, column } = lineAndColumn(text, e.offset);
    const abs = line + (opts.firstLine ?? 1) - 1;
    const invalid = opts.invalid ?? "not valid JSON";
    if (opts.lineInWhere) throw new NerEngineError(`${invalid}: ${e.reason} (column ${column})`, `${source}:${abs}`);
    throw new NerEngineError(`${invalid}: ${e.reason} at line ${abs}, column ${column}`, source);
  }
  try {
    return JSON.parse(text);
  } catch {
    // Not reached for text the scan accepted; never pass JSON.parse's message on (it quotes the text).
    throw new NerEngineError(`${opts.invalid ?? "not valid JSON"}`, source);
  }
}

/** Options for the configuration files (engine config, config.json, tokenizer_config.json, run.json, ...). */
export const CONFIG_JSON: SafeJsonOptions = { rejectDuplicateKeys: true, rejectProtoKeys: true };

/** A bounded, regular JSON file (see bounded-read.ts), parsed with the checks above. */
export function readJsonFile(file: string, read: BoundedReadOptions, opts: SafeJsonOptions = {}): unknown {
  return parseJsonText(decodeUtf8(readBoundedFile(file, read), file), file, opts);
}

/** The same, and the value must be a JSON object. */
export function readJsonObject(file: string, read: BoundedReadOptions, opts: SafeJsonOptions = {}, notObject = "expected a JSON object"): Record<string, unknown> {
  const value = readJsonFile(file, read, opts);
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new NerEngineError(notObject, file);
  return value as Record<string, unknown>;
}

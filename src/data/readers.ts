/**
 * Corpus readers: CoNLL columns, JSON / JSON lines, two-column BIO, ATIS/Snips folders.
 *
 * Every problem with the input is a NerEngineError whose `where` is "file:line"
 * (1-based), so a user can jump straight to the bad line.
 */
import { join } from "node:path";
import { NerEngineError } from "../errors.js";
import { decodeUtf8, LIMITS, pathExists as existsSync, readBoundedFile, statOrThrow } from "../model/bounded-read.js";
import { parseJsonText } from "../model/safe-json.js";
import { isValidTag } from "./labels.js";
import type { Corpus, Sentence } from "./types.js";

export type CorpusFormat = "conll" | "json" | "bio" | "atis";
export type AtisSplit = "train" | "dev" | "test";

/** An intent-classification + slot-filling corpus: intents[i] belongs to sentences[i]. */
export interface SlotCorpus extends Corpus {
  intents: string[];
}

export interface ConllOptions {
  /** Column holding the word (default 0). */
  tokenColumn?: number;
  /** Column holding the tag (default: the last column). */
  tagColumn?: number;
  /** Column separator (default: runs of spaces/tabs). */
  separator?: string | RegExp;
}

export interface BioOptions {
  /** Which column holds the tag; "auto" (default) looks at the first lines. */
  order?: "token-tag" | "tag-token" | "auto";
}

export interface ReadCorpusOptions extends ConllOptions, BioOptions {
  /** For "atis": read `<path>/<split>/`; without it `path` itself holds seq.in/seq.out/label. */
  split?: AtisSplit;
}

// ---------------------------------------------------------------------------
// Shared helpers

/**
 * Read a file as strict UTF-8; a missing file or bad bytes become a NerEngineError naming the file.
 * Only a regular file of at most LIMITS.text bytes is read: a FIFO or a device (/dev/zero) is refused
 * before it is opened, so it can neither block nor fill memory.
 */
export function readTextFile(path: string): string {
  const bytes = readBoundedFile(path, { maxBytes: LIMITS.text, what: "file", missing: "file not found" });
  // fatal: a silently substituted U+FFFD would become a token nobody can trace back.
  return decodeUtf8(bytes, path);
}

/** Split into lines without their "\n" / "\r\n" ends. */
function splitLines(text: string): string[] {
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.endsWith("\r")) lines[i] = line.slice(0, -1);
  }
  return lines;
}

function checkTag(tag: string, where: string, prefix = ""): void {
  if (!isValidTag(tag)) {
    throw new NerEngineError(`${prefix}invalid tag "${tag}" (expected O or B-/I-/E-/S-TYPE)`, where);
  }
}

function requireSentences<T extends Corpus>(corpus: T): T {
  if (corpus.sentences.length === 0) throw new NerEngineError("no sentences", corpus.source);
  return corpus;
}

const WHITESPACE = /[ \t]+/;

// ---------------------------------------------------------------------------
// CoNLL

/**
 * CoNLL column file: one token per line, blank line between sentences,
 * `-DOCSTART-` lines open a new document (docId counts documents from 0).
 */
export function readConll(path: string, options: ConllOptions = {}): Corpus {
  const lines = splitLines(readTextFile(path));
  const separator = options.separator ?? WHITESPACE;
  const sentences: Sentence[] = [];
  let tokens: string[] = [];
  let tags: string[] = [];
  let docId = 0;
  let docHasSentences = false;
  let columnCount = -1;
  const tokenColumn = options.tokenColumn ?? 0;
  let tagColumn = options.tagColumn ?? -1;

  const flush = (): void => {
    if (tokens.length === 0) return;
    sentences.push({ tokens, tags, docId });
    docHasSentences = true;
    tokens = [];
    tags = [];
  };

  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const line = separator === WHITESPACE ? raw.trim() : raw;
    if (line.trim() === "") {
      flush();
      continue;
    }
    const cols = line.split(separator);
    if (cols[0] === "-DOCSTART-") {
      flush();
      // Only count a new document once the previous one had content, so a leading DOCSTART is doc 0.
      if (docHasSentences) docId++;
      docHasSentences = false;
      continue;
    }
    const where = `${path}:${i + 1}`;
    if (columnCount < 0) {
      // The first data line fixes the layout for the whole file.
      columnCount = cols.length;
      if (tagColumn < 0) tagColumn = columnCount - 1;
      for (const [name, col] of [["tokenColumn", tokenColumn], ["tagColumn", tagColumn]] as const) {
        if (col < 0 || col >= columnCount) {
          throw new NerEngineError(`${name} ${col} is out of range: line has ${columnCount} columns`, where);
        }
      }
    } else if (cols.length !== columnCount) {
      throw new NerEngineError(`expected ${columnCount} columns, found ${cols.length}`, where);
    }
    const tag = cols[tagColumn]!;
    checkTag(tag, where);
    tokens.push(cols[tokenColumn]!);
    tags.push(tag);
  }
  flush();
  return requireSentences({ source: path, sentences });
}

// ---------------------------------------------------------------------------
// JSON / JSON lines

/**
 * A JSON array of records or a JSON-lines file, each record
 * `{ "tokens": string[], "tags" | "ner_tags": string[] }`. Records with no tokens are skipped.
 */
export function readJson(path: string): Corpus {
  const text = readTextFile(path);
  const sentences: Sentence[] = [];
  if (text.trimStart().startsWith("[")) {
    // Checked first (safe-json.ts): errors give the line and column, never a piece of the file.
    const records = parseJsonText(text, path, { invalid: "invalid JSON", lineInWhere: true });
    (records as unknown[]).forEach((record, index) => {
      const sentence = toSentence(record, path, `record ${index}: `);
      if (sentence) sentences.push(sentence);
    });
  } else {
    const lines = splitLines(text);
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.trim() === "") continue;
      const where = `${path}:${i + 1}`;
      const record = parseJsonText(line, path, { invalid: "invalid JSON", lineInWhere: true, firstLine: i + 1 });
      const sentence = toSentence(record, where, "");
      if (sentence) sentences.push(sentence);
    }
  }
  return requireSentences({ source: path, sentences });
}

function toSentence(record: unknown, where: string, prefix: string): Sentence | null {
  if (typeof record !== "object" || record === null || Array.isArray(record)) {
    throw new NerEngineError(`${prefix}expected an object with "tokens" and "tags"`, where);
  }
  const r = record as Record<string, unknown>;
  const tagKey = r.tags !== undefined ? "tags" : "ner_tags";
  const tokens = r.tokens;
  const tags = r[tagKey];
  if (!isStringArray(tokens)) throw new NerEngineError(`${prefix}"tokens" must be an array of strings`, where);
  if (!isStringArray(tags)) {
    // Integer ner_tags (HF datasets) need the data set's label names, which the file does not carry.
    throw new NerEngineError(`${prefix}"tags" or "ner_tags" must be an array of tag strings`, where);
  }
  if (tokens.length !== tags.length) {
    throw new NerEngineError(`${prefix}${tokens.length} tokens but ${tags.length} ${tagKey}`, where);
  }
  for (const tag of tags) checkTag(tag, where, prefix);
  return tokens.length === 0 ? null : { tokens, tags };
}

function isStringArray(x: unknown): x is string[] {
  return Array.isArray(x) && x.every((v) => typeof v === "string");
}

// ---------------------------------------------------------------------------
// Two-column BIO

const BIO_SNIFF_LINES = 200;

/** Two-column BIO file (tab or space separated, CRLF tolerated), token-first or tag-first. */
export function readBio(path: string, options: BioOptions = {}): Corpus {
  const lines = splitLines(readTextFile(path));
  const order = options.order && options.order !== "auto" ? options.order : sniffBioOrder(lines);
  const tagCol = order === "tag-token" ? 0 : 1;
  const sentences: Sentence[] = [];
  let tokens: string[] = [];
  let tags: string[] = [];
  const flush = (): void => {
    if (tokens.length > 0) sentences.push({ tokens, tags });
    tokens = [];
    tags = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "") {
      flush();
      continue;
    }
    const cols = splitBioLine(line);
    if (cols[0] === "-DOCSTART-") {
      flush();
      continue;
    }
    const where = `${path}:${i + 1}`;
    if (cols.length !== 2) throw new NerEngineError(`expected 2 columns, found ${cols.length}`, where);
    const tag = cols[tagCol]!;
    checkTag(tag, where);
    tokens.push(cols[1 - tagCol]!);
    tags.push(tag);
  }
  flush();
  return requireSentences({ source: path, sentences });
}

/** Prefer a tab as separator so that a tab file's token may contain spaces. */
function splitBioLine(line: string): string[] {
  return line.includes("\t") ? line.split(/\t+/) : line.split(/ +/);
}

/** The column where more of the first lines look like tags holds the tags; ties go to token-tag. */
function sniffBioOrder(lines: string[]): "token-tag" | "tag-token" {
  let first = 0;
  let second = 0;
  let seen = 0;
  for (const raw of lines) {
    if (seen >= BIO_SNIFF_LINES) break;
    const cols = splitBioLine(raw.trim());
    if (cols.length !== 2) continue;
    seen++;
    if (isValidTag(cols[0]!)) first++;
    if (isValidTag(cols[1]!)) second++;
  }
  return first > second ? "tag-token" : "token-tag";
}

// ---------------------------------------------------------------------------
// ATIS / Snips

/**
 * JointBERT layout: `seq.in` (tokens), `seq.out` (slot tags), `label` (intent),
 * one utterance per line, in `<dir>/<split>/` or in `dir` itself.
 */
export function readAtis(dir: string, split?: AtisSplit): SlotCorpus {
  const folder = split ? join(dir, split) : dir;
  if (!existsSync(folder) || !statOrThrow(folder, "folder").isDirectory()) {
    throw new NerEngineError("folder not found", folder);
  }
  const [inPath, outPath, labelPath] = ["seq.in", "seq.out", "label"].map((f) => join(folder, f)) as [
    string,
    string,
    string,
  ];
  for (const p of [inPath, outPath, labelPath]) if (!existsSync(p)) throw new NerEngineError("file not found", p);
  const inLines = utteranceLines(inPath);
  const outLines = utteranceLines(outPath);
  const labelLines = utteranceLines(labelPath);
  for (const [p, ls] of [[outPath, outLines], [labelPath, labelLines]] as const) {
    if (ls.length !== inLines.length) {
      throw new NerEngineError(`has ${ls.length} lines but ${inPath} has ${inLines.length}`, p);
    }
  }
  const sentences: Sentence[] = [];
  const intents: string[] = [];
  for (let i = 0; i < inLines.length; i++) {
    // Snips lines end with a space, so split on whitespace runs after trimming.
    if (inLines[i]!.trim() === "") throw new NerEngineError("empty utterance", `${inPath}:${i + 1}`);
    const tokens = inLines[i]!.trim().split(WHITESPACE);
    const tags = outLines[i]!.trim().split(WHITESPACE);
    const intent = labelLines[i]!.trim();
    if (tokens.length !== tags.length) {
      throw new NerEngineError(`${tags.length} tags for ${tokens.length} tokens in seq.in`, `${outPath}:${i + 1}`);
    }
    for (const tag of tags) checkTag(tag, `${outPath}:${i + 1}`);
    if (intent === "") throw new NerEngineError("empty intent label", `${labelPath}:${i + 1}`);
    sentences.push({ tokens, tags });
    intents.push(intent);
  }
  return requireSentences({ source: folder, sentences, intents });
}

/** Lines of a one-utterance-per-line file, without the empty piece after the final newline. */
function utteranceLines(path: string): string[] {
  const lines = splitLines(readTextFile(path));
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

// ---------------------------------------------------------------------------

export function readCorpus(path: string, format: "atis", options?: ReadCorpusOptions): SlotCorpus;
export function readCorpus(path: string, format: CorpusFormat, options?: ReadCorpusOptions): Corpus;
export function readCorpus(path: string, format: CorpusFormat, options: ReadCorpusOptions = {}): Corpus {
  switch (format) {
    case "conll":
      return readConll(path, options);
    case "json":
      return readJson(path);
    case "bio":
      return readBio(path, options);
    case "atis":
      return readAtis(path, options.split);
    default:
      throw new NerEngineError(`unknown corpus format "${String(format)}"`, path);
  }
}

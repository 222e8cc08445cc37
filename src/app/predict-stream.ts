/**
 * `ner-engine predict` over a stream: lines in (a file or stdin), one record per line out, in order, as
 * the lines come. Memory stays constant whatever the input's size: lines are read incrementally (a line
 * longer than `maxLineBytes` is skipped to its end, not held), `batchSize` lines go to the engine per
 * call, the next batch is read while the engine works on the current one, and output is written as each
 * batch is done (waiting for the output to drain).
 *
 * A line that cannot be tagged (not UTF-8, too long, or refused by the engine) gets its error in its own
 * record; the other lines of its batch are tagged as usual (`isolate`).
 *
 * Formats (one record per input line, empty lines included, so record N is line N):
 * - jsonl: `{"text", "entities": [...]}`: ours ({type, text, start, end, score}), or HF's pipeline shape
 *   with `aggregation`; an error: `{"line", "text"?, "error"}`
 * - spacy: `{"text", "ents": [[start, end, label], ...]}` (spaCy's training JSONL); an error as jsonl's
 * - conll: each line is a pre-split sentence, tokens separated by whitespace; out: "token TAG" per token
 *   and a blank line after each sentence (an empty line gives just the blank line); an error: the line
 *   "# error (line N): message" and the blank line
 * Offsets are Unicode code points (Python `str` indices), as HF pipelines and spaCy give them.
 */
import { createReadStream, createWriteStream, openSync, statSync } from "node:fs";
import { NerEngineError } from "../errors.js";
import type { Io, PredictCommand } from "./cli.js";
import type { Engine } from "./engine.js";
import { engineTagger } from "./text-tagger.js";
import { asError, inSortedCalls, type Aggregation, type Entities, type TextEntity, type TextTagger } from "./text-tagger.js";
import type { PipelineEntity } from "./pipeline.js";

export const PREDICT_FORMATS = ["jsonl", "conll", "spacy"] as const;
export type PredictFormat = (typeof PREDICT_FORMATS)[number];

export interface InputLine {
  /** 1-based line number. */
  line: number;
  /** The line without its "\n" / "\r\n"; absent when it could not be read (see `error`). */
  text?: string;
  error?: string;
}

export const DEFAULT_MAX_LINE_BYTES = 1 << 20;

/**
 * Splits a byte stream into lines, decoded as strict UTF-8 (a BOM at the very start is dropped). A line
 * over `maxLineBytes` is not buffered: its bytes are dropped up to its end and it comes back with an
 * error, as does a line that is not valid UTF-8.
 */
export async function* readLines(input: AsyncIterable<Uint8Array | string>, opts: { maxLineBytes?: number } = {}): AsyncGenerator<InputLine> {
  const max = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  // The start of a line that began in an earlier chunk (copied: the stream may reuse its chunks).
  let parts: Uint8Array[] = [];
  let size = 0;
  let tooLong = false;
  let line = 0;
  /** The line made of `parts` and `last` (a view into the current chunk, decoded before the next is read). */
  const finish = (last: Uint8Array): InputLine => {
    line++;
    const n = line;
    const long = tooLong || size + last.length > max;
    const bytes = long || parts.length === 0 ? last : Buffer.concat([...parts, last], size + last.length);
    parts = [];
    size = 0;
    tooLong = false;
    if (long) return { line: n, error: `line ${n} is longer than ${max} bytes` };
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      return { line: n, error: `line ${n} is not valid UTF-8` };
    }
    if (text.endsWith("\r")) text = text.slice(0, -1);
    if (n === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    return { line: n, text };
  };
  const carry = (piece: Uint8Array): void => {
    if (tooLong || piece.length === 0) return;
    if (size + piece.length > max) {
      tooLong = true;
      parts = [];
      size = 0;
      return;
    }
    parts.push(Uint8Array.prototype.slice.call(piece));
    size += piece.length;
  };
  for await (const chunk of input) {
    const buf = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    // Decode every complete line first, then yield: the views into `buf` are gone before it can be reused.
    const complete: InputLine[] = [];
    let from = 0;
    for (let nl = buf.indexOf(10, from); nl >= 0; nl = buf.indexOf(10, from)) {
      complete.push(finish(buf.subarray(from, nl)));
      from = nl + 1;
    }
    if (from < buf.length) carry(buf.subarray(from));
    yield* complete;
  }
  if (size > 0 || tooLong) yield finish(new Uint8Array(0));
}

export interface PredictStreamOptions {
  tagger: TextTagger;
  lines: AsyncIterable<InputLine>;
  output: NodeJS.WritableStream;
  format?: PredictFormat;
  /** HF pipeline shape for jsonl/spacy (not for conll). */
  aggregation?: Aggregation;
  /** Lines tagged together (default 64): sorted by length, in engine calls of `callBatch` (default 16). */
  batchSize?: number;
  callBatch?: number;
  /** A batch that is not full goes to the engine once no line has come for this long (ms; default 20). */
  flushMs?: number;
  /** Called after each batch is written, with the lines done so far. */
  onProgress?(done: { lines: number; errors: number }): void;
}

export interface PredictStreamResult { lines: number; errors: number; seconds: number }

/**
 * Tags `lines` in batches and writes one record per line to `output`, in order. Resolves once all is
 * written. Lines are read ahead into a buffer of at most two batches while the engine works; a batch
 * goes to the engine when it is full, when the input ends, or when lines stop coming for `flushMs`
 * (so records of a slow pipe come out without waiting for 64 lines).
 */
export async function predictStream(opts: PredictStreamOptions): Promise<PredictStreamResult> {
  const started = Date.now();
  const format = opts.format ?? "jsonl";
  const batchSize = opts.batchSize ?? 64;
  const flushMs = opts.flushMs ?? 20;
  const stats = { lines: 0, errors: 0 };
  const buffer: InputLine[] = [];
  let ended = false;
  let readError: unknown;
  let wake: (() => void) | undefined;
  let resume: (() => void) | undefined;
  const reader = (async () => {
    try {
      for await (const line of opts.lines) {
        buffer.push(line);
        wake?.();
        if (buffer.length >= 2 * batchSize) await new Promise<void>((r) => (resume = r));
      }
    } catch (e) {
      readError = e;
    } finally {
      ended = true;
      wake?.();
    }
  })();
  const waitFor = (ready: () => boolean, ms?: number): Promise<void> =>
    new Promise((resolve) => {
      if (ready()) return resolve();
      let timer: NodeJS.Timeout | undefined;
      wake = () => {
        if (!ready()) return;
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
      if (ms !== undefined) timer = setTimeout(() => ((wake = undefined), resolve()), ms);
    });
  for (;;) {
    await waitFor(() => buffer.length > 0 || ended);
    await waitFor(() => buffer.length >= batchSize || ended, flushMs);
    if (buffer.length === 0) break;
    const batch = buffer.splice(0, batchSize);
    resume?.();
    resume = undefined;
    const records = await tagBatch(opts.tagger, batch, format, opts.aggregation, opts.callBatch ?? 16);
    let text = "";
    for (const r of records) {
      text += r.text;
      if (r.error) stats.errors++;
    }
    stats.lines += records.length;
    if (!opts.output.write(text)) await drained(opts.output);
    opts.onProgress?.(stats);
  }
  await reader;
  if (readError) throw readError;
  return { ...stats, seconds: (Date.now() - started) / 1000 };
}

/** Resolves on "drain"; rejects if the output fails or closes first (or already has). */
function drained(stream: NodeJS.WritableStream): Promise<void> {
  const s = stream as NodeJS.WritableStream & { destroyed?: boolean; errored?: Error | null };
  if (s.destroyed) return Promise.reject(s.errored ?? new Error("the output was closed"));
  return new Promise((resolve, reject) => {
    const settle = (error?: Error): void => {
      s.off("drain", onDrain);
      s.off("error", settle);
      s.off("close", onClose);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = (): void => settle();
    const onClose = (): void => settle(new Error("the output was closed"));
    s.on("drain", onDrain);
    s.on("error", settle);
    s.on("close", onClose);
  });
}

/** One batch -> its records' text (each ending in "\n"), in input order. Never rejects. */
async function tagBatch(tagger: TextTagger, batch: readonly InputLine[], format: PredictFormat, aggregation: Aggregation | undefined, callBatch: number): Promise<{ text: string; error: boolean }[]> {
  const readable = batch.filter((l) => l.text !== undefined);
  let results: (Entities | string[] | Error)[];
  try {
    results = format === "conll"
      ? await inSortedCalls(readable.map((l) => splitWords(l.text!)), (s) => s.length, callBatch, (s) => tagger.tagWords(s))
      : await inSortedCalls(readable.map((l) => l.text!), (t) => t.length, callBatch, (t) => tagger.tagTexts(t, aggregation));
  } catch (e) {
    results = readable.map(() => asError(e));
  }
  const byLine = new Map(readable.map((l, i) => [l.line, results[i]]));
  return batch.map((l) => {
    const result = byLine.get(l.line);
    const error = l.error ?? (result instanceof Error ? result.message : undefined);
    if (error !== undefined) return { text: errorRecord(format, l, error), error: true };
    if (format === "conll") {
      const words = splitWords(l.text!);
      const tags = result as string[];
      return { text: words.map((w, i) => `${w} ${tags[i]}\n`).join("") + "\n", error: false };
    }
    const entities = result as Entities;
    if (format === "spacy") return { text: JSON.stringify({ text: l.text, ents: entities.map(spacySpan) }) + "\n", error: false };
    return { text: JSON.stringify({ text: l.text, entities }) + "\n", error: false };
  });
}

function errorRecord(format: PredictFormat, l: InputLine, error: string): string {
  if (format === "conll") return `# error (line ${l.line}): ${error.replace(/\s+/g, " ")}\n\n`;
  return JSON.stringify({ line: l.line, ...(l.text !== undefined ? { text: l.text } : {}), error }) + "\n";
}

function spacySpan(e: TextEntity | PipelineEntity): [number, number, string] {
  if ("type" in e) return [e.start, e.end, e.type];
  return [e.start, e.end, "entity_group" in e ? e.entity_group : e.entity];
}

/** A CoNLL input line's tokens: split on whitespace. */
export function splitWords(line: string): string[] {
  return line.split(/\s+/u).filter((w) => w !== "");
}

/**
 * Progress on a terminal: "N lines (R lines/s)", rewritten in place at most every 250 ms, and cleared at
 * the end. Does nothing unless `stream.isTTY`.
 */
export function progressLine(stream: NodeJS.WritableStream & { isTTY?: boolean }): { update(done: { lines: number; errors: number }): void; done(): void } {
  if (!stream.isTTY) return { update() {}, done() {} };
  const started = Date.now();
  let last = 0;
  let shown = false;
  return {
    update({ lines, errors }) {
      const now = Date.now();
      if (now - last < 250) return;
      last = now;
      shown = true;
      const rate = lines / Math.max((now - started) / 1000, 1e-3);
      stream.write(`\r\x1b[K${lines} lines (${rate.toFixed(0)} lines/s)${errors ? `, ${errors} with errors` : ""}`);
    },
    done() {
      if (shown) stream.write("\r\x1b[K");
    },
  };
}

/** `ner-engine predict`: input and output are opened before the model loads, so a wrong path fails at once. */
export async function runPredictCommand(cmd: PredictCommand, io: Io, load: (dir: string, device: PredictCommand["device"]) => Promise<Engine>): Promise<number> {
  let lines: AsyncIterable<InputLine>;
  let source: NodeJS.ReadableStream | undefined;
  const text = cmd.text;
  if (text !== undefined) lines = (async function* () { yield { line: 1, text }; })();
  else {
    source = cmd.input !== undefined && cmd.input !== "-" ? openInput(cmd.input) : (io.in ?? process.stdin);
    lines = readLines(source as AsyncIterable<Uint8Array>);
  }
  let output: NodeJS.WritableStream = io.out;
  let file: NodeJS.WritableStream | undefined;
  let writeError: Error | undefined;
  if (cmd.output !== undefined) {
    let fd: number;
    try {
      fd = openSync(cmd.output, "w");
    } catch (e) {
      throw new NerEngineError(`cannot write there (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, cmd.output);
    }
    output = file = createWriteStream("", { fd });
    file.on("error", (e) => (writeError ??= e));
  }
  const engine = await load(cmd.model, cmd.device);
  const progress = progressLine(io.err);
  let result: PredictStreamResult;
  try {
    result = await predictStream({
      tagger: engineTagger(engine), lines, output, format: cmd.format, aggregation: cmd.aggregation, batchSize: cmd.batchSize,
      onProgress: (done) => progress.update(done),
    });
  } catch (e) {
    throw writeError ? new NerEngineError(`writing failed (${writeError.message})`, cmd.output) : e;
  } finally {
    progress.done();
    engine.dispose();
    // After a failure the input may still be open (a pipe); it would keep the process waiting.
    (source as { destroy?: () => void } | undefined)?.destroy?.();
  }
  if (file) await new Promise<void>((resolve) => file!.end(resolve));
  if (writeError) throw new NerEngineError(`writing failed (${writeError.message})`, cmd.output);
  if (result.errors > 0) io.err.write(`warning: ${result.errors} of ${result.lines} lines could not be tagged (their records say why)\n`);
  return 0;
}

function openInput(path: string): NodeJS.ReadableStream {
  let isFolder: boolean;
  try {
    isFolder = statSync(path).isDirectory();
  } catch {
    throw new NerEngineError("file not found", path);
  }
  if (isFolder) throw new NerEngineError("is a folder, expected a text file (one text per line)", path);
  return createReadStream(path, { highWaterMark: 1 << 16 });
}

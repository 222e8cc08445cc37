/**
 * Shape checks of what callers pass to Engine.predict / fit / evaluate, made up front so that a wrong
 * argument (numbers for words, a corpus without sentences, undefined) is a NerEngineError naming the
 * call and the position, never a TypeError from deep inside tokenization or alignment.
 */
import { NerEngineError } from "../errors.js";
import { AGGREGATIONS } from "./pipeline.js";

function typeName(x: unknown): string {
  if (x === null) return "null";
  if (Array.isArray(x)) return "an array";
  const t = typeof x;
  return t === "object" ? "an object" : t === "undefined" ? "undefined" : `a ${t}`;
}

/** predict(input): one text (a string) or a batch of texts (an array of strings). */
export function checkPredictTexts(input: unknown): void {
  const where = "Engine.predict";
  if (typeof input === "string") return;
  if (!Array.isArray(input)) throw new NerEngineError(`expected a text (a string) or texts (an array of strings), got ${typeName(input)}`, where);
  input.forEach((text: unknown, i) => {
    if (Array.isArray(text)) throw new NerEngineError(`texts[${i}] is an array: predict takes raw texts; for pre-split words call predictWords(sentences)`, where);
    if (typeof text !== "string") throw new NerEngineError(`texts[${i}] is ${typeName(text)}, expected a string`, where);
  });
}

/** predictWords(sentences): an array of sentences, each an array of words (strings). */
export function checkPredictWords(input: unknown): void {
  const where = "Engine.predictWords";
  if (!Array.isArray(input)) {
    const hint = typeof input === "string" ? "; for raw text call predict(text)" : "";
    throw new NerEngineError(`expected sentences (an array of arrays of words), got ${typeName(input)}${hint}`, where);
  }
  input.forEach((sentence: unknown, i) => {
    if (typeof sentence === "string") throw new NerEngineError(`sentence ${i} is a string, expected an array of words: pass one sentence as [words], raw texts to predict()`, where);
    if (!Array.isArray(sentence)) throw new NerEngineError(`sentence ${i} is ${typeName(sentence)}, expected an array of words (strings)`, where);
    sentence.forEach((word: unknown, j) => {
      if (typeof word !== "string") throw new NerEngineError(`sentence ${i}, word ${j} is ${typeName(word)}, expected a string`, where);
    });
  });
}

const PREDICT_OPTIONS = ["aggregation", "ignoreLabels", "offsets", "stride"];
const HF_NAMES: Record<string, string> = { aggregation_strategy: "aggregation", ignore_labels: "ignoreLabels" };

/** predict / predictWords options; `allowed`: the keys the call takes. */
export function checkPredictOptions(options: unknown, where: string, allowed: readonly string[] = PREDICT_OPTIONS): void {
  if (options === undefined) return;
  if (options === null || typeof options !== "object" || Array.isArray(options)) throw new NerEngineError(`options must be an object, got ${typeName(options)}`, where);
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (allowed.includes(key) || o[key] === undefined) continue;
    const hint = HF_NAMES[key] ? ` (HF's ${key} is "${HF_NAMES[key]}" here)` : PREDICT_OPTIONS.includes(key) ? " (predict(texts) takes it: it needs the raw text)" : "";
    throw new NerEngineError(`unknown option "${key}"${hint}; expected ${allowed.join(", ")}`, where);
  }
  const name = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : typeName(v));
  if (o.aggregation !== undefined && !(AGGREGATIONS as readonly unknown[]).includes(o.aggregation)) {
    throw new NerEngineError(`options.aggregation must be one of ${AGGREGATIONS.map((a) => `"${a}"`).join(", ")} (or absent for our format), got ${name(o.aggregation)}`, where);
  }
  if (o.offsets !== undefined && o.offsets !== "codepoints" && o.offsets !== "utf16") throw new NerEngineError(`options.offsets must be "codepoints" or "utf16", got ${name(o.offsets)}`, where);
  if (o.stride !== undefined && !(Number.isInteger(o.stride) && (o.stride as number) >= 0)) throw new NerEngineError(`options.stride must be a non-negative integer, got ${name(o.stride)}`, where);
  if (o.ignoreLabels !== undefined) {
    if (!Array.isArray(o.ignoreLabels) || o.ignoreLabels.some((l: unknown) => typeof l !== "string")) throw new NerEngineError(`options.ignoreLabels must be an array of label names, got ${name(o.ignoreLabels)}`, where);
    if (o.aggregation === undefined) throw new NerEngineError("options.ignoreLabels applies to the HF formats: set options.aggregation too", where);
  }
}

/** A Corpus: { source?: string, sentences: [{ tokens: string[], tags: string[], docId?: number }] }. */
export function checkCorpus(corpus: unknown, where: string): void {
  if (corpus === null || typeof corpus !== "object" || Array.isArray(corpus)) {
    throw new NerEngineError(`expected a corpus ({ source, sentences: [{ tokens, tags }] }, e.g. from readCorpus), got ${typeName(corpus)}`, where);
  }
  const c = corpus as { source?: unknown; sentences?: unknown };
  if (c.source !== undefined && typeof c.source !== "string") throw new NerEngineError(`"source" is ${typeName(c.source)}, expected a string`, where);
  if (!Array.isArray(c.sentences)) throw new NerEngineError(`"sentences" is ${typeName(c.sentences)}, expected an array of { tokens, tags }`, where);
  c.sentences.forEach((s: unknown, i) => {
    const at = `${where}: sentences[${i}]`;
    if (s === null || typeof s !== "object" || Array.isArray(s)) throw new NerEngineError(`is ${typeName(s)}, expected { tokens, tags }`, at);
    const { tokens, tags, docId } = s as { tokens?: unknown; tags?: unknown; docId?: unknown };
    for (const [field, value] of [["tokens", tokens], ["tags", tags]] as const) {
      if (!Array.isArray(value)) throw new NerEngineError(`"${field}" is ${typeName(value)}, expected an array of strings`, at);
      const bad = value.findIndex((v: unknown) => typeof v !== "string");
      if (bad >= 0) throw new NerEngineError(`${field}[${bad}] is ${typeName(value[bad])}, expected a string`, at);
    }
    if ((tokens as unknown[]).length !== (tags as unknown[]).length) {
      throw new NerEngineError(`${(tokens as unknown[]).length} tokens but ${(tags as unknown[]).length} tags`, at);
    }
    if (docId !== undefined && !Number.isSafeInteger(docId)) throw new NerEngineError(`"docId" is ${typeName(docId)}, expected an integer`, at);
  });
}

/** fit(data): { train, dev?, test? }, each a corpus. */
export function checkFitData(data: unknown): void {
  const where = "Engine.fit";
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new NerEngineError(`expected { train, dev?, test? } (corpora), got ${typeName(data)}`, where);
  }
  const d = data as Record<string, unknown>;
  checkCorpus(d.train, `${where}: data.train`);
  for (const key of ["dev", "test"]) if (d[key] !== undefined) checkCorpus(d[key], `${where}: data.${key}`);
}

/** evaluate(data, opts). */
export function checkEvaluateInput(data: unknown, opts: unknown): void {
  checkCorpus(data, "Engine.evaluate: data");
  const scheme = (opts as { tagScheme?: unknown } | undefined)?.tagScheme;
  if (scheme !== undefined && !["IOB1", "IOB2", "IOBES"].includes(scheme as string)) {
    throw new NerEngineError(`opts.tagScheme must be "IOB1", "IOB2" or "IOBES", got ${typeof scheme === "string" ? JSON.stringify(scheme) : typeName(scheme)}`, "Engine.evaluate");
  }
}

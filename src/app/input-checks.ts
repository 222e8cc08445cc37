/**
 * Shape checks of what callers pass to Engine.predict / fit / evaluate, made up front so that a wrong
 * argument (numbers for words, a corpus without sentences, undefined) is a NerEngineError naming the
 * call and the position, never a TypeError from deep inside tokenization or alignment.
 */
import { NerEngineError } from "../errors.js";

function typeName(x: unknown): string {
  if (x === null) return "null";
  if (Array.isArray(x)) return "an array";
  const t = typeof x;
  return t === "object" ? "an object" : t === "undefined" ? "undefined" : `a ${t}`;
}

/** predict(input): a string, an array of words, or an array of sentences (arrays of words). */
export function checkPredictInput(input: unknown): void {
  const where = "Engine.predict";
  if (typeof input === "string") return;
  if (!Array.isArray(input)) {
    throw new NerEngineError(`expected text (a string), words (an array of strings) or sentences (an array of arrays of strings), got ${typeName(input)}`, where);
  }
  if (input.length === 0) return;
  if (Array.isArray(input[0])) {
    input.forEach((sentence: unknown, i) => {
      if (!Array.isArray(sentence)) throw new NerEngineError(`sentence ${i} is ${typeName(sentence)}, expected an array of words (strings) like sentence 0`, where);
      sentence.forEach((word: unknown, j) => {
        if (typeof word !== "string") throw new NerEngineError(`sentence ${i}, word ${j} is ${typeName(word)}, expected a string`, where);
      });
    });
    return;
  }
  input.forEach((word: unknown, j) => {
    if (typeof word !== "string") throw new NerEngineError(`word ${j} is ${typeName(word)}, expected a string (or pass sentences as arrays of strings)`, where);
  });
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

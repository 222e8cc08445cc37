/**
 * What Engine.predict / predictWords run, inside the engine's call queue: raw texts or pre-split words →
 * our format (words with IOB2 tags and scores, entities with mean word scores) or HF's pipeline output
 * (pipeline.ts), with offsets in code points or UTF-16. A long input is cut into windows of sub-tokens
 * that overlap by `stride` (alignment.ts planWindows, the planner training uses) and merged back: nothing
 * is truncated.
 *
 * Our format tags words (pretokenize's, or the caller's) the way training labels them: the first sub-token
 * of each word, in word-aligned windows whose overlap each word is owned by one of (encodeSentences). The
 * pipeline formats follow HF exactly: sub-tokens of the raw text with their offsets (text/offsets.ts),
 * windows of maxLength - 2 sub-tokens starting every maxLength - 2 - stride (HF's stride overflow; HF
 * without `stride` truncates, here the model's stride applies), per-token softmax, and HF's postprocess
 * per window with overlapping entities resolved as HF does. "none" over several windows (which HF refuses)
 * reports each token once, from the window it is most central in. CRF heads have no per-token
 * distribution: each sub-token of a word gets the word's Viterbi tag with its CRF marginal probability as
 * its only non-zero probability, so every strategy follows the decoded path and scores are marginals.
 * IOBES models report IOB2 labels (S- summed into B-, E- into I-).
 */
import { NerEngineError } from "../errors.js";
import type { Sentence } from "../data/types.js";
import { planWindows, pretokenize } from "../data/alignment.js";
import { bioesToIob2, type LabelSet } from "../data/labels.js";
import { getEntities } from "../eval/metrics.js";
import type { Tagger } from "../model/tagger.js";
import { codePointIndex, encodeText, type EncodedText } from "../text/offsets.js";
import { pipelineEntities, type PipelineEntity, type PipelineModel, type WindowToken } from "./pipeline.js";
import type { PredictionResult, PredictOptions, PredictWordsOptions } from "./results.js";

export interface Predictor {
  tagger: Tagger;
  labels: LabelSet;
  batchSize: number;
  bf16: boolean;
}

interface Tagged {
  tags: string[];
  scores: number[];
}

/** IOB2 tags and scores per word (words without sub-tokens: O); sentences without words give empty ones. */
export async function tagWords(p: Predictor, sentences: readonly Sentence[], stride?: number): Promise<Tagged[]> {
  const nonEmpty = sentences.filter((s) => s.tokens.length > 0);
  if (nonEmpty.length === 0) return sentences.map(() => ({ tags: [], scores: [] }));
  const { ids, scores } = await p.tagger.predictIds(nonEmpty, { batchSize: p.batchSize, bf16: p.bf16, stride });
  const iobes = p.tagger.spec.input.trainScheme === "IOBES";
  let next = 0;
  return sentences.map((s) => {
    if (s.tokens.length === 0) return { tags: [], scores: [] };
    const i = next++;
    // A word without sub-tokens (e.g. only U+200B) is invisible to the model, as in HF: tag O.
    const tags = ids[i].map((id) => (id < 0 ? "O" : p.labels.label(id)));
    return { tags: iobes ? bioesToIob2(tags) : tags, scores: scores[i] };
  });
}

/** predict(texts): our format, or HF's with `aggregation`. */
export async function predictTexts(p: Predictor, texts: readonly string[], opts: PredictOptions): Promise<(PredictionResult | PipelineEntity[])[]> {
  const stride = checkStride(p, opts.stride);
  if (opts.aggregation !== undefined) return pipelineTexts(p, texts, { ...opts, stride });
  const split = texts.map((t) => pretokenize(t));
  const tagged = await tagWords(p, split.map((words) => unlabelled(words.map((w) => w.word))), stride);
  return texts.map((text, i) => ownResult(text, split[i], tagged[i], opts.offsets ?? "codepoints"));
}

/** predictWords(sentences): our format, without offsets (there is no text). */
export async function predictWords(p: Predictor, sentences: readonly (readonly string[])[], opts: PredictWordsOptions): Promise<PredictionResult[]> {
  const stride = checkStride(p, opts.stride);
  const tagged = await tagWords(p, sentences.map((words) => unlabelled([...words])), stride);
  return sentences.map((words, i) => ownResult(undefined, words.map((word) => ({ word })), tagged[i], "utf16"));
}

const unlabelled = (tokens: string[]): Sentence => ({ tokens, tags: tokens.map(() => "O") });

function checkStride(p: Predictor, stride: number | undefined): number {
  const { maxLength } = p.tagger.spec.input;
  const value = stride ?? p.tagger.spec.input.stride ?? Math.floor(maxLength / 4);
  if (!Number.isInteger(value) || value < 0 || value > maxLength - 3) {
    throw new NerEngineError(`stride must be an integer in [0, ${maxLength - 3}] (windows hold ${maxLength - 2} sub-tokens), got ${value}`, "Engine.predict");
  }
  return value;
}

function ownResult(text: string | undefined, words: readonly { word: string; start?: number; end?: number }[], tagged: Tagged, unit: "codepoints" | "utf16"): PredictionResult {
  if (words.length === 0) return { words: [], entities: [] };
  const cp = text !== undefined && unit === "codepoints" ? codePointIndex(text) : undefined;
  const at = (i: number | undefined): number | undefined => (i === undefined || !cp ? i : cp[i]);
  const out = words.map((w, i) => ({ word: w.word, start: at(w.start), end: at(w.end), tag: tagged.tags[i], score: tagged.scores[i] }));
  const entities = getEntities(tagged.tags).map(([type, first, last]) => {
    const span = out.slice(first, last + 1);
    return {
      type,
      text: text !== undefined ? text.slice(words[first].start, words[last].end) : span.map((w) => w.word).join(" "),
      startWord: first,
      endWord: last + 1,
      start: span[0].start,
      end: span.at(-1)!.end,
      score: span.reduce((sum, w) => sum + w.score, 0) / span.length,
    };
  });
  return { words: out, entities };
}

// ---- HF pipeline formats ------------------------------------------------------------------------

/** A window over a text's sub-tokens [start, end), owning [ownStart, ownEnd), with probabilities per token. */
interface Window {
  start: number;
  end: number;
  ownStart: number;
  ownEnd: number;
  probs: Float64Array[];
}

async function pipelineTexts(p: Predictor, texts: readonly string[], opts: PredictOptions & { stride: number }): Promise<PipelineEntity[][]> {
  const tokenizer = p.tagger.tokenizer;
  const mapped = p.tagger.spec.input.trainScheme === "IOBES" ? bioesToIob2(p.labels.labels) : [...p.labels.labels];
  const names = [...new Set(mapped)];
  const column = mapped.map((name) => names.indexOf(name));
  const model: PipelineModel = { labels: names, unkId: tokenizer.unkId, subwordPrefix: tokenizer.continuingSubwordPrefix, tokensToString: (t) => tokenizer.tokensToString(t) };
  const encoded = texts.map((t) => encodeText(tokenizer, t));
  const windows = p.tagger.spec.head.kind === "softmax" ? await softmaxWindows(p, encoded, opts.stride, column, names.length) : await crfWindows(p, encoded, opts.stride, names);
  return texts.map((text, i) => {
    const cp = codePointIndex(text);
    const { tokens } = encoded[i];
    const asTokens = (w: Window, from: number, to: number): WindowToken[] =>
      tokens.slice(from, to).map((t, k) => ({ id: t.id, token: t.token, start: cp[t.start], end: cp[t.end], index: from + k + 1, probs: w.probs[from + k - w.start] }));
    let runs: WindowToken[][];
    if (opts.aggregation === "none" && windows[i].length > 1) {
      // Each token once, from the window that owns it.
      runs = [windows[i].flatMap((w) => asTokens(w, w.ownStart, w.ownEnd))];
    } else {
      runs = windows[i].map((w) => asTokens(w, w.start, w.end));
    }
    const entities = pipelineEntities(text, runs, model, opts.aggregation!, opts.ignoreLabels ?? ["O"]);
    if (opts.offsets !== "utf16") return entities;
    const utf16 = new Int32Array(cp[text.length] + 1);
    for (let u = text.length; u >= 0; u--) utf16[cp[u]] = u; // the first unit of each code point
    return entities.map((e) => ({ ...e, start: utf16[e.start], end: utf16[e.end] }));
  });
}

/** Softmax heads: every text's windows through the encoder and head, softmax per token (HF's postprocess). */
async function softmaxWindows(p: Predictor, encoded: EncodedText[], stride: number, column: number[], numNames: number): Promise<Window[][]> {
  const body = p.tagger.spec.input.maxLength - 2;
  const windows = encoded.map((e) => (e.tokens.length === 0 ? [] : planWindows(new Array<number>(e.tokens.length).fill(1), body, stride).map((w) => ({ ...w, probs: [] as Float64Array[] }))));
  const all = windows.flatMap((ws, i) => ws.map((w) => ({ w, ids: encoded[i].tokens.slice(w.start, w.end).map((t) => t.id) })));
  // Shortest first, so a batch pads little; HF runs one window at a time (padding does not change the outputs).
  all.sort((a, b) => a.ids.length - b.ids.length);
  const { tokenizer, native } = p.tagger;
  const K = p.labels.labels.length;
  for (let s = 0; s < all.length; s += p.batchSize) {
    const batch = all.slice(s, s + p.batchSize);
    const T = batch.at(-1)!.ids.length + 2;
    const inputIds = new Int32Array(batch.length * T).fill(tokenizer.padId);
    const attentionMask = new Int32Array(batch.length * T);
    batch.forEach(({ ids }, b) => {
      inputIds[b * T] = tokenizer.clsId;
      inputIds.set(ids, b * T + 1);
      inputIds[b * T + ids.length + 1] = tokenizer.sepId;
      attentionMask.fill(1, b * T, b * T + ids.length + 2);
    });
    const { logits } = await native.forward({ inputIds, attentionMask, batchSize: batch.length, length: T });
    if (!logits) throw new NerEngineError("the model returned no logits");
    batch.forEach(({ w, ids }, b) => {
      for (let k = 0; k < ids.length; k++) w.probs.push(softmax(logits.data, (b * T + k + 1) * K, K, column, numNames));
    });
  }
  return windows;
}

/** softmax(logits[offset, offset + K)), columns summed into `column`'s (IOBES → IOB2). */
function softmax(logits: Float32Array, offset: number, K: number, column: number[], numNames: number): Float64Array {
  let max = -Infinity;
  for (let k = 0; k < K; k++) max = Math.max(max, logits[offset + k]);
  let sum = 0;
  const e = new Float64Array(K);
  for (let k = 0; k < K; k++) sum += e[k] = Math.exp(logits[offset + k] - max);
  const out = new Float64Array(numNames);
  for (let k = 0; k < K; k++) out[column[k]] += e[k] / sum;
  return out;
}

/** CRF heads: the words' Viterbi tags and marginals, as one window per text (see the module comment). */
async function crfWindows(p: Predictor, encoded: EncodedText[], stride: number, names: string[]): Promise<Window[][]> {
  const tagged = await tagWords(p, encoded.map((e) => unlabelled(e.words.map((w) => w.word))), stride);
  return encoded.map((e, i) => {
    if (e.tokens.length === 0) return [];
    const probs = e.tokens.map((t) => {
      const row = new Float64Array(names.length);
      row[names.indexOf(tagged[i].tags[t.word])] = tagged[i].scores[t.word];
      return row;
    });
    return [{ start: 0, end: e.tokens.length, ownStart: 0, ownEnd: e.tokens.length, probs }];
  });
}

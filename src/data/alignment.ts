/**
 * Word ↔ sub-token alignment: per-word encoding into windows (flat typed arrays for the native
 * trainer), merging of window predictions back to words, and offset-keeping pre-tokenization.
 */
import { NerEngineError } from "../errors.js";
import type { Sentence } from "./types.js";
import type { WordTokenizer } from "../text/tokenizer.js";

export const IGNORE_LABEL = -100;

// --- encoding ---------------------------------------------------------------------------------

export interface EncodeOptions {
  /** Window length in sub-tokens, including [CLS] and [SEP]. */
  maxLength: number;
  /** Sub-tokens of context overlap between consecutive windows of a long sentence, rounded down to whole words (default floor(maxLength/4)). */
  stride?: number;
  /** Label every sub-token of a word (continuations of B-X as I-X) instead of only the first (HF run_ner.py). */
  labelAllSubtokens?: boolean;
  /** Tag → label id; without it (or for string[][] input) all labels are -100. */
  labelIds?: (tag: string) => number;
  /** Fill each window's spare room with neighbouring sentences of the same document (docId), unlabelled. */
  documentContext?: boolean;
}

/** Flat, concatenated windows; all per-position arrays are aligned with inputIds. */
export interface EncodedCorpus {
  inputIds: Int32Array;
  /** Length windows+1: window w spans [windowOffsets[w], windowOffsets[w+1]). */
  windowOffsets: Int32Array;
  /** 1 at the first sub-token of each word this window predicts, else 0 (a word without sub-tokens has no position). */
  wordStarts: Int32Array;
  /** Label id at labelled positions, -100 elsewhere. */
  labels: Int32Array;
  /** Index of the word in the window's own sentence for its main-span tokens; -1 for [CLS]/[SEP]/document context. */
  tokenWordIndex: Int32Array;
  windowSentence: Int32Array;
  /** First word (in its sentence) the window owns; it owns windowWordCount[w] consecutive words and predicts those with sub-tokens. */
  windowWordStart: Int32Array;
  windowWordCount: Int32Array;
  /** Words per input sentence (sentences without sub-tokens get no window). */
  sentenceWordCounts: Int32Array;
  numWindows: number;
  maxLength: number;
  /** What encoding did to the input that a user should hear about. */
  stats: EncodeStats;
}

export interface EncodeStats {
  /** Sentences longer than one window, split into overlapping windows. */
  splitSentences: number;
  /** Words with more sub-tokens than a window holds: only their first sub-tokens are kept. */
  truncatedWords: number;
  /** Words the tokenizer gives no sub-token (e.g. only U+200B): not trained on, predicted O. */
  emptyWords: number;
  /** Sentences without any sub-token (no words, or only empty ones): no window. */
  emptySentences: number;
}

interface WindowPlan {
  start: number; // first word in the window
  end: number; // one past the last word
  ownStart: number; // first word the window predicts
  ownEnd: number;
}

/**
 * Splits a sentence (sub-token lengths per word, each ≤ body) into word-aligned windows of at most
 * `body` sub-tokens, overlapping by ≤ `stride` sub-tokens. Overlapped words are owned by the window
 * on their side of the overlap's middle, so each word keeps context on both sides and is owned once.
 */
export function planWindows(lengths: readonly number[], body: number, stride: number): WindowPlan[] {
  const n = lengths.length;
  const spans: [number, number][] = [];
  for (let start = 0; ; ) {
    let end = start;
    for (let used = 0; end < n && used + lengths[end] <= body; end++) used += lengths[end];
    if (end === start) end++; // cannot happen with lengths ≤ body; guards against looping forever
    spans.push([start, end]);
    if (end >= n) break;
    // Overlap budget leaves room for word `end`, so the next window always gets further.
    const budget = Math.min(stride, body - lengths[end]);
    let next = end;
    for (let overlap = 0; next - 1 > start && overlap + lengths[next - 1] <= budget; ) overlap += lengths[--next];
    start = next;
  }
  return spans.map(([start, end], i) => ({
    start,
    end,
    ownStart: i === 0 ? 0 : (spans[i][0] + spans[i - 1][1]) >> 1,
    ownEnd: i === spans.length - 1 ? n : (spans[i + 1][0] + end) >> 1,
  }));
}

class IntBuffer {
  data = new Int32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const grown = new Int32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = v;
  }
  toArray(): Int32Array {
    return this.data.slice(0, this.length);
  }
}

/** Encodes sentences into windows of [CLS] sub-tokens [SEP], ready for the native trainer. */
export function encodeSentences(tokenizer: WordTokenizer, sentences: readonly (Sentence | readonly string[])[], opts: EncodeOptions): EncodedCorpus {
  const { maxLength } = opts;
  if (!Number.isInteger(maxLength) || maxLength < 3) throw new NerEngineError(`maxLength must be an integer ≥ 3, got ${maxLength}`);
  const body = maxLength - 2;
  const stride = opts.stride ?? Math.floor(maxLength / 4);
  if (!Number.isInteger(stride) || stride < 0 || stride >= body) throw new NerEngineError(`stride must be an integer in [0, ${body - 1}], got ${stride}`);

  const tokensOf = (s: Sentence | readonly string[]): readonly string[] => (Array.isArray(s) ? (s as readonly string[]) : (s as Sentence).tokens);
  // Sub-tokens per word; a word longer than a window keeps only its first sub-tokens.
  const stats: EncodeStats = { splitSentences: 0, truncatedWords: 0, emptyWords: 0, emptySentences: 0 };
  const pieces = sentences.map((s) => tokensOf(s).map((w) => {
    const ids = tokenizer.tokenizeWord(w);
    if (ids.length === 0) stats.emptyWords++;
    if (ids.length > body) stats.truncatedWords++;
    return ids.length > body ? ids.slice(0, body) : ids;
  }));
  const docOf = sentences.map((s) => (Array.isArray(s) ? undefined : (s as Sentence).docId));

  const labelCache = new Map<string, number>();
  const labelOf = (tag: string): number => {
    let id = labelCache.get(tag);
    if (id === undefined) {
      id = (opts.labelIds as (tag: string) => number)(tag);
      if (!Number.isInteger(id) || id < 0) throw new NerEngineError(`label id for tag ${JSON.stringify(tag)} must be a non-negative integer, got ${id}`);
      labelCache.set(tag, id);
    }
    return id;
  };
  // HF run_ner's b_to_i_label: continuation sub-tokens of B-X are labelled I-X.
  const continuationTag = (tag: string): string => (tag.startsWith("B-") ? `I-${tag.slice(2)}` : tag);

  const inputIds = new IntBuffer();
  const wordStarts = new IntBuffer();
  const labels = new IntBuffer();
  const tokenWordIndex = new IntBuffer();
  const windowOffsets = new IntBuffer();
  const windowSentence = new IntBuffer();
  const windowWordStart = new IntBuffer();
  const windowWordCount = new IntBuffer();
  const emit = (id: number, start: number, label: number, wordIndex: number): void => {
    inputIds.push(id);
    wordStarts.push(start);
    labels.push(label);
    tokenWordIndex.push(wordIndex);
  };
  const emitContext = (words: readonly number[][]): void => {
    for (const ids of words) for (const id of ids) emit(id, 0, IGNORE_LABEL, -1);
  };

  sentences.forEach((sentence, si) => {
    const words = pieces[si];
    const tags = Array.isArray(sentence) ? undefined : (sentence as Sentence).tags;
    if (tags !== undefined && tags.length !== words.length) {
      throw new NerEngineError(`sentence ${si} has ${words.length} tokens but ${tags.length} tags`);
    }
    // Nothing to train on or to feed (a window of only [CLS] [SEP]); merging leaves its words unpredicted.
    if (!words.some((ids) => ids.length > 0)) {
      stats.emptySentences++;
      return;
    }
    const labelled = tags !== undefined && opts.labelIds !== undefined;
    const plans = planWindows(words.map((w) => w.length), body, stride);
    if (plans.length > 1) stats.splitSentences++;
    for (const plan of plans) {
      windowOffsets.push(inputIds.length);
      windowSentence.push(si);
      windowWordStart.push(plan.ownStart);
      windowWordCount.push(plan.ownEnd - plan.ownStart);
      let used = 0;
      for (let w = plan.start; w < plan.end; w++) used += words[w].length;
      const [left, right] = opts.documentContext ? documentContext(pieces, docOf, si, plan, body - used) : [[], []];
      emit(tokenizer.clsId, 0, IGNORE_LABEL, -1);
      emitContext(left);
      for (let w = plan.start; w < plan.end; w++) {
        const owned = w >= plan.ownStart && w < plan.ownEnd;
        const ids = words[w];
        for (let k = 0; k < ids.length; k++) {
          let label = IGNORE_LABEL;
          if (owned && labelled && (k === 0 || opts.labelAllSubtokens)) {
            label = labelOf(k === 0 ? tags[w] : continuationTag(tags[w]));
          }
          emit(ids[k], owned && k === 0 ? 1 : 0, label, w);
        }
      }
      emitContext(right);
      emit(tokenizer.sepId, 0, IGNORE_LABEL, -1);
    }
  });
  windowOffsets.push(inputIds.length);
  return {
    inputIds: inputIds.toArray(),
    windowOffsets: windowOffsets.toArray(),
    wordStarts: wordStarts.toArray(),
    labels: labels.toArray(),
    tokenWordIndex: tokenWordIndex.toArray(),
    windowSentence: windowSentence.toArray(),
    windowWordStart: windowWordStart.toArray(),
    windowWordCount: windowWordCount.toArray(),
    sentenceWordCounts: Int32Array.from(pieces, (p) => p.length),
    numWindows: windowSentence.length,
    maxLength,
    stats,
  };
}

/**
 * Whole words around a window from the same document, within `room` sub-tokens: half the room
 * before and half after, any side's unused share going to the other. The walk continues into the
 * window's own sentence first (for windows of a long sentence), then neighbouring sentences.
 * Returns [left words in text order, right words in text order].
 */
function documentContext(pieces: readonly (readonly number[])[][], docOf: readonly (number | undefined)[], si: number, plan: WindowPlan, room: number): [number[][], number[][]] {
  const sameDoc = (other: number): boolean => other >= 0 && other < pieces.length && docOf[si] !== undefined && docOf[other] === docOf[si];
  const take = (dir: -1 | 1, budget: number): number[][] => {
    const out: number[][] = [];
    let s = si;
    let w = dir < 0 ? plan.start - 1 : plan.end;
    for (let used = 0; ; ) {
      while (w < 0 || w >= pieces[s].length) {
        if (!sameDoc(s + dir)) return out;
        s += dir;
        w = dir < 0 ? pieces[s].length - 1 : 0;
      }
      const ids = pieces[s][w];
      if (used + ids.length > budget) return out;
      used += ids.length;
      out.push(ids as number[]);
      w += dir;
    }
  };
  const size = (words: number[][]): number => words.reduce((acc, ids) => acc + ids.length, 0);
  if (room <= 0) return [[], []];
  let left = take(-1, room >> 1);
  const right = take(1, room - size(left));
  if (size(left) + size(right) < room) left = take(-1, room - size(right)); // give the right side's leftover back
  return [left.reverse(), right];
}

/**
 * Per-word predictions of a whole encoded corpus → one array per sentence. `flat` holds one value per
 * word start, in window order (what the native predict returns); each window's words are its
 * wordStarts, so the window arithmetic lives here only. Words no window predicts (no sub-tokens) get
 * `fill`.
 */
export function mergeWindowPredictions(encoded: EncodedCorpus, flat: ArrayLike<number>, fill = -1): number[][] {
  const out = Array.from(encoded.sentenceWordCounts, (n) => new Array<number>(n).fill(fill));
  let k = 0;
  for (let w = 0; w < encoded.numWindows; w++) {
    const target = out[encoded.windowSentence[w]];
    for (let p = encoded.windowOffsets[w]; p < encoded.windowOffsets[w + 1]; p++) {
      if (encoded.wordStarts[p] !== 1) continue;
      if (k >= flat.length) throw new NerEngineError(`expected a prediction for every word start; got only ${flat.length}`);
      target[encoded.tokenWordIndex[p]] = flat[k++];
    }
  }
  if (k !== flat.length) throw new NerEngineError(`expected ${k} predictions (one per word start), got ${flat.length}`);
  return out;
}

// --- pre-tokenization -------------------------------------------------------------------------

export interface PretokenizedWord {
  word: string;
  /** UTF-16 offsets into the original text: word === text.slice(start, end). */
  start: number;
  end: number;
}

// BERT's BasicTokenizer: all non-alphanumeric ASCII counts as punctuation, plus Unicode P*.
const PUNCTUATION = /[\p{P}\u0021-\u002F\u003A-\u0040\u005B-\u0060\u007B-\u007E]/u;
const WHITESPACE = /[ \t\n\r\u2028\u2029\p{Zs}]/u;
const CONTROL = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\u0000\uFFFD]/u;

function isCjk(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df) || (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b820 && cp <= 0x2ceaf) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

/**
 * Splits raw text into words like BERT's BasicTokenizer (whitespace, then every punctuation or CJK
 * character on its own), keeping offsets into the original string. Control characters are dropped
 * by BERT, so they neither split words nor start one.
 */
export function pretokenize(text: string): PretokenizedWord[] {
  const out: PretokenizedWord[] = [];
  let start = -1;
  let end = -1;
  const close = (): void => {
    if (start >= 0) out.push({ word: text.slice(start, end), start, end });
    start = -1;
  };
  for (let i = 0; i < text.length; ) {
    const cp = text.codePointAt(i) as number;
    const ch = String.fromCodePoint(cp);
    const next = i + ch.length;
    if (WHITESPACE.test(ch)) close();
    else if (CONTROL.test(ch)) {
      // dropped: no effect on word boundaries
    } else if (PUNCTUATION.test(ch) || isCjk(cp)) {
      close();
      out.push({ word: ch, start: i, end: next });
    } else {
      if (start < 0) start = i;
      end = next;
    }
    i = next;
  }
  close();
  return out;
}

/**
 * WordPiece vocabulary training (for models trained from scratch) and writing of HF-compatible
 * tokenizer files. Also home of the small typed shim over `@huggingface/tokenizers`, shared with
 * alignment.ts.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as hfTokenizers from "@huggingface/tokenizers";
import { NerEngineError } from "../errors.js";

// --- @huggingface/tokenizers shim -----------------------------------------------------------
// The package's bundled .d.ts files use extensionless relative imports, which NodeNext resolution
// cannot follow (its exports type as `any` or go missing), so we type the few parts we use here.

export interface HfEncoding {
  ids: number[];
  tokens: string[];
}
export interface HfTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): HfEncoding;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  /** Every model's pieces by id (the package turns BPE/WordPiece maps and Unigram [piece, score] lists into this). */
  model: { vocab: (string | undefined)[]; config: { type?: string; continuing_subword_prefix?: string | null } };
  added_tokens: { id: number; content: string }[];
  normalizer: { normalize(text: string): string } | null;
  pre_tokenizer: { config: { type?: string; replacement?: string; pretokenizers?: { type?: string; replacement?: string }[] } } | null;
  decoder: { decode(tokens: string[]): string; config: { type?: string } } | null;
}
interface HfTokenizersModule {
  Tokenizer: new (tokenizerJson: object, tokenizerConfig: object) => HfTokenizer;
  BertNormalizer: new (config: object) => { normalize(text: string): string };
  BertPreTokenizer: new () => { pre_tokenize_text(text: string): string[] };
}
export const hf = hfTokenizers as unknown as HfTokenizersModule;

// --- tokenizer.json construction ------------------------------------------------------------

export const DEFAULT_SPECIAL_TOKENS: readonly string[] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const MAX_INPUT_CHARS_PER_WORD = 100;

export interface BertTokenizerJsonOptions {
  lowercase: boolean;
  /** null (default) = strip accents iff lowercasing, as BERT does. */
  stripAccents?: boolean | null;
  handleChineseChars?: boolean;
  unkToken?: string;
  clsToken?: string;
  sepToken?: string;
  /** Tokens registered as special added tokens (those present in the vocab). */
  specialTokens?: readonly string[];
}

/** The tokenizer.json object HF's BertTokenizerFast would build from this vocab.txt. */
export function buildBertTokenizerJson(vocab: readonly string[], opts: BertTokenizerJsonOptions): Record<string, unknown> {
  const unk = opts.unkToken ?? "[UNK]";
  const cls = opts.clsToken ?? "[CLS]";
  const sep = opts.sepToken ?? "[SEP]";
  // Null prototype so a token such as "__proto__" is stored as an ordinary key.
  const vocabMap: Record<string, number> = Object.create(null) as Record<string, number>;
  vocab.forEach((token, id) => {
    vocabMap[token] = id; // a duplicate keeps its last id, as HF's load_vocab does
  });
  const idOf = (token: string): number => {
    const id = vocabMap[token];
    if (id === undefined) throw new NerEngineError(`vocabulary lacks the special token ${token}`);
    return id;
  };
  const clsId = idOf(cls);
  const sepId = idOf(sep);
  idOf(unk);
  const specials = [...new Set([...(opts.specialTokens ?? DEFAULT_SPECIAL_TOKENS), unk, cls, sep])];
  const addedTokens = specials
    .filter((t) => vocabMap[t] !== undefined)
    .map((t) => ({ id: vocabMap[t], content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }))
    .sort((a, b) => (a.id as number) - (b.id as number));
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: {
      type: "BertNormalizer",
      clean_text: true,
      handle_chinese_chars: opts.handleChineseChars ?? true,
      strip_accents: opts.stripAccents ?? null,
      lowercase: opts.lowercase,
    },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }],
      pair: [
        { SpecialToken: { id: cls, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: sep, type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
        { SpecialToken: { id: sep, type_id: 1 } },
      ],
      special_tokens: {
        [cls]: { id: cls, ids: [clsId], tokens: [cls] },
        [sep]: { id: sep, ids: [sepId], tokens: [sep] },
      },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: unk,
      continuing_subword_prefix: "##",
      max_input_chars_per_word: MAX_INPUT_CHARS_PER_WORD,
      vocab: vocabMap,
    },
  };
}

// --- training ------------------------------------------------------------------------------

export interface TrainWordPieceOptions {
  vocabSize: number;
  /** A merge is learned only if the pair occurs at least this often (default 2). */
  minFrequency?: number;
  /** Lowercase (and strip accents) before counting, like an uncased BERT (default true). */
  lowercase?: boolean;
  specialTokens?: readonly string[];
}

/** Pair keys pack two symbol ids into one float-safe number. */
const PAIR_BASE = 2 ** 21;

/**
 * Trains a WordPiece vocabulary the way HF's WordPieceTrainer does: BPE merges by pair frequency
 * over words normalized/pre-tokenized exactly like the BERT tokenizer that will use the vocab,
 * with non-initial pieces carrying the "##" prefix. Returns special tokens, then the alphabet
 * (every kept character both as word start `c` and as continuation `##c`, so that no word
 * becomes [UNK] only because a character was seen in one position), then learned pieces.
 */
export function trainWordPiece(sentencesOrWords: Iterable<string[]>, opts: TrainWordPieceOptions): string[] {
  const specials = [...new Set(opts.specialTokens ?? DEFAULT_SPECIAL_TOKENS)];
  const { vocabSize } = opts;
  if (!Number.isInteger(vocabSize) || vocabSize <= specials.length || vocabSize >= PAIR_BASE) {
    throw new NerEngineError(`vocabSize must be an integer between ${specials.length + 1} and ${PAIR_BASE - 1}, got ${vocabSize}`);
  }
  const minFrequency = Math.max(1, opts.minFrequency ?? 2);
  const normalizer = new hf.BertNormalizer({
    type: "BertNormalizer",
    clean_text: true,
    handle_chinese_chars: true,
    strip_accents: null,
    lowercase: opts.lowercase ?? true,
  });
  const preTokenizer = new hf.BertPreTokenizer();

  // Count raw words first: normalizing each distinct word once is far cheaper than per occurrence.
  const rawCounts = new Map<string, number>();
  for (const words of sentencesOrWords) {
    for (const w of words) rawCounts.set(w, (rawCounts.get(w) ?? 0) + 1);
  }
  const wordCounts = new Map<string, number>();
  const charCounts = new Map<string, number>();
  for (const [raw, count] of rawCounts) {
    for (const piece of preTokenizer.pre_tokenize_text(normalizer.normalize(raw))) {
      const chars = [...piece];
      if (chars.length > MAX_INPUT_CHARS_PER_WORD) continue; // such words are [UNK] anyway
      wordCounts.set(piece, (wordCounts.get(piece) ?? 0) + count);
      for (const ch of chars) charCounts.set(ch, (charCounts.get(ch) ?? 0) + count);
    }
  }

  const vocab: string[] = [];
  const idOf = new Map<string, number>();
  const add = (token: string): number => {
    let id = idOf.get(token);
    if (id === undefined) {
      id = vocab.length;
      vocab.push(token);
      idOf.set(token, id);
    }
    return id;
  };
  specials.forEach(add);
  // Keep the most frequent characters that fit (each costs two entries), like HF's limit_alphabet.
  const maxChars = Math.floor((vocabSize - specials.length) / 2);
  const alphabet = [...charCounts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, maxChars)
    .map(([ch]) => ch)
    .sort();
  alphabet.forEach(add);
  alphabet.forEach((ch) => add(`##${ch}`));

  // Words as symbol-id sequences; -1 marks a dropped character, which never merges.
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [word, count] of wordCounts) {
    words.push([...word].map((ch, i) => idOf.get(i === 0 ? ch : `##${ch}`) ?? -1));
    freqs.push(count);
  }
  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const bump = (key: number, delta: number, wordIndex: number, deltas?: Map<number, number>): void => {
    pairCounts.set(key, (pairCounts.get(key) ?? 0) + delta);
    if (deltas) deltas.set(key, (deltas.get(key) ?? 0) + delta);
    if (delta > 0) {
      let set = pairWords.get(key);
      if (!set) pairWords.set(key, (set = new Set()));
      set.add(wordIndex);
    }
  };
  const forEachPair = (syms: number[], fn: (key: number) => void): void => {
    for (let i = 0; i + 1 < syms.length; i++) {
      if (syms[i] >= 0 && syms[i + 1] >= 0) fn(syms[i] * PAIR_BASE + syms[i + 1]);
    }
  };
  words.forEach((syms, w) => forEachPair(syms, (key) => bump(key, freqs[w], w)));

  const heap = new PairHeap();
  for (const [key, count] of pairCounts) heap.push(count, key);

  while (vocab.length < vocabSize && heap.size > 0) {
    const { count, key } = heap.pop();
    if (pairCounts.get(key) !== count) continue; // stale entry; the current count was pushed too
    if (count < minFrequency) break;
    const a = Math.floor(key / PAIR_BASE);
    const b = key % PAIR_BASE;
    const merged = add(vocab[a] + vocab[b].slice(2)); // b is never word-initial, so it has "##"
    const deltas = new Map<number, number>();
    for (const w of pairWords.get(key) ?? []) {
      const syms = words[w];
      const out: number[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          out.push(merged);
          i++;
        } else out.push(syms[i]);
      }
      if (out.length === syms.length) continue; // the word no longer holds the pair
      forEachPair(syms, (k) => bump(k, -freqs[w], w, deltas));
      forEachPair(out, (k) => bump(k, freqs[w], w, deltas));
      words[w] = out;
    }
    pairWords.delete(key);
    pairCounts.delete(key);
    for (const [k, delta] of deltas) {
      if (delta === 0 || k === key) continue;
      const c = pairCounts.get(k) ?? 0;
      if (c > 0) heap.push(c, k);
      else {
        pairCounts.delete(k);
        pairWords.delete(k);
      }
    }
  }
  return vocab;
}

/** Binary max-heap of (count, pair key); ties go to the smaller key for deterministic output. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  get size(): number {
    return this.counts.length;
  }
  private above(i: number, j: number): boolean {
    return this.counts[i] > this.counts[j] || (this.counts[i] === this.counts[j] && this.keys[i] < this.keys[j]);
  }
  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j], this.counts[i]];
    [this.keys[i], this.keys[j]] = [this.keys[j], this.keys[i]];
  }
  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    for (let i = this.counts.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!this.above(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }
  pop(): { count: number; key: number } {
    const top = { count: this.counts[0], key: this.keys[0] };
    const lastCount = this.counts.pop() as number;
    const lastKey = this.keys.pop() as number;
    if (this.counts.length > 0) {
      this.counts[0] = lastCount;
      this.keys[0] = lastKey;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < this.counts.length && this.above(l, best)) best = l;
        if (r < this.counts.length && this.above(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

// --- writing -------------------------------------------------------------------------------

export interface WriteTokenizerOptions {
  lowercase: boolean;
  specialTokens?: readonly string[];
}

/**
 * Writes vocab.txt, tokenizer.json, tokenizer_config.json and special_tokens_map.json so that
 * HF `AutoTokenizer.from_pretrained(dir)` (and loadTokenizer) can load the tokenizer. Each file is
 * written under a temporary name and renamed, so readers never see a half-written file.
 */
export function writeTokenizerFiles(dir: string, vocab: readonly string[], opts: WriteTokenizerOptions): void {
  const seen = new Set<string>();
  for (const token of vocab) {
    if (token.length === 0 || /[\r\n]/.test(token)) throw new NerEngineError(`invalid vocabulary entry ${JSON.stringify(token)}`);
    if (seen.has(token)) throw new NerEngineError(`duplicate vocabulary entry ${JSON.stringify(token)}`);
    seen.add(token);
  }
  for (const required of ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]) {
    if (!seen.has(required)) throw new NerEngineError(`vocabulary lacks the special token ${required}`);
  }
  const specialTokens = opts.specialTokens ?? DEFAULT_SPECIAL_TOKENS;
  const tokenizerJson = buildBertTokenizerJson(vocab, { lowercase: opts.lowercase, specialTokens });
  const specialMap: Record<string, string> = { unk_token: "[UNK]", sep_token: "[SEP]", pad_token: "[PAD]", cls_token: "[CLS]" };
  if (seen.has("[MASK]")) specialMap.mask_token = "[MASK]";
  const tokenizerConfig = {
    tokenizer_class: "BertTokenizer",
    do_lower_case: opts.lowercase,
    do_basic_tokenize: true,
    never_split: null,
    tokenize_chinese_chars: true,
    strip_accents: null,
    clean_up_tokenization_spaces: true,
    ...specialMap,
  };
  mkdirSync(dir, { recursive: true });
  writeAtomic(join(dir, "vocab.txt"), vocab.join("\n") + "\n");
  writeAtomic(join(dir, "tokenizer.json"), JSON.stringify(tokenizerJson));
  writeAtomic(join(dir, "tokenizer_config.json"), JSON.stringify(tokenizerConfig, null, 2) + "\n");
  writeAtomic(join(dir, "special_tokens_map.json"), JSON.stringify(specialMap, null, 2) + "\n");
}

function writeAtomic(path: string, content: string): void {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    writeFileSync(tmp, content, "utf8");
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new NerEngineError(`cannot write ${path}: ${(err as Error).message}`);
  }
}

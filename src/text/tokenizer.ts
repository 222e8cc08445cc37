/**
 * Tokenizers for BERT-family encoders: loads tokenizer.json (or builds a WordPiece one from vocab.txt)
 * and encodes one pre-split word at a time, as HF does with is_split_into_words=True.
 */
import { basename, join } from "node:path";
import { NerEngineError } from "../errors.js";
import { LIMITS, pathExists as existsSync, readBoundedFile } from "../model/bounded-read.js";
import { CONFIG_JSON, readJsonObject } from "../model/safe-json.js";
import { buildBertTokenizerJson, hf, type HfTokenizer } from "./vocab.js";

export interface LoadTokenizerOptions {
  /** Overrides the files' lowercasing (tokenizer_config do_lower_case / BertNormalizer lowercase). */
  lowercase?: boolean;
  /** Most words whose sub-tokens are kept for reuse (default WORD_CACHE_SIZE); 0 turns the cache off. */
  cacheSize?: number;
}

/**
 * Words whose sub-tokens a tokenizer keeps, by default: 100k (rounded up to even), 10-20 MB of heap at
 * most (~100 bytes a CoNLL word, ~200 for long random ones). CoNLL-2003 has 24k distinct words in train,
 * 30k with dev and test, so a corpus of up to a few times that stays cached through training and
 * evaluation, while an endless stream of new words (a server) stays bounded. Encoding CoNLL-2003 train
 * (WordPiece, measured): 0.9 s a pass without a cache; with it 0.35 s the first pass, 0.05 s after; a
 * cache smaller than the corpus' vocabulary loses most of that (10k or 20k words: 0.3 s a pass).
 */
export const WORD_CACHE_SIZE = 100_000;

interface SpecialNames {
  cls: string;
  sep: string;
  pad: string;
  unk: string;
}

/** A loaded tokenizer (WordPiece, byte-level BPE or Unigram) that encodes one pre-split word at a time. */
export class WordTokenizer {
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly vocabSize: number;
  // Corpora repeat words a lot, so each distinct word is tokenized once, in a bounded cache of two
  // generations: new words go into `recent`; when it holds half the cache size it becomes `older` (the
  // previous `older` is dropped), and a word found in `older` moves back into `recent`. A hit costs one
  // lookup (no LRU bookkeeping), and the words in use survive a rotation.
  private recent = new Map<string, number[]>();
  private older = new Map<string, number[]>();
  private generationSize = 0;

  constructor(private readonly hfTokenizer: HfTokenizer, readonly source: string, names: SpecialNames, opts: { cacheSize?: number } = {}) {
    this.cacheSize = opts.cacheSize ?? WORD_CACHE_SIZE;
    const idOf = (token: string): number => {
      const id = hfTokenizer.token_to_id(token);
      if (id === undefined) throw new NerEngineError(`tokenizer has no ${token} token`, source);
      return id;
    };
    this.clsId = idOf(names.cls);
    this.sepId = idOf(names.sep);
    this.padId = idOf(names.pad);
    this.unkId = idOf(names.unk);
    // Ids the tokenizer can emit: the model's pieces and the added tokens (which may lie past them).
    this.vocabSize = hfTokenizer.added_tokens.reduce((max, t) => Math.max(max, t.id + 1), hfTokenizer.model.vocab.length);
  }

  /**
   * Sub-token ids of one word: normalizer + pre-tokenizer + model applied to this word alone.
   * A word that yields nothing (e.g. only U+200B in BERT or XLM-R) gets no ids, as in HF.
   * The returned array is shared with the cache and frozen.
   */
  tokenizeWord(word: string): number[] {
    let ids = this.recent.get(word);
    if (ids !== undefined) return ids;
    ids = this.older.get(word) ?? (Object.freeze(this.hfTokenizer.encode(word, { add_special_tokens: false }).ids) as number[]);
    if (this.generationSize > 0) {
      if (this.recent.size >= this.generationSize) {
        this.older = this.recent;
        this.recent = new Map();
      }
      this.recent.set(word, ids);
    }
    return ids;
  }

  /** Most distinct words whose sub-tokens are kept (default WORD_CACHE_SIZE, rounded up to even; 0: none). Setting it empties the cache. */
  get cacheSize(): number {
    return 2 * this.generationSize;
  }

  set cacheSize(words: number) {
    if (!Number.isInteger(words) || words < 0) throw new NerEngineError(`cacheSize must be a non-negative integer, got ${words}`, this.source);
    this.generationSize = Math.ceil(words / 2);
    this.recent = new Map();
    this.older = new Map();
  }

  /** Distinct words cached now (at most cacheSize). */
  get cachedWords(): number {
    let n = this.recent.size;
    for (const word of this.older.keys()) if (!this.recent.has(word)) n++;
    return n;
  }

  idToToken(id: number): string {
    const token = this.hfTokenizer.id_to_token(id);
    if (token === undefined) throw new NerEngineError(`token id ${id} is outside the vocabulary (size ${this.vocabSize})`, this.source);
    return token;
  }

  tokenToId(token: string): number | undefined {
    return this.hfTokenizer.token_to_id(token);
  }

  /** The tokenizer's normalizer applied to `text` (identity without one). */
  normalize(text: string): string {
    return this.hfTokenizer.normalizer ? this.hfTokenizer.normalizer.normalize(text) : text;
  }

  /** HF's convert_tokens_to_string: the tokenizer.json decoder over `tokens` (joined by spaces without one). */
  tokensToString(tokens: string[]): string {
    return this.hfTokenizer.decoder ? this.hfTokenizer.decoder.decode(tokens) : tokens.join(" ");
  }

  /** The model's continuing-subword prefix ("##" for WordPiece); undefined when it has none (BPE without one, Unigram). */
  get continuingSubwordPrefix(): string | undefined {
    const prefix = this.hfTokenizer.model.config.continuing_subword_prefix;
    return typeof prefix === "string" && prefix !== "" ? prefix : undefined;
  }

  /**
   * How a piece's text relates to the normalized word: "prefix" (WordPiece: continuation pieces carry
   * continuingSubwordPrefix), "bytes" (byte-level BPE: a piece is bytes, Ġ the prefix space), or
   * "metaspace" (SentencePiece: a leading `replacement` stands for the space before the word).
   */
  get pieceStyle(): { kind: "prefix" | "bytes" | "metaspace"; replacement: string } {
    const pre = this.hfTokenizer.pre_tokenizer?.config;
    const steps = pre ? (pre.type === "Sequence" ? (pre.pretokenizers ?? []) : [pre]) : [];
    const types = [...steps.map((p) => p.type), this.hfTokenizer.decoder?.config.type];
    const metaspace = steps.find((p) => p.type === "Metaspace");
    if (types.includes("ByteLevel")) return { kind: "bytes", replacement: "Ġ" };
    if (metaspace || this.hfTokenizer.model.config.type === "Unigram") return { kind: "metaspace", replacement: metaspace?.replacement ?? "▁" };
    return { kind: "prefix", replacement: "" };
  }
}

/**
 * A tokenizer JSON file, bounded (bounded-read.ts). "config" files (tokenizer_config.json,
 * special_tokens_map.json) are small and hold settings, so duplicate and prototype keys are refused;
 * "vocab" files (tokenizer.json, vocab.json) may be up to 64 MiB and name tokens as keys, any string
 * ("constructor" is a BPE token), so only the grammar and the nesting depth are checked.
 */
function readJson(path: string, kind: "config" | "vocab"): Record<string, unknown> {
  const name = basename(path);
  return kind === "config"
    ? readJsonObject(path, { maxBytes: LIMITS.smallJson, what: name }, { ...CONFIG_JSON, invalid: "cannot read JSON" })
    : readJsonObject(path, { maxBytes: LIMITS.tokenizer, what: name }, { invalid: "cannot read JSON", rejectDuplicateKeys: false });
}

/** A tokenizer text file (vocab.txt, merges.txt), bounded; decoded leniently as before (U+FFFD for bad bytes). */
function readTokenizerText(path: string): string {
  return readBoundedFile(path, { maxBytes: LIMITS.tokenizer, what: basename(path) }).toString("utf8");
}

const BERT_SPECIALS: SpecialNames = { cls: "[CLS]", sep: "[SEP]", pad: "[PAD]", unk: "[UNK]" };
const ROBERTA_SPECIALS: SpecialNames = { cls: "<s>", sep: "</s>", pad: "<pad>", unk: "<unk>" };

/** Special token names from special_tokens_map.json / tokenizer_config.json (string or {content}). */
function specialNames(dir: string, config: Record<string, unknown>, defaults: SpecialNames): SpecialNames {
  const mapPath = join(dir, "special_tokens_map.json");
  const map = existsSync(mapPath) ? readJson(mapPath, "config") : {};
  const pick = (key: string, fallback: string): string => {
    for (const source of [map, config]) {
      const v = source[key];
      if (typeof v === "string") return v;
      if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
    }
    return fallback;
  };
  return { cls: pick("cls_token", defaults.cls), sep: pick("sep_token", defaults.sep), pad: pick("pad_token", defaults.pad), unk: pick("unk_token", defaults.unk) };
}

/**
 * The tokenizer.json HF's RobertaConverter builds from a slow tokenizer's vocab.json + merges.txt
 * (byte-level BPE, GPT-2's pre-tokenizer; <mask> strips the space before it).
 */
function byteLevelBpeTokenizerJson(dir: string, names: SpecialNames): Record<string, unknown> {
  const vocabPath = join(dir, "vocab.json");
  const mergesPath = join(dir, "merges.txt");
  const vocab = readJson(vocabPath, "vocab");
  for (const [token, id] of Object.entries(vocab)) {
    if (!Number.isSafeInteger(id) || (id as number) < 0) throw new NerEngineError(`token ${JSON.stringify(token)} has id ${JSON.stringify(id)}, expected a non-negative integer`, vocabPath);
  }
  const text = readTokenizerText(mergesPath);
  // "#version: 0.2" header, then one "left right" pair per line (HF skips the first line and blank ones).
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  const merges = lines.slice(lines[0]?.startsWith("#version") ? 1 : 0).filter((l) => l !== "");
  merges.forEach((m, i) => {
    if (m.split(" ").length !== 2) throw new NerEngineError(`line ${i + 2}: expected two tokens separated by one space, got ${JSON.stringify(m)}`, mergesPath);
  });
  const special = [names.cls, names.pad, names.sep, names.unk, "<mask>"].filter((tok, i, all) => all.indexOf(tok) === i && Object.hasOwn(vocab, tok));
  const byteLevel = { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: special.map((content) => ({ id: vocab[content], content, single_word: false, lstrip: content === "<mask>", rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { type: "RobertaProcessing", sep: [names.sep, vocab[names.sep]], cls: [names.cls, vocab[names.cls]], trim_offsets: true, add_prefix_space: true },
    decoder: byteLevel,
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

/** The pre-tokenizer with every ByteLevel step (top level or in a Sequence) set to add_prefix_space. */
function withBytePrefixSpace(pre: unknown): unknown {
  if (!pre || typeof pre !== "object") return pre;
  const p = pre as { type?: unknown; pretokenizers?: unknown };
  if (p.type === "ByteLevel") return { ...p, add_prefix_space: true };
  if (p.type === "Sequence" && Array.isArray(p.pretokenizers)) return { ...p, pretokenizers: p.pretokenizers.map(withBytePrefixSpace) };
  return pre;
}

/**
 * Loads `tokenizer.json` from `dir` if present; else builds the equivalent tokenizer from a slow
 * tokenizer's files: WordPiece from `vocab.txt` (+ tokenizer_config.json do_lower_case, default true),
 * or byte-level BPE from `vocab.json` + `merges.txt` (RoBERTa).
 */
export function loadTokenizer(dir: string, opts: LoadTokenizerOptions = {}): WordTokenizer {
  const jsonPath = join(dir, "tokenizer.json");
  const vocabPath = join(dir, "vocab.txt");
  const configPath = join(dir, "tokenizer_config.json");
  const config = existsSync(configPath) ? readJson(configPath, "config") : {};
  const bpe = !existsSync(jsonPath) && !existsSync(vocabPath) && existsSync(join(dir, "vocab.json")) && existsSync(join(dir, "merges.txt"));
  const names = specialNames(dir, config, bpe ? ROBERTA_SPECIALS : BERT_SPECIALS);
  let tokenizerJson: Record<string, unknown>;
  let source: string;
  if (existsSync(jsonPath)) {
    source = jsonPath;
    tokenizerJson = readJson(jsonPath, "vocab");
    const normalizer = tokenizerJson.normalizer as { type?: unknown; lowercase?: boolean } | null | undefined;
    if (opts.lowercase !== undefined && normalizer && normalizer.type === "BertNormalizer") {
      tokenizerJson.normalizer = { ...normalizer, lowercase: opts.lowercase };
    }
    // Pre-split words always get their leading space (ĠWord), whatever the files say: HF's slow
    // tokenizer does so for is_split_into_words, run_ner sets add_prefix_space=True for the fast one
    // (which would raise otherwise), and roberta-base's own tokenizer.json says false.
    tokenizerJson.pre_tokenizer = withBytePrefixSpace(tokenizerJson.pre_tokenizer);
  } else if (existsSync(vocabPath)) {
    source = vocabPath;
    const text = readTokenizerText(vocabPath);
    // One token per line; only the newline is stripped (as HF's load_vocab), plus a CR for CRLF files.
    const vocab = text.split("\n").map((line) => (line.endsWith("\r") ? line.slice(0, -1) : line));
    if (vocab.length > 0 && vocab[vocab.length - 1] === "") vocab.pop();
    if (vocab.length === 0) throw new NerEngineError("vocabulary file is empty", vocabPath);
    const lowercase = opts.lowercase ?? (typeof config.do_lower_case === "boolean" ? config.do_lower_case : true);
    const stripAccents = typeof config.strip_accents === "boolean" ? config.strip_accents : null;
    const handleChineseChars = typeof config.tokenize_chinese_chars === "boolean" ? config.tokenize_chinese_chars : true;
    try {
      tokenizerJson = buildBertTokenizerJson(vocab, { lowercase, stripAccents, handleChineseChars, unkToken: names.unk, clsToken: names.cls, sepToken: names.sep, specialTokens: [names.pad, names.unk, names.cls, names.sep, "[MASK]"] });
    } catch (err) {
      throw new NerEngineError((err as Error).message, vocabPath);
    }
  } else if (bpe) {
    source = join(dir, "vocab.json");
    tokenizerJson = byteLevelBpeTokenizerJson(dir, names);
  } else {
    const sentencepiece = ["sentencepiece.bpe.model", "spiece.model"].find((f) => existsSync(join(dir, f)));
    throw new NerEngineError(
      sentencepiece
        ? `only ${sentencepiece} is here, and SentencePiece models are read through tokenizer.json: write it once in Python with ` +
            `AutoTokenizer.from_pretrained(dir).save_pretrained(dir) (fast tokenizers installed)`
        : `no tokenizer.json, vocab.txt or vocab.json + merges.txt found in ${dir}`,
      dir,
    );
  }
  let hfTokenizer: HfTokenizer;
  try {
    hfTokenizer = new hf.Tokenizer(tokenizerJson, config);
    hfTokenizer.encode("probe", { add_special_tokens: false }); // surface broken configs now, not mid-training
  } catch (err) {
    throw new NerEngineError(`invalid tokenizer: ${(err as Error).message}`, source);
  }
  return new WordTokenizer(hfTokenizer, source, names, { cacheSize: opts.cacheSize });
}

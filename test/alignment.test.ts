import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { encodeSentences, IGNORE_LABEL, mergeWindowPredictions, planWindows, pretokenize, type EncodedCorpus } from "../src/data/alignment.js";
import { loadTokenizer } from "../src/text/tokenizer.js";
import { NerEngineError } from "../src/errors.js";
import type { Sentence } from "../src/data/types.js";
import { hf } from "../src/text/vocab.js";
import type { WordTokenizer } from "../src/text/tokenizer.js";
import { has, itNeeding, SHARED } from "./helpers/shared.js";

const BERT_DIR = join(SHARED, "tokenizers/bert-base-uncased");
const CONLL_TRAIN = join(SHARED, "data/conll2003/train.txt");
const haveShared = has(BERT_DIR, CONLL_TRAIN);
/** A test that reads bert-base-uncased or CoNLL-2003 from ../shared: without them it skips and its name says why. */
const sharedIt = itNeeding(BERT_DIR, CONLL_TRAIN);

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "ner-align-"));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => tempDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Minimal CoNLL reader: first column, NER tag last, -DOCSTART- starts a new document. */
function readConll(path: string, maxSentences: number): Sentence[] {
  const sentences: Sentence[] = [];
  let cur: Sentence = { tokens: [], tags: [], docId: -1 };
  let docId = -1;
  const flush = () => {
    if (cur.tokens.length > 0) sentences.push(cur);
    cur = { tokens: [], tags: [], docId };
  };
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (sentences.length >= maxSentences) break;
    const cols = line.trim().split(" ");
    if (cols[0] === "-DOCSTART-") {
      flush();
      docId++;
      cur.docId = docId;
    } else if (cols[0] === "") flush();
    else {
      cur.tokens.push(cols[0]);
      cur.tags.push(cols[cols.length - 1]);
    }
  }
  flush();
  return sentences;
}

const conll = haveShared ? readConll(CONLL_TRAIN, 3000) : [];
const tok = haveShared ? loadTokenizer(BERT_DIR) : (undefined as unknown as WordTokenizer);
const tags = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"];
const labelIds = (tag: string) => {
  const i = tags.indexOf(tag);
  if (i < 0) throw new Error(`unknown tag ${tag}`);
  return i;
};

/** Window w's slice of a per-position array. */
function windowSlice(enc: EncodedCorpus, arr: Int32Array, w: number): number[] {
  return Array.from(arr.subarray(enc.windowOffsets[w], enc.windowOffsets[w + 1]));
}

describe("loadTokenizer", () => {
  sharedIt("loads bert-base-uncased from tokenizer.json", () => {
    expect(tok.source.endsWith("tokenizer.json")).toBe(true);
    expect([tok.clsId, tok.sepId, tok.padId, tok.unkId, tok.vocabSize]).toEqual([101, 102, 0, 100, 30522]);
    expect(tok.idToToken(101)).toBe("[CLS]");
    const pieces = tok.tokenizeWord("unaffable").map((id) => tok.idToToken(id));
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.slice(1).every((p) => p.startsWith("##"))).toBe(true);
    expect(pieces.join("").replace(/##/g, "")).toBe("unaffable");
    expect(tok.tokenizeWord("German").map((id) => tok.idToToken(id))).toEqual(["german"]);
    // Punctuation inside a word splits it, as the pre-tokenizer does under is_split_into_words.
    expect(tok.tokenizeWord("U.S.").map((id) => tok.idToToken(id))).toEqual(["u", ".", "s", "."]);
    expect(tok.tokenizeWord("Café").map((id) => tok.idToToken(id))).toEqual(["cafe"]);
    // A word with no content gets no sub-token, as in HF (encodeSentences gives it no position).
    expect(tok.tokenizeWord("\u200b")).toEqual([]);
    expect(tok.tokenizeWord("x".repeat(101))).toEqual([tok.unkId]);
    expect(() => tok.idToToken(10 ** 6)).toThrow(NerEngineError);
  });

  sharedIt("caches per word and returns frozen arrays", () => {
    const a = tok.tokenizeWord("Blackburn");
    expect(tok.tokenizeWord("Blackburn")).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
  });

  sharedIt("gives the same ids from vocab.txt alone as from tokenizer.json on CoNLL words", () => {
    const dir = tempDir();
    copyFileSync(join(BERT_DIR, "vocab.txt"), join(dir, "vocab.txt"));
    const fromVocab = loadTokenizer(dir); // no config: BERT default do_lower_case = true
    expect(fromVocab.source.endsWith("vocab.txt")).toBe(true);
    expect([fromVocab.clsId, fromVocab.sepId, fromVocab.padId, fromVocab.unkId, fromVocab.vocabSize]).toEqual([101, 102, 0, 100, 30522]);
    const words = new Set(conll.flatMap((s) => s.tokens));
    expect(words.size).toBeGreaterThan(5000);
    let unk = 0;
    for (const w of words) {
      const ids = tok.tokenizeWord(w);
      expect(fromVocab.tokenizeWord(w), w).toEqual(ids);
      if (ids.includes(tok.unkId)) unk++;
      else expect(ids.map((id) => tok.idToToken(id)).join("").replace(/##/g, "")).toBe(w.toLowerCase().normalize("NFD").replace(/\p{Mn}/gu, ""));
    }
    expect(unk / words.size).toBeLessThan(0.01);
  });

  sharedIt("honours do_lower_case and the lowercase option", () => {
    const dir = tempDir();
    copyFileSync(join(BERT_DIR, "vocab.txt"), join(dir, "vocab.txt"));
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ do_lower_case: false }));
    const cased = loadTokenizer(dir);
    expect(cased.tokenizeWord("German")).not.toEqual(tok.tokenizeWord("German"));
    expect(loadTokenizer(dir, { lowercase: true }).tokenizeWord("German")).toEqual(tok.tokenizeWord("German"));
    expect(loadTokenizer(BERT_DIR, { lowercase: false }).tokenizeWord("German")).toEqual(cased.tokenizeWord("German"));
  });

  it("reports missing and broken tokenizers clearly", () => {
    const empty = tempDir();
    expect(() => loadTokenizer(empty)).toThrow(/no tokenizer\.json, vocab\.txt or vocab\.json \+ merges\.txt/);
    expect(() => loadTokenizer(join(empty, "nope"))).toThrow(NerEngineError);

    const badJson = tempDir();
    writeFileSync(join(badJson, "tokenizer.json"), "{ not json");
    expect(() => loadTokenizer(badJson)).toThrow(NerEngineError);

    const noModel = tempDir();
    writeFileSync(join(noModel, "tokenizer.json"), JSON.stringify({ version: "1.0", added_tokens: [] }));
    expect(() => loadTokenizer(noModel)).toThrow(/invalid tokenizer/);

    const noSpecials = tempDir();
    writeFileSync(join(noSpecials, "vocab.txt"), "[PAD]\n[UNK]\nhello\n");
    expect(() => loadTokenizer(noSpecials)).toThrow(/\[CLS\]/);

    const emptyVocab = tempDir();
    writeFileSync(join(emptyVocab, "vocab.txt"), "");
    expect(() => loadTokenizer(emptyVocab)).toThrow(/empty/);
  });
});

describe("encodeSentences", () => {
  const sentence: Sentence = { tokens: ["Peter", "Blackburnshire", "visits", "Zürich"], tags: ["B-PER", "I-PER", "O", "B-LOC"] };
  const pieces = haveShared ? sentence.tokens.map((w) => tok.tokenizeWord(w)) : [];

  sharedIt("maps sub-tokens to words and labels only first sub-tokens by default", () => {
    expect(pieces[1].length).toBeGreaterThan(1); // the test needs a multi-piece word
    const enc = encodeSentences(tok, [sentence], { maxLength: 128, labelAllSubtokens: false, labelIds });
    expect(enc.numWindows).toBe(1);
    expect(Array.from(enc.windowOffsets)).toEqual([0, enc.inputIds.length]);
    expect(Array.from(enc.inputIds)).toEqual([tok.clsId, ...pieces.flat(), tok.sepId]);
    const expectedStarts = [0, ...pieces.flatMap((p) => p.map((_, k) => (k === 0 ? 1 : 0))), 0];
    expect(Array.from(enc.wordStarts)).toEqual(expectedStarts);
    expect(Array.from(enc.tokenWordIndex)).toEqual([-1, ...pieces.flatMap((p, w) => p.map(() => w)), -1]);
    const expectedLabels = [IGNORE_LABEL, ...pieces.flatMap((p, w) => p.map((_, k) => (k === 0 ? labelIds(sentence.tags[w]) : IGNORE_LABEL))), IGNORE_LABEL];
    expect(Array.from(enc.labels)).toEqual(expectedLabels);
    expect([enc.windowSentence[0], enc.windowWordStart[0], enc.windowWordCount[0]]).toEqual([0, 0, 4]);
  });

  sharedIt("labels all sub-tokens with B-X continuations as I-X when asked", () => {
    const s: Sentence = { tokens: ["Blackburnshire", "Blackburnshire"], tags: ["B-LOC", "I-LOC"] };
    const n = tok.tokenizeWord("Blackburnshire").length;
    const enc = encodeSentences(tok, [s], { maxLength: 64, labelAllSubtokens: true, labelIds });
    const b = labelIds("B-LOC");
    const i = labelIds("I-LOC");
    expect(Array.from(enc.labels)).toEqual([IGNORE_LABEL, b, ...Array(n - 1).fill(i), i, ...Array(n - 1).fill(i), IGNORE_LABEL]);
    expect(enc.wordStarts.reduce((a, x) => a + x, 0)).toBe(2);
  });

  sharedIt("accepts plain word lists (all labels ignored) and rejects tag/token mismatches", () => {
    const enc = encodeSentences(tok, [["hello", "world"], [], ["again"]], { maxLength: 16, labelAllSubtokens: false });
    expect(enc.numWindows).toBe(2); // the empty sentence gets no window
    expect(Array.from(enc.windowSentence)).toEqual([0, 2]);
    expect(enc.labels.every((l) => l === IGNORE_LABEL)).toBe(true);
    expect(mergeWindowPredictions(enc, [5, 6, 7])).toEqual([[5, 6], [], [7]]);
    expect(() => encodeSentences(tok, [{ tokens: ["a", "b"], tags: ["O"] }], { maxLength: 16, labelAllSubtokens: false, labelIds })).toThrow(NerEngineError);
    expect(() => encodeSentences(tok, [["a"]], { maxLength: 2, labelAllSubtokens: false })).toThrow(NerEngineError);
    expect(() => encodeSentences(tok, [["a"]], { maxLength: 16, stride: 14, labelAllSubtokens: false })).toThrow(NerEngineError);
  });

  sharedIt("splits a long sentence into overlapping windows that predict every word once", () => {
    const vocabWords = ["the", "Commission", "disagreed", "unaffable", "Blackburnshire", "1996-08-22", "U.S.", "a", "Zürich", "boycott"];
    const tokens = Array.from({ length: 400 }, (_, i) => vocabWords[(i * 7) % vocabWords.length]);
    const s: Sentence = { tokens, tags: tokens.map((_, i) => (i % 3 === 0 ? "B-ORG" : "O")) };
    for (const [maxLength, stride] of [[32, 8], [64, undefined], [20, 0], [24, 17]] as const) {
      const enc = encodeSentences(tok, [s], { maxLength, stride, labelAllSubtokens: false, labelIds });
      expect(enc.numWindows).toBeGreaterThan(3);
      let owned = 0;
      for (let w = 0; w < enc.numWindows; w++) {
        const ids = windowSlice(enc, enc.inputIds, w);
        expect(ids.length).toBeLessThanOrEqual(maxLength);
        expect(ids[0]).toBe(tok.clsId);
        expect(ids[ids.length - 1]).toBe(tok.sepId);
        const starts = windowSlice(enc, enc.wordStarts, w);
        const count = starts.reduce((a, x) => a + x, 0);
        expect(count).toBe(enc.windowWordCount[w]);
        owned += count;
        // Owned words are contiguous and labelled; the rest of the window is unlabelled context.
        const wordIdx = windowSlice(enc, enc.tokenWordIndex, w);
        const labels = windowSlice(enc, enc.labels, w);
        const ownedIdx = wordIdx.filter((_, p) => starts[p] === 1);
        expect(ownedIdx).toEqual(Array.from({ length: count }, (_, k) => enc.windowWordStart[w] + k));
        labels.forEach((l, p) => expect(l !== IGNORE_LABEL).toBe(starts[p] === 1));
      }
      expect(owned).toBe(tokens.length);
      // Predicting each word's own index must reproduce 0..n-1 exactly once each.
      const perWindow = Array.from({ length: enc.numWindows }, (_, w) => Array.from({ length: enc.windowWordCount[w] }, (_, k) => enc.windowWordStart[w] + k));
      expect(mergeWindowPredictions(enc, perWindow.flat())).toEqual([tokens.map((_, i) => i)]);
    }
  });

  it("gives overlapped words to the window where they have context on both sides", () => {
    const plans = planWindows(Array(30).fill(1), 10, 4);
    expect(plans[0]).toEqual({ start: 0, end: 10, ownStart: 0, ownEnd: 8 });
    expect(plans[1]).toEqual({ start: 6, end: 16, ownStart: 8, ownEnd: 14 });
    expect(plans[plans.length - 1].ownEnd).toBe(30);
    // A word too long for the overlap budget still lets windows advance.
    const uneven = planWindows([3, 9, 1, 9, 2, 9, 9, 1], 10, 8);
    expect(uneven.map((p) => p.ownEnd - p.ownStart).reduce((a, b) => a + b)).toBe(8);
  });

  sharedIt("truncates a single word longer than the window to its first sub-tokens", () => {
    const huge = "!".repeat(50); // 50 punctuation sub-tokens
    const enc = encodeSentences(tok, [{ tokens: ["a", huge, "b"], tags: ["O", "B-MISC", "O"] }], { maxLength: 16, labelAllSubtokens: true, labelIds });
    const full = tok.tokenizeWord(huge);
    expect(full.length).toBe(50);
    expect(mergeWindowPredictions(enc, Array.from({ length: enc.numWindows }, (_, w) => Array(enc.windowWordCount[w]).fill(w)).flat())[0]).toHaveLength(3);
    const hugeWindow = Array.from({ length: enc.numWindows }, (_, w) => w).find((w) => windowSlice(enc, enc.tokenWordIndex, w).includes(1)) as number;
    expect(windowSlice(enc, enc.inputIds, hugeWindow)).toEqual([tok.clsId, ...full.slice(0, 14), tok.sepId]);
  });

  sharedIt("fills windows with same-document context, unlabelled and not owned", () => {
    const doc = (docId: number, words: string[]): Sentence => ({ tokens: words, tags: words.map(() => "O"), docId });
    const sents = [
      doc(0, ["alpha", "one"]),
      doc(0, ["beta", "two", "three"]),
      doc(0, ["gamma", "four"]),
      doc(1, ["delta", "five"]),
    ];
    const ids = (words: string[]) => words.flatMap((w) => tok.tokenizeWord(w));
    const enc = encodeSentences(tok, sents, { maxLength: 64, labelAllSubtokens: false, labelIds, documentContext: true });
    expect(enc.numWindows).toBe(4);
    expect(windowSlice(enc, enc.inputIds, 1)).toEqual([tok.clsId, ...ids(["alpha", "one", "beta", "two", "three", "gamma", "four"]), tok.sepId]);
    expect(windowSlice(enc, enc.wordStarts, 1)).toEqual([0, 0, 0, 1, 1, 1, 0, 0, 0]);
    expect(windowSlice(enc, enc.labels, 1)).toEqual([IGNORE_LABEL, IGNORE_LABEL, IGNORE_LABEL, 0, 0, 0, IGNORE_LABEL, IGNORE_LABEL, IGNORE_LABEL]);
    // The document boundary stops context: sentence 3 sees nothing of document 0.
    expect(windowSlice(enc, enc.inputIds, 3)).toEqual([tok.clsId, ...ids(["delta", "five"]), tok.sepId]);
    expect(windowSlice(enc, enc.inputIds, 0)).toEqual([tok.clsId, ...ids(["alpha", "one", "beta", "two", "three", "gamma", "four"]), tok.sepId]);

    // Tight room: about half before, half after, whole words only.
    const tight = encodeSentences(tok, sents, { maxLength: 7, labelAllSubtokens: false, labelIds, documentContext: true });
    expect(windowSlice(tight, tight.inputIds, 1)).toEqual([tok.clsId, ...ids(["one", "beta", "two", "three", "gamma"]), tok.sepId]);
    expect(mergeWindowPredictions(tight, Array.from({ length: tight.numWindows }, (_, w) => Array(tight.windowWordCount[w]).fill(1)).flat())).toEqual(sents.map((s) => s.tokens.map(() => 1)));
  });

  sharedIt("encodes CoNLL with document context within maxLength", () => {
    const enc = encodeSentences(tok, conll, { maxLength: 128, labelAllSubtokens: false, labelIds, documentContext: true });
    const words = conll.reduce((a, s) => a + s.tokens.length, 0);
    expect(enc.wordStarts.reduce((a, x) => a + x, 0)).toBe(words);
    expect(enc.labels.filter((l) => l !== IGNORE_LABEL).length).toBe(words);
    for (let w = 0; w < enc.numWindows; w++) expect(enc.windowOffsets[w + 1] - enc.windowOffsets[w]).toBeLessThanOrEqual(128);
    // Most windows are filled close to the limit by their neighbours.
    const meanLen = enc.inputIds.length / enc.numWindows;
    expect(meanLen).toBeGreaterThan(100);
  });

  sharedIt("rejects prediction lists that do not match the windows", () => {
    const enc = encodeSentences(tok, [["a", "b"]], { maxLength: 16, labelAllSubtokens: false });
    expect(() => mergeWindowPredictions(enc, [])).toThrow(NerEngineError);
    expect(() => mergeWindowPredictions(enc, [1])).toThrow(NerEngineError);
  });
});

describe("pretokenize", () => {
  it("splits on whitespace and punctuation keeping offsets", () => {
    const text = "  Hello, world! Don't\tstop—U.S.A. 東京 café\u200b x$5 ";
    const words = pretokenize(text);
    expect(words.map((w) => w.word)).toEqual(["Hello", ",", "world", "!", "Don", "'", "t", "stop", "—", "U", ".", "S", ".", "A", ".", "東", "京", "café", "x", "$", "5"]);
    for (const w of words) expect(text.slice(w.start, w.end)).toBe(w.word);
    expect(words[0]).toEqual({ word: "Hello", start: 2, end: 7 });
  });

  it("handles astral characters, control characters and empty input", () => {
    expect(pretokenize("")).toEqual([]);
    expect(pretokenize(" \u200b \n")).toEqual([]);
    const text = "a😀b \u{20000}x";
    const words = pretokenize(text);
    expect(words.map((w) => w.word)).toEqual(["a😀b", "\u{20000}", "x"]);
    for (const w of words) expect(text.slice(w.start, w.end)).toBe(w.word);
  });

  sharedIt("agrees with the HF tokenizer on whole texts", () => {
    const json = JSON.parse(readFileSync(join(BERT_DIR, "tokenizer.json"), "utf8"));
    const full = new hf.Tokenizer(json, {});
    const texts = [
      "EU rejects German call to boycott British lamb.",
      "Peter Blackburn, BRUSSELS 1996-08-22: \"It's (not) over\" -- said Zürich's [mayor]; 3.5% up!",
      "Ünïcödé naïve café — façade, ｆｕｌｌｗｉｄｔｈ and 東京都 text.",
    ];
    for (const text of texts) {
      const perWord = pretokenize(text).flatMap((w) => tok.tokenizeWord(w.word));
      expect(perWord, text).toEqual(full.encode(text, { add_special_tokens: false }).ids);
    }
  });
});

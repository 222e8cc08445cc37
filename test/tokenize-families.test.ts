/**
 * Per-word tokenization against HF's slow tokenizers (is_split_into_words=True) for BERT, DistilBERT,
 * RoBERTa (byte-level BPE, add_prefix_space) and XLM-R (Unigram, Metaspace), from the shared fixtures.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { encodeSentences, IGNORE_LABEL, mergeWindowPredictions } from "../src/data/alignment.js";
import { loadTokenizer, type WordTokenizer } from "../src/text/tokenizer.js";
import { needs, SHARED_FIXTURES } from "./helpers/shared.js";

const FIXTURES = SHARED_FIXTURES;
const haveFixtures = existsSync(path.join(FIXTURES, "roberta-tokenize.json"));
const suite = haveFixtures ? describe : describe.skip;
const skipNote = haveFixtures ? "" : ` (skipped: ${needs(path.join(FIXTURES, "roberta-tokenize.json"))})`;

interface WordCase {
  id: string;
  words: string[];
  word_ids: number[][];
  input_ids: number[];
  word_index: (number | null)[];
}
interface TokenizeFixture {
  tokenizer_dir: string;
  special_ids: { cls: number; sep: number; pad: number; unk: number; mask: number };
  words: WordCase[];
}
const fixture = (name: string): TokenizeFixture => JSON.parse(readFileSync(path.join(FIXTURES, name), "utf8"));

const tempDirs: string[] = [];
afterAll(() => tempDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
/** A temp copy of a fixture tokenizer folder, with its tokenizer.json edited by `edit`. */
function editedCopy(dir: string, edit: (json: Record<string, any>) => void, files = ["special_tokens_map.json"]): string {
  const out = mkdtempSync(path.join(tmpdir(), "ner-tok-"));
  tempDirs.push(out);
  for (const f of files) copyFileSync(path.join(dir, f), path.join(out, f));
  const json = JSON.parse(readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  edit(json);
  writeFileSync(path.join(out, "tokenizer.json"), JSON.stringify(json));
  return out;
}

/** encodeSentences on every fixture sentence (one window each) gives HF's input_ids, per-word ids and word_index. */
function expectFixtureIds(tok: WordTokenizer, fx: TokenizeFixture): void {
  for (const c of fx.words) {
    const enc = encodeSentences(tok, [c.words], { maxLength: 512 });
    expect(enc.numWindows, c.id).toBe(1);
    expect(Array.from(enc.inputIds), c.id).toEqual(c.input_ids);
    expect(Array.from(enc.tokenWordIndex), c.id).toEqual(c.word_index.map((w) => w ?? -1));
    expect(c.words.map((w) => tok.tokenizeWord(w)), c.id).toEqual(c.word_ids);
  }
}

const families = [
  { family: "BERT", dir: "tiny-bert-ner", file: "distilbert-tokenize.json", vocabSize: 30522 }, // same bert-base-uncased files as DistilBERT's
  { family: "DistilBERT", dir: "tiny-distilbert-ner", file: "distilbert-tokenize.json", vocabSize: 30522 },
  { family: "RoBERTa", dir: "tiny-roberta-ner", file: "roberta-tokenize.json", vocabSize: 50265 },
  { family: "XLM-RoBERTa", dir: "tiny-xlm-roberta-ner", file: "xlm-roberta-tokenize.json", vocabSize: 8002 },
];

suite(`per-word tokenization matches HF${skipNote}`, () => {
  for (const { family, dir, file, vocabSize } of families) {
    it(`${family}: special ids, vocab size and every fixture sentence's input_ids`, () => {
      const fx = fixture(file);
      expect(fx.words.length).toBe(41);
      const tok = loadTokenizer(path.join(FIXTURES, dir));
      const s = fx.special_ids;
      expect([tok.clsId, tok.sepId, tok.padId, tok.unkId, tok.vocabSize]).toEqual([s.cls, s.sep, s.pad, s.unk, vocabSize]);
      expect(tok.vocabSize).toBeGreaterThan(s.mask);
      expectFixtureIds(tok, fx);
    });
  }

  it("BERT from vocab.txt alone (no tokenizer.json) gives the same ids", () => {
    const out = mkdtempSync(path.join(tmpdir(), "ner-tok-"));
    tempDirs.push(out);
    for (const f of ["vocab.txt", "tokenizer_config.json"]) copyFileSync(path.join(FIXTURES, "tiny-bert-ner", f), path.join(out, f));
    const tok = loadTokenizer(out);
    expect(tok.source.endsWith("vocab.txt")).toBe(true);
    expectFixtureIds(tok, fixture("distilbert-tokenize.json"));
  });

  it("RoBERTa from vocab.json + merges.txt alone (a slow tokenizer's files) gives the same ids", () => {
    for (const specials of [true, false]) {
      const out = mkdtempSync(path.join(tmpdir(), "ner-tok-"));
      tempDirs.push(out);
      const files = ["vocab.json", "merges.txt", ...(specials ? ["special_tokens_map.json"] : [])];
      for (const f of files) copyFileSync(path.join(FIXTURES, "tiny-roberta-ner", f), path.join(out, f));
      const tok = loadTokenizer(out);
      expect(tok.source.endsWith("vocab.json")).toBe(true);
      expectFixtureIds(tok, fixture("roberta-tokenize.json"));
    }
  });

  it("a folder with only a SentencePiece model says how to get tokenizer.json", () => {
    const out = mkdtempSync(path.join(tmpdir(), "ner-tok-"));
    tempDirs.push(out);
    copyFileSync(path.join(FIXTURES, "tiny-xlm-roberta-ner", "sentencepiece.bpe.model"), path.join(out, "sentencepiece.bpe.model"));
    expect(() => loadTokenizer(out)).toThrow(/only sentencepiece\.bpe\.model is here.*save_pretrained/);
  });

  it("RoBERTa words get their leading space even when tokenizer.json says add_prefix_space: false (as roberta-base's does)", () => {
    const dir = editedCopy(path.join(FIXTURES, "tiny-roberta-ner"), (json) => {
      json.pre_tokenizer.add_prefix_space = false;
    });
    const tok = loadTokenizer(dir);
    expect(tok.idToToken(tok.tokenizeWord("Two")[0])).toBe("ĠTwo");
    expectFixtureIds(tok, fixture("roberta-tokenize.json"));
    // Inside a pre-tokenizer Sequence too.
    const seq = loadTokenizer(editedCopy(path.join(FIXTURES, "tiny-roberta-ner"), (json) => {
      json.pre_tokenizer = { type: "Sequence", pretokenizers: [{ ...json.pre_tokenizer, add_prefix_space: false }] };
    }));
    expect(seq.idToToken(seq.tokenizeWord("Two")[0])).toBe("ĠTwo");
  });

  it("vocabSize counts added tokens beyond the model's own vocabulary", () => {
    const tok = loadTokenizer(editedCopy(path.join(FIXTURES, "tiny-roberta-ner"), (json) => {
      delete json.model.vocab["<mask>"];
      json.added_tokens.push({ id: 50270, content: "<extra>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    }));
    expect(tok.tokenToId("<mask>")).toBe(50264);
    expect(tok.tokenToId("<extra>")).toBe(50270);
    expect(tok.vocabSize).toBe(50271);
  });
});

suite(`words without sub-tokens${skipNote}`, () => {
  const labels = ["O", "B-X", "I-X"];
  const labelIds = (tag: string) => labels.indexOf(tag);

  it("get no position, no label, and the fill value when merged (XLM-R and BERT: U+200B)", () => {
    for (const dir of ["tiny-xlm-roberta-ner", "tiny-bert-ner"]) {
      const tok = loadTokenizer(path.join(FIXTURES, dir));
      expect(tok.tokenizeWord("\u200b")).toEqual([]);
      const words = ["New", "\u200b", "York", "\u200b"];
      const enc = encodeSentences(tok, [{ tokens: words, tags: ["B-X", "I-X", "I-X", "O"] }], { maxLength: 64, labelIds });
      const ids = words.map((w) => tok.tokenizeWord(w));
      expect(Array.from(enc.inputIds)).toEqual([tok.clsId, ...ids.flat(), tok.sepId]);
      expect(Array.from(enc.labels).filter((l) => l !== IGNORE_LABEL)).toEqual([1, 2]);
      expect(enc.wordStarts.reduce((a, x) => a + x, 0)).toBe(2);
      expect(mergeWindowPredictions(enc, [7, 8], -1)).toEqual([[7, -1, 8, -1]]);
      // A sentence with no sub-token at all gets no window; its words are all fill.
      const none = encodeSentences(tok, [["\u200b"], ["York"]], { maxLength: 64 });
      expect(Array.from(none.windowSentence)).toEqual([1]);
      expect(mergeWindowPredictions(none, [3], -1)).toEqual([[-1], [3]]);
    }
  });

  it("keep long sentences' windows predicting every other word once", () => {
    const tok = loadTokenizer(path.join(FIXTURES, "tiny-xlm-roberta-ner"));
    const vocab = ["Baghdad", "\u200b", "opposition", "in", "\u200b", "leaders", "."];
    const words = Array.from({ length: 300 }, (_, i) => vocab[(i * 5) % vocab.length]);
    for (const [maxLength, stride] of [[16, 4], [32, 8], [20, 0]]) {
      const enc = encodeSentences(tok, [words], { maxLength, stride });
      expect(enc.numWindows).toBeGreaterThan(3);
      const perWindow = Array.from({ length: enc.numWindows }, (_, w) => {
        const preds: number[] = [];
        for (let p = enc.windowOffsets[w]; p < enc.windowOffsets[w + 1]; p++) if (enc.wordStarts[p]) preds.push(enc.tokenWordIndex[p]);
        return preds;
      });
      expect(mergeWindowPredictions(enc, perWindow.flat(), -1)).toEqual([words.map((w, i) => (w === "\u200b" ? -1 : i))]);
    }
  });
});

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadTokenizer } from "../src/text/tokenizer.js";
import { NerEngineError } from "../src/errors.js";
import { DEFAULT_SPECIAL_TOKENS, trainWordPiece, writeTokenizerFiles } from "../src/text/vocab.js";
import { has, itNeeding, shared } from "./helpers/shared.js";

const CONLL_TRAIN = shared("data/conll2003/train.txt");
const haveConll = has(CONLL_TRAIN);
const itWithConll = itNeeding(CONLL_TRAIN);

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "ner-vocab-"));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => tempDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** First column of CoNLL, one array per sentence, skipping -DOCSTART- and blank lines. */
function conllSentences(maxSentences = Infinity): string[][] {
  const out: string[][] = [];
  let cur: string[] = [];
  for (const line of readFileSync(CONLL_TRAIN, "utf8").split("\n")) {
    const word = line.trim().split(" ")[0];
    if (word === "" || word === "-DOCSTART-") {
      if (cur.length > 0) out.push(cur);
      cur = [];
      if (out.length >= maxSentences) break;
    } else cur.push(word);
  }
  if (cur.length > 0 && out.length < maxSentences) out.push(cur);
  return out;
}

describe("trainWordPiece", () => {
  const slice = haveConll ? conllSentences(4000) : [];

  itWithConll("builds specials, then the alphabet, then learned pieces", () => {
    const vocab = trainWordPiece(slice, { vocabSize: 2000 });
    expect(vocab.length).toBe(2000);
    expect(vocab.slice(0, 5)).toEqual([...DEFAULT_SPECIAL_TOKENS]);
    expect(new Set(vocab).size).toBe(vocab.length);
    // Alphabet: lowercase letters both as word starts and continuations, no uppercase (lowercase default).
    for (const ch of "abcxyz0189.,") {
      expect(vocab).toContain(ch);
      expect(vocab).toContain(`##${ch}`);
    }
    expect(vocab).not.toContain("A");
    const firstLearned = vocab.findIndex((t, i) => i >= 5 && [...t.replace(/^##/, "")].length > 1);
    expect(vocab.slice(firstLearned).every((t) => [...t.replace(/^##/, "")].length > 1)).toBe(true);
    // Frequent words become whole tokens.
    for (const w of ["the", "of", "said", "in"]) expect(vocab).toContain(w);
  });

  itWithConll("is deterministic and respects lowercase=false, minFrequency and custom specials", () => {
    const a = trainWordPiece(slice.slice(0, 500), { vocabSize: 600, lowercase: false });
    expect(trainWordPiece(slice.slice(0, 500), { vocabSize: 600, lowercase: false })).toEqual(a);
    expect(a).toContain("A");
    // A high threshold stops merging early.
    const sparse = trainWordPiece(slice.slice(0, 500), { vocabSize: 5000, minFrequency: 50 });
    expect(sparse.length).toBeLessThan(1000);
    const custom = trainWordPiece([["hello", "world"]], { vocabSize: 50, specialTokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[X]"], minFrequency: 1 });
    expect(custom.slice(0, 6)).toEqual(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[X]"]);
    expect(custom).toContain("hello");
    expect(() => trainWordPiece(slice, { vocabSize: 3 })).toThrow(NerEngineError);
  });

  itWithConll("writes HF tokenizer files that loadTokenizer reads back with few [UNK]s", () => {
    const vocab = trainWordPiece(slice, { vocabSize: 3000 });
    const dir = join(tempDir(), "tok");
    writeTokenizerFiles(dir, vocab, { lowercase: true });
    expect(readdirSync(dir).sort()).toEqual(["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]);
    expect(readFileSync(join(dir, "vocab.txt"), "utf8").split("\n").slice(0, -1)).toEqual(vocab);

    const json = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
    expect(json.version).toBe("1.0");
    expect(json.normalizer).toMatchObject({ type: "BertNormalizer", lowercase: true });
    expect(json.pre_tokenizer.type).toBe("BertPreTokenizer");
    expect(json.decoder).toMatchObject({ type: "WordPiece", prefix: "##" });
    expect(json.model).toMatchObject({ type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##", max_input_chars_per_word: 100 });
    expect(Object.keys(json.model.vocab)).toHaveLength(vocab.length);
    expect(json.added_tokens.map((t: { content: string; id: number }) => [t.content, t.id])).toEqual(DEFAULT_SPECIAL_TOKENS.map((t, i) => [t, i]));
    expect(json.post_processor.special_tokens["[CLS]"].ids).toEqual([vocab.indexOf("[CLS]")]);
    const config = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));
    expect(config).toMatchObject({ tokenizer_class: "BertTokenizer", do_lower_case: true, unk_token: "[UNK]" });
    expect(JSON.parse(readFileSync(join(dir, "special_tokens_map.json"), "utf8")).cls_token).toBe("[CLS]");

    for (const loaded of [loadTokenizer(dir), loadTokenizer(dir, {})]) {
      expect([loaded.padId, loaded.unkId, loaded.clsId, loaded.sepId, loaded.vocabSize]).toEqual([0, 1, 2, 3, 3000]);
      let unk = 0;
      let total = 0;
      for (const sentence of slice) {
        for (const w of sentence) {
          const ids = loaded.tokenizeWord(w);
          total++;
          if (ids.includes(loaded.unkId)) unk++;
        }
      }
      expect(unk / total).toBeLessThan(0.001);
    }
    // The vocab.txt-only path agrees with tokenizer.json on the written files.
    const viaVocab = join(tempDir(), "v");
    writeTokenizerFiles(viaVocab, vocab, { lowercase: true });
    rmSync(join(viaVocab, "tokenizer.json"));
    const a = loadTokenizer(dir);
    const b = loadTokenizer(viaVocab);
    for (const w of slice.slice(0, 300).flat()) expect(b.tokenizeWord(w)).toEqual(a.tokenizeWord(w));
    // Held-out words tokenize into known pieces too.
    const heldOut = conllSentences(6000).slice(5000).flat();
    const heldOutUnk = heldOut.filter((w) => a.tokenizeWord(w).includes(a.unkId)).length;
    expect(heldOutUnk / heldOut.length).toBeLessThan(0.005);
  });

  it("rejects vocabularies that cannot make a BERT tokenizer and leaves no temp files", () => {
    const dir = tempDir();
    expect(() => writeTokenizerFiles(dir, ["[PAD]", "[UNK]", "a"], { lowercase: true })).toThrow(/\[CLS\]/);
    expect(() => writeTokenizerFiles(dir, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "a"], { lowercase: true })).toThrow(/duplicate/);
    expect(() => writeTokenizerFiles(dir, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a\nb"], { lowercase: true })).toThrow(NerEngineError);
    writeTokenizerFiles(dir, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "##b"], { lowercase: false });
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    expect(existsSync(join(dir, "special_tokens_map.json"))).toBe(true);
    const tok = loadTokenizer(dir);
    expect(tok.tokenizeWord("ab").map((id) => tok.idToToken(id))).toEqual(["a", "##b"]);
    expect(tok.tokenizeWord("Ab")).toEqual([tok.unkId]); // cased: "A" is unknown
  });

  itWithConll("trains an 8000-token vocab on all of CoNLL-2003 train", () => {
    const all = conllSentences();
    expect(all.length).toBe(14041);
    const vocab = trainWordPiece(all, { vocabSize: 8000 });
    expect(vocab.length).toBe(8000);
    expect(new Set(vocab).size).toBe(8000);
    expect(vocab.slice(0, 5)).toEqual([...DEFAULT_SPECIAL_TOKENS]);
    // Frequent words of the whole corpus become whole tokens.
    for (const w of ["the", "of", "said", "in", "reuters"]) expect(vocab).toContain(w);
  });
});

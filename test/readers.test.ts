import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NerEngineError } from "../src/errors.js";
import { readAtis, readBio, readConll, readCorpus, readJson, readTextFile } from "../src/data/readers.js";
import type { Corpus } from "../src/data/types.js";
import { has, needs, SHARED_DATA } from "./helpers/shared.js";

const DATA = SHARED_DATA;
const DATA_SETS = ["conll2003", "mit_movie", "atis", "snips"].map((d) => join(DATA, d));

const tokenCount = (c: Corpus): number => c.sentences.reduce((n, s) => n + s.tokens.length, 0);

/** Run `fn`, require a NerEngineError, and return its message. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(NerEngineError);
    return (e as Error).message;
  }
  throw new Error("expected a NerEngineError, nothing was thrown");
}

describe.skipIf(!has(...DATA_SETS))(`shared data sets (${needs(...DATA_SETS)})`, () => {
  it.each([
    ["train.txt", 14041, 203621, 946],
    ["valid.txt", 3250, 51362, 216],
    ["test.txt", 3453, 46435, 231],
  ])("CoNLL-2003 %s: %i sentences, %i tokens, %i documents", (file, sentences, tokens, docs) => {
    const corpus = readConll(join(DATA, "conll2003", file));
    expect(corpus.sentences.length).toBe(sentences);
    expect(tokenCount(corpus)).toBe(tokens);
    for (const s of corpus.sentences) expect(s.tags.length).toBe(s.tokens.length);
    expect(corpus.sentences[0]!.docId).toBe(0);
    expect(corpus.sentences.at(-1)!.docId).toBe(docs - 1);
  });

  it("CoNLL-2003 first sentence and tag column", () => {
    const first = readConll(join(DATA, "conll2003/train.txt")).sentences[0]!;
    expect(first.tokens.slice(0, 3)).toEqual(["EU", "rejects", "German"]);
    expect(first.tags.slice(0, 3)).toEqual(["B-ORG", "O", "B-MISC"]);
    // Column 2 holds chunk tags, which are also B-/I- tags.
    const chunks = readConll(join(DATA, "conll2003/train.txt"), { tagColumn: 2 }).sentences[0]!;
    expect(chunks.tags.slice(0, 3)).toEqual(["B-NP", "B-VP", "B-NP"]);
  });

  it("CoNLL-2003 train reads the same every time (no state is carried from one read to the next)", () => {
    const path = join(DATA, "conll2003/train.txt");
    const first = readConll(path);
    const second = readConll(path);
    expect(second).not.toBe(first);
    expect(second.sentences.length).toBe(14041);
    expect(second).toEqual(first);
  });

  it.each([
    ["engtrain.bio.txt", 9775, "what", "O"],
    ["engtest.bio.txt", 2443, null, null],
    ["trivia10k13train.bio.txt", 7816, "steve", "B-Actor"],
    ["trivia10k13test.bio.txt", 1953, null, null],
  ])("MIT movie %s (token first): %i sentences", (file, count, token, tag) => {
    const corpus = readBio(join(DATA, "mit_movie", file));
    expect(corpus.sentences.length).toBe(count);
    if (token) expect(corpus.sentences[0]!.tokens[0]).toBe(token);
    if (tag) expect(corpus.sentences[0]!.tags[0]).toBe(tag);
  });

  it.each([
    ["trivia10k13train.bio", "trivia10k13train.bio.txt", 7816],
    ["trivia10k13test.bio", "trivia10k13test.bio.txt", 1953],
  ])("MIT movie raw_tag_first/%s (tag first, CRLF) equals the token-first copy", (raw, tokenFirst, count) => {
    const auto = readBio(join(DATA, "mit_movie/raw_tag_first", raw));
    const explicit = readBio(join(DATA, "mit_movie/raw_tag_first", raw), { order: "tag-token" });
    const reference = readBio(join(DATA, "mit_movie", tokenFirst));
    expect(auto.sentences.length).toBe(count);
    expect(auto.sentences).toEqual(explicit.sentences);
    expect(auto.sentences).toEqual(reference.sentences);
  });

  it.each([
    ["atis", "train", 4478],
    ["atis", "dev", 500],
    ["atis", "test", 893],
    ["snips", "train", 13084],
    ["snips", "dev", 700],
    ["snips", "test", 700],
  ] as const)("%s %s: %i utterances with intents", (set, split, count) => {
    const corpus = readAtis(join(DATA, set), split);
    expect(corpus.sentences.length).toBe(count);
    expect(corpus.intents.length).toBe(count);
    for (const s of corpus.sentences) {
      expect(s.tags.length).toBe(s.tokens.length);
      expect(s.tokens.every((t) => t.length > 0)).toBe(true);
    }
  });

  it("ATIS intents and the folder-itself layout", () => {
    const viaSplit = readAtis(join(DATA, "atis"), "train");
    const viaDir = readAtis(join(DATA, "atis/train"));
    expect(viaDir.sentences).toEqual(viaSplit.sentences);
    expect(new Set(viaSplit.intents).size).toBe(21);
    expect(viaSplit.intents).toContain("atis_flight#atis_airfare");
    const snips = readAtis(join(DATA, "snips"), "train");
    expect(snips.intents[0]).toBe("PlayMusic");
    expect(snips.sentences[0]!.tokens).toEqual(["listen", "to", "westbam", "alumb", "allergic", "on", "google", "music"]);
  });

  it("readCorpus dispatches on format", () => {
    expect(readCorpus(join(DATA, "conll2003/valid.txt"), "conll").sentences.length).toBe(3250);
    expect(readCorpus(join(DATA, "mit_movie/engtest.bio.txt"), "bio").sentences.length).toBe(2443);
    expect(readCorpus(join(DATA, "snips"), "atis", { split: "dev" }).intents.length).toBe(700);
  });
});

describe("malformed input", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "ner-readers-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, content: string | Uint8Array): string => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };

  it("CoNLL: wrong column count names file, line and counts", () => {
    const path = write("cols.conll", "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ O\n");
    const msg = errorOf(() => readConll(path));
    expect(msg).toContain("cols.conll:4");
    expect(msg).toContain("expected 4 columns, found 3");
  });

  it("CoNLL: bad tag names the tag, file and line", () => {
    const path = write("tag.conll", "EU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn BO\n");
    const msg = errorOf(() => readConll(path));
    expect(msg).toContain("tag.conll:5");
    expect(msg).toContain('"BO"');
  });

  it("CoNLL: docId increments at -DOCSTART-, tab separator option", () => {
    const path = write("docs.conll", "-DOCSTART-\tO\n\na b\tO\n\nc\tB-X\n-DOCSTART-\tO\nd\tI-Y\n");
    const corpus = readConll(path, { separator: "\t" });
    expect(corpus.sentences.map((s) => s.docId)).toEqual([0, 0, 1]);
    expect(corpus.sentences[0]!.tokens).toEqual(["a b"]);
  });

  it("empty file and blank-only file: no sentences", () => {
    for (const [name, read] of [
      ["empty.conll", readConll],
      ["empty.bio", readBio],
      ["empty.jsonl", readJson],
    ] as const) {
      const path = write(name, name === "empty.bio" ? "\n\r\n  \n" : "");
      const msg = errorOf(() => read(path));
      expect(msg).toContain(name);
      expect(msg).toContain("no sentences");
    }
  });

  it("non-UTF-8 bytes name file and line", () => {
    const bytes = Buffer.concat([Buffer.from("ok O\n\ncaf"), Buffer.from([0xe9]), Buffer.from(" O\n")]);
    const path = write("latin1.conll", bytes);
    const msg = errorOf(() => readConll(path));
    expect(msg).toContain("latin1.conll:3");
    expect(msg).toContain("UTF-8");
    expect(errorOf(() => readTextFile(path))).toContain("latin1.conll:3");
    // Valid multi-byte UTF-8 (and a BOM) reads fine.
    expect(readTextFile(write("ok.txt", "\uFEFFcafé 😀"))).toBe("café 😀");
  });

  it("nonexistent file names the path", () => {
    const msg = errorOf(() => readConll(join(dir, "missing.conll")));
    expect(msg).toContain("missing.conll");
    expect(msg).toContain("not found");
  });

  it("JSON lines: mismatched lengths name the line; ner_tags accepted", () => {
    const ok = write("ok.jsonl", '{"tokens":["a","b"],"ner_tags":["O","B-X"]}\n\n{"tokens":["c"],"tags":["S-Y"]}\n');
    expect(readJson(ok).sentences).toEqual([
      { tokens: ["a", "b"], tags: ["O", "B-X"] },
      { tokens: ["c"], tags: ["S-Y"] },
    ]);
    const bad = write("bad.jsonl", '{"tokens":["a"],"tags":["O"]}\n{"tokens":["a","b"],"tags":["O"]}\n');
    const msg = errorOf(() => readJson(bad));
    expect(msg).toContain("bad.jsonl:2");
    expect(msg).toContain("2 tokens but 1 tags");
  });

  it("JSON array: mismatched lengths name the record index", () => {
    const path = write("arr.json", JSON.stringify([{ tokens: ["a"], tags: ["O"] }, { tokens: ["a"], tags: [] }], null, 2));
    const msg = errorOf(() => readJson(path));
    expect(msg).toContain("arr.json");
    expect(msg).toContain("record 1");
    expect(readJson(write("arr2.json", '[{"tokens":["x"],"tags":["B-A"]}]')).sentences.length).toBe(1);
  });

  it("invalid JSON names the line (array and lines)", () => {
    const arr = write("broken.json", '[\n  {"tokens": ["a"], "tags": ["O"]},\n  {"tokens": }\n]\n');
    expect(errorOf(() => readJson(arr))).toContain("broken.json:3");
    const lines = write("broken.jsonl", '{"tokens":["a"],"tags":["O"]}\n{"tokens":["a"],\n');
    expect(errorOf(() => readJson(lines))).toContain("broken.jsonl:2");
    const integerTags = write("ints.jsonl", '{"tokens":["a"],"ner_tags":[0]}\n');
    expect(errorOf(() => readJson(integerTags))).toContain("ints.jsonl:1");
  });

  it("BIO: CRLF, tag-first auto detection, wrong column count", () => {
    const tagFirst = write("tf.bio", "B-Actor\tsteve\r\nI-Actor\tmcqueen\r\n\r\nO\tok\r\n");
    expect(readBio(tagFirst).sentences).toEqual([
      { tokens: ["steve", "mcqueen"], tags: ["B-Actor", "I-Actor"] },
      { tokens: ["ok"], tags: ["O"] },
    ]);
    const bad = write("bad.bio", "steve B-Actor\nmcqueen\n");
    const msg = errorOf(() => readBio(bad));
    expect(msg).toContain("bad.bio:2");
    expect(msg).toContain("expected 2 columns, found 1");
    const badTag = write("badtag.bio", "steve B-Actor\nmcqueen Actor\n");
    expect(errorOf(() => readBio(badTag, { order: "token-tag" }))).toContain("badtag.bio:2");
  });

  it("ATIS: missing file names the path; token count mismatch names file:line", () => {
    const folder = join(dir, "atis_missing", "train");
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, "seq.in"), "a b\n");
    writeFileSync(join(folder, "seq.out"), "O O\n");
    const msg = errorOf(() => readAtis(join(dir, "atis_missing"), "train"));
    expect(msg).toContain(join(folder, "label"));
    expect(msg).toContain("not found");

    writeFileSync(join(folder, "label"), "x\ny\n");
    writeFileSync(join(folder, "seq.in"), "a b\nc d e \n");
    writeFileSync(join(folder, "seq.out"), "O O \nO B-X\n");
    const mismatch = errorOf(() => readAtis(folder));
    expect(mismatch).toContain(`${join(folder, "seq.out")}:2`);
    expect(mismatch).toContain("2 tags for 3 tokens");

    const noSplit = errorOf(() => readAtis(join(dir, "atis_missing"), "dev"));
    expect(noSplit).toContain(join(dir, "atis_missing", "dev"));
  });
});

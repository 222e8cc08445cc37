/**
 * Engine.predict against HF's TokenClassificationPipeline (shared/fixtures/pipeline-aggregation.json:
 * transformers 4.32 run end to end on tiny-bert-ner/ and tiny-bert-ner-confident/), code point / UTF-16
 * offsets, and the predict contract (texts, batches, pre-split words, long texts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import path from "node:path";
import { Engine } from "../src/app/engine.js";
import type { GroupedEntity, PipelineEntity, TokenEntity } from "../src/app/pipeline.js";
import { AGGREGATIONS } from "../src/app/pipeline.js";
import { pretokenize } from "../src/data/alignment.js";
import { codePointIndex, encodeText } from "../src/text/offsets.js";
import { SHARED_FIXTURES, has, needs } from "./helpers/shared.js";

const FIXTURE = path.join(SHARED_FIXTURES, "pipeline-aggregation.json");
const MODELS = [path.join(SHARED_FIXTURES, "tiny-bert-ner"), path.join(SHARED_FIXTURES, "tiny-bert-ner-confident")];
const present = has(FIXTURE, ...MODELS);
const title = (t: string) => (present ? t : `${t} (${needs(FIXTURE, ...MODELS)})`);

interface Case {
  name: string;
  text: string;
  input_ids?: number[];
  offsets?: [number, number][];
  stride?: number;
  windows?: { input_ids: number[]; offsets: [number, number][] }[];
  outputs: Record<string, PipelineEntity[]>;
  errors?: Record<string, string>;
}

/** Python's text[start:end]. */
const pySlice = (text: string, start: number, end: number): string => Array.from(text).slice(start, end).join("");

function expectSameEntities(got: PipelineEntity[], want: PipelineEntity[], where: string): void {
  const label = (e: PipelineEntity) => ("entity" in e ? (e as TokenEntity).entity : (e as GroupedEntity).entity_group);
  const shape = (list: PipelineEntity[]) => list.map((e) => ({ label: label(e), word: e.word, start: e.start, end: e.end, index: "index" in e ? e.index : undefined }));
  expect(shape(got), where).toEqual(shape(want));
  got.forEach((e, i) => expect(Math.abs(e.score - want[i].score), `${where}: score of entity ${i}`).toBeLessThan(1e-5)); // the fixture README's tolerance (the issue asks 1e-4); measured: < 2e-6
}

describe.skipIf(!present)(title("HF TokenClassificationPipeline parity (pipeline-aggregation.json)"), () => {
  let fixture: { cases: Case[]; variants: { model_dir: string; cases: Case[] }[] };
  const engines: Engine[] = [];
  beforeAll(async () => {
    fixture = JSON.parse(readFileSync(FIXTURE, "utf8"));
    for (const dir of MODELS) engines.push(await Engine.load(dir, { device: "cpu" }));
  });
  afterAll(() => engines.forEach((e) => e.dispose()));
  const casesOf = (m: number): Case[] => (m === 0 ? fixture.cases : fixture.variants[0].cases);

  it("sub-tokens and code point offsets of the raw texts equal the fast tokenizer's", () => {
    const tokenizer = engines[0].model!.tokenizer;
    for (const c of fixture.cases) {
      if (!c.input_ids || c.name === "long_truncated") continue;
      const cp = codePointIndex(c.text);
      const { tokens } = encodeText(tokenizer, c.text);
      expect(tokens.map((t) => t.id), c.name).toEqual(c.input_ids.slice(1, -1));
      expect(tokens.map((t) => [cp[t.start], cp[t.end]]), c.name).toEqual(c.offsets!.slice(1, -1));
    }
  });

  for (const [m, model] of ["tiny-bert-ner", "tiny-bert-ner-confident"].entries()) {
    it(`every strategy equals HF's on every text [${model}]`, async () => {
      const engine = engines[m];
      let compared = 0;
      for (const c of casesOf(m)) {
        // HF truncates a long text to its first window: that is our output on the text that window holds.
        const text = c.name === "long_truncated" ? pySlice(c.text, 0, c.offsets!.at(-2)![1]) : c.text;
        for (const aggregation of AGGREGATIONS) {
          const where = `${model} ${c.name} ${aggregation}`;
          if (c.errors?.[aggregation]) continue; // "none" with stride: HF raises (here: one entity per token, tested below)
          const got = await engine.predict(text, { aggregation, stride: c.stride });
          expectSameEntities(got, c.outputs[aggregation], where);
          compared++;
        }
      }
      expect(compared).toBe(casesOf(m).length * 5 - 1);
    });

    it(`a batch of texts gives what each text gives alone [${model}]`, async () => {
      const cases = casesOf(m).filter((c) => !c.windows && c.name !== "long_truncated");
      const batch = await engines[m].predict(cases.map((c) => c.text), { aggregation: "average" });
      expect(batch).toHaveLength(cases.length);
      batch.forEach((entities, i) => expectSameEntities(entities, cases[i].outputs.average, `${model} batch ${cases[i].name}`));
    });
  }

  it('"none" over several windows reports every token once, from the window it is most central in', async () => {
    const c = fixture.cases.find((x) => x.windows)!;
    const tokens = encodeText(engines[0].model!.tokenizer, c.text).tokens;
    const all = await engines[0].predict(c.text, { aggregation: "none", stride: c.stride, ignoreLabels: [] });
    expect(all.map((e) => e.index)).toEqual(tokens.map((_, i) => i + 1));
    const cp = codePointIndex(c.text);
    expect(all.map((e) => [e.start, e.end])).toEqual(tokens.map((t) => [cp[t.start], cp[t.end]]));
    // Tokens of the first window before the overlap come from it: HF's scores for them.
    const first = c.outputs.simple.filter((g) => g.end <= 400 && !g.word.includes(" "));
    for (const g of first) {
      const token = all.find((e) => e.start === g.start && e.end === g.end);
      if (token && token.word === g.word) expect(Math.abs(token.score - g.score)).toBeLessThan(1e-4);
    }
  });

  it("ignoreLabels and UTF-16 offsets", async () => {
    const c = fixture.cases.find((x) => x.name === "emoji_before_entity")!;
    const engine = engines[0];
    const all = await engine.predict(c.text, { aggregation: "simple", ignoreLabels: [] });
    expect(all.length).toBeGreaterThanOrEqual(c.outputs.simple.length);
    const noLoc = await engine.predict(c.text, { aggregation: "simple", ignoreLabels: ["O", "LOC"] });
    expect(noLoc).toEqual(c.outputs.simple.filter((g) => (g as GroupedEntity).entity_group !== "LOC").map((g, i) => ({ ...g, score: noLoc[i].score })));
    const utf16 = await engine.predict(c.text, { aggregation: "simple", offsets: "utf16" });
    const cp = codePointIndex(c.text);
    utf16.forEach((e, i) => {
      expect(cp[e.start]).toBe(c.outputs.simple[i].start);
      expect(cp[e.end]).toBe(c.outputs.simple[i].end);
    });
    // 😀 is one code point and two UTF-16 units.
    for (const [i, e] of utf16.entries()) if (c.outputs.simple[i].start >= 1) expect(e.start).toBe(c.outputs.simple[i].start + 1);
  });
});

describe.skipIf(!present)(title("offsets and the predict contract"), () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await Engine.load(MODELS[0], { device: "cpu" });
  });
  afterAll(() => engine.dispose());

  const TEXTS = {
    emoji: "😀 Angela Merkel 👩‍💻 met Barack😀Obama in 🇫🇷 Paris 👍🏽.",
    combining: "José Müller (decomposed: Jose\u0301 Mu\u0308ller) visited Zürich.",
    cjk: "習近平在北京會見了普京。Alibaba 阿里巴巴 𠮷野家",
    rtl: "محمد بن سلمان visited ירושלים and Москва.",
    crlf: "Microsoft\r\nCorporation\r\n\r\nRedmond, Washington\r\n",
  };

  it("our format: slicing the text in code points gives every word and entity; utf16 offsets slice JS strings", async () => {
    for (const [name, text] of Object.entries(TEXTS)) {
      const r = await engine.predict(text);
      expect(r.words.map((w) => w.word), name).toEqual(pretokenize(text).map((w) => w.word));
      expect(r.entities.length, name).toBeGreaterThan(0);
      for (const w of r.words) expect(pySlice(text, w.start!, w.end!), name).toBe(w.word);
      for (const e of r.entities) expect(pySlice(text, e.start!, e.end!), name).toBe(e.text);
      const u = await engine.predict(text, { offsets: "utf16" });
      for (const w of u.words) expect(text.slice(w.start, w.end), name).toBe(w.word);
      for (const e of u.entities) expect(text.slice(e.start, e.end), name).toBe(e.text);
      expect(u.words.map((w) => w.tag)).toEqual(r.words.map((w) => w.tag));
    }
  });

  it("HF formats: every entity's span slices (in code points) to the text its tokens stand for", async () => {
    const tokenizer = engine.model!.tokenizer;
    for (const [name, text] of Object.entries(TEXTS)) {
      const tokens = await engine.predict(text, { aggregation: "none", ignoreLabels: [] });
      const enc = encodeText(tokenizer, text).tokens;
      expect(tokens).toHaveLength(enc.length);
      tokens.forEach((t, i) => {
        expect(pySlice(text, t.start, t.end), name).toBe(text.slice(enc[i].start, enc[i].end));
        // [UNK] words are the original text; others are the vocabulary's (lowercased, accents stripped) pieces.
        if (enc[i].id === tokenizer.unkId) expect(t.word).toBe(pySlice(text, t.start, t.end));
      });
      for (const g of await engine.predict(text, { aggregation: "first", ignoreLabels: [] })) {
        expect(g.start).toBeLessThan(g.end);
        expect(pySlice(text, g.start, g.end).trim().length, name).toBeGreaterThan(0);
      }
    }
  });

  it("predict(text) gives one result, predict(texts) one per text, predictWords takes pre-split sentences", async () => {
    const one = await engine.predict("Angela Merkel visited Paris.");
    expect(one.words.map((w) => w.word)).toEqual(["Angela", "Merkel", "visited", "Paris", "."]);
    const many = await engine.predict(["Angela Merkel visited Paris.", "", "EU rejects German call"]);
    expect(many).toHaveLength(3);
    // Batched with others (padded), scores move in the 8th decimal.
    const rounded = (r: typeof one) => JSON.parse(JSON.stringify(r, (k, v) => (k === "score" ? Number(v.toFixed(5)) : v)));
    expect(rounded(many[0])).toEqual(rounded(one));
    expect(many[1]).toEqual({ words: [], entities: [] });
    const words = await engine.predictWords([["Angela", "Merkel", "visited", "Paris", "."], [], ["EU", "rejects", "German", "call"]]);
    expect(words.map((r) => r.words.map((w) => w.tag))).toEqual(many.map((r) => r.words.map((w) => w.tag)));
    expect(words[0].words[0].start).toBeUndefined();
    expect(words[0].entities.map((e) => e.text)).toEqual(one.entities.map((e) => one.words.slice(e.startWord, e.endWord).map((w) => w.word).join(" ")));
    expect(await engine.predict([])).toEqual([]);
    expect(await engine.predictWords([])).toEqual([]);
  });

  it("arguments that are ambiguous or wrong are refused with a message", async () => {
    const fail = (p: Promise<unknown>) => p.then(() => "resolved", (e: Error) => e.message);
    expect(await fail(engine.predict([["EU", "rejects"]] as unknown as string[]))).toContain("texts[0] is an array: predict takes raw texts; for pre-split words call predictWords");
    expect(await fail(engine.predictWords(["EU", "rejects"] as unknown as string[][]))).toContain("sentence 0 is a string");
    expect(await fail(engine.predictWords("EU rejects" as unknown as string[][]))).toContain("for raw text call predict(text)");
    expect(await fail(engine.predict("x", { aggregation: "grouped" as "simple" }))).toContain('options.aggregation must be one of "none", "simple"');
    expect(await fail(engine.predict("x", { aggregation_strategy: "simple" } as object))).toContain('HF\'s aggregation_strategy is "aggregation" here');
    expect(await fail(engine.predict("x", { offsets: "bytes" as "utf16" }))).toContain('options.offsets must be "codepoints" or "utf16"');
    expect(await fail(engine.predict("x", { ignoreLabels: ["O"] }))).toContain("set options.aggregation too");
    expect(await fail(engine.predict("x", { stride: 126 }))).toContain("stride must be an integer in [0, 125]");
    expect(await fail(engine.predictWords([["x"]], { aggregation: "simple" } as object))).toContain('unknown option "aggregation" (predict(texts) takes it');
  });

  it("CRF heads: the HF formats follow the Viterbi path, scored by its marginals", async () => {
    const crf = new Engine({ model: MODELS[0], head: { kind: "crf" }, device: "cpu", training: { epochs: 1, maxSteps: 1, batchSize: 2 } });
    const sentences = [["Angela", "Merkel", "visited", "Paris"], ["EU", "rejects", "German", "call"]];
    await crf.fit({ train: { sentences: [{ tokens: sentences[0], tags: ["B-PER", "I-PER", "O", "B-LOC"] }, { tokens: sentences[1], tags: ["B-ORG", "O", "B-MISC", "O"] }] } });
    const text = "Angela Merkel visited Paris, and the EU rejects German calls.";
    const own = await crf.predict(text);
    const tokens = await crf.predict(text, { aggregation: "none", ignoreLabels: [] });
    const enc = encodeText(crf.model!.tokenizer, text).tokens;
    tokens.forEach((t, i) => {
      expect(t.entity).toBe(own.words[enc[i].word].tag);
      expect(t.score).toBeCloseTo(own.words[enc[i].word].score, 6);
    });
    const first = await crf.predict(text, { aggregation: "first" });
    const average = await crf.predict(text, { aggregation: "average" });
    expect(average.map((g) => [g.entity_group, g.start, g.end])).toEqual(first.map((g) => [g.entity_group, g.start, g.end]));
    crf.dispose();
  });

  it("a long text is windowed with stride and merged back: every word tagged, nothing truncated", async () => {
    const sentence = "Angela Merkel met Emmanuel Macron in Paris on Monday , said a spokesman for the Élysée .";
    const text = Array.from({ length: 30 }, () => sentence).join(" "); // ~600 sub-tokens: 5+ windows
    const split = pretokenize(text);
    const r = await engine.predict(text);
    expect(r.words).toHaveLength(split.length);
    expect(r.words.every((w) => w.score > 0 && w.score < 1)).toBe(true); // predicted (1 = no window saw it)
    const asWords = await engine.predictWords([split.map((w) => w.word)]);
    expect(asWords[0].words.map((w) => w.tag)).toEqual(r.words.map((w) => w.tag));
    // A word far from any window edge sees the same context whatever the stride: same tag.
    const wider = await engine.predict(text, { stride: 60 });
    expect(wider.words).toHaveLength(split.length);
    // HF formats: every sub-token once ("none"), groups that cover the text from start to end.
    const tokens = encodeText(engine.model!.tokenizer, text).tokens;
    const none = await engine.predict(text, { aggregation: "none", ignoreLabels: [] });
    expect(none.map((t) => t.index)).toEqual(tokens.map((_, i) => i + 1));
    const groups = await engine.predict(text, { aggregation: "max", ignoreLabels: [] });
    expect(groups[0].start).toBe(0);
    expect(groups.at(-1)!.end).toBe(Array.from(text).length);
    for (let i = 1; i < groups.length; i++) expect(groups[i].start).toBeGreaterThanOrEqual(groups[i - 1].end);
  });
});

/**
 * Concurrency and memory. Calls on one engine queue (first come, first served) and each settles as
 * it would have alone; fit() waits for the calls made before it and refuses those made during it; a
 * failing call does not stop the queue. Memory: the tokenizer's word cache is bounded, and many
 * predicts of never-seen words leave RSS and heap flat (scripts/check-memory.mjs, in a child process
 * with --expose-gc). Tiny models from scratch, as in faults.test.ts.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Engine, type PredictionResult } from "../src/app/engine.js";
import type { EngineConfigInput } from "../src/app/config.js";
import { nativeDataset } from "../src/model/tagger.js";
import { demoCorpus } from "../src/app/demo.js";
import type { Corpus } from "../src/data/types.js";
import { loadTokenizer, WORD_CACHE_SIZE } from "../src/text/tokenizer.js";
import { trainWordPiece, writeTokenizerFiles } from "../src/text/vocab.js";
import { TINY_BERT } from "./helpers/checkpoints.js";

const tmpRoot = mkdtempSync(path.join(tmpdir(), "ner-concurrency-"));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

let train: Corpus;
let dev: Corpus;
let tokenizerDir: string;
/** Trained once; the tests only predict with it (a fit gets its own engine). */
let engine: Engine;

/** A 1-layer, 32-wide BERT from scratch (faults.test.ts's tinyConfig). */
function tinyConfig(training: NonNullable<EngineConfigInput["training"]> = {}): EngineConfigInput {
  return {
    tokenizer: tokenizerDir,
    device: "cpu",
    scratch: { hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 64, maxPositionEmbeddings: 64 },
    head: { kind: "softmax" },
    data: { maxLength: 48 },
    training: { epochs: 1, batchSize: 8, learningRate: 1e-3, progressEvery: 1, seed: 3, ...training },
  };
}

beforeAll(async () => {
  const all = demoCorpus().train;  // generated: the suite runs on a clone without ../shared
  train = { source: all.source, sentences: all.sentences.slice(0, 120) };
  dev = { source: all.source, sentences: all.sentences.slice(120, 160) };
  tokenizerDir = path.join(tmpRoot, "vocab");
  writeTokenizerFiles(tokenizerDir, trainWordPiece(train.sentences.map((s) => s.tokens), { vocabSize: 400, lowercase: false }), { lowercase: false });
  engine = new Engine(tinyConfig());
  await engine.fit({ train, dev });
});

/** Predict inputs of every shape: raw text, texts, pre-split sentences (one empty), words never seen. */
const inputs: (string | string[] | string[][])[] = [
  "EU rejects German call to boycott British lamb.",
  [["Peter", "Blackburn"]],
  [["BRUSSELS", "1996-08-22"], [], ["The", "European", "Commission", "said", "on", "Thursday"]],
  "Germany 's representative to the European Union 's veterinary committee Werner Zwingmann said",
  ["Zyxwv Qwertyuiop", "", "Asdfgh ."],
  [["Rare", "words", "like", "Oxyphenbutazone"]],
  "",
  [["Spanish", "Farm", "Minister", "Loyola", "de", "Palacio"]],
  [Array.from({ length: 30 }, (_, i) => `w${i}`)], // more sub-tokens than one 48-token window holds
  [["Fischler"], ["proposed"], ["EU-wide"], ["measures"]],
];

/** predict(text) / predict(texts) / predictWords(sentences) by the input's shape, as a list of results. */
function predictAny(e: Engine, input: string | string[] | string[][]): Promise<PredictionResult[]> {
  if (typeof input === "string") return e.predict(input).then((r) => [r]);
  return input.length > 0 && Array.isArray(input[0]) ? e.predictWords(input as string[][]) : e.predict(input as string[]);
}

describe("concurrent calls on one engine", () => {
  it("the native tagger alone takes one call at a time (what the queue is for)", async () => {
    const tagger = engine.model!;
    const data = nativeDataset(tagger.encode([{ tokens: ["EU", "rejects"], tags: ["O", "O"] }]), false);
    const first = tagger.native.predict(data, { batchSize: 8, bf16: false });
    expect(() => tagger.native.predict(data, { batchSize: 8, bf16: false })).toThrow(/busy/);
    await first;
  });

  it("10 concurrent predicts are all fulfilled, each equal to the same call made alone", async () => {
    const alone = [];
    for (const input of inputs) alone.push(await predictAny(engine, input));
    const settled = await Promise.allSettled(inputs.map((input) => predictAny(engine, input)));
    expect(settled.map((s) => s.status)).toEqual(inputs.map(() => "fulfilled"));
    expect(settled.map((s) => (s as PromiseFulfilledResult<unknown>).value)).toEqual(alone);
    // ... and again, 10 copies of one call.
    const same = await Promise.all(inputs.map(() => predictAny(engine, inputs[0])));
    for (const result of same) expect(result).toEqual(alone[0]);
  });

  it("mixed predict / evaluate / forward / save concurrently: all fulfilled, in call order, equal to the calls alone", async () => {
    const ids = [[2, 10, 11, 12, 3], [2, 20, 3, 0, 0]];
    const mask = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]];
    const withoutTimes = ({ seconds: _s, sentencesPerSecond: _r, ...rest }: Awaited<ReturnType<Engine["evaluate"]>>) => rest;
    const saved = (dir: string) => Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(path.join(dir, f))]));
    const calls: { name: string; run: () => Promise<unknown>; compare: (v: unknown) => unknown }[] = [
      { name: "predict", run: () => predictAny(engine, inputs[0]), compare: (v) => v },
      { name: "evaluate", run: () => engine.evaluate(dev), compare: (v) => withoutTimes(v as Awaited<ReturnType<Engine["evaluate"]>>) },
      { name: "forward", run: () => engine.forward({ inputIds: ids, attentionMask: mask }), compare: (v) => v },
      { name: "save", run: () => engine.save(path.join(tmpRoot, "saved")).then(() => saved(path.join(tmpRoot, "saved"))), compare: (v) => v },
      { name: "forward+labels", run: () => engine.forward({ inputIds: ids, attentionMask: mask, labels: [[-100, 1, 0, 2, -100], [-100, 0, -100, -100, -100]] }), compare: (v) => v },
      { name: "predict 2", run: () => predictAny(engine, inputs[2]), compare: (v) => v },
      { name: "evaluate IOB1", run: () => engine.evaluate(dev, { tagScheme: "IOB1" }), compare: (v) => withoutTimes(v as Awaited<ReturnType<Engine["evaluate"]>>) },
      { name: "predict 3", run: () => predictAny(engine, inputs[8]), compare: (v) => v },
    ];
    const alone = [];
    for (const c of calls) alone.push(c.compare(await c.run()));
    rmSync(path.join(tmpRoot, "saved"), { recursive: true });
    const order: string[] = [];
    const together = await Promise.all(calls.map((c) => c.run().then((v) => (order.push(c.name), c.compare(v)))));
    expect(order).toEqual(calls.map((c) => c.name));
    calls.forEach((c, i) => expect(together[i], c.name).toEqual(alone[i]));
    // The saved copy is the model: loaded, it predicts what the engine does.
    const loaded = await Engine.load(path.join(tmpRoot, "saved"), { device: "cpu" });
    expect(await predictAny(loaded, inputs[0])).toEqual(alone[0]);
    loaded.dispose();
  });

  it("a call that fails in the queue fails alone: the calls behind it are still served", async () => {
    const before = await predictAny(engine, inputs[1]);
    const settled = await Promise.allSettled([
      predictAny(engine, inputs[1]),
      engine.forward({ inputIds: [[2, 1_000_000, 3]], attentionMask: [[1, 1, 1]] }),
      engine.evaluate({ source: "empty.txt", sentences: [] }),
      engine.save(path.join(tmpRoot, "no", "\0bad")),
      predictAny(engine, inputs[1]),
    ]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled", "rejected", "fulfilled"]);
    expect(String((settled[1] as PromiseRejectedResult).reason)).toMatch(/vocabulary/);
    expect((settled[0] as PromiseFulfilledResult<unknown>).value).toEqual(before);
    expect((settled[4] as PromiseFulfilledResult<unknown>).value).toEqual(before);
  });

  it("fit waits for the calls made before it; calls made during it are refused as busy; afterwards all are served", async () => {
    const trained = new Engine(tinyConfig({ seed: 5 }));
    await trained.fit({ train, dev });
    const queries = inputs.slice(0, 5);
    const beforeFit = [];
    for (const q of queries) beforeFit.push(await predictAny(trained, q));
    // Five predicts are queued, then fit: they are served first, by the weights from before the fit.
    const queued = queries.map((q) => predictAny(trained, q));
    const during: Promise<PromiseSettledResult<unknown>>[] = [];
    const attempt = (...calls: Promise<unknown>[]) => void during.push(...calls.map((c) => Promise.allSettled([c]).then(([r]) => r)));
    const fitting = trained.fit({ train, dev }, {
      // Between epochs (the native worker idle) and during them alike.
      onEpoch: () => attempt(predictAny(trained, inputs[0]), trained.evaluate(dev), trained.save(path.join(tmpRoot, "never"))),
      onProgress: (p) => void (p.step === 1 && attempt(trained.forward({ inputIds: [[2, 3]], attentionMask: [[1, 1]] }))),
    });
    attempt(predictAny(trained, inputs[0]));
    expect(await Promise.all(queued)).toEqual(beforeFit);
    const history = await fitting;
    expect(history.epochs).toHaveLength(1);
    expect(history.epochs[0].dev).toBeDefined(); // the fit's own evaluation is not refused
    const refused = await Promise.all(during);
    expect(refused).toHaveLength(5);
    for (const r of refused) {
      expect(r.status).toBe("rejected");
      expect(String((r as PromiseRejectedResult).reason)).toMatch(/busy.*a fit is running/);
    }
    expect(existsSync(path.join(tmpRoot, "never"))).toBe(false);
    // Once fit has settled, calls are served again, by the new weights.
    const afterFit = await Promise.all(queries.map((q) => predictAny(trained, q)));
    expect(afterFit.map((r) => r.map((s) => s.words.length))).toEqual(beforeFit.map((r) => r.map((s) => s.words.length)));
    expect(afterFit).not.toEqual(beforeFit);
    trained.dispose();
  });
});

describe("memory", () => {
  it("the word cache is bounded, keeps the words in use, and gives what an uncached tokenizer does", () => {
    const small = loadTokenizer(tokenizerDir, { cacheSize: 1000 });
    const none = loadTokenizer(tokenizerDir, { cacheSize: 0 });
    expect(loadTokenizer(tokenizerDir).cacheSize).toBe(WORD_CACHE_SIZE);
    for (let i = 0; i < 10_000; i++) {
      const word = `unseen${i}x`;
      expect(small.tokenizeWord(word)).toEqual(none.tokenizeWord(word));
      expect(small.tokenizeWord("Germany")).toEqual(none.tokenizeWord("Germany")); // used all the time
      expect(small.cachedWords).toBeLessThanOrEqual(1000);
    }
    expect(small.cachedWords).toBeGreaterThan(500);
    expect(none.cachedWords).toBe(0);
    // The hot word survived every rotation: it is still the very array cached for it.
    expect(small.tokenizeWord("Germany")).toBe(small.tokenizeWord("Germany"));
    expect(() => loadTokenizer(tokenizerDir, { cacheSize: -1 })).toThrow(/cacheSize must be a non-negative integer/);
  });

  it("an engine's tokenizer stays within its cache size over many predicts of new words", async () => {
    const tokenizer = engine.model!.tokenizer;
    tokenizer.cacheSize = 2000;
    for (let call = 0; call < 500; call++) await predictAny(engine, Array.from({ length: 8 }, (_, i) => `new${call}w${i}`));
    expect(tokenizer.cachedWords).toBeGreaterThan(1000);
    expect(tokenizer.cachedWords).toBeLessThanOrEqual(2000);
    tokenizer.cacheSize = WORD_CACHE_SIZE;
  });

  const script = path.resolve(import.meta.dirname, "../scripts/check-memory.mjs");
  const built = path.resolve(import.meta.dirname, "../dist/index.js");
  it.skipIf(!existsSync(TINY_BERT) || !existsSync(built))(`10,000 predicts of new words: RSS grows < 5% from call 1,000 on (scripts/check-memory.mjs; needs ${TINY_BERT} and dist/)`, () => {
    // A child process: it needs --expose-gc (full GCs before each reading) and a fixed V8 young generation.
    const child = spawnSync(process.execPath, [script, "--model", TINY_BERT, "--calls", "10000", "--from", "1000"], {
      encoding: "utf8",
      env: { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1" },
    });
    expect(child.stderr).toBe("");
    const report = JSON.parse(child.stdout.trim().split("\n").at(-1)!);
    expect(report.cachedWords).toBeLessThanOrEqual(report.cacheSize);
    expect(report.rssGrowthPercent).toBeLessThan(5);
    expect(report.heapGrowthPercent).toBeLessThan(10); // an unbounded cache: about +90%
  });
});

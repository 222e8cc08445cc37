import { cpSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { Engine, type TrainProgress } from "../src/app/engine.js";
import type { EngineConfigInput } from "../src/app/config.js";
import { readConll } from "../src/data/readers.js";
import type { Corpus } from "../src/data/types.js";
import { trainWordPiece, writeTokenizerFiles } from "../src/text/vocab.js";
import { SHARED } from "./helpers/checkpoints.js";
import { has, needs } from "./helpers/shared.js";

const CONLL = path.join(SHARED, "data/conll2003");
const NEEDS = [path.join(CONLL, "train.txt"), path.join(CONLL, "valid.txt")];
let train: Corpus, dev: Corpus, tokenizerDir: string;

function slice(corpus: Corpus, n: number): Corpus {
  return { source: corpus.source, sentences: corpus.sentences.slice(0, n) };
}

beforeAll(() => {
  if (!has(...NEEDS)) return;
  train = slice(readConll(path.join(CONLL, "train.txt")), 1600);
  dev = slice(readConll(path.join(CONLL, "valid.txt")), 300);
  tokenizerDir = mkdtempSync(path.join(tmpdir(), "ner-vocab-"));
  writeTokenizerFiles(tokenizerDir, trainWordPiece(train.sentences.map((s) => s.tokens), { vocabSize: 3000, lowercase: false }), { lowercase: false });
});

function tinyConfig(head: "softmax" | "crf" | "bilstm-crf" | "bilstm-attn-crf", overrides: Partial<EngineConfigInput["training"]> = {}): EngineConfigInput {
  return {
    tokenizer: tokenizerDir,
    device: "cpu",
    scratch: { hiddenSize: 64, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 128, maxPositionEmbeddings: 128, hiddenDropoutProb: 0.1 },
    head: { kind: head, lstmHiddenSize: 32, attentionHeads: 2, learningRate: 5e-3 },
    data: { maxLength: 64 },
    training: { epochs: 1, batchSize: 16, learningRate: 2e-3, warmupRatio: 0.05, progressEvery: 10, seed: 7, ...overrides },
  };
}

describe.skipIf(!has(...NEEDS))(`training from scratch on a CoNLL-2003 slice (${needs(...NEEDS)})`, () => {
  it("bilstm-crf: loss falls and dev F1 rises above 0.35 in 300 steps", async () => {
    const engine = new Engine(tinyConfig("bilstm-crf", { epochs: 3 }));
    const progress: TrainProgress[] = [];
    const history = await engine.fit({ train, dev }, { onProgress: (p) => progress.push(p) });
    expect(history.epochs).toHaveLength(3);
    expect(progress.at(-1)!.step).toBe(progress.at(-1)!.totalSteps);
    expect(progress.at(-1)!.step).toBeGreaterThanOrEqual(300);
    const early = progress.slice(0, 2).reduce((s, p) => s + p.loss, 0) / 2;
    const late = progress.slice(-3).reduce((s, p) => s + p.loss, 0) / 3;
    expect(late).toBeLessThan(early * 0.6);
    const f1 = history.epochs.map((e) => e.dev!.report.micro.f1);
    console.log(`bilstm-crf dev F1 per epoch: ${f1.map((x) => x.toFixed(3)).join(", ")}; loss ${early.toFixed(2)} -> ${late.toFixed(2)}`);
    expect(Math.max(...f1)).toBeGreaterThan(0.35);
    expect(f1.at(-1)!).toBeGreaterThan(f1[0]);
  });

  it("softmax: loss falls over an epoch", async () => {
    const engine = new Engine(tinyConfig("softmax"));
    const progress: TrainProgress[] = [];
    await engine.fit({ train }, { onProgress: (p) => progress.push(p) });
    expect(progress.at(-1)!.loss).toBeLessThan(progress[0].loss * 0.7);
  });

  it("the same seed gives the same losses, run after run; another seed does not", async () => {
    const losses = async (seed: number) => {
      const engine = new Engine(tinyConfig("crf", { seed, maxSteps: 30, progressEvery: 5 }));
      const seen: number[] = [];
      await engine.fit({ train: slice(train, 600) }, { onProgress: (p) => seen.push(p.loss) });
      return seen;
    };
    const a = await losses(3);
    const b = await losses(3);
    const c = await losses(4);
    expect(a.length).toBe(6);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it("resuming from an epoch's checkpoint repeats the uninterrupted run exactly", async () => {
    const out = mkdtempSync(path.join(tmpdir(), "ner-resume-"));
    const afterFirstEpoch = mkdtempSync(path.join(tmpdir(), "ner-resume-"));
    const small = slice(train, 320);
    const full: number[] = [];
    const config = { ...tinyConfig("bilstm-crf", { epochs: 2, progressEvery: 5 }), output: out };
    await new Engine(config).fit(
      { train: small },
      {
        onProgress: (p) => full.push(p.loss),
        onEpoch: (e) => {
          if (e.epoch === 0) cpSync(path.join(out, "last"), afterFirstEpoch, { recursive: true });
        },
      },
    );
    expect(readdirSync(afterFirstEpoch)).toEqual(expect.arrayContaining(["trainer_state.json", "trainer_state.safetensors", "model.safetensors"]));
    const resumed: number[] = [];
    const engine = new Engine({ ...config, output: undefined, training: { ...config.training, resumeFrom: afterFirstEpoch } });
    await engine.fit({ train: small }, { onProgress: (p) => resumed.push(p.loss) });
    expect(resumed.length).toBe(full.length / 2);
    expect(resumed).toEqual(full.slice(full.length / 2));
  });
});

/**
 * The learning-rate defaults that depend on `model`: HF's when fine-tuning (FINE_TUNING_DEFAULTS), larger
 * ones for a randomly initialised encoder (SCRATCH_DEFAULTS, measured in BENCHMARKS.md "From scratch on
 * CoNLL-2003"); an explicit value wins over either. Checked in the resolved config and in the update the
 * trainer makes: AdamW's first step moves every weight with a non-zero gradient by its learning rate.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { defaultConfig, FINE_TUNING_DEFAULTS, parseConfig, SCRATCH_DEFAULTS, type EngineConfigInput } from "../src/app/config.js";
import { demoCorpus } from "../src/app/demo.js";
import { Engine } from "../src/app/engine.js";
import type { Corpus } from "../src/data/types.js";
import { trainWordPiece, writeTokenizerFiles } from "../src/text/vocab.js";
import { writeSmallCheckpoint } from "./helpers/checkpoints.js";

const tmpRoot = mkdtempSync(path.join(tmpdir(), "ner-scratch-defaults-"));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

describe("learning-rate defaults: from scratch vs fine-tuning", () => {
  it("resolve to SCRATCH_DEFAULTS without a model and to HF's (FINE_TUNING_DEFAULTS) with one", () => {
    expect(SCRATCH_DEFAULTS).toMatchObject({ learningRate: 1e-3, softmaxHeadLearningRate: 3e-2, crfHeadLearningRate: 3e-2 });
    expect(FINE_TUNING_DEFAULTS).toMatchObject({ learningRate: 5e-5, crfHeadLearningRate: 1e-3 });
    for (const kind of ["softmax", "crf", "bilstm-crf", "bilstm-attn-crf"] as const) {
      const scratch = parseConfig({ tokenizer: "tok", head: { kind } });
      expect([scratch.training.learningRate, scratch.head.learningRate], kind).toEqual([1e-3, 3e-2]);
      const tuned = parseConfig({ model: "ckpt", head: { kind } });
      expect([tuned.training.learningRate, tuned.head.learningRate], kind).toEqual([5e-5, kind === "softmax" ? 5e-5 : 1e-3]);
    }
    // Whatever else is shared keeps HF's defaults in both cases.
    for (const input of [{ tokenizer: "tok" }, { model: "ckpt" }]) {
      expect(parseConfig(input).training).toMatchObject({ epochs: 3, batchSize: 32, warmupRatio: 0, weightDecay: 0, maxGradNorm: 1 });
    }
  });

  it("an explicit value wins over either default", () => {
    const lr = { training: { learningRate: 2e-4 } };
    expect(parseConfig({ tokenizer: "tok", ...lr }).training.learningRate).toBe(2e-4);
    expect(parseConfig({ model: "ckpt", ...lr }).training.learningRate).toBe(2e-4);
    // The softmax head follows an explicit lr when fine-tuning (HF's single lr); from scratch it keeps its own.
    expect(parseConfig({ model: "ckpt", ...lr }).head.learningRate).toBe(2e-4);
    expect(parseConfig({ tokenizer: "tok", ...lr }).head.learningRate).toBe(3e-2);
    for (const input of [{ tokenizer: "tok" }, { model: "ckpt" }]) {
      for (const kind of ["softmax", "crf"] as const) {
        expect(parseConfig({ ...input, head: { kind, learningRate: 7e-3 } }).head.learningRate).toBe(7e-3);
      }
      // 0 is a value, not an absence.
      const frozen = parseConfig({ ...input, training: { learningRate: 0 }, head: { learningRate: 0 } });
      expect([frozen.training.learningRate, frozen.head.learningRate]).toEqual([0, 0]);
    }
    // A parsed config keeps its resolved values: re-parsing (as the engine does) changes nothing.
    const parsed = parseConfig({ tokenizer: "tok", head: { kind: "crf" } });
    expect(parseConfig(parsed)).toEqual(parsed);
  });

  it("defaultConfig() gives the fine-tuning defaults, defaultConfig(\"scratch\") the from-scratch ones", () => {
    expect([defaultConfig().training.learningRate, defaultConfig().head.learningRate]).toEqual([5e-5, 5e-5]);
    expect([defaultConfig("fine-tuning").training.learningRate, defaultConfig("fine-tuning").head.learningRate]).toEqual([5e-5, 5e-5]);
    const scratch = defaultConfig("scratch");
    expect([scratch.training.learningRate, scratch.head.learningRate]).toEqual([1e-3, 3e-2]);
    expect(parseConfig({ ...scratch, tokenizer: "tok" })).toEqual(parseConfig({ tokenizer: "tok" }));
    expect(parseConfig({ ...defaultConfig(), model: "ckpt" })).toEqual(parseConfig({ model: "ckpt" }));
  });
});

describe("the trainer takes the resolved learning rates (tiny model, synthetic data, one step)", () => {
  const data = demoCorpus();
  const train: Corpus = { source: data.train.source, sentences: data.train.sentences.slice(0, 64) };
  const tokenizer = path.join(tmpRoot, "tokenizer");
  writeTokenizerFiles(tokenizer, trainWordPiece(train.sentences.map((s) => s.tokens), { vocabSize: 300, lowercase: false }), { lowercase: false });
  // No classifier tensors: the head is initialised from the seed, as from scratch.
  const checkpoint = writeSmallCheckpoint({ vocabSize: 128, hidden: 16, layers: 1, heads: 2, intermediate: 32, maxPositions: 64, typeVocab: 2, eps: 1e-12, act: "gelu" });
  const scratch = { tokenizer, scratch: { hiddenSize: 16, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 32, maxPositionEmbeddings: 64 } };
  const common = { device: "cpu" as const, data: { maxLength: 32 } };

  /** Largest |change| of the encoder's embedding LayerNorm bias and of the classifier bias in one optimizer step. */
  async function firstStep(input: EngineConfigInput): Promise<{ encoder: number; head: number; config: Engine["config"] }> {
    const weightsAfter = async (extra: EngineConfigInput) => {
      const engine = new Engine({ ...input, ...common, ...extra, training: { ...input.training, ...extra.training, maxSteps: 1, batchSize: 64, seed: 3 } });
      await engine.fit({ train });
      const weights = new Map((await engine.model!.exportWeights()).map((w) => [w.name, w.data]));
      return { weights, config: engine.config };
    };
    const before = await weightsAfter({ training: { learningRate: 0 }, head: { ...input.head, learningRate: 0 } });
    const after = await weightsAfter({});
    const maxChange = (name: string) => {
      const [a, b] = [before.weights.get(name)!, after.weights.get(name)!];
      expect(a, name).toBeDefined();
      return Math.max(...Array.from(a, (x, i) => Math.abs(b[i] - x)));
    };
    const encoderName = [...after.weights.keys()].find((n) => n.endsWith("embeddings.LayerNorm.bias"))!;
    return { encoder: maxChange(encoderName), head: maxChange("classifier.bias"), config: after.config };
  }

  it("from scratch: encoder 1e-3, head 3e-2; fine-tuning: 5e-5 for both (softmax), head 1e-3 (crf)", async () => {
    const s = await firstStep({ ...scratch });
    expect([s.config.training.learningRate, s.config.head.learningRate]).toEqual([1e-3, 3e-2]);
    expect(s.encoder).toBeCloseTo(1e-3, 6);
    expect(s.head).toBeCloseTo(3e-2, 5);
    const f = await firstStep({ model: checkpoint });
    expect(f.config.model).toBe(checkpoint);
    expect(f.encoder).toBeCloseTo(5e-5, 7);
    expect(f.head).toBeCloseTo(5e-5, 7);
    const crf = await firstStep({ model: checkpoint, head: { kind: "crf" } });
    expect(crf.encoder).toBeCloseTo(5e-5, 7);
    expect(crf.head).toBeCloseTo(1e-3, 6);
  });

  it("explicit learning rates win, from scratch and fine-tuning", async () => {
    for (const input of [{ ...scratch }, { model: checkpoint }]) {
      const r = await firstStep({ ...input, training: { learningRate: 2e-4 }, head: { learningRate: 4e-3 } });
      expect(r.encoder).toBeCloseTo(2e-4, 7);
      expect(r.head).toBeCloseTo(4e-3, 6);
    }
  });
});

// DistilBERT, RoBERTa and XLM-RoBERTa encoders against HF transformers' outputs (../shared/fixtures),
// and what makes each family different: key names, position ids, token types, padding_idx, sinusoidal
// positions; plus save → load round trips in each family's own layout.
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { Tagger } from "../src/model/tagger.js";
import { readCheckpoint } from "../src/model/checkpoint.js";
import { parseEncoderConfig } from "../src/model/encoder-config.js";
import { loadTokenizer } from "../src/text/tokenizer.js";
import { SHARED } from "./helpers/checkpoints.js";
import { needs } from "./helpers/shared.js";
import { maxMaskedDiff } from "./helpers/compare.js";

const FIXTURES = path.join(SHARED, "fixtures");
const FAMILIES = [
  { name: "distilbert", dir: "tiny-distilbert-ner", forward: "distilbert-forward.json", prefix: "distilbert" },
  { name: "roberta", dir: "tiny-roberta-ner", forward: "roberta-forward.json", prefix: "roberta" },
  { name: "xlm-roberta", dir: "tiny-xlm-roberta-ner", forward: "xlm-roberta-forward.json", prefix: "roberta" },
] as const;
const haveFixtures = FAMILIES.every((f) => existsSync(path.join(FIXTURES, f.dir)) && existsSync(path.join(FIXTURES, f.forward)));


describe.skipIf(!haveFixtures)(`encoder families vs HF transformers (needs ${FIXTURES})`, () => {
  for (const family of FAMILIES) {
    describe(family.name, () => {
      const fixture = () => JSON.parse(readFileSync(path.join(FIXTURES, family.forward), "utf8"));

      it("last_hidden_state and logits within 1e-4 of HF's, right- and left-padded rows alike", async () => {
        const f = fixture();
        const tagger = await Tagger.load(path.join(FIXTURES, family.dir), { device: "cpu" });
        expect(tagger.spec.encoder.family).toBe(family.name);
        const out = await tagger.forward({ inputIds: f.input_ids, attentionMask: f.attention_mask });
        const [, , hidden] = f.shape_last_hidden_state;
        expect(out.lastHiddenState.dims).toEqual(f.shape_last_hidden_state);
        expect(out.logits!.dims).toEqual(f.shape_logits);
        expect(maxMaskedDiff(out.lastHiddenState.data, f.last_hidden_state, f.attention_mask, hidden)).toBeLessThanOrEqual(1e-4);
        expect(maxMaskedDiff(out.logits!.data, f.logits, f.attention_mask, f.shape_logits[2])).toBeLessThanOrEqual(1e-4);
        tagger.dispose();
      });

      it("saves in the family's own layout and loads back with equal logits", async () => {
        const f = fixture();
        const tagger = await Tagger.load(path.join(FIXTURES, family.dir), { device: "cpu" });
        const dir = mkdtempSync(path.join(tmpdir(), `ner-${family.name}-`));
        await tagger.save(dir);
        const saved = JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8"));
        const original = JSON.parse(readFileSync(path.join(FIXTURES, family.dir, "config.json"), "utf8"));
        expect(saved.model_type).toBe(original.model_type);
        expect(saved.architectures).toEqual(original.architectures);
        // The family's own field names survive (DistilBERT's dim / n_layers are not rewritten as hidden_size).
        for (const key of Object.keys(original).filter((k) => !["architectures", "transformers_version"].includes(k))) expect(saved[key], key).toEqual(original[key]);
        const names = [...readCheckpoint(dir).weights.keys()];
        const reference = [...readCheckpoint(path.join(FIXTURES, family.dir)).weights.keys()];
        expect(names.sort()).toEqual(reference.sort());
        const back = await Tagger.load(dir, { device: "cpu" });
        const a = await tagger.forward({ inputIds: f.input_ids, attentionMask: f.attention_mask });
        const b = await back.forward({ inputIds: f.input_ids, attentionMask: f.attention_mask });
        expect(Array.from(b.logits!.data)).toEqual(Array.from(a.logits!.data));
      });
    });
  }

  it("DistilBERT has no token types: non-zero token type ids are refused", async () => {
    const tagger = await Tagger.load(path.join(FIXTURES, "tiny-distilbert-ner"), { device: "cpu" });
    await expect(tagger.forward({ inputIds: [[101, 102]], attentionMask: [[1, 1]], tokenTypeIds: [[0, 1]] })).rejects.toThrow(/type_vocab_size=1/);
  });

  it("RoBERTa's positions leave padding_idx + 1 rows: a window of max_position_embeddings - 2 fits, one more does not", async () => {
    const tagger = await Tagger.load(path.join(FIXTURES, "tiny-roberta-ner"), { device: "cpu" });
    const limit = tagger.spec.encoder.max_position_embeddings - 2;
    const row = (n: number) => [0, ...Array.from({ length: n - 2 }, () => 100), 2];
    await expect(tagger.forward({ inputIds: [row(limit)], attentionMask: [row(limit).map(() => 1)] })).resolves.toBeDefined();
    await expect(tagger.forward({ inputIds: [row(limit + 1)], attentionMask: [row(limit + 1).map(() => 1)] })).rejects.toThrow(`exceeds max_position_embeddings (${limit})`);
  });
});

describe.skipIf(!existsSync(path.join(FIXTURES, "tiny-distilbert-ner")))(`DistilBERT sinusoidal positions (${needs(path.join(FIXTURES, "tiny-distilbert-ner"))})`, () => {
  it("a new model gets HF's fixed sin/cos table, and training leaves it as it is", async () => {
    const dir = path.join(FIXTURES, "tiny-distilbert-ner");
    const hf = { ...JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")), sinusoidal_pos_embds: true };
    const encoder = parseEncoderConfig(hf, "config.json");
    const tokenizer = loadTokenizer(dir);
    const spec = { encoder, labels: ["O", "B-X", "I-X"], head: { kind: "softmax" as const, lstmHiddenSize: 8, lstmLayers: 1, attentionHeads: 2, constrainDecoding: true, constrainTraining: false }, input: { trainScheme: "IOB2" as const, maxLength: 32, labelAllSubtokens: false, documentContext: false } };
    const tagger = Tagger.create(spec, tokenizer, dir, { device: "cpu", seed: 3 });
    const table = async () => (await tagger.exportWeights()).find((w) => w.name === "distilbert.embeddings.position_embeddings.weight")!;
    const before = await table();
    const dim = encoder.hidden_size;
    for (const [pos, j] of [[0, 0], [0, 1], [5, 2], [7, 3], [127, 30], [127, 31]]) {
      const angle = pos / Math.pow(10000, (2 * Math.floor(j / 2)) / dim);
      expect(before.data[pos * dim + j]).toBeCloseTo(j % 2 === 0 ? Math.sin(angle) : Math.cos(angle), 6);
    }
    const sentences = [{ tokens: ["Peter", "lives", "in", "Berlin"], tags: ["B-X", "O", "O", "B-X"] }];
    const encoded = tagger.encode(sentences, (t) => spec.labels.indexOf(t));
    tagger.native.setupTraining({ inputIds: encoded.inputIds, windowOffsets: encoded.windowOffsets, wordStarts: encoded.wordStarts, labels: encoded.labels }, {
      epochs: 1, batchSize: 1, gradientAccumulation: 1, seed: 1, progressEvery: 1, maxSteps: -1, encoderLearningRate: 1e-2, headLearningRate: 1e-2,
      weightDecay: 0.01, warmupRatio: 0, warmupSteps: 0, maxGradNorm: 1, adamBeta1: 0.9, adamBeta2: 0.999, adamEpsilon: 1e-8, bf16: false, tf32: false, lengthGrouping: "none",
    });
    await tagger.native.trainEpoch(0);
    const after = await table();
    expect(Array.from(after.data)).toEqual(Array.from(before.data));
    const words = (await tagger.exportWeights()).find((w) => w.name === "distilbert.embeddings.word_embeddings.weight")!;
    expect(words.data.some((v, i) => v !== 0 && i < dim)).toBe(false); // pad row (id 0) starts at zero, gets no gradient
  });
});

import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { Engine } from "../src/app/engine.js";
import { readCheckpoint } from "../src/model/checkpoint.js";
import { demoCorpus } from "../src/app/demo.js";
import { FIXTURE_SETS, fixtureTitle, has, LOCAL_FIXTURES } from "./helpers/shared.js";

// On the committed small fixture (test/fixtures) and on ../shared's.
for (const set of FIXTURE_SETS) {
  const TINY_BERT = path.join(set.dir, "tiny-bert-ner");
  describe.skipIf(!has(TINY_BERT, path.join(set.dir, "bert-forward.json")))(fixtureTitle("checkpoints saved by the engine", set, "tiny-bert-ner", "bert-forward.json"), () => {
    it("a softmax model saves in HF's layout: same tensor names, config fields and logits as the HF checkpoint", async () => {
      const forwardFixture = JSON.parse(readFileSync(path.join(set.dir, "bert-forward.json"), "utf8"));
      const batch = { inputIds: forwardFixture.input_ids, attentionMask: forwardFixture.attention_mask, tokenTypeIds: forwardFixture.token_type_ids };
      const K = forwardFixture.shape_logits[2];
      const engine = await Engine.load(TINY_BERT, { device: "cpu" });
      const before = await engine.forward(batch);
      const dir = mkdtempSync(path.join(tmpdir(), "ner-save-"));
      await engine.save(dir);

      const original = readCheckpoint(TINY_BERT);
      const saved = readCheckpoint(dir);
      expect([...saved.weights.keys()].sort()).toEqual([...original.weights.keys()].sort());
      for (const [name, view] of original.weights) expect(Buffer.from(saved.weights.get(name)!.data).equals(Buffer.from(view.data))).toBe(true);
      const config = JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8"));
      expect(config.architectures).toEqual(["BertForTokenClassification"]);
      expect(config.id2label).toEqual(original.config.id2label);
      expect(config.label2id).toEqual(original.config.label2id);
      for (const key of ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size", "layer_norm_eps", "hidden_act", "max_position_embeddings", "type_vocab_size"]) {
        expect(config[key]).toEqual((original.config as unknown as Record<string, unknown>)[key]);
      }
      expect(saved.hasTokenizer).toBe(true);

      const reloaded = await Engine.load(dir, { device: "cpu" });
      const after = await reloaded.forward(batch);
      expect(Array.from(after.logits!.data)).toEqual(Array.from(before.logits!.data));
      // ...and those are HF's logits for the same weights (the fixture), on real positions.
      const T = forwardFixture.input_ids[0].length;
      let max = 0;
      forwardFixture.attention_mask.forEach((row: number[], b: number) =>
        row.forEach((m, t) => {
          if (m) for (let k = 0; k < K; k++) max = Math.max(max, Math.abs(after.logits!.data[(b * T + t) * K + k] - forwardFixture.logits[(b * T + t) * K + k]));
        }),
      );
      expect(max).toBeLessThanOrEqual(1e-4);
    });
  });
}

describe("checkpoints saved by the engine: CRF heads", () => {
  it("a trained bilstm-crf model reloads with bit-identical weights and identical predictions", async () => {
    // The committed fixture's tokenizer and the embedded synthetic demo corpus: no ../shared needed.
    const TINY_BERT = path.join(LOCAL_FIXTURES, "tiny-bert-ner");
    const corpus = demoCorpus();
    const train = { source: "train", sentences: corpus.train.sentences.slice(0, 200) };
    const dev = { source: "dev", sentences: corpus.dev.sentences.slice(0, 100) };
    const engine = new Engine({
      tokenizer: TINY_BERT,
      device: "cpu",
      scratch: { hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 64, maxPositionEmbeddings: 64 },
      head: { kind: "bilstm-crf", lstmHiddenSize: 16 },
      data: { maxLength: 64 },
      training: { epochs: 1, batchSize: 16, learningRate: 1e-3 },
    });
    await engine.fit({ train });
    const dir = mkdtempSync(path.join(tmpdir(), "ner-save-"));
    await engine.save(dir);
    const reloaded = await Engine.load(dir, { device: "cpu" });
    expect(reloaded.labels).toEqual(engine.labels);
    expect(reloaded.config.head.kind).toBe("bilstm-crf");
    const words = dev.sentences.map((s) => s.tokens);
    expect(await reloaded.predictWords(words)).toEqual(await engine.predictWords(words));
    const again = mkdtempSync(path.join(tmpdir(), "ner-save-"));
    await reloaded.save(again);
    const a = readCheckpoint(dir), b = readCheckpoint(again);
    for (const [name, view] of a.weights) expect(Buffer.from(b.weights.get(name)!.data).equals(Buffer.from(view.data))).toBe(true);
  });
});

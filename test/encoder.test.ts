import { readFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/app/engine.js";
import { readCheckpoint } from "../src/model/checkpoint.js";
import { toFloat32 } from "../src/model/safetensors.js";
import { referenceBertForward, type Weights } from "./helpers/reference-bert.js";
import { writeSmallCheckpoint, type SmallBertShape } from "./helpers/checkpoints.js";
import { maxMaskedDiff } from "./helpers/compare.js";
import { FIXTURE_SETS, fixtureTitle, has } from "./helpers/shared.js";

function weightsOf(dir: string): Weights {
  const ck = readCheckpoint(dir);
  return new Map([...ck.weights].map(([name, view]) => [name, { shape: view.shape, data: toFloat32(view) }]));
}

// The same tests on the committed small fixtures (test/fixtures) and on ../shared's (hidden 64, vocab 30522).
for (const set of FIXTURE_SETS) {
  const FILES = ["tiny-bert-ner", "bert-forward.json", "bert-loss.json"];
  const TINY_BERT = path.join(set.dir, "tiny-bert-ner");
  const read = (file: string) => JSON.parse(readFileSync(path.join(set.dir, file), "utf8"));
  describe.skipIf(!has(...FILES.map((f) => path.join(set.dir, f))))(fixtureTitle("BERT encoder parity with HuggingFace transformers", set, ...FILES), () => {
    let forwardFixture: any, lossFixture: any, H: number, K: number;
    beforeAll(() => {
      forwardFixture = read("bert-forward.json");
      lossFixture = read("bert-loss.json");
      [, , H] = forwardFixture.shape_last_hidden_state;
      [, , K] = forwardFixture.shape_logits;
    });

    it("matches last_hidden_state and logits of the fixture within 1e-4, on the CPU", async () => {
      const engine = await Engine.load(TINY_BERT, { device: "cpu" });
      expect(engine.device).toBe("cpu");
      const out = await engine.forward({
        inputIds: forwardFixture.input_ids,
        attentionMask: forwardFixture.attention_mask,
        tokenTypeIds: forwardFixture.token_type_ids,
      });
      expect(out.lastHiddenState.dims).toEqual(forwardFixture.shape_last_hidden_state);
      expect(out.logits!.dims).toEqual(forwardFixture.shape_logits);
      const hiddenDiff = maxMaskedDiff(out.lastHiddenState.data, forwardFixture.last_hidden_state, forwardFixture.attention_mask, H);
      const logitDiff = maxMaskedDiff(out.logits!.data, forwardFixture.logits, forwardFixture.attention_mask, K);
      expect(hiddenDiff).toBeLessThanOrEqual(1e-4);
      expect(logitDiff).toBeLessThanOrEqual(1e-4);
      // A wrong mask must be visible: dropping the mask changes the padded rows' outputs.
      const unmasked = await engine.forward({
        inputIds: forwardFixture.input_ids,
        attentionMask: forwardFixture.attention_mask.map((r: number[]) => r.map(() => 1)),
        tokenTypeIds: forwardFixture.token_type_ids,
      });
      expect(maxMaskedDiff(unmasked.lastHiddenState.data, forwardFixture.last_hidden_state, forwardFixture.attention_mask, H)).toBeGreaterThan(1e-2);
    });

    it("matches HF's token-classification loss in eval mode within 1e-5", async () => {
      const engine = await Engine.load(TINY_BERT, { device: "cpu" });
      const out = await engine.forward({
        inputIds: forwardFixture.input_ids,
        attentionMask: forwardFixture.attention_mask,
        tokenTypeIds: forwardFixture.token_type_ids,
        labels: lossFixture.labels,
      });
      expect(Math.abs(out.loss! - lossFixture.loss)).toBeLessThanOrEqual(1e-5);
    });

    it("the TypeScript reference implementation agrees with HF on the fixture (so it can judge other configs)", () => {
      const weights = weightsOf(TINY_BERT);
      const hf = JSON.parse(readFileSync(path.join(TINY_BERT, "config.json"), "utf8"));
      const config = { hidden: hf.hidden_size, layers: hf.num_hidden_layers, heads: hf.num_attention_heads, intermediate: hf.intermediate_size, eps: hf.layer_norm_eps, act: hf.hidden_act };
      expect(config.hidden).toBe(H);
      const T = forwardFixture.input_ids[0].length;
      const ref = forwardFixture.input_ids.flatMap((ids: number[], b: number) =>
        referenceBertForward(weights, config, ids, forwardFixture.attention_mask[b], forwardFixture.token_type_ids[b]).flat(),
      );
      expect(ref.length).toBe(forwardFixture.input_ids.length * T * H);
      expect(maxMaskedDiff(ref, forwardFixture.last_hidden_state, forwardFixture.attention_mask, H)).toBeLessThanOrEqual(1e-4);
    });
  });
}

describe("BERT encoder configs HF fixtures do not cover, against the TypeScript reference", () => {

  it("honours config.json fields that change the math (sizes, layer_norm_eps, hidden_act, type_vocab_size)", async () => {
    const shape: SmallBertShape = { vocabSize: 30522, hidden: 48, layers: 3, heads: 3, intermediate: 80, maxPositions: 40, typeVocab: 3, eps: 1e-3, act: "gelu_new", labels: ["O", "B-X", "I-X", "B-Y", "I-Y"] };
    const dir = writeSmallCheckpoint(shape, { seed: 7 });
    const engine = await Engine.load(dir, { device: "cpu" });
    const inputIds = [
      [101, 2023, 2003, 1037, 3231, 1997, 1996, 4372, 102, 0],
      [101, 7592, 2088, 102, 0, 0, 0, 0, 0, 0],
    ];
    const attentionMask = inputIds.map((r) => r.map((id) => (id === 0 ? 0 : 1)));
    const tokenTypeIds = [
      [0, 0, 0, 0, 1, 1, 2, 2, 2, 0],
      [0, 1, 1, 2, 0, 0, 0, 0, 0, 0],
    ];
    const out = await engine.forward({ inputIds, attentionMask, tokenTypeIds });
    const weights = weightsOf(dir);
    const config = { hidden: 48, layers: 3, heads: 3, intermediate: 80, eps: 1e-3, act: "gelu_new" as const };
    const ref = inputIds.flatMap((ids, b) => referenceBertForward(weights, config, ids, attentionMask[b], tokenTypeIds[b]).flat());
    expect(maxMaskedDiff(out.lastHiddenState.data, ref, attentionMask, 48)).toBeLessThanOrEqual(1e-4);
    // The same weights read with a different eps must give different numbers (eps is really used).
    const wrong = inputIds.flatMap((ids, b) => referenceBertForward(weights, { ...config, eps: 1e-12 }, ids, attentionMask[b], tokenTypeIds[b]).flat());
    expect(maxMaskedDiff(out.lastHiddenState.data, wrong, attentionMask, 48)).toBeGreaterThan(1e-4);
    // Sizes: hidden 48 over the 10 positions, one logit per label.
    expect(out.lastHiddenState.dims).toEqual([2, 10, 48]);
    expect(out.logits!.dims).toEqual([2, 10, shape.labels!.length]);
    // hidden_act is really used: the erf GELU differs measurably from gelu_new (~5e-4 here, agreement is ~1e-6).
    const otherAct = inputIds.flatMap((ids, b) => referenceBertForward(weights, { ...config, act: "gelu" }, ids, attentionMask[b], tokenTypeIds[b]).flat());
    expect(maxMaskedDiff(out.lastHiddenState.data, otherAct, attentionMask, 48)).toBeGreaterThan(1e-4);
    // type_vocab_size 3: type id 2 has its own embedding row (read as type 1 the output differs) ...
    const asType1 = tokenTypeIds.map((r) => r.map((t) => Math.min(t, 1)));
    const otherType = inputIds.flatMap((ids, b) => referenceBertForward(weights, config, ids, attentionMask[b], asType1[b]).flat());
    expect(maxMaskedDiff(out.lastHiddenState.data, otherType, attentionMask, 48)).toBeGreaterThan(1e-2);
    // ... and 3 is outside it.
    const tooLarge = tokenTypeIds.map((r) => r.map((t) => (t === 2 ? 3 : t)));
    await expect(engine.forward({ inputIds, attentionMask, tokenTypeIds: tooLarge })).rejects.toThrow(/type_vocab_size=3/);
  });
});

// constrainDecoding decides the Viterbi path on its own (it was ignored whenever constrainTraining was on).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { Tagger } from "../src/model/tagger.js";
import { scratchBertConfig } from "../src/model/encoder-config.js";
import { loadTokenizer } from "../src/text/tokenizer.js";
import { trainWordPiece, writeTokenizerFiles } from "../src/text/vocab.js";

const words = ["Anna", "went", "to", "Paris", "today"];
const dir = mkdtempSync(path.join(tmpdir(), "ner-constraints-"));
writeTokenizerFiles(dir, trainWordPiece([words, words], { vocabSize: 60, lowercase: false }), { lowercase: false });
const tokenizer = loadTokenizer(dir);

/** A CRF tagger whose emissions favour I-X everywhere (classifier bias), so only the constraints forbid O/start -> I-X. */
async function tagger(constrainDecoding: boolean, constrainTraining: boolean) {
  const encoder = scratchBertConfig({ vocab_size: tokenizer.vocabSize, hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 16, max_position_embeddings: 16, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0, layer_norm_eps: 1e-12, hidden_act: "gelu", pad_token_id: tokenizer.padId });
  const t = Tagger.create(
    { encoder, labels: ["O", "B-X", "I-X"], head: { kind: "crf", lstmHiddenSize: 8, lstmLayers: 1, attentionHeads: 2, constrainDecoding, constrainTraining }, input: { trainScheme: "IOB2", maxLength: 16, labelAllSubtokens: false, documentContext: false } },
    tokenizer,
    dir,
    { device: "cpu", seed: 1 },
  );
  const weights = await t.exportWeights();
  for (const w of weights) {
    if (w.name === "classifier.weight" || w.name.startsWith("crf.")) w.data.fill(0);
    if (w.name === "classifier.bias") w.data.set([0, 0, 5]);
  }
  await t.restoreWeights(weights);
  return t;
}

describe("CRF decoding constraints", () => {
  for (const constrainTraining of [false, true]) {
    it(`constrainDecoding true/false is obeyed${constrainTraining ? " with constrainTraining on" : ""}`, async () => {
      const free = await (await tagger(false, constrainTraining)).predictIds([{ tokens: words, tags: words.map(() => "O") }], { batchSize: 4, bf16: false });
      const constrained = await (await tagger(true, constrainTraining)).predictIds([{ tokens: words, tags: words.map(() => "O") }], { batchSize: 4, bf16: false });
      expect(free.ids[0]).toEqual([2, 2, 2, 2, 2]);        // I-X from the start: invalid IOB2, allowed when unconstrained
      expect(constrained.ids[0]).toEqual([1, 2, 2, 2, 2]); // the path must open with B-X
    });
  }
});

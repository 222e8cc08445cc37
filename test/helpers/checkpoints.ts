/** Builds small random BERT checkpoints in temp folders, for tests that need their own configs. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { writeCheckpoint } from "../../src/model/checkpoint.js";
import type { TensorToWrite } from "../../src/model/safetensors.js";
import { mulberry32 } from "../../src/app/demo.js";
import { SHARED } from "./shared.js";

// ../shared, or NER_SHARED_DIR (see ./shared.ts: tests that need it skip when it is missing).
export { SHARED };
export const TINY_BERT = path.join(SHARED, "fixtures/tiny-bert-ner");

export interface SmallBertShape {
  vocabSize: number;
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  maxPositions: number;
  typeVocab: number;
  eps: number;
  act: "gelu" | "gelu_new" | "relu";
  labels?: string[];
}

export function tensorShapes(s: SmallBertShape): [string, number[]][] {
  const H = s.hidden;
  const out: [string, number[]][] = [
    ["bert.embeddings.word_embeddings.weight", [s.vocabSize, H]],
    ["bert.embeddings.position_embeddings.weight", [s.maxPositions, H]],
    ["bert.embeddings.token_type_embeddings.weight", [s.typeVocab, H]],
    ["bert.embeddings.LayerNorm.weight", [H]],
    ["bert.embeddings.LayerNorm.bias", [H]],
  ];
  for (let l = 0; l < s.layers; l++) {
    const p = `bert.encoder.layer.${l}.`;
    for (const m of ["query", "key", "value"]) out.push([`${p}attention.self.${m}.weight`, [H, H]], [`${p}attention.self.${m}.bias`, [H]]);
    out.push([`${p}attention.output.dense.weight`, [H, H]], [`${p}attention.output.dense.bias`, [H]]);
    out.push([`${p}attention.output.LayerNorm.weight`, [H]], [`${p}attention.output.LayerNorm.bias`, [H]]);
    out.push([`${p}intermediate.dense.weight`, [s.intermediate, H]], [`${p}intermediate.dense.bias`, [s.intermediate]]);
    out.push([`${p}output.dense.weight`, [H, s.intermediate]], [`${p}output.dense.bias`, [H]]);
    out.push([`${p}output.LayerNorm.weight`, [H]], [`${p}output.LayerNorm.bias`, [H]]);
  }
  if (s.labels) out.push(["classifier.weight", [s.labels.length, H]], ["classifier.bias", [s.labels.length]]);
  return out;
}

/** Random tensors (LayerNorm weights near 1) under HF names. */
export function randomTensors(s: SmallBertShape, seed = 1): TensorToWrite[] {
  const random = mulberry32(seed);
  return tensorShapes(s).map(([name, shape]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNormWeight = name.endsWith("LayerNorm.weight");
    for (let i = 0; i < n; i++) data[i] = isNormWeight ? 1 + (random() - 0.5) * 0.2 : (random() - 0.5) * 0.4;
    return { name, dtype: "F32" as const, shape, data };
  });
}

export function configJson(s: SmallBertShape): Record<string, unknown> {
  const labels = s.labels ?? ["O", "B-X", "I-X"];
  return {
    architectures: ["BertForTokenClassification"],
    model_type: "bert",
    vocab_size: s.vocabSize,
    hidden_size: s.hidden,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    intermediate_size: s.intermediate,
    max_position_embeddings: s.maxPositions,
    type_vocab_size: s.typeVocab,
    layer_norm_eps: s.eps,
    hidden_act: s.act,
    hidden_dropout_prob: 0.1,
    attention_probs_dropout_prob: 0.1,
    id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])),
    label2id: Object.fromEntries(labels.map((l, i) => [l, i])),
  };
}

/**
 * A vocab.txt of `size` tokens in bert-base-uncased's layout of the special tokens ([PAD] 0, [UNK] 100,
 * [CLS] 101, [SEP] 102, [MASK] 103), the other entries placeholders: enough to load a model whose ids
 * tests write by hand.
 */
export function placeholderVocab(size: number): string[] {
  const specials: Record<number, string> = { 0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]" };
  if (size < 104) throw new Error(`placeholderVocab: size ${size} < 104`);
  return Array.from({ length: size }, (_, i) => specials[i] ?? (i < 100 ? `[unused${i - 1}]` : `tok${i}`));
}

/** Writes a checkpoint folder (with a placeholder vocabulary of vocabSize tokens) and returns its path. */
export function writeSmallCheckpoint(s: SmallBertShape, opts: { seed?: number; tensors?: TensorToWrite[]; dir?: string } = {}): string {
  const dir = opts.dir ?? mkdtempSync(path.join(tmpdir(), "ner-ckpt-"));
  writeCheckpoint(dir, { config: configJson(s), tensors: opts.tensors ?? randomTensors(s, opts.seed) });
  writeFileSync(path.join(dir, "vocab.txt"), placeholderVocab(s.vocabSize).map((t) => `${t}\n`).join(""));
  return dir;
}

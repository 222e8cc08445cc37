/**
 * The bridge between checkpoint files and the native tagger: builds a NativeTagger from a BERT
 * config and head settings, moves weights in (views over the safetensors bytes, no copy here) and
 * out (HF tensor names), and holds the settings a saved model needs to be rebuilt.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { NerEngineError } from "../errors.js";
import { type BertConfig, type Checkpoint, writeCheckpoint } from "./checkpoint.js";
import { transitionConstraints } from "../data/labels.js";
import { native, type NativeTagger } from "./native.js";
import type { TensorToWrite } from "./safetensors.js";
import type { HeadKind } from "../app/config.js";

/** Head and data settings saved in config.json under `ner_engine`, so a model reloads exactly. */
export interface TaggerSettings {
  head: HeadKind;
  lstmHiddenSize: number;
  lstmLayers: number;
  attentionHeads: number;
  classifierDropout: number | null;
  constrainDecoding: boolean;
  constrainTraining: boolean;
  /** Scheme of the label set the model predicts in ("IOB2" or "IOBES"). */
  trainScheme: "IOB2" | "IOBES";
  maxLength: number;
  stride?: number;
  labelAllSubtokens: boolean;
  documentContext: boolean;
  lowercase?: boolean;
}

export const TOKENIZER_FILES = ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"];

export function createNativeTagger(bert: BertConfig, labels: readonly string[], settings: TaggerSettings, device: string, seed: number): NativeTagger {
  const withConstraints = settings.head !== "softmax" && (settings.constrainDecoding || settings.constrainTraining);
  let constraints;
  if (withConstraints) {
    const c = transitionConstraints(labels, settings.trainScheme);
    constraints = { transitions: Float32Array.from(c.transitions.flat()), start: Float32Array.from(c.start), end: Float32Array.from(c.end) };
  }
  return new (native().NativeTagger)({
    bert: {
      vocabSize: bert.vocab_size,
      hiddenSize: bert.hidden_size,
      numHiddenLayers: bert.num_hidden_layers,
      numAttentionHeads: bert.num_attention_heads,
      intermediateSize: bert.intermediate_size,
      maxPositionEmbeddings: bert.max_position_embeddings,
      typeVocabSize: bert.type_vocab_size,
      layerNormEps: bert.layer_norm_eps,
      hiddenDropoutProb: bert.hidden_dropout_prob,
      attentionProbsDropoutProb: bert.attention_probs_dropout_prob,
      hiddenAct: bert.hidden_act,
    },
    head: {
      kind: settings.head,
      numLabels: labels.length,
      classifierDropout: settings.classifierDropout ?? bert.classifier_dropout ?? bert.hidden_dropout_prob,
      lstmHiddenSize: settings.lstmHiddenSize,
      lstmLayers: settings.lstmLayers,
      attentionHeads: settings.attentionHeads,
      constrainTraining: settings.constrainTraining,
      constraints,
    },
    device,
    seed,
  });
}

/**
 * Copies the checkpoint's tensors into the tagger. The encoder ("bert.") must be complete; head
 * tensors are taken when present and shaped right (a new label set starts a fresh head, as HF's
 * ignore_mismatched_sizes), else they keep their initialisation. Returns what was initialised.
 */
export async function loadCheckpointWeights(tagger: NativeTagger, checkpoint: Checkpoint, opts: { requireHead: boolean; numLabels: number }): Promise<{ initialised: string[]; unused: string[] }> {
  const entries = new Map<Uint8Array, { name: string; dtype: string; shape: number[]; byteOffset: number; byteLength: number }[]>();
  for (const [name, view] of checkpoint.weights) {
    if (!opts.requireHead && name.startsWith("classifier.") && view.shape[0] !== opts.numLabels) continue;
    const file = checkpoint.fileBytes.find((bytes) => bytes.buffer === view.data.buffer);
    if (!file) throw new NerEngineError(`tensor "${name}" is not inside any weights file`, checkpoint.dir);
    const list = entries.get(file) ?? [];
    list.push({ name, dtype: view.dtype, shape: view.shape, byteOffset: view.data.byteOffset - file.byteOffset, byteLength: view.data.byteLength });
    entries.set(file, list);
  }
  // Each weights file (one, or several shards) is copied in on its own; a name counts as initialised
  // only if no file had it, and the required ones are checked once, here, for every layout.
  const required = opts.requireHead ? [""] : ["bert."];
  let initialised: Set<string> | undefined;
  const unused: string[] = [];
  for (const [file, list] of entries) {
    const report = await withWhere(checkpoint.dir, tagger.loadWeights(file, list, []));
    const missingHere = new Set(report.initialised);
    initialised = initialised ? new Set([...initialised].filter((n) => missingHere.has(n))) : missingHere;
    unused.push(...report.unused);
  }
  initialised ??= new Set();
  const missing = [...initialised].find((n) => required.some((p) => n.startsWith(p)));
  if (missing) throw new NerEngineError(`checkpoint is missing tensor "${missing}"`, checkpoint.dir);
  return { initialised: [...initialised], unused };
}

async function withWhere<T>(where: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw new NerEngineError((err as Error).message, where);
  }
}

/** Writes a HF-layout checkpoint: config.json, model.safetensors (HF names), tokenizer files. */
export async function saveTagger(
  dir: string,
  tagger: NativeTagger,
  bert: BertConfig,
  labels: readonly string[],
  settings: TaggerSettings,
  tokenizerDir: string | undefined,
  extraFiles: Record<string, string | Uint8Array> = {},
): Promise<void> {
  const weights = await tagger.exportWeights();
  const tensors: TensorToWrite[] = weights.map((w) => ({ name: w.name, dtype: "F32", shape: w.shape, data: w.data }));
  const id2label = Object.fromEntries(labels.map((l, i) => [String(i), l]));
  const label2id = Object.fromEntries(labels.map((l, i) => [l, i]));
  const config = {
    ...bert,
    architectures: [settings.head === "softmax" ? "BertForTokenClassification" : "BertCrfForTokenClassification"],
    model_type: "bert",
    id2label,
    label2id,
    torch_dtype: "float32",
    ner_engine: { ...settings },
  };
  const tokenizerFiles: Record<string, string | Uint8Array> = { ...extraFiles };
  if (tokenizerDir && path.resolve(tokenizerDir) !== path.resolve(dir)) {
    for (const name of TOKENIZER_FILES) {
      const source = path.join(tokenizerDir, name);
      if (existsSync(source)) tokenizerFiles[name] = await readFile(source);
    }
  }
  writeCheckpoint(dir, { config, tensors, tokenizerFiles });
}

export interface ForwardInput {
  inputIds: number[][];
  attentionMask: number[][];
  tokenTypeIds?: number[][];
}

/** The limits a forward batch is checked against (from config.json and the label set). */
export interface ForwardLimits {
  vocabSize: number;
  typeVocabSize: number;
  maxPositions: number;
  numLabels: number;
}

/** Validates number[][] inputs (every value, so errors name their position) and flattens them. */
export function forwardBatch(input: ForwardInput & { labels?: number[][] }, limits: ForwardLimits) {
  const { vocabSize, typeVocabSize, maxPositions, numLabels } = limits;
  const inputIds = rectangular(input.inputIds, "inputIds", undefined, undefined, { valid: (v) => v >= 0 && v < vocabSize, expected: `outside the vocabulary [0, ${vocabSize})` });
  const batchSize = input.inputIds.length;
  const length = input.inputIds[0].length;
  if (length > maxPositions) throw new NerEngineError(`inputIds: sequence length ${length} exceeds max_position_embeddings (${maxPositions})`);
  return {
    inputIds,
    attentionMask: rectangular(input.attentionMask, "attentionMask", batchSize, length, { valid: (v) => v === 0 || v === 1, expected: "not 0 or 1" }),
    tokenTypeIds: input.tokenTypeIds
      ? rectangular(input.tokenTypeIds, "tokenTypeIds", batchSize, length, { valid: (v) => v >= 0 && v < typeVocabSize, expected: `outside [0, type_vocab_size=${typeVocabSize})` })
      : undefined,
    labels: input.labels
      ? rectangular(input.labels, "labels", batchSize, length, { valid: (v) => v === -100 || (v >= 0 && v < numLabels), expected: `neither -100 nor a label id in [0, ${numLabels})` })
      : undefined,
    batchSize,
    length,
  };
}

/** Loads weights held as Float32Arrays (e.g. the best epoch's, kept in memory) back into the tagger. */
export async function loadWeightArrays(tagger: NativeTagger, weights: { name: string; shape: number[]; data: Float32Array }[]): Promise<void> {
  const total = weights.reduce((n, w) => n + w.data.byteLength, 0);
  const bytes = new Uint8Array(total);
  let offset = 0;
  const entries = weights.map((w) => {
    bytes.set(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength), offset);
    const entry = { name: w.name, dtype: "F32", shape: w.shape, byteOffset: offset, byteLength: w.data.byteLength };
    offset += w.data.byteLength;
    return entry;
  });
  await tagger.loadWeights(bytes, entries, [""]);
}

/**
 * number[][] → flat Int32Array, checking the batch is non-empty and rectangular ([batchSize, length]
 * when given, i.e. the shape of inputIds) and every value is an integer that `range` accepts.
 */
function rectangular(
  rows: number[][],
  name: string,
  batchSize?: number,
  length?: number,
  range?: { valid: (v: number) => boolean; expected: string },
): Int32Array {
  if (!Array.isArray(rows) || rows.length === 0) throw new NerEngineError(`${name} is an empty batch (expected a non-empty array of rows)`);
  const width = length ?? (Array.isArray(rows[0]) ? rows[0].length : 0);
  if (width === 0) throw new NerEngineError(`${name}[0] is empty`);
  if (batchSize !== undefined && rows.length !== batchSize) throw new NerEngineError(`${name} has ${rows.length} rows, expected ${batchSize} (the shape of inputIds)`);
  const out = new Int32Array(rows.length * width);
  rows.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== width) {
      const problem = length === undefined ? "is ragged" : `does not have the shape of inputIds [${batchSize}, ${length}]`;
      throw new NerEngineError(`${name} ${problem}: row ${i} has ${Array.isArray(row) ? row.length : "no"} entries, expected ${width}`);
    }
    row.forEach((v, j) => {
      if (!Number.isInteger(v)) throw new NerEngineError(`${name}[${i}][${j}] is not an integer (got ${typeof v === "string" ? JSON.stringify(v) : String(v)})`);
      // Also keeps values that an Int32Array would wrap (2^32 + 5 -> 5) from passing as valid ones.
      if (range && !range.valid(v)) throw new NerEngineError(`${name}[${i}][${j}] = ${v} is ${range.expected}`);
      if (v < -(2 ** 31) || v >= 2 ** 31) throw new NerEngineError(`${name}[${i}][${j}] = ${v} does not fit a 32-bit integer`);
      out[i * width + j] = v;
    });
  });
  return out;
}

// Reading and writing HF-style BERT checkpoint folders (config.json + model.safetensors +
// tokenizer files). Only safetensors is accepted: pytorch_model.bin is a pickle, and unpickling
// runs arbitrary code, so we refuse it and explain how to convert.
import * as fs from "node:fs";
import * as path from "node:path";
import { NerEngineError } from "../errors.js";
import {
  FLOAT_DTYPES,
  readSafetensorsFile,
  serializeSafetensors,
  writeFileAtomic,
  type TensorToWrite,
  type TensorView,
} from "./safetensors.js";

/** Activations the native encoder implements (see native/). */
export const SUPPORTED_HIDDEN_ACTS = ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh"] as const;
export type HiddenAct = (typeof SUPPORTED_HIDDEN_ACTS)[number];

/**
 * The config.json fields that matter to this engine, with HF BertConfig defaults filled in.
 * Other fields of the file (architectures, model_type, ...) are kept on the object as-is,
 * so writing a parsed config back loses nothing.
 */
export interface BertConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: HiddenAct;
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  max_position_embeddings: number;
  type_vocab_size: number;
  layer_norm_eps: number;
  /** Embedding row that gets no gradient (nn.Embedding padding_idx); null = none. */
  pad_token_id: number | null;
  position_embedding_type: "absolute";
  /** Dropout before the classifier; null means "use hidden_dropout_prob" (HF semantics). */
  classifier_dropout: number | null;
  /** Keys are "0".."n-1" as in config.json. */
  id2label: Record<string, string>;
  label2id: Record<string, number>;
  /** This engine's head settings (CRF etc.), free-form until the head module pins them down. */
  ner_engine?: Record<string, unknown>;
}

/** Labels in id order, e.g. ["O", "B-PER", ...]. */
export function labelList(config: BertConfig): string[] {
  return Object.keys(config.id2label).map((_, i) => config.id2label[String(i)]);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** Validates a parsed config.json. `source` names the file in errors. */
export function parseBertConfig(json: unknown, source: string): BertConfig {
  if (!isPlainObject(json)) throw new NerEngineError("config must be a JSON object", source);
  const fail = (field: string, msg: string, got: unknown): never => {
    throw new NerEngineError(`field "${field}" ${msg}, got ${JSON.stringify(got) ?? String(got)}`, source);
  };
  const posInt = (field: string, dflt: number): number => {
    const v = json[field] ?? dflt;
    if (!Number.isSafeInteger(v) || (v as number) <= 0) fail(field, "must be a positive integer", v);
    return v as number;
  };
  const prob = (field: string, dflt: number): number => {
    const v = json[field] ?? dflt;
    if (typeof v !== "number" || !(v >= 0 && v < 1)) fail(field, "must be a number in [0, 1)", v);
    return v as number;
  };

  if (json.model_type !== undefined && json.model_type !== "bert") {
    fail("model_type", 'must be "bert" (this engine loads BERT encoders only)', json.model_type);
  }
  const vocab_size = posInt("vocab_size", 30522);
  const hidden_size = posInt("hidden_size", 768);
  const num_hidden_layers = posInt("num_hidden_layers", 12);
  const num_attention_heads = posInt("num_attention_heads", 12);
  if (hidden_size % num_attention_heads !== 0) {
    fail("hidden_size", `must be divisible by num_attention_heads (${num_attention_heads})`, hidden_size);
  }
  const intermediate_size = posInt("intermediate_size", 3072);
  const max_position_embeddings = posInt("max_position_embeddings", 512);
  const type_vocab_size = posInt("type_vocab_size", 2);

  const hidden_act = json.hidden_act ?? "gelu";
  if (!(SUPPORTED_HIDDEN_ACTS as readonly unknown[]).includes(hidden_act)) {
    fail("hidden_act", `must be one of ${SUPPORTED_HIDDEN_ACTS.join(", ")}`, hidden_act);
  }
  const position_embedding_type = json.position_embedding_type ?? "absolute";
  if (position_embedding_type !== "absolute") {
    fail(
      "position_embedding_type",
      'must be "absolute": relative position embeddings (relative_key, relative_key_query) are not implemented',
      position_embedding_type,
    );
  }
  const layer_norm_eps = json.layer_norm_eps ?? 1e-12;
  if (typeof layer_norm_eps !== "number" || !(layer_norm_eps > 0) || !Number.isFinite(layer_norm_eps)) {
    fail("layer_norm_eps", "must be a finite number > 0", layer_norm_eps);
  }
  const pad_token_id = json.pad_token_id === undefined ? 0 : json.pad_token_id;
  if (pad_token_id !== null && (!Number.isSafeInteger(pad_token_id) || (pad_token_id as number) < 0 || (pad_token_id as number) >= vocab_size)) {
    fail("pad_token_id", `must be null or an integer in [0, vocab_size=${vocab_size})`, pad_token_id);
  }
  const classifier_dropout = json.classifier_dropout ?? null;
  if (classifier_dropout !== null) prob("classifier_dropout", 0);
  if (json.ner_engine !== undefined && !isPlainObject(json.ner_engine)) {
    fail("ner_engine", "must be an object", json.ner_engine);
  }

  const { id2label, label2id } = parseLabels(json, source, fail);
  return {
    ...json,
    vocab_size,
    hidden_size,
    num_hidden_layers,
    num_attention_heads,
    intermediate_size,
    hidden_act: hidden_act as HiddenAct,
    hidden_dropout_prob: prob("hidden_dropout_prob", 0.1),
    attention_probs_dropout_prob: prob("attention_probs_dropout_prob", 0.1),
    max_position_embeddings,
    type_vocab_size,
    layer_norm_eps: layer_norm_eps as number,
    pad_token_id: pad_token_id as number | null,
    position_embedding_type: "absolute",
    classifier_dropout: classifier_dropout as number | null,
    id2label,
    label2id,
  } as BertConfig;
}

/**
 * id2label must map "0".."n-1" to distinct names; label2id, if given, must be its inverse
 * (a mismatch would silently scramble labels between training and prediction). Without
 * id2label, HF's default LABEL_i names are used (num_labels, default 2).
 */
function parseLabels(
  json: Record<string, unknown>,
  source: string,
  fail: (field: string, msg: string, got: unknown) => never,
): { id2label: Record<string, string>; label2id: Record<string, number> } {
  const id2label: Record<string, string> = {};
  if (json.id2label === undefined || json.id2label === null) {
    const n = json.num_labels ?? 2;
    if (!Number.isSafeInteger(n) || (n as number) <= 0) fail("num_labels", "must be a positive integer", n);
    for (let i = 0; i < (n as number); i++) id2label[String(i)] = `LABEL_${i}`;
  } else {
    if (!isPlainObject(json.id2label)) fail("id2label", "must be an object", json.id2label);
    const entries = Object.entries(json.id2label as Record<string, unknown>);
    if (entries.length === 0) fail("id2label", "must name at least one label", json.id2label);
    for (const [k, v] of entries) {
      if (!/^(0|[1-9][0-9]*)$/.test(k) || Number(k) >= entries.length) {
        fail("id2label", `keys must be the ids 0..${entries.length - 1}`, k);
      }
      if (typeof v !== "string" || v === "") fail("id2label", `label for id ${k} must be a non-empty string`, v);
      id2label[k] = v as string;
    }
  }
  const inverse: Record<string, number> = {};
  for (const [k, v] of Object.entries(id2label)) {
    if (v in inverse) fail("id2label", `names label "${v}" twice`, json.id2label);
    inverse[v] = Number(k);
  }
  if (json.label2id !== undefined && json.label2id !== null) {
    const l2i = json.label2id;
    if (!isPlainObject(l2i)) fail("label2id", "must be an object", l2i);
    const obj = l2i as Record<string, unknown>;
    const consistent =
      Object.keys(obj).length === Object.keys(inverse).length &&
      Object.entries(obj).every(([k, v]) => inverse[k] === v);
    if (!consistent) {
      throw new NerEngineError(
        `field "label2id" disagrees with "id2label" (label2id must be its exact inverse): ` +
          `label2id=${JSON.stringify(obj)}, id2label=${JSON.stringify(id2label)}`,
        source,
      );
    }
  }
  return { id2label, label2id: inverse };
}

export interface Checkpoint {
  dir: string;
  config: BertConfig;
  /** Tensors under BertForTokenClassification names ("bert.encoder...", "classifier.weight"). */
  weights: Map<string, TensorView>;
  /** The bytes of every safetensors file read (one unless sharded); the weights are views into them. */
  fileBytes: Uint8Array[];
  /** tokenizer.json or vocab.txt is present in `dir`. */
  hasTokenizer: boolean;
}

const BERT_SUBMODULES = ["embeddings.", "encoder.", "pooler."];

/**
 * Maps a stored tensor name to the BertForTokenClassification layout: a bare BertModel's
 * "embeddings.*"/"encoder.*"/"pooler.*" gain "bert.", and old TF-era LayerNorm "gamma"/"beta"
 * become "weight"/"bias" (as HF's loader does). Anything else is kept as-is.
 */
export function normaliseTensorName(name: string): string {
  let n = BERT_SUBMODULES.some((p) => name.startsWith(p)) ? `bert.${name}` : name;
  if (/LayerNorm\.gamma$/.test(n)) n = n.replace(/gamma$/, "weight");
  else if (/LayerNorm\.beta$/.test(n)) n = n.replace(/beta$/, "bias");
  return n;
}

function pytorchBinMessage(dir: string): string {
  return (
    `found only pytorch_model.bin, a Python pickle; unpickling can execute arbitrary code, so this ` +
    `engine will not load it. Convert it to safetensors once, in Python:\n` +
    `  from transformers import AutoModelForTokenClassification\n` +
    `  m = AutoModelForTokenClassification.from_pretrained(${JSON.stringify(dir)})\n` +
    `  m.save_pretrained(${JSON.stringify(dir)}, safe_serialization=True)\n` +
    `(this writes model.safetensors next to it)`
  );
}

/** Reads a checkpoint folder: validated config, normalised weight views, and what else is there. */
export function readCheckpoint(dir: string): Checkpoint {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    throw new NerEngineError("checkpoint directory does not exist", dir);
  }
  if (!stat.isDirectory()) throw new NerEngineError("checkpoint path is not a directory", dir);

  const configPath = path.join(dir, "config.json");
  if (!fs.existsSync(configPath)) {
    throw new NerEngineError("config.json is missing: a checkpoint folder needs config.json and model.safetensors", configPath);
  }
  let configJson: unknown;
  try {
    configJson = JSON.parse(fs.readFileSync(configPath, "utf8"));
  } catch (e) {
    throw new NerEngineError(`config.json is not valid JSON (${(e as Error).message})`, configPath);
  }
  const config = parseBertConfig(configJson, configPath);

  const single = path.join(dir, "model.safetensors");
  const index = path.join(dir, "model.safetensors.index.json");
  let files: { file: string; tensors: Map<string, TensorView>; bytes: Uint8Array }[];
  if (fs.existsSync(single)) {
    const f = readSafetensorsFile(single);
    files = [{ file: single, tensors: f.tensors, bytes: f.bytes }];
  } else if (fs.existsSync(index)) {
    files = readShards(dir, index);
  } else if (fs.existsSync(path.join(dir, "pytorch_model.bin"))) {
    throw new NerEngineError(pytorchBinMessage(dir), dir);
  } else {
    throw new NerEngineError("no weights: expected model.safetensors (or model.safetensors.index.json with shards)", dir);
  }

  const weights = new Map<string, TensorView>();
  const origin = new Map<string, string>();
  for (const { file, tensors } of files) {
    for (const [stored, view] of tensors) {
      const name = normaliseTensorName(stored);
      if (weights.has(name)) {
        throw new NerEngineError(
          `tensor "${stored}" maps to "${name}", which "${origin.get(name)}" already provides`,
          file,
        );
      }
      weights.set(name, { ...view, name });
      origin.set(name, stored);
    }
  }
  const hasTokenizer = ["tokenizer.json", "vocab.txt"].some((f) => fs.existsSync(path.join(dir, f)));
  return { dir, config, weights, fileBytes: files.map((f) => f.bytes), hasTokenizer };
}

/** Sharded checkpoints: the index's weight_map says which shard file holds each tensor. */
function readShards(dir: string, indexPath: string) {
  let index: unknown;
  try {
    index = JSON.parse(fs.readFileSync(indexPath, "utf8"));
  } catch (e) {
    throw new NerEngineError(`not valid JSON (${(e as Error).message})`, indexPath);
  }
  const weightMap = isPlainObject(index) ? index.weight_map : undefined;
  if (!isPlainObject(weightMap)) throw new NerEngineError('missing "weight_map" object', indexPath);
  const byShard = new Map<string, string[]>();
  for (const [tensor, shard] of Object.entries(weightMap)) {
    // Shard names must stay inside the checkpoint folder.
    if (typeof shard !== "string" || shard !== path.basename(shard) || shard === "." || shard === "..") {
      throw new NerEngineError(`weight_map entry for "${tensor}" must be a file name in the folder, got ${JSON.stringify(shard)}`, indexPath);
    }
    byShard.set(shard, [...(byShard.get(shard) ?? []), tensor]);
  }
  return [...byShard].map(([shard, names]) => {
    const file = path.join(dir, shard);
    if (!fs.existsSync(file)) throw new NerEngineError(`shard "${shard}" listed in the index is missing`, indexPath);
    const f = readSafetensorsFile(file);
    for (const n of names) {
      if (!f.tensors.has(n)) throw new NerEngineError(`tensor "${n}" listed in the index is not in this shard`, file);
    }
    return { file, tensors: f.tensors, bytes: f.bytes };
  });
}

export interface ExpectedTensorOptions {
  withClassifier: boolean;
  numLabels: number;
  /** Names the checkpoint in errors. */
  source?: string;
}

/** The [name, shape] of every tensor the BERT encoder (and optionally the classifier) needs. */
export function expectedTensorShapes(config: BertConfig, opts: ExpectedTensorOptions): [string, number[]][] {
  const h = config.hidden_size;
  const inter = config.intermediate_size;
  const ln = (p: string): [string, number[]][] => [[`${p}.weight`, [h]], [`${p}.bias`, [h]]];
  const linear = (p: string, out: number, inp: number): [string, number[]][] => [
    [`${p}.weight`, [out, inp]],
    [`${p}.bias`, [out]],
  ];
  const list: [string, number[]][] = [
    ["bert.embeddings.word_embeddings.weight", [config.vocab_size, h]],
    ["bert.embeddings.position_embeddings.weight", [config.max_position_embeddings, h]],
    ["bert.embeddings.token_type_embeddings.weight", [config.type_vocab_size, h]],
    ...ln("bert.embeddings.LayerNorm"),
  ];
  for (let i = 0; i < config.num_hidden_layers; i++) {
    const l = `bert.encoder.layer.${i}`;
    list.push(
      ...linear(`${l}.attention.self.query`, h, h),
      ...linear(`${l}.attention.self.key`, h, h),
      ...linear(`${l}.attention.self.value`, h, h),
      ...linear(`${l}.attention.output.dense`, h, h),
      ...ln(`${l}.attention.output.LayerNorm`),
      ...linear(`${l}.intermediate.dense`, inter, h),
      ...linear(`${l}.output.dense`, h, inter),
      ...ln(`${l}.output.LayerNorm`),
    );
  }
  if (opts.withClassifier) list.push(...linear("classifier", opts.numLabels, h));
  return list;
}

/**
 * Checks that every needed tensor is present, floating-point and correctly shaped. All problems
 * are reported at once (up to a limit) so a mismatched checkpoint is diagnosed in one run.
 */
export function checkExpectedTensors(
  config: BertConfig,
  weights: ReadonlyMap<string, TensorView>,
  opts: ExpectedTensorOptions,
): void {
  const problems: string[] = [];
  for (const [name, shape] of expectedTensorShapes(config, opts)) {
    const t = weights.get(name);
    if (!t) {
      problems.push(`tensor "${name}" is missing (expected shape [${shape.join(", ")}])`);
    } else if (!FLOAT_DTYPES.includes(t.dtype)) {
      problems.push(`tensor "${name}" has dtype ${t.dtype}, expected a floating dtype (${FLOAT_DTYPES.join(", ")})`);
    } else if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      problems.push(`tensor "${name}" has shape [${t.shape.join(", ")}], expected [${shape.join(", ")}]`);
    }
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 10);
    if (problems.length > shown.length) shown.push(`... and ${problems.length - shown.length} more`);
    throw new NerEngineError(
      `weights do not match config.json:\n  ${shown.join("\n  ")}`,
      opts.source,
    );
  }
}

export interface CheckpointToWrite {
  /** Written as config.json; validated first so we never write a checkpoint we cannot read. */
  config: object;
  tensors: readonly TensorToWrite[];
  /** File name -> contents, e.g. {"tokenizer.json": ...}. Plain names only. */
  tokenizerFiles?: Record<string, string | Uint8Array>;
}

/**
 * Writes config.json, model.safetensors and tokenizer files into `dir` (created if needed).
 * Each file is replaced atomically, so a crash leaves every file either old or new, never torn;
 * config.json goes last so a readable config implies the weights were written first.
 */
export function writeCheckpoint(dir: string, ckpt: CheckpointToWrite): void {
  parseBertConfig(ckpt.config, path.join(dir, "config.json"));
  const reserved = new Set(["config.json", "model.safetensors"]);
  for (const name of Object.keys(ckpt.tokenizerFiles ?? {})) {
    if (name !== path.basename(name) || name === "." || name === ".." || name === "" || reserved.has(name)) {
      throw new NerEngineError(`tokenizer file name must be a plain file name other than config.json/model.safetensors`, name);
    }
  }
  const weights = serializeSafetensors(ckpt.tensors);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new NerEngineError(`cannot create checkpoint directory (${(e as Error).message})`, dir);
  }
  writeFileAtomic(path.join(dir, "model.safetensors"), weights);
  for (const [name, contents] of Object.entries(ckpt.tokenizerFiles ?? {})) {
    writeFileAtomic(path.join(dir, name), contents);
  }
  writeFileAtomic(path.join(dir, "config.json"), `${JSON.stringify(ckpt.config, null, 2)}\n`);
}

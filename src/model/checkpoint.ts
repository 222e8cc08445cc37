// Reading and writing HF-style checkpoint folders (config.json + model.safetensors + tokenizer
// files) of every encoder family. Only safetensors is accepted: pytorch_model.bin is a pickle, and unpickling
// runs arbitrary code, so we refuse it and explain how to convert.
import * as path from "node:path";
import { NerEngineError } from "../errors.js";
import { replaceDirectory, writeNewFile } from "./atomic-dir.js";
import { LIMITS, pathExists, statOrThrow } from "./bounded-read.js";
import { CONFIG_JSON, readJsonFile } from "./safe-json.js";
import { encoderPrefix, parseEncoderConfig, type EncoderConfig, type EncoderFamily } from "./encoder-config.js";
import {
  readSafetensorsFile,
  serializeSafetensors,
  writeFileAtomic,
  type TensorToWrite,
  type TensorView,
} from "./safetensors.js";

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

export interface Checkpoint {
  dir: string;
  config: EncoderConfig;
  /** Tensors under *ForTokenClassification names ("bert.encoder...", "roberta.encoder...", "classifier.weight"). */
  weights: Map<string, TensorView>;
  /** The bytes of every safetensors file read (one unless sharded); the weights are views into them. */
  fileBytes: Uint8Array[];
  /** tokenizer.json or vocab.txt is present in `dir`. */
  hasTokenizer: boolean;
}

const BARE_SUBMODULES = ["embeddings.", "encoder.", "transformer.", "pooler."];

/**
 * Maps a stored tensor name to the *ForTokenClassification layout: a bare encoder's (BertModel,
 * RobertaModel, DistilBertModel) "embeddings.*"/"encoder.*"/"transformer.*"/"pooler.*" gain the
 * family's prefix ("bert.", "roberta.", "distilbert."), and old TF-era LayerNorm "gamma"/"beta" become
 * "weight"/"bias" (as HF's loader does). Anything else is kept as-is.
 */
export function normaliseTensorName(name: string, family: EncoderFamily = "bert"): string {
  let n = BARE_SUBMODULES.some((p) => name.startsWith(p)) ? `${encoderPrefix(family)}.${name}` : name;
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
  const stat = statOrThrow(dir, "checkpoint directory");
  if (!stat.isDirectory()) throw new NerEngineError("checkpoint path is not a directory", dir);

  const configPath = path.join(dir, "config.json");
  if (!pathExists(configPath)) {
    throw new NerEngineError("config.json is missing: a checkpoint folder needs config.json and model.safetensors", configPath);
  }
  const config = parseEncoderConfig(readCheckpointConfigJson(configPath), configPath);

  const single = path.join(dir, "model.safetensors");
  const index = path.join(dir, "model.safetensors.index.json");
  let files: { file: string; tensors: Map<string, TensorView>; bytes: Uint8Array }[];
  if (pathExists(single)) {
    const f = readSafetensorsFile(single);
    files = [{ file: single, tensors: f.tensors, bytes: f.bytes }];
  } else if (pathExists(index)) {
    files = readShards(dir, index);
  } else if (pathExists(path.join(dir, "pytorch_model.bin"))) {
    throw new NerEngineError(pytorchBinMessage(dir), dir);
  } else {
    throw new NerEngineError("no weights: expected model.safetensors (or model.safetensors.index.json with shards)", dir);
  }

  const weights = new Map<string, TensorView>();
  const origin = new Map<string, string>();
  for (const { file, tensors } of files) {
    for (const [stored, view] of tensors) {
      const name = normaliseTensorName(stored, config.family);
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
  const hasTokenizer = ["tokenizer.json", "vocab.txt"].some((f) => pathExists(path.join(dir, f)));
  return { dir, config, weights, fileBytes: files.map((f) => f.bytes), hasTokenizer };
}

/**
 * A checkpoint's config.json, bounded and checked (safe-json.ts): no duplicate keys, no prototype keys
 * except as label names under label2id, no deep nesting. Not yet validated as an encoder config.
 */
export function readCheckpointConfigJson(configPath: string): unknown {
  return readJsonFile(
    configPath,
    { maxBytes: LIMITS.smallJson, what: "config.json" },
    { ...CONFIG_JSON, invalid: "config.json is not valid JSON", protoKeysAllowedUnder: [["label2id"]] },
  );
}

/** Sharded checkpoints: the index's weight_map says which shard file holds each tensor. */
function readShards(dir: string, indexPath: string) {
  const index = readJsonFile(indexPath, { maxBytes: LIMITS.smallJson, what: "model.safetensors.index.json" }, CONFIG_JSON);
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
    if (!pathExists(file)) throw new NerEngineError(`shard "${shard}" listed in the index is missing`, indexPath);
    const f = readSafetensorsFile(file);
    for (const n of names) {
      if (!f.tensors.has(n)) throw new NerEngineError(`tensor "${n}" listed in the index is not in this shard`, file);
    }
    return { file, tensors: f.tensors, bytes: f.bytes };
  });
}

export interface CheckpointToWrite {
  /** Written as config.json; validated first so we never write a checkpoint we cannot read. */
  config: object;
  tensors: readonly TensorToWrite[];
  /** File name -> contents, e.g. {"tokenizer.json": ...}. Plain names only. */
  tokenizerFiles?: Record<string, string | Uint8Array>;
}

/**
 * Writes config.json, model.safetensors, tokenizer files and `extraFiles` as folder `dir`, replacing
 * any folder there in one step (see atomic-dir.ts): a crash at any moment leaves the old checkpoint or
 * the new one, never a mix. Files of an old folder that this engine does not write are kept.
 */
export function writeCheckpoint(dir: string, ckpt: CheckpointToWrite, finish?: (tmp: string) => void): void {
  parseEncoderConfig(ckpt.config, path.join(dir, "config.json"));
  const reserved = new Set(["config.json", "model.safetensors"]);
  for (const name of Object.keys(ckpt.tokenizerFiles ?? {})) {
    if (name !== path.basename(name) || name === "." || name === ".." || name === "" || reserved.has(name)) {
      throw new NerEngineError(`tokenizer file name must be a plain file name other than config.json/model.safetensors`, name);
    }
  }
  const weights = serializeSafetensors(ckpt.tensors);
  replaceDirectory(dir, (tmp) => {
    writeNewFile(path.join(tmp, "model.safetensors"), weights);
    for (const [name, contents] of Object.entries(ckpt.tokenizerFiles ?? {})) writeNewFile(path.join(tmp, name), contents);
    writeNewFile(path.join(tmp, "config.json"), `${JSON.stringify(ckpt.config, null, 2)}\n`);
    finish?.(tmp);
  });
}

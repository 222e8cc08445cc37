/**
 * Checks made in TypeScript before a model is built or a checkpoint copied in, so that a hostile or
 * inconsistent folder is refused with a clear error instead of an allocation of gigabytes, a raw
 * allocator message, a silently dropped layer, or predictions with NaN scores:
 *  - the size of the model a config describes, against a fixed limit (before anything is allocated);
 *  - config.json's shapes (layer count, vocabulary, widths) against the checkpoint's tensor table;
 *  - every floating tensor that is loaded holds only finite values.
 */
import path from "node:path";
import { NerEngineError } from "../errors.js";
import type { Checkpoint } from "./checkpoint.js";
import { encoderPrefix, type EncoderConfig } from "./encoder-config.js";
import { toFloat32, type TensorView } from "./safetensors.js";
import type { TaggerSpec } from "./spec.js";

/**
 * The most fp32 weight bytes a model may have: 16 GiB, ~4.3 billion parameters, over ten times
 * XLM-RoBERTa-large (560M); training needs about 4x this (weights, gradients, two Adam moments).
 */
export const MAX_WEIGHT_BYTES = 16 * 1024 ** 3;

const FLOAT_DTYPES = new Set(["F32", "F16", "BF16", "F64"]);

/** config.json's own names for the fields (DistilBERT's differ). */
function fieldNames(e: EncoderConfig) {
  return e.family === "distilbert"
    ? { hidden: "dim", layers: "n_layers", intermediate: "hidden_dim" }
    : { hidden: "hidden_size", layers: "num_hidden_layers", intermediate: "intermediate_size" };
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toPrecision(3)} GiB`;
}

/** Parameters of the encoder and head a spec describes, by part (float arithmetic: sizes may be absurd). */
export function parameterCounts(spec: TaggerSpec): Record<string, number> {
  const e = spec.encoder;
  const H = e.hidden_size;
  const I = e.intermediate_size;
  const L = spec.labels.length;
  const f = fieldNames(e);
  const perLayer = 4 * (H * H + H) + 2 * I * H + I + H + 4 * H;
  const counts: Record<string, number> = {
    [`word embeddings (vocab_size ${e.vocab_size} x ${f.hidden} ${H})`]: e.vocab_size * H,
    [`position embeddings (max_position_embeddings ${e.max_position_embeddings} x ${f.hidden} ${H})`]: e.max_position_embeddings * H,
    [`token type embeddings (type_vocab_size ${e.type_vocab_size} x ${f.hidden} ${H})`]: e.type_vocab_size * H + 2 * H,
    [`transformer layers (${f.layers} ${e.num_hidden_layers} x (${f.hidden} ${H}, ${f.intermediate} ${I}))`]: e.num_hidden_layers * perLayer,
  };
  const head = spec.head;
  let features = H;
  let headCount = 0;
  if (head.kind === "bilstm-crf" || head.kind === "bilstm-attn-crf") {
    const h = head.lstmHiddenSize;
    for (let layer = 0; layer < head.lstmLayers; layer++) headCount += 2 * (4 * h * ((layer === 0 ? H : 2 * h) + h) + 8 * h);
    features = 2 * h;
    if (head.kind === "bilstm-attn-crf") headCount += 4 * (features * features + features) + 2 * features;
  }
  if (head.kind !== "softmax") headCount += L * L + 2 * L;
  headCount += L * features + L;
  counts[`head (${head.kind}, ${L} labels)`] = headCount;
  return counts;
}

/** Refuses a model bigger than MAX_WEIGHT_BYTES of fp32 weights, naming its largest part's fields. */
export function checkModelSize(spec: TaggerSpec, source: string): void {
  const counts = Object.entries(parameterCounts(spec));
  const total = counts.reduce((n, [, c]) => n + c, 0);
  if (total * 4 <= MAX_WEIGHT_BYTES) return;
  const [part, count] = counts.sort((a, b) => b[1] - a[1])[0];
  throw new NerEngineError(
    `the model this config describes has ${total.toExponential(2)} parameters (${gib(total * 4)} of fp32 weights), more than the ` +
      `${gib(MAX_WEIGHT_BYTES)} limit; most of it is the ${part}: ${count.toExponential(2)} parameters. Check those fields`,
    source,
  );
}

function shapeString(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function listNames(names: string[], max = 3): string {
  return names.slice(0, max).map((n) => `"${n}"`).join(", ") + (names.length > max ? ` and ${names.length - max} more` : "");
}

/**
 * config.json against the checkpoint's tensor table, before the model is built: the number of layers
 * must be the number of layers with weights (more would allocate layers nothing fills; fewer would
 * drop tensors silently), and the tensors that fix the widths must have the config's shapes (unless
 * `skipMismatched`: then mismatched tensors keep their initialisation, as HF's ignore_mismatched_sizes).
 */
export function checkConfigAgainstTensors(config: EncoderConfig, weights: ReadonlyMap<string, TensorView>, source: string, opts: { skipMismatched?: boolean } = {}): void {
  const f = fieldNames(config);
  const p = encoderPrefix(config.family);
  const distil = config.family === "distilbert";
  const layerPrefix = distil ? `${p}.transformer.layer.` : `${p}.encoder.layer.`;
  const byLayer = new Map<number, string[]>();
  for (const name of weights.keys()) {
    if (!name.startsWith(layerPrefix)) continue;
    const m = /^(0|[1-9][0-9]{0,8})\./.exec(name.slice(layerPrefix.length));
    if (!m) continue;
    const k = Number(m[1]);
    byLayer.set(k, [...(byLayer.get(k) ?? []), name]);
  }
  const n = config.num_hidden_layers;
  const extra = [...byLayer].filter(([k]) => k >= n).sort((a, b) => a[0] - b[0]);
  if (extra.length > 0) {
    const names = extra.flatMap(([, ns]) => ns);
    throw new NerEngineError(
      `field "${f.layers}" is ${n}, but the checkpoint has weights for ${extra.length} more layer(s) (${extra.map(([k]) => k).join(", ")}), ` +
        `which would be silently dropped: ${names.length} tensors, ${listNames(names)}`,
      source,
    );
  }
  const layers = [...byLayer.keys()].sort((a, b) => a - b);
  for (let k = 0; k < n; k++) {
    if (!byLayer.has(k)) {
      const have = layers.length === 0 ? "none" : layers.length === layers[layers.length - 1] + 1 ? `layers 0-${layers.length - 1}` : `layers ${layers.join(", ")}`;
      throw new NerEngineError(`field "${f.layers}" is ${n}, but the checkpoint has no weights for layer ${k} (it has ${have}): "${layerPrefix}${k}.*" is missing`, source);
    }
  }
  if (opts.skipMismatched) return;
  const H = config.hidden_size;
  const I = config.intermediate_size;
  const expected: [string, number[], string][] = [
    [`${p}.embeddings.word_embeddings.weight`, [config.vocab_size, H], `"vocab_size" x "${f.hidden}"`],
    [`${p}.embeddings.position_embeddings.weight`, [config.max_position_embeddings, H], `"max_position_embeddings" x "${f.hidden}"`],
  ];
  if (!distil) expected.push([`${p}.embeddings.token_type_embeddings.weight`, [config.type_vocab_size, H], `"type_vocab_size" x "${f.hidden}"`]);
  for (let k = 0; k < n; k++) {
    const l = `${layerPrefix}${k}.`;
    expected.push(distil ? [`${l}attention.q_lin.weight`, [H, H], `"${f.hidden}" x "${f.hidden}"`] : [`${l}attention.self.query.weight`, [H, H], `"${f.hidden}" x "${f.hidden}"`]);
    expected.push(distil ? [`${l}ffn.lin1.weight`, [I, H], `"${f.intermediate}" x "${f.hidden}"`] : [`${l}intermediate.dense.weight`, [I, H], `"${f.intermediate}" x "${f.hidden}"`]);
  }
  for (const [name, shape, fields] of expected) {
    const view = weights.get(name);
    if (!view) continue; // a missing tensor is named when the weights are copied in
    if (view.shape.length !== shape.length || view.shape.some((d, i) => d !== shape[i])) {
      throw new NerEngineError(`tensor "${name}" has shape ${shapeString(view.shape)}, expected ${shapeString(shape)} (config.json's ${fields}): the config and the weights disagree`, source);
    }
  }
}

/** Refuses NaN and ±Inf in any floating tensor of `tensors` (values as fp32, as they are loaded). */
export function checkFiniteTensors(tensors: Iterable<[string, TensorView]>, source: string): void {
  for (const [name, view] of tensors) {
    if (!FLOAT_DTYPES.has(view.dtype)) continue;
    const values = toFloat32(view);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v - v === 0) continue; // finite (NaN - NaN and Inf - Inf are NaN)
      const index: number[] = [];
      let rest = i;
      for (let d = view.shape.length - 1; d >= 0; d--) {
        index.unshift(rest % view.shape[d]);
        rest = Math.floor(rest / view.shape[d]);
      }
      const what = Number.isNaN(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
      throw new NerEngineError(
        `tensor "${name}" holds ${what} at [${index.join(", ")}]${view.dtype === "F32" ? "" : ` (as float32, from ${view.dtype})`}: a model with non-finite weights predicts NaN scores, so the checkpoint is refused`,
        source,
      );
    }
  }
}

/** Everything above that a checkpoint can be checked for before a tagger is built from it. */
export function checkCheckpointBeforeBuild(checkpoint: Checkpoint, spec: TaggerSpec, opts: { skipMismatched?: boolean } = {}): void {
  const source = path.join(checkpoint.dir, "config.json");
  checkConfigAgainstTensors(spec.encoder, checkpoint.weights, source, opts);
  checkModelSize(spec, source);
}

/**
 * config.json of a checkpoint, for every encoder family ner-engine runs: BERT, DistilBERT, RoBERTa and
 * XLM-RoBERTa. Each family's own field names and defaults (HF's *Config classes) are read into one
 * normalised shape with BertConfig's names; `hf` keeps the file's own fields, so a saved config.json is
 * still the family's (DistilBERT keeps `dim`, `n_layers`, ...) and loads in HF as it is.
 */
import { NerEngineError } from "../errors.js";

/** Activations the native encoder implements (see native/encoder.cpp). */
export const SUPPORTED_HIDDEN_ACTS = ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh"] as const;
export type HiddenAct = (typeof SUPPORTED_HIDDEN_ACTS)[number];

export const ENCODER_FAMILIES = ["bert", "distilbert", "roberta", "xlm-roberta"] as const;
export type EncoderFamily = (typeof ENCODER_FAMILIES)[number];

/** HF class names per family, for `architectures` in a saved config.json. */
const ARCHITECTURE_PREFIX: Record<EncoderFamily, string> = { bert: "Bert", distilbert: "DistilBert", roberta: "Roberta", "xlm-roberta": "XLMRoberta" };

export interface EncoderConfig {
  family: EncoderFamily;
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: HiddenAct;
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  max_position_embeddings: number;
  /** 0 for DistilBERT, which has no token type embeddings. */
  type_vocab_size: number;
  layer_norm_eps: number;
  /** Embedding row that gets no gradient (nn.Embedding padding_idx); RoBERTa's positions count from it. null = none. */
  pad_token_id: number | null;
  /** DistilBERT sinusoidal_pos_embds: a fixed position table. */
  sinusoidal_positions: boolean;
  /** Dropout before the classifier; null means "use hidden_dropout_prob" (HF semantics). */
  classifier_dropout: number | null;
  /** Keys are "0".."n-1" as in config.json. */
  id2label: Record<string, string>;
  label2id: Record<string, number>;
  /** True when config.json names its labels (not HF's LABEL_i placeholders): its head can be mapped by name. */
  hasLabelNames: boolean;
  /** This engine's block (model spec), validated by the Tagger. */
  ner_engine?: Record<string, unknown>;
  /** config.json's own fields as read, for writing back. */
  hf: Record<string, unknown>;
}

/** Checkpoint key prefix of the encoder (XLM-R's HF class stores its encoder as `roberta`). */
export function encoderPrefix(family: EncoderFamily): string {
  return family === "xlm-roberta" ? "roberta" : family;
}

/** The longest input (sub-tokens, with specials) the position table allows: RoBERTa loses padding_idx + 1 rows. */
export function maxSequenceLength(c: EncoderConfig): number {
  return isRobertaLike(c.family) ? c.max_position_embeddings - (c.pad_token_id ?? 0) - 1 : c.max_position_embeddings;
}

export function isRobertaLike(family: EncoderFamily): boolean {
  return family === "roberta" || family === "xlm-roberta";
}

export function architectureName(family: EncoderFamily, crf: boolean): string {
  return `${ARCHITECTURE_PREFIX[family]}${crf ? "Crf" : ""}ForTokenClassification`;
}

/** Labels in id order, e.g. ["O", "B-PER", ...]. */
export function labelList(config: EncoderConfig): string[] {
  return Object.keys(config.id2label).map((_, i) => config.id2label[String(i)]);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

type Fail = (field: string, msg: string, got: unknown) => never;

/** HF field names and defaults of each family (BertConfig / DistilBertConfig / RobertaConfig / XLMRobertaConfig). */
interface FamilyFields {
  hidden: [string, number];
  layers: [string, number];
  heads: [string, number];
  intermediate: [string, number];
  act: string;
  hiddenDropout: [string, number];
  attentionDropout: [string, number];
  vocab: number;
  pad: number;
  typeVocab: number;
  eps: number;
}

const BERT_FIELDS: FamilyFields = {
  hidden: ["hidden_size", 768],
  layers: ["num_hidden_layers", 12],
  heads: ["num_attention_heads", 12],
  intermediate: ["intermediate_size", 3072],
  act: "hidden_act",
  hiddenDropout: ["hidden_dropout_prob", 0.1],
  attentionDropout: ["attention_probs_dropout_prob", 0.1],
  vocab: 30522,
  pad: 0,
  typeVocab: 2,
  eps: 1e-12,
};

const FIELDS: Record<EncoderFamily, FamilyFields> = {
  bert: BERT_FIELDS,
  roberta: { ...BERT_FIELDS, vocab: 50265, pad: 1 },
  "xlm-roberta": { ...BERT_FIELDS, pad: 1 },
  distilbert: {
    hidden: ["dim", 768],
    layers: ["n_layers", 6],
    heads: ["n_heads", 12],
    intermediate: ["hidden_dim", 3072],
    act: "activation",
    hiddenDropout: ["dropout", 0.1],
    attentionDropout: ["attention_dropout", 0.1],
    vocab: 30522,
    pad: 0,
    typeVocab: 0,
    eps: 1e-12,
  },
};

/** Validates a parsed config.json of any supported family. `source` names the file in errors. */
export function parseEncoderConfig(json: unknown, source: string): EncoderConfig {
  if (!isPlainObject(json)) throw new NerEngineError("config must be a JSON object", source);
  const fail: Fail = (field, msg, got) => {
    throw new NerEngineError(`field "${field}" ${msg}, got ${JSON.stringify(got) ?? String(got)}`, source);
  };
  const posInt = ([field, dflt]: [string, number]): number => {
    const v = json[field] ?? dflt;
    if (!Number.isSafeInteger(v) || (v as number) <= 0) fail(field, "must be a positive integer", v);
    return v as number;
  };
  const prob = ([field, dflt]: [string, number]): number => {
    const v = json[field] ?? dflt;
    if (typeof v !== "number" || !(v >= 0 && v < 1)) fail(field, "must be a number in [0, 1)", v);
    return v as number;
  };

  const family = (json.model_type ?? "bert") as EncoderFamily;
  if (!(ENCODER_FAMILIES as readonly unknown[]).includes(family)) {
    fail("model_type", `must be one of ${ENCODER_FAMILIES.map((f) => `"${f}"`).join(", ")}`, json.model_type);
  }
  const f = FIELDS[family];
  const distil = family === "distilbert";
  const vocab_size = posInt(["vocab_size", f.vocab]);
  const hidden_size = posInt(f.hidden);
  const num_attention_heads = posInt(f.heads);
  if (hidden_size % num_attention_heads !== 0) {
    fail(f.hidden[0], `must be divisible by ${f.heads[0]} (${num_attention_heads})`, hidden_size);
  }
  const max_position_embeddings = posInt(["max_position_embeddings", 512]);
  const type_vocab_size = distil ? 0 : posInt(["type_vocab_size", f.typeVocab]);

  const hidden_act = json[f.act] ?? "gelu";
  if (!(SUPPORTED_HIDDEN_ACTS as readonly unknown[]).includes(hidden_act)) fail(f.act, `must be one of ${SUPPORTED_HIDDEN_ACTS.join(", ")}`, hidden_act);
  if (!distil) {
    const position_embedding_type = json.position_embedding_type ?? "absolute";
    if (position_embedding_type !== "absolute") {
      fail("position_embedding_type", 'must be "absolute": relative position embeddings (relative_key, relative_key_query) are not implemented', position_embedding_type);
    }
  }
  // DistilBERT's LayerNorm eps is fixed in its code (1e-12), whatever config.json says.
  const layer_norm_eps = distil ? 1e-12 : (json.layer_norm_eps ?? f.eps);
  if (typeof layer_norm_eps !== "number" || !(layer_norm_eps > 0) || !Number.isFinite(layer_norm_eps)) fail("layer_norm_eps", "must be a finite number > 0", layer_norm_eps);
  const pad_token_id = json.pad_token_id === undefined ? f.pad : json.pad_token_id;
  if (pad_token_id !== null && (!Number.isSafeInteger(pad_token_id) || (pad_token_id as number) < 0 || (pad_token_id as number) >= vocab_size)) {
    fail("pad_token_id", `must be null or an integer in [0, vocab_size=${vocab_size})`, pad_token_id);
  }
  if (isRobertaLike(family) && pad_token_id === null) fail("pad_token_id", "must be set for RoBERTa encoders (position ids count from it)", pad_token_id);
  if (isRobertaLike(family) && max_position_embeddings <= (pad_token_id as number) + 1) {
    fail("max_position_embeddings", `leaves no positions after padding_idx + 1 (${(pad_token_id as number) + 1})`, max_position_embeddings);
  }
  const sinusoidal = distil ? (json.sinusoidal_pos_embds ?? false) : false;
  if (typeof sinusoidal !== "boolean") fail("sinusoidal_pos_embds", "must be a boolean", sinusoidal);
  if (sinusoidal && hidden_size % 2 !== 0) fail("dim", "must be even for sinusoidal position embeddings", hidden_size);
  // DistilBertForTokenClassification's dropout is config.dropout; the others have classifier_dropout.
  const classifier_dropout = distil ? null : (json.classifier_dropout ?? null);
  if (classifier_dropout !== null) prob(["classifier_dropout", 0]);
  if (json.ner_engine !== undefined && !isPlainObject(json.ner_engine)) fail("ner_engine", "must be an object", json.ner_engine);

  const { id2label, label2id, named } = parseLabels(json, source, fail);
  return {
    family,
    vocab_size,
    hidden_size,
    num_hidden_layers: posInt(f.layers),
    num_attention_heads,
    intermediate_size: posInt(f.intermediate),
    hidden_act: hidden_act as HiddenAct,
    hidden_dropout_prob: prob(f.hiddenDropout),
    attention_probs_dropout_prob: prob(f.attentionDropout),
    max_position_embeddings,
    type_vocab_size,
    layer_norm_eps: layer_norm_eps as number,
    pad_token_id: pad_token_id as number | null,
    sinusoidal_positions: sinusoidal as boolean,
    classifier_dropout: classifier_dropout as number | null,
    id2label,
    label2id,
    hasLabelNames: named,
    ner_engine: json.ner_engine as Record<string, unknown> | undefined,
    hf: json,
  };
}

/**
 * id2label must map "0".."n-1" to distinct names; label2id, if given, must be its inverse
 * (a mismatch would silently scramble labels between training and prediction). Without
 * id2label, HF's default LABEL_i names are used (num_labels, default 2).
 */
function parseLabels(json: Record<string, unknown>, source: string, fail: Fail): { id2label: Record<string, string>; label2id: Record<string, number>; named: boolean } {
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
      if (!/^(0|[1-9][0-9]*)$/.test(k) || Number(k) >= entries.length) fail("id2label", `keys must be the ids 0..${entries.length - 1}`, k);
      if (typeof v !== "string" || v === "") fail("id2label", `label for id ${k} must be a non-empty string`, v);
      id2label[k] = v as string;
    }
  }
  // Null prototype: labels are any strings, and "__proto__" or "constructor" must be ordinary keys.
  const inverse: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const [k, v] of Object.entries(id2label)) {
    if (Object.hasOwn(inverse, v)) fail("id2label", `names label "${v}" twice`, json.id2label);
    inverse[v] = Number(k);
  }
  if (json.label2id !== undefined && json.label2id !== null) {
    const l2i = json.label2id;
    if (!isPlainObject(l2i)) fail("label2id", "must be an object", l2i);
    const obj = l2i as Record<string, unknown>;
    const consistent = Object.keys(obj).length === Object.keys(inverse).length && Object.entries(obj).every(([k, v]) => Object.hasOwn(inverse, k) && inverse[k] === v);
    if (!consistent) {
      throw new NerEngineError(
        `field "label2id" disagrees with "id2label" (label2id must be its exact inverse): label2id=${JSON.stringify(obj)}, id2label=${JSON.stringify(id2label)}`,
        source,
      );
    }
  }
  const named = !Object.entries(id2label).every(([k, v]) => v === `LABEL_${k}`);
  return { id2label, label2id: inverse, named };
}

/**
 * config.json for a model: the encoder's own HF fields (as read, or BERT's for a model built here),
 * with the label maps, architecture and this engine's block replaced.
 */
export function configJsonFor(encoder: EncoderConfig, labels: readonly string[], crf: boolean, nerEngine: Record<string, unknown>): Record<string, unknown> {
  const { id2label: _i, label2id: _l, ner_engine: _n, num_labels: _k, ...fields } = encoder.hf;
  return {
    ...fields,
    architectures: [architectureName(encoder.family, crf)],
    model_type: encoder.family,
    // fromEntries defines own keys, so a label named "__proto__" is written as one (never a prototype).
    id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])),
    label2id: Object.fromEntries(labels.map((l, i) => [l, i])),
    torch_dtype: "float32",
    ner_engine: nerEngine,
  };
}

/** A BERT config.json for a model trained from scratch (BertConfig field names). */
export function scratchBertConfig(fields: {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  max_position_embeddings: number;
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  layer_norm_eps: number;
  hidden_act: HiddenAct;
  pad_token_id: number;
}): EncoderConfig {
  return parseEncoderConfig({ model_type: "bert", type_vocab_size: 2, ...fields }, "config.scratch");
}

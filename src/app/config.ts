/**
 * The one typed configuration object of a training run, validated with zod.
 *
 * Defaults follow HuggingFace `run_ner.py` + `TrainingArguments` (lr 5e-5, 3 epochs, batch 32,
 * max length 128, no warmup / weight decay, seed 42, grad-norm clip 1.0, AdamW 0.9/0.999/1e-8), so a
 * user moving from the Trainer gets the same run without translating settings. Without `model` (a
 * randomly initialised encoder) the learning rates default to SCRATCH_DEFAULTS instead (lr 1e-3, head 3e-2).
 *
 * Every object is strict: an unknown key (a typo such as `epoch` for `epochs`) is an error rather
 * than a silently ignored setting.
 */
import { join } from "node:path";
import { z } from "zod";
import { NerEngineError } from "../errors.js";
import { parseEncoderConfig, SUPPORTED_HIDDEN_ACTS } from "../model/encoder-config.js";
import { headSpecFields, inputSpecFields, parseNerEngineBlock } from "../model/spec.js";
import { LIMITS, pathExists } from "../model/bounded-read.js";
import { CONFIG_JSON, readJsonFile } from "../model/safe-json.js";
import { readCheckpointConfigJson } from "../model/checkpoint.js";

const int = (min: number) => z.number().int().min(min);
const positive = () => z.number().positive();
const probability = () => z.number().min(0).max(1);

// Descriptions are zod metadata (not doc comments) so that config.schema.json and docs/config.md,
// both generated from this schema (scripts/gen-config-docs.mjs), carry them.
const scratchSchema = z.strictObject({
  vocabSize: int(8).optional().describe("Vocabulary size; absent = the size of the tokenizer's vocabulary."),
  hiddenSize: int(1).default(256).describe("Encoder hidden size (a multiple of numAttentionHeads)."),
  numHiddenLayers: int(1).default(4).describe("Number of transformer layers."),
  numAttentionHeads: int(1).default(4).describe("Attention heads per layer."),
  intermediateSize: int(1).default(1024).describe("Size of the feed-forward layer inside each transformer layer."),
  maxPositionEmbeddings: int(3).default(512).describe("Number of position embeddings: the longest window (data.maxLength) the encoder takes."),
  hiddenDropoutProb: probability().default(0.1).describe("Dropout on embeddings and hidden states."),
  attentionProbsDropoutProb: probability().default(0.1).describe("Dropout on attention probabilities."),
  layerNormEps: positive().default(1e-12).describe("Epsilon of the layer norms."),
  hiddenAct: z.enum(SUPPORTED_HIDDEN_ACTS).default("gelu").describe("Activation of the feed-forward layers."),
}).describe("Encoder sizes for a model trained from scratch (ignored when `model` is given).");

export { HEAD_KINDS, type HeadKind } from "../model/spec.js";

/**
 * The defaults that depend on whether a `model` is given (filled in by parseConfig's transform), each
 * in one place. Fine-tuning: HF's (lr 5e-5, the head at the encoder's lr for softmax). From scratch
 * (a randomly initialised encoder): measured on CoNLL-2003, 1 epoch of BERT-mini (BENCHMARKS.md, "From
 * scratch on CoNLL-2003"). At 5e-5 a random encoder barely moves (test F1 0.26); 1e-3 is the best
 * encoder lr (5e-4: 0.58, 2e-3: 0.56). The head needs far more than the encoder: at the encoder's lr its
 * bias cannot learn the label prior in time, so the encoder learns it instead, by collapsing to one
 * output for every token; on data with rare entities (~3% of tokens) that collapse is permanent
 * (all-O, F1 0.0 even after 10 epochs). A head lr of 3e-2 keeps the encoder alive there (F1 0.18-0.20
 * after 1 epoch) and costs nothing on CoNLL (softmax 0.58), and lifts the CRF head from 0.66 to 0.74.
 */
export const FINE_TUNING_DEFAULTS = { learningRate: 5e-5, softmaxHeadLearningRate: "training.learningRate", crfHeadLearningRate: 1e-3 } as const;
export const SCRATCH_DEFAULTS = { learningRate: 1e-3, softmaxHeadLearningRate: 3e-2, crfHeadLearningRate: 3e-2 } as const;

/** Head learning rate used for CRF heads when fine-tuning and `head.learningRate` is not given (see headSchema). */
export const DEFAULT_CRF_HEAD_LEARNING_RATE = FINE_TUNING_DEFAULTS.crfHeadLearningRate;

// The head's shape and the input settings are the model's (model/spec.ts): defined there once.
const headSchema = z.strictObject({
  ...headSpecFields,
  // Resolved by parseConfig when absent (see the transform below).
  learningRate: z.number().min(0).optional().describe(
    "Learning rate of the head's own parameters (classifier, LSTM, CRF transitions). Absent, fine-tuning a `model`: `training.learningRate` " +
      "for softmax (exactly HF's single-lr setup), 1e-3 for CRF heads, whose freshly initialised transitions barely move at BERT's 5e-5. " +
      "Absent, from scratch: 3e-2 for every head (at the encoder's lr the head learns the label prior too slowly and the random encoder " +
      "collapses into predicting it: all-O when entities are rare).",
  ),
}).describe("The tagging head on top of the encoder.");

export const CORPUS_FORMATS = ["conll", "json", "bio", "atis"] as const;

const dataSchema = z.strictObject({
  format: z.enum(CORPUS_FORMATS).default("conll").describe("Corpus file format: CoNLL columns, JSON / JSON lines, two-column BIO, or an ATIS/Snips folder."),
  tagScheme: z.enum(["IOB2", "IOB1", "IOBES"]).default("IOB2").describe("Scheme of the input files; IOB1 is converted to IOB2 on reading."),
  ...inputSpecFields,
  devSplit: z
    .number()
    .min(0)
    .lt(1)
    .default(0.1)
    .describe("Without dev data: the fraction of the training sentences held out (seeded by training.seed) as dev data, for best-model selection and early stopping. 0 turns it off; then the last epoch's weights are kept."),
  conllTokenColumn: int(0).optional().describe("CoNLL column holding the word; absent = 0."),
  conllTagColumn: int(0).optional().describe("CoNLL column holding the tag; absent = the last column."),
  bioOrder: z.enum(["auto", "token-tag", "tag-token"]).optional().describe("Column order of BIO files; absent or \"auto\" = guessed from the first lines."),
}).describe("The corpus files and how sentences become the model's inputs.");

const trainingSchema = z.strictObject({
  epochs: positive().default(3).describe("Number of passes over the training data (a fraction is rounded up to whole epochs)."),
  batchSize: int(1).default(32).describe("Sentences (windows) per batch."),
  gradientAccumulation: int(1).default(1).describe("Batches whose gradients are summed per optimizer step."),
  // Resolved by parseConfig when absent (FINE_TUNING_DEFAULTS / SCRATCH_DEFAULTS, in the transform below).
  learningRate: z.number().min(0).optional().describe(
    "Peak learning rate of the encoder (AdamW, linear decay); 0 is allowed, for a run that must leave the weights as they are (e.g. to check a pipeline). " +
      "Absent = 5e-5 when fine-tuning a `model` (HF's default), 1e-3 from scratch (a random encoder barely moves at 5e-5).",
  ),
  weightDecay: z.number().min(0).default(0).describe("AdamW weight decay (not applied to biases and layer norms)."),
  warmupRatio: z.number().min(0).max(1).default(0).describe("Share of the optimizer steps spent on linear warmup."),
  warmupSteps: int(0).default(0).describe("Warmup steps; overrides warmupRatio when > 0 (as in TrainingArguments)."),
  maxGradNorm: z.number().min(0).default(1.0).describe("Gradient-norm clipping; 0 disables it."),
  adamBeta1: z.number().min(0).lt(1).default(0.9).describe("AdamW beta1."),
  adamBeta2: z.number().min(0).lt(1).default(0.999).describe("AdamW beta2."),
  adamEpsilon: positive().default(1e-8).describe("AdamW epsilon."),
  seed: int(0).default(42).describe("Random seed (initialisation, dropout, batch order)."),
  maxSteps: int(1).optional().describe("Stop after this many optimizer steps (overrides epochs, like max_steps)."),
  groupByLength: z.union([z.boolean(), z.literal("hf")]).default(true).describe(
    "How batches are formed. true: shuffle, sort by length within pools of 50 batches, shuffle the batches, so each pads only to its own longest; " +
      "\"hf\": HF `group_by_length` exactly (its LengthGroupedSampler's megabatches, longest first); false: random order (HF's default).",
  ),
  progressEvery: int(1).default(10).describe("Report progress every N optimizer steps."),
  evalBatchSize: int(1).default(64).describe("Batch size for evaluation and prediction."),
  bf16: z.boolean().default(false).describe("bfloat16 autocast (CUDA only)."),
  tf32: z.boolean().default(false).describe("Allow TF32 matrix multiplications (CUDA only)."),
  earlyStoppingPatience: int(1).optional().describe("Stop when the dev metric has not improved for this many epochs (needs a dev set); absent = never stop early."),
  metricForBestModel: z.enum(["f1", "loss"]).default("f1").describe("Dev metric that picks the best epoch (and drives early stopping): micro F1 or mean loss."),
  resumeFrom: z
    .string()
    .min(1)
    .optional()
    .describe("Resume point to continue from: a run's last/ folder (or the run folder holding it). The run continues at the exact step it stopped."),
  saveSteps: int(1)
    .optional()
    .describe("Write the resume point (output/last) every this many optimizer steps, besides at each epoch's end and on interrupt. Default: at each epoch's end only."),
}).describe("The optimisation loop (defaults: HF TrainingArguments, except the learning rates from scratch, without `model`: see `learningRate` and `head.learningRate`).");

const metricsSchema = z.strictObject({
  mode: z.enum(["default", "strict"]).default("default").describe("seqeval mode: \"default\" (conlleval chunking) or \"strict\"."),
}).describe("How entities are scored.");

const baseSchema = z.strictObject({
  // Lets a config file name its JSON Schema, for editors; dropped by parseConfig.
  $schema: z.string().optional().describe("Path or URL of this file's JSON Schema (e.g. \"./config.schema.json\"), for editors; ignored."),
  model: z.string().min(1).optional().describe("Checkpoint directory (HF layout) to fine-tune; absent = train from scratch."),
  ignoreMismatchedSizes: z.boolean().default(false).describe(
    "Fine-tuning a checkpoint whose head lacks some of the data's labels: keep the known rows by name and initialise the rest " +
      "(HF from_pretrained's ignore_mismatched_sizes). Without it that is an error.",
  ),
  tokenizer: z.string().min(1).optional().describe("Tokenizer directory; absent = `model`."),
  // prefault (not default): the {} is parsed, so the inner defaults get filled in.
  scratch: scratchSchema.prefault({}),
  head: headSchema.prefault({}),
  data: dataSchema.prefault({}),
  training: trainingSchema.prefault({}),
  metrics: metricsSchema.prefault({}),
  device: z.enum(["auto", "cpu", "cuda"]).default("auto").describe("Where to run: auto = CUDA when available, else CPU."),
  output: z.string().min(1).optional().describe("Run directory for model, metrics and reports."),
}).describe("ner-engine training configuration. Every object is strict: an unknown key is an error.");

/** Cross-field rules and resolution of derived defaults. */
const configSchema = baseSchema
  .superRefine((c, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });
    if (!c.model && !c.tokenizer) issue(["tokenizer"], "required when training from scratch (no model given)");
    if (!c.model && c.data.maxLength > c.scratch.maxPositionEmbeddings) {
      issue(["data", "maxLength"], `${c.data.maxLength} exceeds scratch.maxPositionEmbeddings (${c.scratch.maxPositionEmbeddings})`);
    }
    if (!c.model && c.scratch.hiddenSize % c.scratch.numAttentionHeads !== 0) {
      issue(["scratch", "hiddenSize"], `${c.scratch.hiddenSize} is not a multiple of numAttentionHeads (${c.scratch.numAttentionHeads})`);
    }
    if (c.head.kind === "bilstm-attn-crf" && (2 * c.head.lstmHiddenSize) % c.head.attentionHeads !== 0) {
      issue(["head", "attentionHeads"], `2 × lstmHiddenSize (${2 * c.head.lstmHiddenSize}) is not a multiple of ${c.head.attentionHeads}`);
    }
    if (c.data.stride !== undefined && c.data.stride >= c.data.maxLength - 2) {
      issue(["data", "stride"], `must be smaller than maxLength - 2 (${c.data.maxLength - 2})`);
    }
    if (c.data.format !== "conll" && (c.data.conllTokenColumn !== undefined || c.data.conllTagColumn !== undefined)) {
      issue(["data", "format"], `conll column options given but format is "${c.data.format}"`);
    }
  })
  .transform(({ $schema: _editorsOnly, ...c }) => resolveDerived(c, !c.model));

export type EngineConfigInput = z.input<typeof configSchema>;
export type EngineConfig = z.output<typeof configSchema>;

/** Fills in the values derived from others: tokenizer, and the learning rates whose defaults depend on `model` (or `fromScratch`). */
function resolveDerived<C extends Omit<z.output<typeof baseSchema>, "$schema">>(c: C, fromScratch: boolean) {
  const defaults = fromScratch ? SCRATCH_DEFAULTS : FINE_TUNING_DEFAULTS;
  const learningRate = c.training.learningRate ?? defaults.learningRate;
  const softmaxHead = defaults.softmaxHeadLearningRate === "training.learningRate" ? learningRate : defaults.softmaxHeadLearningRate;
  const headLearningRate = c.head.learningRate ?? (c.head.kind === "softmax" ? softmaxHead : defaults.crfHeadLearningRate);
  return {
    ...c,
    tokenizer: c.tokenizer ?? c.model,
    head: { ...c.head, learningRate: headLearningRate },
    training: { ...c.training, learningRate },
  };
}

// ---- error formatting ----

const levenshtein = (a: string, b: string): number => {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
};

/** Keys allowed at a path of the schema, for "did you mean" hints on unknown keys. */
function knownKeys(path: readonly PropertyKey[]): string[] {
  let schema: z.ZodType = baseSchema;
  for (const key of path) {
    // Unwrap prefault/default/optional down to the object schema.
    while (!(schema instanceof z.ZodObject) && "unwrap" in schema && typeof schema.unwrap === "function") schema = schema.unwrap();
    if (!(schema instanceof z.ZodObject)) return [];
    schema = (schema.shape as Record<string, z.ZodType>)[String(key)];
    if (!schema) return [];
  }
  while (!(schema instanceof z.ZodObject) && "unwrap" in schema && typeof schema.unwrap === "function") schema = schema.unwrap();
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

function describeIssue(issue: z.core.$ZodIssue): string[] {
  const where = (path: readonly PropertyKey[]) => (path.length === 0 ? "(root)" : path.map(String).join("."));
  if (issue.code === "unrecognized_keys") {
    const known = knownKeys(issue.path);
    return issue.keys.map((key) => {
      const best = known.map((k) => [k, levenshtein(key, k)] as const).sort((a, b) => a[1] - b[1])[0];
      const hint = best && best[1] <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean "${best[0]}"?)` : "";
      return `${where([...issue.path, key])}: unknown key${hint}`;
    });
  }
  return [`${where(issue.path)}: ${issue.message}`];
}

/**
 * Validates a configuration (e.g. parsed JSON merged with CLI flags) and fills in defaults.
 * Throws one NerEngineError listing every problem as "field.path: message"; `source` (a file
 * name) prefixes the message.
 */
export function parseConfig(input: unknown, source?: string): EngineConfig {
  // Parsing an already parsed config is a no-op, so the Engine may re-validate what it is given.
  const result = configSchema.safeParse(input ?? {});
  if (!result.success) {
    const lines = result.error.issues.flatMap(describeIssue);
    throw new NerEngineError(`invalid configuration:\n  ${lines.join("\n  ")}`, source);
  }
  return result.data;
}

/** Reads and validates a JSON configuration file; errors name the file. */
export function loadConfigFile(path: string): EngineConfig {
  return parseConfig(readConfigJson(path), path);
}

/** Reads a JSON configuration file without validating it (for merging CLI overrides first). */
export function readConfigJson(path: string): Record<string, unknown> {
  // Bounded, a regular file only; duplicate keys, __proto__/constructor/prototype keys and deep nesting are refused.
  const json = readJsonFile(path, { maxBytes: LIMITS.smallJson, what: "config file", missing: "config file not found" }, { ...CONFIG_JSON, invalid: "invalid JSON" });
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new NerEngineError("config must be a JSON object", path);
  return json as Record<string, unknown>;
}

/**
 * All defaults, as a plain object, for a run that fine-tunes a model (`from` = "fine-tuning": set `model`
 * before passing it to parseConfig / Engine) or trains from scratch ("scratch": set `tokenizer`). The
 * learning rates are filled in for that case (FINE_TUNING_DEFAULTS / SCRATCH_DEFAULTS) and, once set,
 * are kept by parseConfig: take the variant that matches the run.
 */
export function defaultConfig(from: "fine-tuning" | "scratch" = "fine-tuning"): EngineConfig {
  const { $schema: _editorsOnly, ...base } = baseSchema.parse({});
  return resolveDerived(base, from === "scratch");
}

/**
 * The JSON Schema of a config file (shipped as config.schema.json), from the input side of the schema:
 * defaults are shown and derived values (tokenizer, head.learningRate) stay optional. The cross-field
 * rules are not expressible in it; parseConfig still checks them.
 */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema, {
    io: "input",
    target: "draft-2020-12",
    // z.int() bounds itself to the safe integers: noise in an editor's hover and in the docs.
    override: ({ jsonSchema: s }) => {
      if (s.maximum === Number.MAX_SAFE_INTEGER) delete s.maximum;
      if (s.minimum === Number.MIN_SAFE_INTEGER) delete s.minimum;
    },
  }) as Record<string, unknown>;
}

/** Deep merge of plain objects (`override` wins); arrays and scalars replace. Used for CLI flags over a file. */
export function mergeConfig(base: Record<string, unknown>, override: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (value === undefined) continue;
    const prev = out[key];
    const isObj = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === "object" && !Array.isArray(x);
    out[key] = isObj(prev) && isObj(value) ? mergeConfig(prev, value) : value;
  }
  return out;
}

/**
 * A model saved by this engine carries its head and input settings (config.json's ner_engine block):
 * they are the defaults for continuing to train it, under whatever `input` sets. HF checkpoints carry
 * none, and an input without `model` is returned as it is.
 */
export function withSavedModelDefaults(input: EngineConfigInput | EngineConfig): EngineConfigInput {
  const model = (input as { model?: unknown } | null)?.model;
  if (typeof model !== "string") return input as EngineConfigInput;
  const configPath = join(model, "config.json");
  if (!pathExists(configPath)) return input as EngineConfigInput;
  const json = readCheckpointConfigJson(configPath);
  if (json === null || typeof json !== "object" || !(json as Record<string, unknown>).ner_engine) return input as EngineConfigInput;
  const block = parseNerEngineBlock(parseEncoderConfig(json, configPath), configPath);
  return mergeConfig({ head: block.head, data: block.input }, input as Record<string, unknown>) as EngineConfigInput;
}

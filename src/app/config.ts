/**
 * The one typed configuration object of a training run, validated with zod.
 *
 * Defaults follow HuggingFace `run_ner.py` + `TrainingArguments` (lr 5e-5, 3 epochs, batch 32,
 * max length 128, no warmup / weight decay, seed 42, grad-norm clip 1.0, AdamW 0.9/0.999/1e-8), so a
 * user moving from the Trainer gets the same run without translating settings.
 *
 * Every object is strict: an unknown key (a typo such as `epoch` for `epochs`) is an error rather
 * than a silently ignored setting.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { z } from "zod";
import { NerEngineError } from "../errors.js";
import { parseEncoderConfig, SUPPORTED_HIDDEN_ACTS } from "../model/encoder-config.js";
import { headSpecFields, inputSpecFields, parseNerEngineBlock, type HeadKind } from "../model/spec.js";

const int = (min: number) => z.number().int().min(min);
const positive = () => z.number().positive();
const probability = () => z.number().min(0).max(1);

/** Encoder sizes for a model trained from scratch (ignored when `model` is given). */
const scratchSchema = z.strictObject({
  /** Defaults to the size of the tokenizer's vocabulary. */
  vocabSize: int(8).optional(),
  hiddenSize: int(1).default(256),
  numHiddenLayers: int(1).default(4),
  numAttentionHeads: int(1).default(4),
  intermediateSize: int(1).default(1024),
  maxPositionEmbeddings: int(3).default(512),
  hiddenDropoutProb: probability().default(0.1),
  attentionProbsDropoutProb: probability().default(0.1),
  layerNormEps: positive().default(1e-12),
  hiddenAct: z.enum(SUPPORTED_HIDDEN_ACTS).default("gelu"),
});

export { HEAD_KINDS, type HeadKind } from "../model/spec.js";

/** Head learning rate used for CRF heads when `head.learningRate` is not given (see headSchema). */
export const DEFAULT_CRF_HEAD_LEARNING_RATE = 1e-3;

// The head's shape and the input settings are the model's (model/spec.ts): defined there once.
const headSchema = z.strictObject({
  ...headSpecFields,
  /**
   * Learning rate of the head's own parameters (classifier, LSTM, CRF transitions). When absent it
   * is resolved by parseConfig: `training.learningRate` for softmax (exactly HF's single-lr setup),
   * 1e-3 for CRF heads, whose freshly initialised transitions barely move at BERT's 5e-5.
   */
  learningRate: z.number().min(0).optional(),
});

export const CORPUS_FORMATS = ["conll", "json", "bio", "atis"] as const;

const dataSchema = z.strictObject({
  format: z.enum(CORPUS_FORMATS).default("conll"),
  /** Scheme of the input files; IOB1 is converted to IOB2 on reading. */
  tagScheme: z.enum(["IOB2", "IOB1", "IOBES"]).default("IOB2"),
  ...inputSpecFields,
  conllTokenColumn: int(0).optional(),
  conllTagColumn: int(0).optional(),
  bioOrder: z.enum(["auto", "token-tag", "tag-token"]).optional(),
});

const trainingSchema = z.strictObject({
  epochs: positive().default(3),
  batchSize: int(1).default(32),
  gradientAccumulation: int(1).default(1),
  /** 0 is allowed (a run that must leave the weights as they are, e.g. to check a pipeline). */
  learningRate: z.number().min(0).default(5e-5),
  weightDecay: z.number().min(0).default(0),
  warmupRatio: z.number().min(0).max(1).default(0),
  /** Overrides warmupRatio when > 0 (as in TrainingArguments). */
  warmupSteps: int(0).default(0),
  /** Gradient-norm clipping; 0 disables it. */
  maxGradNorm: z.number().min(0).default(1.0),
  adamBeta1: z.number().min(0).lt(1).default(0.9),
  adamBeta2: z.number().min(0).lt(1).default(0.999),
  adamEpsilon: positive().default(1e-8),
  seed: int(0).default(42),
  /** Stop after this many optimizer steps (overrides epochs, like max_steps). */
  maxSteps: int(1).optional(),
  /**
   * How batches are formed. true (default): shuffle, sort by length within pools of 50 batches, shuffle
   * the batches, so each pads only to its own longest; "hf": HF `group_by_length` exactly (its
   * LengthGroupedSampler's megabatches, longest first); false: random order (HF's default).
   */
  groupByLength: z.union([z.boolean(), z.literal("hf")]).default(true),
  /** Report progress every N optimizer steps. */
  progressEvery: int(1).default(10),
  evalBatchSize: int(1).default(64),
  bf16: z.boolean().default(false),
  tf32: z.boolean().default(false),
  /** Stop when the dev metric has not improved for this many epochs (needs a dev set). */
  earlyStoppingPatience: int(1).optional(),
  metricForBestModel: z.enum(["f1", "loss"]).default("f1"),
  /** Checkpoint directory to resume training from. */
  resumeFrom: z.string().min(1).optional(),
});

const metricsSchema = z.strictObject({
  /** seqeval mode: "default" (conlleval chunking) or "strict". */
  mode: z.enum(["default", "strict"]).default("default"),
});

const baseSchema = z.strictObject({
  /** Checkpoint directory (HF BERT layout) to fine-tune; absent = train from scratch. */
  model: z.string().min(1).optional(),
  /**
   * Fine-tuning a checkpoint whose head lacks some of the data's labels: keep the known rows by name and
   * initialise the rest (HF from_pretrained's ignore_mismatched_sizes). Without it that is an error.
   */
  ignoreMismatchedSizes: z.boolean().default(false),
  /** Tokenizer directory; defaults to `model`. */
  tokenizer: z.string().min(1).optional(),
  // prefault (not default): the {} is parsed, so the inner defaults get filled in.
  scratch: scratchSchema.prefault({}),
  head: headSchema.prefault({}),
  data: dataSchema.prefault({}),
  training: trainingSchema.prefault({}),
  metrics: metricsSchema.prefault({}),
  device: z.enum(["auto", "cpu", "cuda"]).default("auto"),
  /** Run directory for model, metrics and reports. */
  output: z.string().min(1).optional(),
});

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
  .transform((c) => ({
    ...c,
    tokenizer: c.tokenizer ?? c.model,
    head: { ...c.head, learningRate: c.head.learningRate ?? defaultHeadLearningRate(c.head.kind, c.training.learningRate) },
  }));

export type EngineConfigInput = z.input<typeof configSchema>;
export type EngineConfig = z.output<typeof configSchema>;

function defaultHeadLearningRate(kind: HeadKind, learningRate: number): number {
  return kind === "softmax" ? learningRate : DEFAULT_CRF_HEAD_LEARNING_RATE;
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
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new NerEngineError(code === "ENOENT" ? "config file not found" : `cannot read config file: ${(e as Error).message}`, path);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new NerEngineError(`invalid JSON: ${(e as Error).message}`, path);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new NerEngineError("config must be a JSON object", path);
  return json as Record<string, unknown>;
}

/**
 * All defaults, as a plain object (training from scratch without a tokenizer is not runnable:
 * set `model` or `tokenizer` before passing it to parseConfig / Engine).
 */
export function defaultConfig(): EngineConfig {
  const base = baseSchema.parse({});
  return { ...base, tokenizer: base.tokenizer ?? base.model, head: { ...base.head, learningRate: defaultHeadLearningRate(base.head.kind, base.training.learningRate) } };
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
  if (!existsSync(configPath)) return input as EngineConfigInput;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(configPath, "utf8"));
  } catch (e) {
    throw new NerEngineError(`${basename(configPath)} is not valid JSON (${(e as Error).message})`, configPath);
  }
  if (json === null || typeof json !== "object" || !(json as Record<string, unknown>).ner_engine) return input as EngineConfigInput;
  const block = parseNerEngineBlock(parseEncoderConfig(json, configPath), configPath);
  return mergeConfig({ head: block.head, data: block.input }, input as Record<string, unknown>) as EngineConfigInput;
}

/**
 * What a saved model is, besides its weights: the encoder config, the label set, the head and the input
 * settings (scheme, window length, sub-token labelling). The head and input settings are defined here
 * once, with their defaults; the engine configuration's `head` and `data` sections are built from these
 * same fields, and config.json's `ner_engine` block is read back by the same schema.
 */
import { z } from "zod";
import { NerEngineError } from "../errors.js";
import { maxSequenceLength, type EncoderConfig } from "./encoder-config.js";

const int = (min: number) => z.number().int().min(min);
const probability = () => z.number().min(0).max(1);

export const HEAD_KINDS = ["softmax", "crf", "bilstm-crf", "bilstm-attn-crf"] as const;
export type HeadKind = (typeof HEAD_KINDS)[number];

// Field descriptions are zod metadata, not doc comments, so config.schema.json and docs/config.md carry them.

/** The head's shape and decoding rules. */
export const headSpecFields = {
  kind: z.enum(HEAD_KINDS).default("softmax").describe("Head over the encoder: softmax (HF BertForTokenClassification), crf, bilstm-crf or bilstm-attn-crf."),
  lstmHiddenSize: int(1).default(256).describe("Hidden size per direction of the BiLSTM (bilstm-* heads)."),
  lstmLayers: int(1).default(1).describe("Number of stacked BiLSTM layers (bilstm-* heads)."),
  attentionHeads: int(1).default(4).describe("Self-attention heads over the BiLSTM output (bilstm-attn-crf)."),
  classifierDropout: probability().optional().describe("Dropout before the classifier; absent = the encoder's (HF semantics)."),
  constrainDecoding: z.boolean().default(true).describe("Viterbi only over transitions valid in the tag scheme (e.g. no O → I-X)."),
  constrainTraining: z.boolean().default(false).describe("Also forbid invalid transitions in the CRF partition function while training."),
};

/** How words become the model's inputs, and the scheme of its labels. */
export const inputSpecFields = {
  trainScheme: z.enum(["IOB2", "IOBES"]).default("IOB2").describe("Scheme the model is trained (and decodes) in; predictions are reported in IOB2."),
  maxLength: int(3).default(128).describe("Window length in sub-tokens including the special tokens (run_ner.py max_seq_length)."),
  stride: int(0).optional().describe("Sub-tokens of overlap between windows of a long sentence; absent = maxLength / 4."),
  labelAllSubtokens: z.boolean().default(false).describe("Label every sub-token, not only the first of each word (run_ner.py label_all_tokens)."),
  documentContext: z.boolean().default(false).describe("Fill spare window room with neighbouring sentences of the same document, as context."),
  lowercase: z.boolean().optional().describe("Overrides the tokenizer files' lowercasing; absent = as the tokenizer files say."),
};

const headSpecSchema = z.strictObject(headSpecFields);
const inputSpecSchema = z.strictObject(inputSpecFields);
export type HeadSpec = z.output<typeof headSpecSchema>;
export type InputSpec = z.output<typeof inputSpecSchema>;

/** config.json's `ner_engine` block. */
const nerEngineBlockSchema = z.strictObject({
  head: headSpecSchema.prefault({}),
  input: inputSpecSchema.prefault({}),
});
export type NerEngineBlock = z.output<typeof nerEngineBlockSchema>;

export interface TaggerSpec {
  encoder: EncoderConfig;
  /** Label names in id order (the classifier's rows). */
  labels: readonly string[];
  head: HeadSpec;
  input: InputSpec;
}

/** Earlier releases saved one flat block ({head: "crf", lstmHiddenSize, trainScheme, maxLength, ...}). */
function fromFlatBlock(block: Record<string, unknown>): Record<string, unknown> {
  const { head, lstmHiddenSize, lstmLayers, attentionHeads, classifierDropout, constrainDecoding, constrainTraining, ...input } = block;
  const defined = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null));
  return { head: defined({ kind: head, lstmHiddenSize, lstmLayers, attentionHeads, classifierDropout, constrainDecoding, constrainTraining }), input: defined(input) };
}

/**
 * Reads config.json's ner_engine block (absent for HF checkpoints: all defaults, with maxLength capped
 * by the encoder's positions). Unknown keys and bad values are errors naming the file.
 */
export function parseNerEngineBlock(encoder: EncoderConfig, source: string): NerEngineBlock {
  const raw = encoder.ner_engine;
  const block = raw && typeof raw.head === "string" ? fromFlatBlock(raw) : (raw ?? {});
  const result = nerEngineBlockSchema.safeParse(block);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `ner_engine.${i.path.map(String).join(".")}: ${i.message}`);
    throw new NerEngineError(`invalid ner_engine block:\n  ${lines.join("\n  ")}`, source);
  }
  const parsed = result.data;
  if (!raw || (raw as { input?: { maxLength?: unknown } }).input?.maxLength === undefined && raw.maxLength === undefined) {
    parsed.input.maxLength = Math.min(parsed.input.maxLength, maxSequenceLength(encoder));
  }
  return parsed;
}

/** Checks the spec's parts agree (window fits the positions, labels exist); errors say what to change. */
export function checkSpec(spec: TaggerSpec, source: string): void {
  const limit = maxSequenceLength(spec.encoder);
  if (spec.input.maxLength > limit) {
    throw new NerEngineError(`maxLength ${spec.input.maxLength} exceeds the ${limit} positions the encoder has (max_position_embeddings ${spec.encoder.max_position_embeddings})`, source);
  }
  if (spec.input.stride !== undefined && spec.input.stride >= spec.input.maxLength - 2) {
    throw new NerEngineError(`stride ${spec.input.stride} must be smaller than maxLength - 2 (${spec.input.maxLength - 2})`, source);
  }
  if (spec.labels.length === 0) throw new NerEngineError("the model needs at least one label", source);
  if (spec.head.kind === "bilstm-attn-crf" && (2 * spec.head.lstmHiddenSize) % spec.head.attentionHeads !== 0) {
    throw new NerEngineError(`2 × lstmHiddenSize (${2 * spec.head.lstmHiddenSize}) is not a multiple of attentionHeads (${spec.head.attentionHeads})`, source);
  }
}

/** The block written into config.json. */
export function nerEngineBlock(spec: TaggerSpec): NerEngineBlock {
  return { head: { ...spec.head }, input: { ...spec.input } };
}

/**
 * Tagger: the one object that owns a model, as flair's SequenceTagger and HF's PreTrainedModel do: its
 * spec (encoder config, labels, head, input settings), its tokenizer and the native encoder + head; it
 * encodes words, predicts, and saves to / loads from a HF-layout folder (config.json, model.safetensors,
 * tokenizer files).
 */
import path from "node:path";
import { NerEngineError } from "../errors.js";
import type { Sentence } from "../data/types.js";
import { transitionConstraints } from "../data/labels.js";
import { encodeSentences, mergeWindowPredictions, type EncodedCorpus } from "../data/alignment.js";
import { loadTokenizer, type WordTokenizer } from "../text/tokenizer.js";
import { type Checkpoint, readCheckpoint, writeCheckpoint } from "./checkpoint.js";
import { configJsonFor, encoderPrefix, isRobertaLike, labelList, maxSequenceLength, type EncoderConfig } from "./encoder-config.js";
import { checkSpec, nerEngineBlock, parseNerEngineBlock, type TaggerSpec } from "./spec.js";
import { mapLabelsByName, type LabelMapping } from "./label-mapping.js";
import { native, type NativeDataset, type NativeTagger, type NativeWeightEntry } from "./native.js";
import { forwardBatch, type ForwardInput } from "./forward-input.js";
import type { TensorToWrite, TensorView } from "./safetensors.js";
import { LIMITS, pathExists, readBoundedFile } from "./bounded-read.js";
import { checkCheckpointBeforeBuild, checkConfigAgainstTensors, checkFiniteTensors, checkModelSize } from "./checkpoint-checks.js";

/** Tokenizer files copied into a saved model (whichever the tokenizer folder has). */
export const TOKENIZER_FILES = [
  "tokenizer.json",
  "vocab.txt",
  "vocab.json",
  "merges.txt",
  "sentencepiece.bpe.model",
  "spiece.model",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
];

export interface TaggerOptions {
  device?: "auto" | "cpu" | "cuda";
  /** Seeds the initialisation of whatever the checkpoint does not provide. */
  seed?: number;
}

export type WeightArrays = Awaited<ReturnType<NativeTagger["exportWeights"]>>;

export class Tagger {
  private handle: NativeTagger | undefined;

  private constructor(
    readonly spec: TaggerSpec,
    readonly tokenizer: WordTokenizer,
    /** Where the tokenizer files came from (copied on save). */
    readonly tokenizerDir: string | undefined,
    handle: NativeTagger,
  ) {
    this.handle = handle;
  }

  /** A tagger with freshly initialised weights. */
  static create(spec: TaggerSpec, tokenizer: WordTokenizer, tokenizerDir: string | undefined, opts: TaggerOptions = {}): Tagger {
    const source = tokenizerDir ?? "model";
    checkSpec(spec, source);
    checkTokenizerFits(spec.encoder, tokenizer);
    // Before anything is allocated: an absurd size is a clear error, not an allocator's message.
    checkModelSize(spec, source);
    return new Tagger(spec, tokenizer, tokenizerDir, newNativeTagger(spec, opts, source));
  }

  /** Loads a saved tagger: one of ours, or a HF *ForTokenClassification checkpoint of a supported family. */
  static async load(dir: string, opts: TaggerOptions = {}): Promise<Tagger> {
    const checkpoint = readCheckpoint(dir);
    const block = parseNerEngineBlock(checkpoint.config, path.join(dir, "config.json"));
    const spec = { encoder: checkpoint.config, labels: labelList(checkpoint.config), ...block };
    checkCheckpointBeforeBuild(checkpoint, spec);
    if (!checkpoint.hasTokenizer) throw new NerEngineError("the model folder has no tokenizer (tokenizer.json or vocab.txt)", dir);
    const tokenizer = loadTokenizer(dir, { lowercase: block.input.lowercase });
    const tagger = Tagger.create(spec, tokenizer, dir, opts);
    await tagger.loadCheckpoint(checkpoint, { complete: true });
    return tagger;
  }

  /**
   * The start of fine-tuning: the encoder from `checkpoint`, and its head's rows mapped onto the data's
   * labels by name (kept rows, fresh rows for new labels; see label-mapping.ts).
   */
  static async fromCheckpoint(
    checkpoint: Checkpoint,
    settings: Pick<TaggerSpec, "head" | "input">,
    dataLabels: readonly string[],
    tokenizer: WordTokenizer,
    tokenizerDir: string | undefined,
    opts: TaggerOptions & { ignoreMismatchedSizes: boolean },
  ): Promise<{ tagger: Tagger; mapping: LabelMapping }> {
    const config = checkpoint.config;
    const classifier = checkpoint.weights.get("classifier.weight");
    // A head is carried over only into a head of the same kind (a softmax classifier over BERT states
    // means nothing to a BiLSTM-CRF); HF checkpoints' heads are softmax ones.
    const savedKind = config.ner_engine ? parseNerEngineBlock(config, path.join(checkpoint.dir, "config.json")).head.kind : "softmax";
    const sameKind = savedKind === settings.head.kind;
    let known = classifier && config.hasLabelNames && sameKind ? labelList(config) : undefined;
    if (known && classifier!.shape[0] !== known.length) {
      if (!opts.ignoreMismatchedSizes) {
        throw new NerEngineError(`classifier.weight has ${classifier!.shape[0]} rows but config.json names ${known.length} labels (set ignoreMismatchedSizes to start a fresh head)`, checkpoint.dir);
      }
      known = undefined;
    }
    const mapping = mapLabelsByName(known, dataLabels, { ignoreMismatchedSizes: opts.ignoreMismatchedSizes, source: checkpoint.dir });
    if (classifier && !sameKind) mapping.note = `the checkpoint's head is ${savedKind}, this model's ${settings.head.kind}`;
    const spec = { encoder: config, labels: mapping.labels, ...settings };
    checkCheckpointBeforeBuild(checkpoint, spec, { skipMismatched: opts.ignoreMismatchedSizes });
    const tagger = Tagger.create(spec, tokenizer, tokenizerDir, opts);
    const report = await tagger.loadCheckpoint(checkpoint, { complete: false, labelRows: known ? mapping.rows : undefined, skipMismatched: opts.ignoreMismatchedSizes });
    if (report.mismatched.length) mapping.mismatched = report.mismatched;
    return { tagger, mapping };
  }

  get labels(): readonly string[] {
    return this.spec.labels;
  }

  get device(): "cpu" | "cuda" {
    return this.native.device;
  }

  /** The native handle, for the engine's training calls. */
  get native(): NativeTagger {
    if (!this.handle) throw new NerEngineError("this tagger has been disposed");
    return this.handle;
  }

  /** Words → windows of sub-token ids (+ label ids when `labelIds` is given); `stride` overrides the spec's. */
  encode(sentences: readonly Sentence[], labelIds?: (tag: string) => number, stride?: number): EncodedCorpus {
    const input = this.spec.input;
    return encodeSentences(this.tokenizer, sentences, {
      maxLength: input.maxLength,
      stride: stride ?? input.stride,
      labelAllSubtokens: input.labelAllSubtokens,
      documentContext: input.documentContext,
      labelIds,
    });
  }

  /** Label ids and scores per word of each sentence, in the model's scheme. */
  async predictIds(sentences: readonly Sentence[], opts: { batchSize: number; bf16: boolean; stride?: number }): Promise<{ ids: number[][]; scores: number[][] }> {
    const encoded = this.encode(sentences, undefined, opts.stride);
    // No window at all when no word has a sub-token; the native side refuses an empty dataset.
    const out = encoded.numWindows > 0 ? await this.native.predict(nativeDataset(encoded, false), { batchSize: opts.batchSize, bf16: opts.bf16 }) : { tags: new Int32Array(0), scores: new Float32Array(0) };
    return { ids: mergeWindowPredictions(encoded, out.tags), scores: mergeWindowPredictions(encoded, out.scores, 1) };
  }

  /** Raw encoder + head forward in eval mode (HF *ForTokenClassification semantics for the softmax head). */
  async forward(input: ForwardInput & { labels?: number[][] }) {
    const e = this.spec.encoder;
    return this.native.forward(forwardBatch(input, { vocabSize: e.vocab_size, typeVocabSize: Math.max(1, e.type_vocab_size), maxPositions: maxSequenceLength(e), numLabels: this.labels.length }));
  }

  /** All weights under checkpoint names, as fp32 arrays (e.g. to keep the best epoch's in memory). */
  exportWeights(): Promise<WeightArrays> {
    return this.native.exportWeights();
  }

  /** Puts back weights taken with exportWeights(). */
  async restoreWeights(weights: WeightArrays): Promise<void> {
    const total = weights.reduce((n, w) => n + w.data.byteLength, 0);
    const bytes = new Uint8Array(total);
    let offset = 0;
    const entries = weights.map((w) => {
      bytes.set(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength), offset);
      const entry = { name: w.name, dtype: "F32", shape: w.shape, byteOffset: offset, byteLength: w.data.byteLength };
      offset += w.data.byteLength;
      return entry;
    });
    await this.native.loadWeights(bytes, entries, [""]);
  }

  /**
   * Writes the model as a HF-layout folder, replacing any folder there in one step. `weights` (from
   * exportWeights) saves those instead of exporting again; `extraFiles` go alongside; `finish(tmp)` may
   * add files last, into the new folder before it goes into place.
   */
  async save(
    dir: string,
    opts: { weights?: WeightArrays; extraFiles?: Record<string, string | Uint8Array>; finish?: (tmp: string) => void } = {},
  ): Promise<void> {
    const weights = opts.weights ?? (await this.exportWeights());
    const tensors: TensorToWrite[] = weights.map((w) => ({ name: w.name, dtype: "F32", shape: w.shape, data: w.data }));
    const config = configJsonFor(this.spec.encoder, this.labels, this.spec.head.kind !== "softmax", nerEngineBlock(this.spec));
    const files: Record<string, string | Uint8Array> = { ...opts.extraFiles };
    if (this.tokenizerDir) {
      // Read now, before the folder is replaced (it may be the tokenizer's own folder).
      for (const name of TOKENIZER_FILES) {
        const source = path.join(this.tokenizerDir, name);
        if (pathExists(source)) files[name] = readBoundedFile(source, { maxBytes: LIMITS.tokenizer, what: name });
      }
    }
    writeCheckpoint(dir, { config, tensors, tokenizerFiles: files }, opts.finish);
  }

  /** Frees the native model now rather than at garbage collection; the tagger is unusable afterwards. */
  dispose(): void {
    this.handle?.dispose();
    this.handle = undefined;
  }

  /**
   * Copies a checkpoint's tensors in. `complete`: every tensor must be there (a saved tagger); else the
   * encoder must be complete and head tensors are taken only with `labelRows` (mapped by name).
   */
  async loadCheckpoint(
    checkpoint: Checkpoint,
    opts: { complete: boolean; labelRows?: number[]; skipMismatched?: boolean },
  ): Promise<{ initialised: string[]; unused: string[]; mismatched: string[] }> {
    const prefix = `${encoderPrefix(this.spec.encoder.family)}.`;
    // Layers the model lacks would be dropped silently (the native side reports them as unused).
    checkConfigAgainstTensors(this.spec.encoder, checkpoint.weights, path.join(checkpoint.dir, "config.json"), { skipMismatched: true });
    const entries = new Map<Uint8Array, NativeWeightEntry[]>();
    const loaded: [string, TensorView][] = [];
    for (const [name, view] of checkpoint.weights) {
      if (!opts.complete && !opts.labelRows && !name.startsWith(prefix)) continue;  // a fresh head
      loaded.push([name, view]);
      const file = checkpoint.fileBytes.find((bytes) => bytes.buffer === view.data.buffer);
      if (!file) throw new NerEngineError(`tensor "${name}" is not inside any weights file`, checkpoint.dir);
      const list = entries.get(file) ?? [];
      list.push({ name, dtype: view.dtype, shape: view.shape, byteOffset: view.data.byteOffset - file.byteOffset, byteLength: view.data.byteLength });
      entries.set(file, list);
    }
    checkFiniteTensors(loaded, checkpoint.dir);
    // Each weights file (one, or several shards) is copied in on its own; a name counts as initialised
    // only if no file had it, and the required ones are checked once, here, for every layout.
    let initialised: Set<string> | undefined;
    const unused: string[] = [];
    const mismatched: string[] = [];
    for (const [file, list] of entries) {
      const report = await withWhere(checkpoint.dir, this.native.loadWeights(file, list, [], { labelRows: opts.labelRows, skipMismatched: opts.skipMismatched }));
      const missingHere = new Set(report.initialised);
      initialised = initialised ? new Set([...initialised].filter((n) => missingHere.has(n))) : missingHere;
      unused.push(...report.unused);
      mismatched.push(...report.mismatched);
    }
    initialised ??= new Set((await this.exportWeights()).map((w) => w.name));
    const skipped = new Set(mismatched.map((m) => m.split(" ")[0]));
    const missing = [...initialised].find((n) => !skipped.has(n) && (opts.complete || n.startsWith(prefix)));
    if (missing) throw new NerEngineError(`checkpoint is missing tensor "${missing}"`, checkpoint.dir);
    return { initialised: [...initialised], unused, mismatched };
  }
}

/** The encoded corpus as the native side takes it. */
export function nativeDataset(encoded: EncodedCorpus, withLabels: boolean): NativeDataset {
  return { inputIds: encoded.inputIds, windowOffsets: encoded.windowOffsets, wordStarts: encoded.wordStarts, labels: withLabels ? encoded.labels : undefined };
}

function checkTokenizerFits(encoder: EncoderConfig, tokenizer: WordTokenizer): void {
  if (tokenizer.vocabSize > encoder.vocab_size) {
    throw new NerEngineError(`the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${encoder.vocab_size}`, tokenizer.source);
  }
  // RoBERTa derives position ids from the pad id, so the tokenizer must pad with the model's.
  if (isRobertaLike(encoder.family) && tokenizer.padId !== encoder.pad_token_id) {
    throw new NerEngineError(`the tokenizer pads with id ${tokenizer.padId} but the model's pad_token_id is ${encoder.pad_token_id}`, tokenizer.source);
  }
}

function newNativeTagger(spec: TaggerSpec, opts: TaggerOptions, source: string): NativeTagger {
  const { encoder: e, head, labels } = spec;
  const isCrf = head.kind !== "softmax";
  let constraints: { transitions: Float32Array; start: Float32Array; end: Float32Array } | undefined;
  if (isCrf && (head.constrainDecoding || head.constrainTraining)) {
    const c = transitionConstraints(labels, spec.input.trainScheme);
    constraints = { transitions: Float32Array.from(c.transitions.flat()), start: Float32Array.from(c.start), end: Float32Array.from(c.end) };
  }
  const NativeTaggerClass = native().NativeTagger;
  const build = () => new NativeTaggerClass({
    encoder: {
      family: e.family,
      vocabSize: e.vocab_size,
      hiddenSize: e.hidden_size,
      numHiddenLayers: e.num_hidden_layers,
      numAttentionHeads: e.num_attention_heads,
      intermediateSize: e.intermediate_size,
      maxPositionEmbeddings: e.max_position_embeddings,
      typeVocabSize: e.type_vocab_size,
      padTokenId: e.pad_token_id,
      sinusoidalPositions: e.sinusoidal_positions,
      layerNormEps: e.layer_norm_eps,
      hiddenDropoutProb: e.hidden_dropout_prob,
      attentionProbsDropoutProb: e.attention_probs_dropout_prob,
      hiddenAct: e.hidden_act,
    },
    head: {
      kind: head.kind,
      numLabels: labels.length,
      classifierDropout: head.classifierDropout ?? e.classifier_dropout ?? e.hidden_dropout_prob,
      lstmHiddenSize: head.lstmHiddenSize,
      lstmLayers: head.lstmLayers,
      attentionHeads: head.attentionHeads,
      constrainDecoding: head.constrainDecoding,
      constrainTraining: head.constrainTraining,
      constraints,
    },
    device: opts.device ?? "auto",
    seed: opts.seed ?? 42,
  });
  try {
    return build();
  } catch (err) {
    // E.g. an allocator's "you tried to allocate N bytes": say which model it was building, and its sizes.
    const sizes = `${e.family}: vocab_size ${e.vocab_size}, hidden_size ${e.hidden_size}, ${e.num_hidden_layers} layers, intermediate_size ${e.intermediate_size}, ${labels.length} labels`;
    throw new NerEngineError(`cannot build the model (${sizes}): ${(err as Error).message}`, source);
  }
}

async function withWhere<T>(where: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw new NerEngineError((err as Error).message, where);
  }
}

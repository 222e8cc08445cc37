/**
 * The engine users touch: fit / evaluate / predict / save over the native tagger.
 * Data flows one way: corpora → alignment (sub-token windows) → native → predictions → metrics.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { NerEngineError } from "../errors.js";
import type { Corpus, Sentence } from "../data/types.js";
import { parseConfig, type EngineConfig, type EngineConfigInput } from "./config.js";
import { type BertConfig, labelList, parseBertConfig, readCheckpoint } from "../model/checkpoint.js";
import { encodeSentences, mergeWindowPredictions, pretokenize, type EncodedCorpus } from "../data/alignment.js";
import { loadTokenizer, type WordTokenizer } from "../text/tokenizer.js";
import { bioesToIob2, convertScheme, LabelSet, unseenLabels, type UnseenLabel } from "../data/labels.js";
import { classificationReport, getEntities, tagReport, type ClassificationReport } from "../eval/metrics.js";
import type { NativeDataset, NativeProgress, NativeTagger } from "../model/native.js";
import { createNativeTagger, forwardBatch, loadCheckpointWeights, loadWeightArrays, saveTagger, type ForwardInput, type TaggerSettings } from "../model/tagger.js";
import { writeFileAtomic } from "../model/safetensors.js";

export type TrainProgress = NativeProgress;
export type { ForwardInput };

export interface EvaluationResult {
  report: ClassificationReport;
  tagReport: ClassificationReport;
  tokens: string[][];
  gold: string[][];
  pred: string[][];
  unseenLabels: UnseenLabel[];
  seconds: number;
  sentencesPerSecond: number;
}

export interface EpochResult {
  epoch: number;
  trainLoss: number;
  seconds: number;
  sentencesPerSecond: number;
  tokensPerSecond: number;
  /** Share of the computed token positions that were padding (length grouping keeps it small). */
  padFraction: number;
  /** Seconds per phase of the training steps (CPU; on CUDA the phases overlap and only the sum is real). */
  phaseSeconds: { batch: number; forward: number; backward: number; optimizer: number };
  dev?: EvaluationResult;
  isBest: boolean;
}

export interface TrainingHistory {
  epochs: EpochResult[];
  best?: { epoch: number; metric: number };
  test?: EvaluationResult;
  stoppedEarly: boolean;
  cancelled: boolean;
  seconds: number;
}

export interface PredictedWord {
  word: string;
  start?: number;
  end?: number;
  tag: string;
  score: number;
}

export interface PredictedEntity {
  type: string;
  text: string;
  startWord: number;
  /** Exclusive. */
  endWord: number;
  start?: number;
  end?: number;
  score: number;
}

export interface PredictionResult {
  words: PredictedWord[];
  entities: PredictedEntity[];
}

export interface FitCallbacks {
  onProgress?(progress: TrainProgress): void;
  onEpoch?(epoch: EpochResult): void;
}


export class Engine {
  readonly config: EngineConfig;
  private readonly tokenizer: WordTokenizer;
  private bert: BertConfig;
  private settings: TaggerSettings;
  private labelSet?: LabelSet;
  private tagger?: NativeTagger;
  /** Checkpoint weights still to load into the tagger once its label set is known. */
  private pendingCheckpoint?: string;
  /** Set by cancel() during fit(): the native flag alone is reset when the next epoch starts. */
  private cancelRequested = false;

  constructor(input: EngineConfigInput | EngineConfig) {
    this.config = parseConfig(input);
    const c = this.config;
    if (!c.tokenizer) throw new NerEngineError("no tokenizer directory (config.tokenizer or config.model)");
    this.tokenizer = loadTokenizer(c.tokenizer, { lowercase: c.data.lowercase });
    if (c.model) {
      this.bert = parseBertConfig(JSON.parse(readFileOrThrow(path.join(c.model, "config.json"))), path.join(c.model, "config.json"));
      this.pendingCheckpoint = c.model;
    } else {
      const s = c.scratch;
      this.bert = parseBertConfig(
        {
          vocab_size: s.vocabSize ?? this.tokenizer.vocabSize,
          hidden_size: s.hiddenSize,
          num_hidden_layers: s.numHiddenLayers,
          num_attention_heads: s.numAttentionHeads,
          intermediate_size: s.intermediateSize,
          max_position_embeddings: s.maxPositionEmbeddings,
          hidden_dropout_prob: s.hiddenDropoutProb,
          attention_probs_dropout_prob: s.attentionProbsDropoutProb,
          layer_norm_eps: s.layerNormEps,
          hidden_act: s.hiddenAct,
          pad_token_id: this.tokenizer.padId,
        },
        "config.scratch",
      );
    }
    if (this.tokenizer.vocabSize > this.bert.vocab_size) {
      throw new NerEngineError(`the tokenizer has ${this.tokenizer.vocabSize} tokens but the model's vocab_size is ${this.bert.vocab_size}`, c.tokenizer);
    }
    if (c.data.maxLength > this.bert.max_position_embeddings) {
      throw new NerEngineError(`data.maxLength ${c.data.maxLength} exceeds the model's max_position_embeddings (${this.bert.max_position_embeddings})`, "config");
    }
    this.settings = {
      head: c.head.kind,
      lstmHiddenSize: c.head.lstmHiddenSize,
      lstmLayers: c.head.lstmLayers,
      attentionHeads: c.head.attentionHeads,
      classifierDropout: c.head.classifierDropout ?? null,
      constrainDecoding: c.head.constrainDecoding,
      constrainTraining: c.head.constrainTraining,
      trainScheme: c.data.trainScheme,
      maxLength: c.data.maxLength,
      stride: c.data.stride,
      labelAllSubtokens: c.data.labelAllSubtokens,
      documentContext: c.data.documentContext,
      lowercase: c.data.lowercase,
    };
  }

  /** Loads a checkpoint saved by this engine (or a HF BertForTokenClassification one) for inference or more training. */
  static async load(dir: string, opts: { device?: "auto" | "cpu" | "cuda" } = {}): Promise<Engine> {
    const checkpoint = readCheckpoint(dir);
    const saved = (checkpoint.config.ner_engine ?? {}) as Partial<TaggerSettings>;
    const engine = new Engine({
      model: dir,
      device: opts.device ?? "auto",
      head: {
        kind: saved.head ?? "softmax",
        lstmHiddenSize: saved.lstmHiddenSize,
        lstmLayers: saved.lstmLayers,
        attentionHeads: saved.attentionHeads,
        classifierDropout: saved.classifierDropout ?? undefined,
        constrainDecoding: saved.constrainDecoding,
        constrainTraining: saved.constrainTraining,
      },
      data: {
        trainScheme: saved.trainScheme,
        maxLength: saved.maxLength ?? Math.min(512, checkpoint.config.max_position_embeddings),
        stride: saved.stride,
        labelAllSubtokens: saved.labelAllSubtokens,
        documentContext: saved.documentContext,
        lowercase: saved.lowercase,
      },
    });
    engine.labelSet = new LabelSet(labelList(checkpoint.config));
    engine.tagger = createNativeTagger(engine.bert, engine.labelSet.labels, engine.settings, engine.config.device, engine.config.training.seed);
    await loadCheckpointWeights(engine.tagger, checkpoint, { requireHead: true, numLabels: engine.labelSet.size });
    engine.pendingCheckpoint = undefined;
    return engine;
  }

  get device(): "cpu" | "cuda" {
    return this.tagger?.device ?? (this.config.device === "cuda" ? "cuda" : "cpu");
  }

  /** Labels in id order (empty until the model has a label set). */
  get labels(): readonly string[] {
    return this.labelSet?.labels ?? [];
  }

  /** Raw encoder + head forward in eval mode (HF BertForTokenClassification semantics for the softmax head). */
  async forward(input: ForwardInput & { labels?: number[][] }) {
    const { vocab_size: vocabSize, type_vocab_size: typeVocabSize, max_position_embeddings: maxPositions } = this.bert;
    return this.requireTagger().forward(forwardBatch(input, { vocabSize, typeVocabSize, maxPositions, numLabels: this.labels.length }));
  }

  /** Fine-tunes on `train`, evaluating on `dev` after each epoch and keeping the best weights. */
  async fit(data: { train: Corpus; dev?: Corpus; test?: Corpus }, callbacks: FitCallbacks = {}): Promise<TrainingHistory> {
    const c = this.config;
    const started = Date.now();
    this.cancelRequested = false;
    const train = this.toTrainScheme(data.train.sentences);
    if (train.length === 0) throw new NerEngineError("the training set has no sentences", data.train.source);
    if (!train.some((s) => s.tokens.length > 0)) throw new NerEngineError("the training set has only empty sentences", data.train.source);
    if (!this.labelSet) this.labelSet = LabelSet.fromSentences(train, c.data.trainScheme === "IOBES" ? "IOBES" : "IOB2");
    await this.ensureTagger();
    const tagger = this.requireTagger();
    const unseen = unseenLabels(train, this.labelSet);
    if (unseen.length) throw new NerEngineError(`training labels missing from the model's label set: ${unseen.map((u) => u.label).join(", ")}`, data.train.source);

    const encoded = this.encode(train, true);
    const plan = tagger.setupTraining(toNativeDataset(encoded, true), {
      epochs: Math.ceil(c.training.epochs),
      batchSize: c.training.batchSize,
      gradientAccumulation: c.training.gradientAccumulation,
      seed: c.training.seed,
      progressEvery: c.training.progressEvery,
      maxSteps: c.training.maxSteps ?? -1,
      encoderLearningRate: c.training.learningRate,
      headLearningRate: c.head.learningRate,
      weightDecay: c.training.weightDecay,
      warmupRatio: c.training.warmupRatio,
      warmupSteps: c.training.warmupSteps,
      maxGradNorm: c.training.maxGradNorm,
      adamBeta1: c.training.adamBeta1,
      adamBeta2: c.training.adamBeta2,
      adamEpsilon: c.training.adamEpsilon,
      bf16: c.training.bf16,
      tf32: c.training.tf32,
      lengthGrouping: c.training.groupByLength === "hf" ? "megabatch" : c.training.groupByLength ? "pools" : "none",
    });

    const history: TrainingHistory = { epochs: [], stoppedEarly: false, cancelled: false, seconds: 0 };
    let firstEpoch = 0;
    if (c.training.resumeFrom) firstEpoch = await this.resume(c.training.resumeFrom, history);
    const epochs = Math.ceil(c.training.epochs);
    let bestWeights: Awaited<ReturnType<NativeTagger["exportWeights"]>> | undefined;
    let sinceBest = 0;
    for (let epoch = firstEpoch; epoch < epochs; epoch++) {
      if (this.cancelRequested) {
        history.cancelled = true;
        break;
      }
      const summary = await tagger.trainEpoch(epoch, callbacks.onProgress);
      if (summary.callbackError) throw new NerEngineError(`the progress callback threw: ${summary.callbackError}`);
      // A cancel() that arrives after the epoch's last step (e.g. from its last progress report) still counts.
      const cancelled = summary.cancelled || this.cancelRequested;
      const result: EpochResult = {
        epoch,
        trainLoss: summary.meanLoss,
        seconds: summary.seconds,
        sentencesPerSecond: summary.sentences / Math.max(summary.seconds, 1e-9),
        tokensPerSecond: summary.tokens / Math.max(summary.seconds, 1e-9),
        padFraction: summary.paddedTokens > 0 ? 1 - summary.tokens / summary.paddedTokens : 0,
        phaseSeconds: summary.phaseSeconds,
        isBest: false,
      };
      if (data.dev && !cancelled) {
        result.dev = await this.evaluate(data.dev);
        const metric = c.training.metricForBestModel === "f1" ? result.dev.report.micro.f1 : -summary.meanLoss;
        if (!history.best || metric > history.best.metric) {
          history.best = { epoch, metric };
          result.isBest = true;
          sinceBest = 0;
          bestWeights = await tagger.exportWeights();
          if (c.output) await this.save(path.join(c.output, "model"));
        } else sinceBest++;
      }
      history.epochs.push(result);
      if (c.output) await this.saveResumePoint(path.join(c.output, "last"), epoch, history);
      callbacks.onEpoch?.(result);
      if (cancelled || this.cancelRequested) {
        history.cancelled = true;
        break;
      }
      if (c.training.earlyStoppingPatience !== undefined && sinceBest >= c.training.earlyStoppingPatience) {
        history.stoppedEarly = true;
        break;
      }
      if (summary.globalStep >= plan.totalSteps) break;
    }
    if (bestWeights && history.best && history.best.epoch !== history.epochs.at(-1)?.epoch) await loadWeightArrays(this.requireTagger(), bestWeights);
    if (data.test) history.test = await this.evaluate(data.test);
    history.seconds = (Date.now() - started) / 1000;
    return history;
  }

  /** Stops a running fit() at the next step; the weights stay as they are. */
  cancel(): void {
    this.cancelRequested = true;
    this.tagger?.cancel();
  }

  /** Predicts `data` and scores it against its tags (seqeval, in IOB2). */
  async evaluate(data: Corpus): Promise<EvaluationResult> {
    const labelSet = this.requireLabels();
    const started = Date.now();
    const sentences = data.sentences.filter((s) => s.tokens.length > 0);
    const iob2 = this.toInputIob2(sentences);
    const gold = iob2.map((s) => s.tags);
    const predicted = await this.predictTags(sentences.map((s) => s.tokens), sentences);
    const pred = predicted.map((p) => p.tags);
    const seconds = (Date.now() - started) / 1000;
    return {
      report: classificationReport(gold, pred, { mode: this.config.metrics.mode }),
      tagReport: tagReport(gold, pred),
      tokens: sentences.map((s) => s.tokens),
      gold,
      pred,
      unseenLabels: unseenLabels(this.fromIob2ToTrainScheme(iob2), labelSet),
      seconds,
      sentencesPerSecond: sentences.length / Math.max(seconds, 1e-9),
    };
  }

  /** Tags raw text (one sentence), pre-split words, or many sentences of words. */
  async predict(input: string | string[] | string[][]): Promise<PredictionResult[]> {
    let sentences: { words: string[]; offsets?: { start: number; end: number }[] }[];
    if (typeof input === "string") {
      const words = pretokenize(input);
      sentences = [{ words: words.map((w) => w.word), offsets: words }];
    } else if (input.length > 0 && Array.isArray(input[0])) {
      sentences = (input as string[][]).map((words) => ({ words }));
    } else {
      sentences = [{ words: input as string[] }];
    }
    const nonEmpty = sentences.filter((s) => s.words.length > 0);
    const predicted = nonEmpty.length ? await this.predictTags(nonEmpty.map((s) => s.words)) : [];
    let next = 0;
    return sentences.map((s) => {
      if (s.words.length === 0) return { words: [], entities: [] };
      const { tags, scores } = predicted[next++];
      const words = s.words.map((word, i) => ({ word, start: s.offsets?.[i].start, end: s.offsets?.[i].end, tag: tags[i], score: scores[i] }));
      const entities = getEntities(tags).map(([type, startWord, last]) => {
        const span = words.slice(startWord, last + 1);
        return {
          type,
          text: s.offsets ? (input as string).slice(span[0].start, span.at(-1)!.end) : span.map((w) => w.word).join(" "),
          startWord,
          endWord: last + 1,
          start: span[0].start,
          end: span.at(-1)!.end,
          score: span.reduce((sum, w) => sum + w.score, 0) / span.length,
        };
      });
      return { words, entities };
    });
  }

  /** Writes a HF-layout checkpoint directory (atomic per file). */
  async save(dir: string): Promise<void> {
    await saveTagger(dir, this.requireTagger(), this.bert, this.requireLabels().labels, this.settings, this.config.tokenizer);
  }

  // ---- internals ----------------------------------------------------------------------------------

  private async predictTags(words: string[][], sentences?: Sentence[]): Promise<{ tags: string[]; scores: number[] }[]> {
    const labelSet = this.requireLabels();
    const tagger = this.requireTagger();
    const encoded = this.encode(sentences ?? words.map((tokens) => ({ tokens, tags: tokens.map(() => "O") })), false);
    const out = await tagger.predict(toNativeDataset(encoded, false), this.config.training.evalBatchSize);
    const perWindowTags: Int32Array[] = [];
    const perWindowScores: Float32Array[] = [];
    let offset = 0;
    for (let w = 0; w < encoded.numWindows; w++) {
      const n = out.wordsPerWindow[w];
      perWindowTags.push(out.tags.subarray(offset, offset + n));
      perWindowScores.push(out.scores.subarray(offset, offset + n));
      offset += n;
    }
    const tagIds = mergeWindowPredictions(encoded, perWindowTags);
    const scores = mergeWindowPredictions(encoded, perWindowScores);
    return tagIds.map((ids, i) => {
      let tags = ids.map((id) => labelSet.label(id));
      if (this.settings.trainScheme === "IOBES") tags = bioesToIob2(tags);
      return { tags, scores: scores[i] };
    });
  }

  private encode(sentences: Sentence[], withLabels: boolean): EncodedCorpus {
    const labelSet = this.requireLabels();
    return encodeSentences(this.tokenizer, sentences, {
      maxLength: this.settings.maxLength,
      stride: this.settings.stride,
      labelAllSubtokens: this.settings.labelAllSubtokens,
      documentContext: this.settings.documentContext,
      labelIds: withLabels ? (tag) => (labelSet.has(tag) ? labelSet.id(tag) : -100) : undefined,
    });
  }

  /** Input tags → IOB2 (what metrics compare in). */
  private toInputIob2(sentences: Sentence[]): Sentence[] {
    const scheme = this.config.data.tagScheme;
    return scheme === "IOB2" ? sentences : convertScheme(sentences, scheme, "IOB2");
  }

  private toTrainScheme(sentences: Sentence[]): Sentence[] {
    return this.fromIob2ToTrainScheme(this.toInputIob2(sentences));
  }

  private fromIob2ToTrainScheme(iob2: Sentence[]): Sentence[] {
    return this.settings.trainScheme === "IOB2" ? iob2 : convertScheme(iob2, "IOB2", "IOBES");
  }

  private async ensureTagger(): Promise<void> {
    if (this.tagger) return;
    const labels = this.requireLabels().labels;
    this.tagger = createNativeTagger(this.bert, labels, this.settings, this.config.device, this.config.training.seed);
    if (this.pendingCheckpoint) {
      const checkpoint = readCheckpoint(this.pendingCheckpoint);
      await loadCheckpointWeights(this.tagger, checkpoint, { requireHead: false, numLabels: labels.length });
      this.pendingCheckpoint = undefined;
    }
  }

  /** The last epoch's weights + optimizer state, so training can resume from it. */
  private async saveResumePoint(dir: string, epoch: number, history: TrainingHistory): Promise<void> {
    const state = this.requireTagger().saveTrainerState();
    await saveTagger(dir, this.requireTagger(), this.bert, this.requireLabels().labels, this.settings, this.config.tokenizer, {
      "trainer_state.pt": state,
    });
    const summary = { epoch, best: history.best ?? null, epochs: history.epochs.map(({ dev: _dev, ...rest }) => rest) };
    writeFileAtomic(path.join(dir, "trainer_state.json"), JSON.stringify(summary, null, 2));
  }

  private async resume(dir: string, history: TrainingHistory): Promise<number> {
    const statePath = path.join(dir, "trainer_state.json");
    const optimizerPath = path.join(dir, "trainer_state.pt");
    if (!existsSync(statePath) || !existsSync(optimizerPath)) {
      throw new NerEngineError("not a resumable checkpoint (trainer_state.json / trainer_state.pt missing)", dir);
    }
    const state = JSON.parse(readFileOrThrow(statePath)) as { epoch: number; best: TrainingHistory["best"] | null };
    const checkpoint = readCheckpoint(dir);
    await loadCheckpointWeights(this.requireTagger(), checkpoint, { requireHead: true, numLabels: this.requireLabels().size });
    this.requireTagger().loadTrainerState(readFileSync(optimizerPath));
    history.best = state.best ?? undefined;
    return state.epoch + 1;
  }

  private requireTagger(): NativeTagger {
    if (!this.tagger) throw new NerEngineError("the model has no label set yet: call fit() first, or Engine.load() a trained checkpoint");
    return this.tagger;
  }

  private requireLabels(): LabelSet {
    if (!this.labelSet) throw new NerEngineError("the model has no label set yet: call fit() first, or Engine.load() a trained checkpoint");
    return this.labelSet;
  }
}

function toNativeDataset(encoded: EncodedCorpus, withLabels: boolean): NativeDataset {
  return { inputIds: encoded.inputIds, windowOffsets: encoded.windowOffsets, wordStarts: encoded.wordStarts, labels: withLabels ? encoded.labels : undefined };
}

function readFileOrThrow(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    throw new NerEngineError("cannot read file", file);
  }
}

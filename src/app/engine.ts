/**
 * The engine users touch: fit / evaluate / predict / save over the native tagger.
 * Data flows one way: corpora → alignment (sub-token windows) → native → predictions → metrics.
 */
import path from "node:path";
import { NerEngineError } from "../errors.js";
import type { Corpus, Sentence, TagScheme } from "../data/types.js";
import { parseConfig, withSavedModelDefaults, type EngineConfig, type EngineConfigInput } from "./config.js";
import { readCheckpoint } from "../model/checkpoint.js";
import { loadTokenizer, type WordTokenizer } from "../text/tokenizer.js";
import { convertScheme, LabelSet, unseenLabels, type UnseenLabel } from "../data/labels.js";
import { classificationReport, tagReport, type ClassificationReport } from "../eval/metrics.js";
import type { NativeEpochSummary, NativeTrainOptions } from "../model/native.js";
import type { EpochResult, EvaluationResult, FitCallbacks, PredictionResult, PredictOptions, PredictOutput, PredictWordsOptions, TrainingHistory } from "./results.js";
import type { ForwardInput } from "../model/forward-input.js";
import { labelList, scratchBertConfig } from "../model/encoder-config.js";
import type { HeadSpec, InputSpec } from "../model/spec.js";
import { describeMapping, type LabelMapping } from "../model/label-mapping.js";
import { nativeDataset, Tagger, type WeightArrays } from "../model/tagger.js";
import { fileSha256, restoreBest, resumeRun, saveRunResumePoint, type RunState } from "./resume-point.js";
import { encodingWarnings, unseenLabelWarnings, withDevSplit } from "./fit-data.js";
import { checkEvaluateInput, checkFitData, checkPredictOptions, checkPredictTexts, checkPredictWords } from "./input-checks.js";
import { predictTexts, predictWords, tagWords, type Predictor } from "./predict.js";
import { CallQueue } from "./call-queue.js";

export type { ForwardInput };
export type { EpochResult, EvaluationResult, FitCallbacks, PredictedEntity, PredictedWord, PredictionResult, PredictOptions, PredictOutput, PredictWordsOptions, TrainingHistory, TrainProgress } from "./results.js";
export type { Aggregation, GroupedEntity, PipelineEntity, TokenEntity } from "./pipeline.js";

export class Engine {
  readonly config: EngineConfig;
  /** The model, once there is a label set (after fit(), or from Engine.load()). */
  private tagger?: Tagger;
  private labelSet?: LabelSet;
  /** Set by cancel() during fit(): the native flag alone is reset when the next epoch starts. */
  private cancelRequested = false;
  /** True from fit()'s start to its end: between epochs the native worker is idle and cannot refuse a second fit. */
  private fitting = false;
  /**
   * Concurrent calls on one engine run one at a time, first come first served (the native tagger takes
   * one call at a time). fit() queues behind the calls made before it; from fit()'s start until it
   * settles, predict / evaluate / forward / save are refused ("busy": a fit can run for hours, and
   * between its epochs the weights are half-trained), and so is a second fit.
   */
  private readonly calls = new CallQueue();

  /**
   * `config.model`: a checkpoint to fine-tune (or continue training). Its saved head and input settings
   * (config.json's ner_engine block) are the defaults that the given configuration overrides.
   */
  constructor(input: EngineConfigInput | EngineConfig) {
    this.config = parseConfig(withSavedModelDefaults(input));
    if (!this.config.tokenizer) throw new NerEngineError("no tokenizer directory (config.tokenizer or config.model)");
  }

  /** Loads a saved model (ours, or a HF *ForTokenClassification checkpoint) for inference or more training. */
  static async load(dir: string, opts: { device?: "auto" | "cpu" | "cuda" } = {}): Promise<Engine> {
    const engine = new Engine({ model: dir, device: opts.device ?? "auto" });
    engine.setTagger(await Tagger.load(dir, { device: engine.config.device, seed: engine.config.training.seed }));
    return engine;
  }

  get device(): "cpu" | "cuda" {
    return this.tagger?.device ?? (this.config.device === "cuda" ? "cuda" : "cpu");
  }

  /** Labels in id order (empty until the model has a label set). */
  get labels(): readonly string[] {
    return this.labelSet?.labels ?? [];
  }

  /** The model (spec, tokenizer, weights); undefined before fit() unless loaded. */
  get model(): Tagger | undefined {
    return this.tagger;
  }

  /** Raw encoder + head forward in eval mode (HF *ForTokenClassification semantics for the softmax head). */
  async forward(input: ForwardInput & { labels?: number[][] }) {
    return this.serial(() => this.requireTagger().forward(input));
  }

  /**
   * Fine-tunes on `train`, evaluating on `dev` after each epoch and keeping the best weights. It starts
   * once the calls made before it are done; calls made until it settles are refused as busy.
   */
  async fit(data: { train: Corpus; dev?: Corpus; test?: Corpus }, callbacks: FitCallbacks = {}): Promise<TrainingHistory> {
    checkFitData(data);
    // Refused before it touches any state (cancel flag, trainer) of the fit that is running.
    if (this.fitting) throw new NerEngineError("the engine is busy with another call (a fit is running); await it first");
    this.fitting = true;
    try {
      return await this.calls.run(() => this.fitUnguarded(data, callbacks));
    } finally {
      this.fitting = false;
    }
  }

  private async fitUnguarded(data: { train: Corpus; dev?: Corpus; test?: Corpus }, callbacks: FitCallbacks): Promise<TrainingHistory> {
    const c = this.config;
    const started = Date.now();
    this.cancelRequested = false;
    const log = (message: string) => callbacks.onLog?.(message);
    if (data.train.sentences.length === 0) throw new NerEngineError("the training set has no sentences", data.train.source);
    if (!data.train.sentences.some((s) => s.tokens.length > 0)) throw new NerEngineError("the training set has only empty sentences", data.train.source);
    data = withDevSplit(data, c.data.devSplit, c.training.seed, log);
    const train = this.toTrainScheme(data.train.sentences);
    const history: TrainingHistory = { epochs: [], stoppedEarly: false, cancelled: false, seconds: 0 };
    if (!this.tagger) {
      const mapping = await this.createTagger(train);
      if (mapping) {
        history.headMapping = mapping;
        log(`${mapping.initialised.length && mapping.kept.length ? "warning: " : ""}${describeMapping(mapping)}`);
      }
    }
    const tagger = this.requireTagger();
    const labelSet = this.requireLabels();
    const unseen = unseenLabels(train, labelSet);
    if (unseen.length) throw new NerEngineError(`training labels missing from the model's label set: ${unseen.map((u) => u.label).join(", ")}`, data.train.source);
    for (const warning of unseenLabelWarnings(data, labelSet, (s) => this.toTrainScheme(s))) log(warning);
    if (!data.dev && c.training.earlyStoppingPatience !== undefined) log("warning: earlyStoppingPatience is set but there is no dev data: it has no effect");

    const encoded = tagger.encode(train, (tag) => (labelSet.has(tag) ? labelSet.id(tag) : -100));
    for (const warning of encodingWarnings(encoded.stats, tagger.spec.input.maxLength)) log(warning);
    const options: NativeTrainOptions = {
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
    };
    const plan = tagger.native.setupTraining(nativeDataset(encoded, true), options);
    const run: RunState = { bestWeights: undefined, sinceBest: 0, bestWeightsSha256: null };
    let firstEpoch = 0;
    let globalStep = 0;
    if (c.training.resumeFrom) [firstEpoch, globalStep] = await resumeRun(c.training.resumeFrom, tagger, options, history, run, callbacks.onLog);
    const epochs = Math.ceil(c.training.epochs);
    const saveSteps = c.output ? c.training.saveSteps : undefined;
    for (let epoch = firstEpoch; epoch < epochs; epoch++) {
      // One epoch, in pieces of saveSteps optimizer steps with a resume point after each piece.
      let summary: NativeEpochSummary;
      for (;;) {
        if (this.cancelRequested) break;
        const stopAtStep = saveSteps ? (Math.floor(globalStep / saveSteps) + 1) * saveSteps : undefined;
        summary = await tagger.native.trainEpoch(epoch, callbacks.onProgress, stopAtStep ? { stopAtStep } : undefined);
        globalStep = summary.globalStep;
        if (summary.callbackError) throw new NerEngineError(`the progress callback threw: ${summary.callbackError}`);
        if (!summary.paused) break;
        await saveRunResumePoint(c.output!, tagger, history, run, options);
      }
      if (this.cancelRequested && !summary!?.finished) {
        // Interrupted inside the epoch: the resume point continues it at the next step.
        history.cancelled = true;
        if (c.output) await saveRunResumePoint(c.output, tagger, history, run, options);
        break;
      }
      summary = summary!;
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
      // One export per epoch serves the resume point, the best model on disk and the best kept in memory.
      const weights = c.output || data.dev ? await tagger.exportWeights() : undefined;
      if (data.dev) {
        result.dev = await this.evaluateNow(data.dev);
        const metric = c.training.metricForBestModel === "f1" ? result.dev.report.micro.f1 : -summary.meanLoss;
        if (!history.best || metric > history.best.metric) {
          history.best = { epoch, metric };
          result.isBest = true;
          run.sinceBest = 0;
          run.bestWeights = weights;
          if (c.output) {
            await tagger.save(path.join(c.output, "model"), { weights });
            run.bestWeightsSha256 = fileSha256(path.join(c.output, "model", "model.safetensors"));
          }
        } else run.sinceBest++;
      }
      history.epochs.push(result);
      if (c.output) await saveRunResumePoint(c.output, tagger, history, run, options, weights);
      callbacks.onEpoch?.(result);
      if (this.cancelRequested) {
        history.cancelled = true;
        break;
      }
      if (c.training.earlyStoppingPatience !== undefined && run.sinceBest >= c.training.earlyStoppingPatience) {
        history.stoppedEarly = true;
        break;
      }
      if (summary.globalStep >= plan.totalSteps) break;
    }
    const last = history.epochs.at(-1)?.epoch;
    if (history.best && history.best.epoch !== last && !history.cancelled) await restoreBest(tagger, run, c.output);
    // Without a best epoch (no dev set) the model on disk is the last one; an interrupted run leaves model/ as it was.
    if (c.output && !history.best && !history.cancelled) await tagger.save(path.join(c.output, "model"));
    if (data.test && !history.cancelled) history.test = await this.evaluateNow(data.test);
    history.seconds = (Date.now() - started) / 1000;
    return history;
  }

  /** Stops a running fit() at the next step; the weights stay as they are. */
  cancel(): void {
    this.cancelRequested = true;
    this.tagger?.native.cancel();
  }

  /** Predicts `data` and scores it against its tags (seqeval, in IOB2); `tagScheme`: the files' scheme (default config.data.tagScheme). */
  async evaluate(data: Corpus, opts: { tagScheme?: TagScheme } = {}): Promise<EvaluationResult> {
    checkEvaluateInput(data, opts);
    return this.serial(() => this.evaluateNow(data, opts));
  }

  private async evaluateNow(data: Corpus, opts: { tagScheme?: TagScheme } = {}): Promise<EvaluationResult> {
    const labelSet = this.requireLabels();
    const started = Date.now();
    const sentences = data.sentences.filter((s) => s.tokens.length > 0);
    const iob2 = this.toInputIob2(sentences, opts.tagScheme);
    const gold = iob2.map((s) => s.tags);
    const predicted = await tagWords(this.predictor(), sentences);
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

  /**
   * Tags raw text: one text (→ one result) or a batch of texts (→ one result each, in order). Without
   * `aggregation`, our format: the text's words (BERT-style splitting) with IOB2 tags and scores, and its
   * entities with the mean score of their words. With `aggregation` ("none" | "simple" | "first" |
   * "average" | "max"), HF TokenClassificationPipeline's output and field names (ignoreLabels: HF's
   * ignore_labels, default ["O"]). Offsets count code points unless `offsets: "utf16"`. Long texts are
   * windowed with `stride` sub-tokens of overlap, never truncated (see predict.ts).
   */
  predict<O extends PredictOptions = { aggregation?: undefined }>(text: string, options?: O): Promise<PredictOutput<O["aggregation"]>>;
  predict<O extends PredictOptions = { aggregation?: undefined }>(texts: readonly string[], options?: O): Promise<PredictOutput<O["aggregation"]>[]>;
  async predict(input: string | readonly string[], options?: PredictOptions): Promise<unknown> {
    checkPredictTexts(input);
    checkPredictOptions(options, "Engine.predict");
    const texts = typeof input === "string" ? [input] : [...input];
    const results = await this.serial(() => predictTexts(this.predictor(), texts, options ?? {}));
    return typeof input === "string" ? results[0] : results;
  }

  /** Tags pre-split sentences (each an array of words), in our format; words and entities have no offsets. */
  async predictWords(sentences: readonly (readonly string[])[], options?: PredictWordsOptions): Promise<PredictionResult[]> {
    checkPredictWords(sentences);
    checkPredictOptions(options, "Engine.predictWords", ["stride"]);
    return this.serial(() => predictWords(this.predictor(), sentences, options ?? {}));
  }

  /** Writes a HF-layout checkpoint directory (atomic per file). */
  async save(dir: string): Promise<void> {
    await this.serial(() => this.requireTagger().save(dir));
  }

  /** Frees the native model now; the engine needs fit() or load() again afterwards. */
  dispose(): void {
    this.tagger?.dispose();
    this.tagger = undefined;
    this.labelSet = undefined;
  }

  // ---- internals ----------------------------------------------------------------------------------

  /** Runs a user's call in turn (see `calls`); refused while a fit() runs. */
  private serial<T>(work: () => Promise<T>): Promise<T> {
    if (this.fitting) return Promise.reject(new NerEngineError("the engine is busy with another call (a fit is running, and predict, evaluate, forward and save are refused until it settles); await it first"));
    return this.calls.run(work);
  }

  private setTagger(tagger: Tagger): void {
    this.tagger = tagger;
    this.labelSet = new LabelSet([...tagger.labels]);
  }

  /** The model for a first fit(): from the checkpoint (head mapped by label name) or from scratch. */
  private async createTagger(train: Sentence[]): Promise<LabelMapping | undefined> {
    const c = this.config;
    const tokenizer = loadTokenizer(c.tokenizer!, { lowercase: c.data.lowercase });
    const settings = { head: headSpecOf(c), input: inputSpecOf(c) };
    const dataLabels = LabelSet.fromSentences(train, c.data.trainScheme === "IOBES" ? "IOBES" : "IOB2").labels;
    const opts = { device: c.device, seed: c.training.seed };
    if (c.model) {
      const { tagger, mapping } = await Tagger.fromCheckpoint(readCheckpoint(c.model), settings, dataLabels, tokenizer, c.tokenizer, { ...opts, ignoreMismatchedSizes: c.ignoreMismatchedSizes });
      this.setTagger(tagger);
      return mapping;
    }
    const s = c.scratch;
    const encoder = scratchBertConfig({
      vocab_size: s.vocabSize ?? tokenizer.vocabSize,
      hidden_size: s.hiddenSize,
      num_hidden_layers: s.numHiddenLayers,
      num_attention_heads: s.numAttentionHeads,
      intermediate_size: s.intermediateSize,
      max_position_embeddings: s.maxPositionEmbeddings,
      hidden_dropout_prob: s.hiddenDropoutProb,
      attention_probs_dropout_prob: s.attentionProbsDropoutProb,
      layer_norm_eps: s.layerNormEps,
      hidden_act: s.hiddenAct,
      pad_token_id: tokenizer.padId,
    });
    this.setTagger(Tagger.create({ encoder, labels: dataLabels, ...settings }, tokenizer, c.tokenizer, opts));
    return undefined;
  }

  private predictor(): Predictor {
    return { tagger: this.requireTagger(), labels: this.requireLabels(), batchSize: this.config.training.evalBatchSize, bf16: this.config.training.bf16 };
  }

  /** Input tags → IOB2 (what metrics compare in). */
  private toInputIob2(sentences: Sentence[], scheme: TagScheme = this.config.data.tagScheme): Sentence[] {
    return scheme === "IOB2" ? sentences : convertScheme(sentences, scheme, "IOB2");
  }

  private toTrainScheme(sentences: Sentence[]): Sentence[] {
    return this.fromIob2ToTrainScheme(this.toInputIob2(sentences));
  }

  private fromIob2ToTrainScheme(iob2: Sentence[]): Sentence[] {
    const scheme = this.tagger?.spec.input.trainScheme ?? this.config.data.trainScheme;
    return scheme === "IOB2" ? iob2 : convertScheme(iob2, "IOB2", "IOBES");
  }

  private requireTagger(): Tagger {
    if (!this.tagger) throw new NerEngineError("the model has no label set yet: call fit() first, or Engine.load() a trained checkpoint");
    return this.tagger;
  }

  private requireLabels(): LabelSet {
    if (!this.labelSet) throw new NerEngineError("the model has no label set yet: call fit() first, or Engine.load() a trained checkpoint");
    return this.labelSet;
  }
}

function headSpecOf(c: EngineConfig): HeadSpec {
  const { learningRate: _lr, ...head } = c.head;
  return head;
}

function inputSpecOf(c: EngineConfig): InputSpec {
  const { trainScheme, maxLength, stride, labelAllSubtokens, documentContext, lowercase } = c.data;
  return { trainScheme, maxLength, stride, labelAllSubtokens, documentContext, lowercase };
}

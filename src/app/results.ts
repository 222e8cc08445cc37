/** What the engine's calls return and take: results of fit / evaluate / predict, and fit's callbacks. */
import type { UnseenLabel } from "../data/labels.js";
import type { ClassificationReport } from "../eval/metrics.js";
import type { LabelMapping } from "../model/label-mapping.js";
import type { NativeProgress } from "../model/native.js";
import type { Aggregation, GroupedEntity, PipelineEntity, TokenEntity } from "./pipeline.js";

export type TrainProgress = NativeProgress;

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
  /** How the head was set up from the checkpoint (which label rows were kept by name, which initialised). */
  headMapping?: LabelMapping;
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

export interface PredictWordsOptions {
  /** Sub-tokens of overlap between consecutive windows of a long input (default: the model's input.stride, else maxLength / 4). */
  stride?: number;
}

export interface PredictOptions extends PredictWordsOptions {
  /** HF TokenClassificationPipeline's aggregation_strategy, with its output; absent: our format (PredictionResult). */
  aggregation?: Aggregation;
  /** HF's ignore_labels: entities labelled so (entity / entity_group) are left out; default ["O"]. With `aggregation` only. */
  ignoreLabels?: readonly string[];
  /** Unit of start / end: "codepoints" (default; Python str indices, as HF pipelines give) or "utf16" (JS string indices). */
  offsets?: "codepoints" | "utf16";
}

/** What predict gives per text for an aggregation: our format, HF's tokens ("none") or HF's groups. */
export type PredictOutput<A> = [A] extends [undefined] ? PredictionResult
  : [A] extends ["none"] ? TokenEntity[]
  : [A] extends [Exclude<Aggregation, "none">] ? GroupedEntity[]
  : PredictionResult | PipelineEntity[];

export interface FitCallbacks {
  onProgress?(progress: TrainProgress): void;
  onEpoch?(epoch: EpochResult): void;
  /** Messages worth a line in the training log (e.g. which head rows were kept). */
  onLog?(message: string): void;
}

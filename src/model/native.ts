/**
 * Loads the C++ addon and types its surface. Everything native goes through here; the rest of
 * src/ sees plain TypeScript types.
 */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { NerEngineError } from "../errors.js";

export interface NativeTensor {
  dims: number[];
  data: Float32Array;
}

export interface NativeEncoderConfig {
  family: "bert" | "distilbert" | "roberta" | "xlm-roberta";
  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  maxPositionEmbeddings: number;
  /** 0: no token type embeddings (DistilBERT). */
  typeVocabSize: number;
  /** Embedding padding_idx (and RoBERTa's position origin); null = none. */
  padTokenId: number | null;
  sinusoidalPositions: boolean;
  layerNormEps: number;
  hiddenDropoutProb: number;
  attentionProbsDropoutProb: number;
  hiddenAct: string;
}

export interface NativeHeadConfig {
  kind: string;
  numLabels: number;
  classifierDropout: number;
  lstmHiddenSize: number;
  lstmLayers: number;
  attentionHeads: number;
  constrainDecoding: boolean;
  constrainTraining: boolean;
  constraints?: { transitions: Float32Array; start: Float32Array; end: Float32Array };
}

/** The encoded dataset, as flat arrays (see alignment.ts EncodedCorpus). */
export interface NativeDataset {
  inputIds: Int32Array;
  windowOffsets: Int32Array;
  wordStarts: Int32Array;
  labels?: Int32Array;
  tokenTypeIds?: Int32Array;
}

export interface NativeTrainOptions {
  epochs: number;
  batchSize: number;
  gradientAccumulation: number;
  seed: number;
  progressEvery: number;
  maxSteps: number;
  encoderLearningRate: number;
  headLearningRate: number;
  weightDecay: number;
  warmupRatio: number;
  warmupSteps: number;
  maxGradNorm: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  bf16: boolean;
  tf32: boolean;
  lengthGrouping: "none" | "pools" | "megabatch";
}

export interface NativeProgress {
  epoch: number;
  step: number;
  totalSteps: number;
  loss: number;
  learningRate: number;
  tokensPerSecond: number;
  sentencesPerSecond: number;
  elapsedSeconds: number;
}

export interface NativeEpochSummary {
  epoch: number;
  steps: number;
  sentences: number;
  tokens: number;
  meanLoss: number;
  seconds: number;
  /** Token positions computed, pads included (batch size x longest window, summed over batches). */
  paddedTokens: number;
  /** Seconds of the training thread per phase of a step (CPU figures; CUDA phases are asynchronous). */
  phaseSeconds: { batch: number; forward: number; backward: number; optimizer: number };
  cancelled: boolean;
  /** Stopped at the asked step (stopAtStep): the epoch goes on with the next trainEpoch(epoch) call. */
  paused: boolean;
  /** The epoch's batches are done (or the run's last step reached). */
  finished: boolean;
  /** Micro-batches of the epoch done so far. */
  nextBatch: number;
  globalStep: number;
  callbackError?: string;
}

/** Where training is, besides the weights and optimizer tensors (see native/trainer.h EpochPosition). */
export interface NativeTrainerState {
  step: number;
  epoch: number;
  nextBatch: number;
  /** A uint64 as decimal text. */
  dropoutState: string;
  summary: { steps: number; sentences: number; tokens: number; paddedTokens: number; lossSum: number; seconds: number };
  window: { loss: number; batches: number; tokens: number; sentences: number };
  /** Hash of the training data the state belongs to. */
  dataFingerprint: string;
}

export interface NativeWeightEntry {
  name: string;
  dtype: string;
  shape: number[];
  byteOffset: number;
  byteLength: number;
}

export interface NativeTagger {
  readonly device: "cpu" | "cuda";
  /**
   * Checkpoint names in and out. labelRows[i] = the checkpoint row of label i for the head's label-indexed
   * tensors (-1 = keep init); skipMismatched: a tensor of another shape keeps its init (listed in `mismatched`).
   */
  loadWeights(
    bytes: Uint8Array,
    entries: NativeWeightEntry[],
    requiredPrefixes: string[],
    options?: { labelRows?: number[]; skipMismatched?: boolean },
  ): Promise<{ initialised: string[]; unused: string[]; mismatched: string[] }>;
  forward(batch: {
    inputIds: Int32Array;
    attentionMask: Int32Array;
    tokenTypeIds?: Int32Array;
    labels?: Int32Array;
    batchSize: number;
    length: number;
  }): Promise<{ lastHiddenState: NativeTensor; logits?: NativeTensor; loss?: number }>;
  exportWeights(): Promise<{ name: string; shape: number[]; data: Float32Array }[]>;
  setupTraining(data: NativeDataset, options: NativeTrainOptions): { stepsPerEpoch: number; totalSteps: number };
  /** Trains epoch `epoch` from where the trainer is in it; stops at an optimizer step >= stopAtStep when given. */
  trainEpoch(epoch: number, onProgress?: (p: NativeProgress) => void, options?: { stopAtStep?: number }): Promise<NativeEpochSummary>;
  predict(data: NativeDataset, options: { batchSize: number; bf16: boolean }): Promise<{ tags: Int32Array; scores: Float32Array }>;
  cancel(): void;
  saveTrainerState(): { tensors: { name: string; dtype: "F32" | "I64"; shape: number[]; data: Float32Array | BigInt64Array }[]; state: NativeTrainerState };
  loadTrainerState(bytes: Uint8Array, entries: NativeWeightEntry[], state: NativeTrainerState): void;
  /** Frees the native model now; every later call throws. */
  dispose(): void;
}

export interface CrfInput {
  emissions: number[][][];
  mask?: number[][];
  transitions: number[][];
  startTransitions: number[];
  endTransitions: number[];
}

export interface NativeAddon {
  NativeTagger: new (options: {
    encoder: NativeEncoderConfig;
    head: NativeHeadConfig;
    device: string;
    seed: number;
    initializerRange?: number;
  }) => NativeTagger;
  crfLogLikelihood(input: CrfInput & { tags: number[][] }): number[];
  crfGradients(input: CrfInput & { tags: number[][] }): {
    logLikelihood: number[];
    emissions: number[][][];
    transitions: number[][];
    startTransitions: number[];
    endTransitions: number[];
  };
  crfDecode(input: CrfInput): number[][];
  /** P(y_t = k) per position by forward-backward, [B][T][K], 0 where masked out. */
  crfMarginals(input: CrfInput): number[][][];
  libtorchVersion: string;
  cudaAvailable: boolean;
  /** The CPU budget, the BLAS behind LibTorch and the thread counts chosen when the addon loaded (native/runtime.h). */
  runtime: NativeRuntime;
  /** Built with at::_fused_adamw_ (LibTorch 2.x): CUDA training uses it unless NER_FUSED_ADAMW=0 is set. */
  fusedAdamW: boolean;
  /** The CUDA caching allocator's byte counts on the current device; null on the CPU or a LibTorch without them. */
  cudaMemoryStats(): CudaMemoryStats | null;
  /** Swaps two existing paths atomically (renameat2 RENAME_EXCHANGE); throws with code EINVAL/ENOSYS where unsupported. */
  exchangePaths(a: string, b: string): void;
}

export interface NativeRuntime {
  cores: number;
  coresSource: string;
  atenThreads: number;
  blasThreads: number;
  blasLibrary: string;
  blasProvider: string;
  blasConfig: string;
  threadSource: string;
  warning: string;
}

export interface CudaMemoryStats {
  device: number;
  allocatedBytes: number;
  peakAllocatedBytes: number;
  reservedBytes: number;
  peakReservedBytes: number;
  /** Starts the peaks again from the current values (torch.cuda.reset_peak_memory_stats). */
  resetPeak(): void;
}

let cached: NativeAddon | undefined;

/** The addon, built by `npm install` into build/Release (NER_ENGINE_ADDON overrides the path). */
export function native(): NativeAddon {
  if (cached) return cached;
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
  const file = process.env.NER_ENGINE_ADDON ?? path.join(root, "build", "Release", "ner_engine.node");
  if (!existsSync(file)) {
    throw new NerEngineError(`the native addon is not built (${file} is missing): run \`npm install\` (or \`npm run build\`)`);
  }
  cached = createRequire(import.meta.url)(file) as NativeAddon;
  if (cached.runtime.warning) process.emitWarning(cached.runtime.warning, { code: "NER_ENGINE_SLOW_BLAS" });
  return cached;
}

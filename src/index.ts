/** ner-engine's public API. */
export { Engine } from "./app/engine.js";
export { Tagger, type TaggerOptions } from "./model/tagger.js";
export type { TaggerSpec, HeadSpec, InputSpec } from "./model/spec.js";
export type { EncoderConfig, EncoderFamily } from "./model/encoder-config.js";
export type { LabelMapping } from "./model/label-mapping.js";
export type { EvaluationResult, EpochResult, FitCallbacks, ForwardInput, PredictedEntity, PredictedWord, PredictionResult, PredictOptions, PredictOutput, PredictWordsOptions, Aggregation, GroupedEntity, PipelineEntity, TokenEntity, TrainingHistory, TrainProgress } from "./app/engine.js";
export { parseConfig, loadConfigFile, defaultConfig } from "./app/config.js";
export type { EngineConfig, EngineConfigInput } from "./app/config.js";
export { readCorpus, readConll, readJson, readBio, readAtis } from "./data/readers.js";
export { LabelSet, iob1ToIob2, iob2ToBioes, bioesToIob2, convertScheme, transitionConstraints } from "./data/labels.js";
export { classificationReport, formatReport, tagReport, conllevalSummary, mistakenSentences, formatMistakes } from "./eval/metrics.js";
export type { ClassificationReport, Scores } from "./eval/metrics.js";
export { encodeSentences, pretokenize } from "./data/alignment.js";
export { loadTokenizer } from "./text/tokenizer.js";
export { encodeText, codePointIndex, type EncodedText, type TextToken } from "./text/offsets.js";
export { trainWordPiece, writeTokenizerFiles } from "./text/vocab.js";
export { readCheckpoint } from "./model/checkpoint.js";
export { NerEngineError } from "./errors.js";
export type { Corpus, Sentence, TagScheme } from "./data/types.js";
import { native, type CrfInput } from "./model/native.js";

/** Per-sequence CRF log-likelihoods (pytorch-crf layout: transitions[i][j] scores tag i → tag j). */
export function crfLogLikelihood(input: CrfInput & { tags: number[][] }): number[] {
  return native().crfLogLikelihood(input);
}

/** Viterbi paths, each as long as its mask. */
export function crfDecode(input: CrfInput): number[][] {
  return native().crfDecode(input);
}

/** P(y_t = k) for every position by forward-backward, [B][T][K] (0 where masked out). */
export function crfMarginals(input: CrfInput): number[][][] {
  return native().crfMarginals(input);
}

/** What the engine runs on, as decided when the addon loaded. */
export interface RuntimeInfo {
  /** LibTorch version the addon was built against. */
  libtorch: string;
  cuda: boolean;
  /** CPUs this process may use (affinity mask, capped by a cgroup CPU quota) and which of the two decided. */
  cores: number;
  coresSource: string;
  /** ATen intra-op threads (same as the old `threads`). */
  threads: number;
  blas: {
    /** "openblas-openmp", "openblas-pthread", "openblas-serial", "mkl", "blis", "atlas", "reference" or "unknown". */
    provider: string;
    /** The library file LibTorch's sgemm_ resolves to. */
    library: string;
    /** OpenBLAS's build configuration and CPU kernel (OPENBLAS_CORETYPE picks the kernel). */
    config: string;
    threads: number;
  };
  /** Why these thread counts: the environment variables obeyed, or the rule applied. */
  threadSource: string;
  /** Set when the setup is known to be slow (the reference BLAS); also emitted as a process warning. */
  warning?: string;
}

/** Which LibTorch and BLAS the addon runs on, with how many threads, and why. */
export function runtimeInfo(): RuntimeInfo {
  const n = native();
  const r = n.runtime;
  return {
    libtorch: n.libtorchVersion,
    cuda: n.cudaAvailable,
    cores: r.cores,
    coresSource: r.coresSource,
    threads: r.atenThreads,
    blas: { provider: r.blasProvider, library: r.blasLibrary, config: r.blasConfig, threads: r.blasThreads },
    threadSource: r.threadSource,
    ...(r.warning ? { warning: r.warning } : {}),
  };
}

/** ner-engine's public API. */
export { Engine } from "./engine.js";
export type { EvaluationResult, EpochResult, FitCallbacks, ForwardInput, PredictedEntity, PredictedWord, PredictionResult, TrainingHistory, TrainProgress } from "./engine.js";
export { parseConfig, loadConfigFile, defaultConfig } from "./config.js";
export type { EngineConfig, EngineConfigInput } from "./config.js";
export { readCorpus, readConll, readJson, readBio, readAtis } from "./readers.js";
export { LabelSet, iob1ToIob2, iob2ToBioes, bioesToIob2, convertScheme, transitionConstraints } from "./labels.js";
export { classificationReport, formatReport, tagReport, conllevalSummary, mistakenSentences, formatMistakes } from "./metrics.js";
export type { ClassificationReport, Scores } from "./metrics.js";
export { loadTokenizer, encodeSentences, pretokenize } from "./alignment.js";
export { trainWordPiece, writeTokenizerFiles } from "./vocab.js";
export { readCheckpoint } from "./checkpoint.js";
export { NerEngineError } from "./errors.js";
export type { Corpus, Sentence, TagScheme } from "./types.js";
import { native, type CrfInput } from "./native.js";

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

/** Which LibTorch the addon was built against, whether CUDA is usable, and the CPU threads it uses. */
export function runtimeInfo(): { libtorch: string; cuda: boolean; threads: number } {
  return { libtorch: native().libtorchVersion, cuda: native().cudaAvailable, threads: native().intraOpThreads };
}

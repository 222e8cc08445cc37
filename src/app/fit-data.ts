/**
 * The data side of fit(): holding out a dev split when no dev data is given, and the warnings a user
 * should see about the data (each names what and how many), sent through FitCallbacks.onLog.
 */
import type { EncodeStats } from "../data/alignment.js";
import { unseenLabels, type LabelSet } from "../data/labels.js";
import type { Corpus, Sentence } from "../data/types.js";
import { mulberry32 } from "./demo.js";

/** Fit's data after the split: `dev` may come from `train`. */
export interface FitData {
  train: Corpus;
  dev?: Corpus;
  test?: Corpus;
}

/**
 * Without dev data, holds out `fraction` of the training sentences (a seeded shuffle, so runs and
 * resumes repeat) as dev data. Says what it did, or why not.
 */
export function withDevSplit(data: FitData, fraction: number, seed: number, log: (message: string) => void): FitData {
  if (data.dev) return data;
  if (fraction <= 0) {
    log("no dev data and devSplit 0: best-model selection and early stopping are off; the last epoch's weights are kept");
    return data;
  }
  const sentences = data.train.sentences;
  const held = Math.floor(sentences.length * fraction);
  if (held < 1 || held >= sentences.length) {
    log(`no dev data, and ${sentences.length} training sentences are too few to hold out ${fraction * 100}%: the last epoch's weights are kept`);
    return data;
  }
  const random = mulberry32(seed);
  const order = sentences.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const devIndex = new Set(order.slice(0, held));
  const pick = (inDev: boolean): Sentence[] => sentences.filter((_, i) => devIndex.has(i) === inDev);
  log(`no dev data: holding out ${held} of ${sentences.length} training sentences (${fraction * 100}%, seed ${seed}) as dev data (devSplit; 0 turns it off)`);
  return { ...data, train: { source: data.train.source, sentences: pick(false) }, dev: { source: `${data.train.source} (dev split)`, sentences: pick(true) } };
}

/** Warnings about how the training data was encoded. */
export function encodingWarnings(stats: EncodeStats, maxLength: number): string[] {
  const out: string[] = [];
  if (stats.emptySentences) out.push(`warning: ${stats.emptySentences} training sentence(s) have no sub-tokens (empty, or only characters the tokenizer drops) and are skipped`);
  if (stats.splitSentences) out.push(`warning: ${stats.splitSentences} training sentence(s) are longer than maxLength ${maxLength} and were split into overlapping windows`);
  if (stats.truncatedWords) out.push(`warning: ${stats.truncatedWords} word(s) have more sub-tokens than a window holds (maxLength ${maxLength}) and keep only their first ones`);
  if (stats.emptyWords) out.push(`warning: ${stats.emptyWords} word(s) have no sub-token (e.g. only a zero-width space): not trained on, and predicted O`);
  return out;
}

/** Labels of dev/test data the model cannot predict (never in the training data), per label with counts. */
export function unseenLabelWarnings(data: FitData, labelSet: LabelSet, toTrainScheme: (s: Sentence[]) => Sentence[]): string[] {
  const out: string[] = [];
  for (const [name, corpus] of [["dev", data.dev], ["test", data.test]] as const) {
    if (!corpus) continue;
    const unseen = unseenLabels(toTrainScheme(corpus.sentences), labelSet);
    if (unseen.length) {
      out.push(`warning: ${name} data (${corpus.source}) has labels the model never saw in training: ${unseen.map((u) => `${u.label} (${u.count}×)`).join(", ")}; they count as misses`);
    }
  }
  return out;
}

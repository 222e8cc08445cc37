/**
 * HF's TokenClassificationPipeline postprocess (transformers 4.32, pipelines/token_classification.py),
 * step for step on one text's windows of per-token label probabilities: gather_pre_entities (is_subword
 * from offsets and the "##" prefix, [UNK] → the original text), aggregate (aggregate_words for first /
 * average / max, group_entities for every strategy but none), the ignore_labels filter, and
 * aggregate_overlapping_entities when the text took several windows. Offsets are code points, as
 * Python's; field names are HF's.
 */
import { NerEngineError } from "../errors.js";

export const AGGREGATIONS = ["none", "simple", "first", "average", "max"] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

/** aggregation "none": one per token. `index`: the token's position in the text's sub-tokens, [CLS] being 0. */
export interface TokenEntity {
  entity: string;
  score: number;
  index: number;
  word: string;
  start: number;
  end: number;
}

/** The other strategies: one per group of words. */
export interface GroupedEntity {
  entity_group: string;
  score: number;
  word: string;
  start: number;
  end: number;
}

export type PipelineEntity = TokenEntity | GroupedEntity;

/** A window's token, special tokens left out. */
export interface WindowToken {
  id: number;
  /** The vocabulary's spelling ("##ing"). */
  token: string;
  /** Code point span in the text. */
  start: number;
  end: number;
  /** The `index` HF reports ("none"). */
  index: number;
  /** Label probabilities (softmax over the logits). */
  probs: ArrayLike<number>;
}

/** What the postprocess needs from the model and tokenizer. */
export interface PipelineModel {
  /** id2label. */
  labels: readonly string[];
  unkId: number;
  /** The tokenizer model's continuing_subword_prefix; undefined = HF's fallback heuristic. */
  subwordPrefix?: string;
  /** convert_tokens_to_string. */
  tokensToString(tokens: string[]): string;
}

interface PreEntity {
  word: string;
  probs: ArrayLike<number>;
  start: number;
  end: number;
  index: number;
  isSubword: boolean;
}

interface WordEntity {
  entity: string;
  score: number;
  index?: number;
  word: string;
  start: number;
  end: number;
}

const argmax = (p: ArrayLike<number>): number => {
  let best = 0;
  for (let k = 1; k < p.length; k++) if (p[k] > p[best]) best = k;
  return best;
};
const maxOf = (p: ArrayLike<number>): number => p[argmax(p)];
/** Python len(): code points. */
const pyLen = (s: string): number => Array.from(s).length;

/** Entities of one text from its windows (each a run of tokens), HF's postprocess. */
export function pipelineEntities(
  text: string,
  windows: readonly (readonly WindowToken[])[],
  model: PipelineModel,
  aggregation: Aggregation,
  ignoreLabels: readonly string[] = ["O"],
): PipelineEntity[] {
  if (aggregation === "none" && windows.length > 1) throw new NerEngineError('aggregation "none" takes one window per text: merge the tokens first');
  const chars = Array.from(text);
  const all: PipelineEntity[] = [];
  for (const window of windows) {
    const pre = gatherPreEntities(chars, window, model);
    const entities = aggregate(pre, aggregation, model);
    all.push(...entities.filter((e) => !ignoreLabels.includes("entity" in e ? e.entity : e.entity_group)));
  }
  return windows.length > 1 ? aggregateOverlappingEntities(all) : all;
}

function gatherPreEntities(chars: readonly string[], window: readonly WindowToken[], model: PipelineModel): PreEntity[] {
  return window.map((t) => {
    const wordRef = chars.slice(t.start, t.end).join("");
    let word = t.token;
    // A word-aware tokenizer: a piece that is not its text as written continues a word.
    let isSubword = model.subwordPrefix ? pyLen(word) !== pyLen(wordRef) : t.start > 0 && !chars.slice(t.start - 1, t.start + 1).includes(" ");
    if (t.id === model.unkId) {
      word = wordRef;
      isSubword = false;
    }
    return { word, probs: t.probs, start: t.start, end: t.end, index: t.index, isSubword };
  });
}

function aggregate(pre: PreEntity[], aggregation: Aggregation, model: PipelineModel): PipelineEntity[] {
  let entities: WordEntity[];
  if (aggregation === "none" || aggregation === "simple") {
    entities = pre.map((p) => {
      const k = argmax(p.probs);
      return { entity: model.labels[k], score: p.probs[k], index: p.index, word: p.word, start: p.start, end: p.end };
    });
  } else {
    entities = aggregateWords(pre, aggregation, model);
  }
  if (aggregation === "none") return entities as TokenEntity[];
  return groupEntities(entities, model);
}

function aggregateWord(group: PreEntity[], aggregation: "first" | "average" | "max", model: PipelineModel): WordEntity {
  const word = model.tokensToString(group.map((e) => e.word));
  let probs: ArrayLike<number>;
  if (aggregation === "first") probs = group[0].probs;
  else if (aggregation === "max") {
    // Python's max(): the first token with the highest probability.
    probs = group.reduce((best, e) => (maxOf(e.probs) > maxOf(best.probs) ? e : best)).probs;
  } else {
    const mean = new Float64Array(group[0].probs.length);
    for (const e of group) for (let k = 0; k < mean.length; k++) mean[k] += e.probs[k] / group.length;
    probs = mean;
  }
  const k = argmax(probs);
  return { entity: model.labels[k], score: probs[k], word, start: group[0].start, end: group.at(-1)!.end };
}

/** Tokens of one word (a first piece and the subwords after it) are forced to agree. */
function aggregateWords(pre: PreEntity[], aggregation: "first" | "average" | "max", model: PipelineModel): WordEntity[] {
  const words: WordEntity[] = [];
  let group: PreEntity[] | undefined;
  for (const e of pre) {
    if (!group) group = [e];
    else if (e.isSubword) group.push(e);
    else {
      words.push(aggregateWord(group, aggregation, model));
      group = [e];
    }
  }
  if (group) words.push(aggregateWord(group, aggregation, model));
  return words;
}

function getTag(name: string): [string, string] {
  if (name.startsWith("B-")) return ["B", name.slice(2)];
  if (name.startsWith("I-")) return ["I", name.slice(2)];
  return ["I", name]; // not B-/I-: a continuation
}

function groupSubEntities(entities: WordEntity[], model: PipelineModel): GroupedEntity {
  return {
    entity_group: entities[0].entity.split("-").at(-1)!,
    score: entities.reduce((sum, e) => sum + e.score, 0) / entities.length,
    word: model.tokensToString(entities.map((e) => e.word)),
    start: entities[0].start,
    end: entities.at(-1)!.end,
  };
}

/** Adjacent entities of one type merge unless the next one is a B-. */
function groupEntities(entities: WordEntity[], model: PipelineModel): GroupedEntity[] {
  const groups: GroupedEntity[] = [];
  let current: WordEntity[] = [];
  for (const e of entities) {
    if (current.length === 0) {
      current.push(e);
      continue;
    }
    const [bi, tag] = getTag(e.entity);
    const [, lastTag] = getTag(current.at(-1)!.entity);
    if (tag === lastTag && bi !== "B") current.push(e);
    else {
      groups.push(groupSubEntities(current, model));
      current = [e];
    }
  }
  if (current.length) groups.push(groupSubEntities(current, model));
  return groups;
}

/** Of entities that overlap (from overlapping windows), the longest wins, then the higher score. */
function aggregateOverlappingEntities(entities: PipelineEntity[]): PipelineEntity[] {
  if (entities.length === 0) return entities;
  const sorted = [...entities].sort((a, b) => a.start - b.start); // stable, as Python's sorted
  const out: PipelineEntity[] = [];
  let previous = sorted[0];
  for (const e of sorted) {
    if (previous.start <= e.start && e.start < previous.end) {
      const length = e.end - e.start;
      const previousLength = previous.end - previous.start;
      if (length > previousLength || (length === previousLength && e.score > previous.score)) previous = e;
    } else {
      out.push(previous);
      previous = e;
    }
  }
  out.push(previous);
  return out;
}

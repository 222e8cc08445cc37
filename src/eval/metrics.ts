/**
 * Evaluation metrics for NER taggers, reproducing seqeval 1.2 (default and strict modes) and the
 * conlleval Perl script number for number, plus word-level and error-inspection helpers.
 * Everything is a single pass over the tags: O(total tokens).
 */
import { NerEngineError } from "../errors.js";
import type { TagScheme } from "../data/types.js";

/** Scores of one class or average; support = number of gold entities (or tags). */
export interface Scores { precision: number; recall: number; f1: number; support: number }

export interface ClassificationReport {
  /** Per entity type (or per tag, for tagReport); keys in sorted order. */
  perType: Record<string, Scores>;
  /** micro: pooled counts; macro: unweighted mean over classes; weighted: mean weighted by support. */
  micro: Scores;
  macro: Scores;
  weighted: Scores;
  /** Token accuracy: fraction of tokens whose predicted tag equals the gold tag. */
  accuracy: number;
}

export interface ReportOptions {
  /** "default": conlleval-style chunking (seqeval mode=None); "strict": seqeval mode="strict". */
  mode?: "default" | "strict";
  /** Scheme for strict mode (IOB2 when omitted); ignored in default mode. */
  scheme?: TagScheme;
}

/** An entity as [type, start, end]; `end` is inclusive for getEntities, exclusive for getStrictEntities (as in seqeval). */
export type EntitySpan = [type: string, start: number, end: number];

type Sentences = readonly (readonly string[])[];

type Counts = { tp: number; pred: number; gold: number };

/** Code-unit comparison, which equals Python's sorted() for everything outside the astral planes. */
const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

// ---- Input checks ----

/** Throws naming the first sentence whose gold, pred (and tokens) lengths disagree. */
function checkShapes(gold: Sentences, pred: Sentences, tokens?: Sentences): void {
  const fail = (msg: string, s: number): never => {
    throw new NerEngineError(msg, `sentence ${s}`);
  };
  if (gold.length !== pred.length) {
    fail(`gold has ${gold.length} sentences but pred has ${pred.length}`, Math.min(gold.length, pred.length));
  }
  if (tokens && tokens.length !== gold.length) {
    fail(`${tokens.length} token sentences but ${gold.length} tag sentences`, Math.min(tokens.length, gold.length));
  }
  for (let s = 0; s < gold.length; s++) {
    if (gold[s].length !== pred[s].length) fail(`gold has ${gold[s].length} tags but pred has ${pred[s].length}`, s);
    if (tokens && tokens[s].length !== gold[s].length) fail(`${tokens[s].length} tokens but ${gold[s].length} tags`, s);
  }
}

// ---- Default mode: seqeval get_entities (conlleval's chunk rules, plus S- and closing after E-/S-) ----

function endOfChunk(prevTag: string, tag: string, prevType: string, type: string): boolean {
  if (prevTag === "E" || prevTag === "S") return true;
  if ((prevTag === "B" || prevTag === "I") && (tag === "B" || tag === "S" || tag === "O")) return true;
  return prevTag !== "O" && prevTag !== "." && prevType !== type;
}

function startOfChunk(prevTag: string, tag: string, prevType: string, type: string): boolean {
  if (tag === "B" || tag === "S") return true;
  if ((prevTag === "E" || prevTag === "S" || prevTag === "O") && (tag === "E" || tag === "I")) return true;
  return tag !== "O" && tag !== "." && prevType !== type;
}

/**
 * seqeval's get_entities: [type, start, end inclusive]. Nested input is flattened with an "O" after
 * each sentence (so offsets count those separators), and a final "O" flushes the last chunk.
 */
export function getEntities(seq: readonly string[] | Sentences): EntitySpan[] {
  const out: EntitySpan[] = [];
  let [prevTag, prevType, begin, i] = ["O", "", 0, 0];
  const parsed = new Map<string, readonly [string, string]>(); // few distinct labels: parse each once
  const feed = (label: string): void => {
    let tagType = parsed.get(label);
    if (!tagType) {
      if (label.length === 0) throw new NerEngineError("empty tag", `position ${i}`);
      const dash = label.indexOf("-", 1);
      // Python: tag = chunk[0]; type = chunk[1:].split('-', maxsplit=1)[-1] or '_'
      parsed.set(label, (tagType = [label[0], (dash >= 0 ? label.slice(dash + 1) : label.slice(1)) || "_"]));
    }
    const [tag, type] = tagType;
    if (endOfChunk(prevTag, tag, prevType, type)) out.push([prevType, begin, i - 1]);
    if (startOfChunk(prevTag, tag, prevType, type)) begin = i;
    [prevTag, prevType, i] = [tag, type, i + 1];
  };
  for (const item of seq) {
    if (typeof item === "string") feed(item);
    else {
      item.forEach(feed);
      feed("O");
    }
  }
  feed("O");
  return out;
}

// ---- Strict mode: seqeval.scheme Tokens.entities with the scheme's start/inside/end patterns. ----

const PREFIXES = "IOBES";

/**
 * seqeval.scheme's start/inside/end pattern sets, written as three characters per pattern: previous
 * prefix, current prefix ("*" = any), tag condition ("*" any, "=" same type, "!" different type).
 * Compiled to a lookup table indexed by prev * 10 + cur * 2 + (same type ? 1 : 0), so the scan
 * below costs a few array reads per token.
 */
function compile(patterns: string): Uint8Array {
  const table = new Uint8Array(50);
  for (const [pp, cp, cond] of patterns.split(" ")) {
    for (let k = 0; k < 50; k++) {
      const [prev, cur, same] = [PREFIXES[Math.floor(k / 10)], PREFIXES[Math.floor(k / 2) % 5], k % 2 === 1];
      if ((pp === "*" || pp === prev) && (cp === "*" || cp === cur) && (cond === "*" || (cond === "=") === same)) table[k] = 1;
    }
  }
  return table;
}
type SchemeRules = { allowed: string; start: Uint8Array; inside: Uint8Array; end: Uint8Array };
const rules = (allowed: string, start: string, inside: string, end: string): SchemeRules =>
  ({ allowed, start: compile(start), inside: compile(inside), end: compile(end) });
const SCHEMES: Record<TagScheme, SchemeRules> = {
  // seqeval's IOB1 never starts a chunk at a B- after O (B- only separates same-type neighbours).
  IOB1: rules("IOB", "OI* II! BI* IB= BB=", "BI= II=", "II! IO* IB* BO* BI! BB="),
  IOB2: rules("IOB", "*B*", "BI= II=", "IO* II! IB* BO* BI! BB*"),
  IOBES: rules("IOBES", "*B* *S*", "BI= BE= II= IE=", "S** E**"),
};

const strictTypes = new Map<string, string>(); // memo: labels are few, the regex is not free
function strictType(label: string): string {
  let type = strictTypes.get(label);
  if (type === undefined) {
    type = label.slice(1).replace(/^-+|-+$/g, "") || "_"; // Python: token[1:].strip('-') or '_'
    if (strictTypes.size < 10_000) strictTypes.set(label, type);
  }
  return type;
}

/** Entities of one sentence under a strict scheme, as seqeval's Tokens(...).entities ([type, start, end exclusive]). */
export function getStrictEntities(tags: readonly string[], scheme: TagScheme = "IOB2", sentence = 0): EntitySpan[] {
  const rule = SCHEMES[scheme];
  if (!rule) throw new NerEngineError(`unknown tag scheme "${String(scheme)}"`);
  const n = tags.length;
  // Prefix index and type per token; index 0 is the outside "O" seqeval uses as the first `prev`
  // and index n + 1 the "O" sentinel it appends, so token i lives at i + 1.
  const prefix = new Uint8Array(n + 2).fill(1);
  const type: string[] = new Array<string>(n + 2).fill("_");
  for (let i = 0; i < n; i++) {
    const label = tags[i];
    if (label.length === 0 || !rule.allowed.includes(label[0])) {
      throw new NerEngineError(`tag "${label}" is not valid in ${scheme}`, `sentence ${sentence}, token ${i}`);
    }
    prefix[i + 1] = PREFIXES.indexOf(label[0]);
    type[i + 1] = strictType(label);
  }
  const at = (table: Uint8Array, j: number): boolean =>
    table[prefix[j - 1] * 10 + prefix[j] * 2 + (type[j - 1] === type[j] ? 1 : 0)] === 1;

  const out: EntitySpan[] = [];
  let j = 1;
  while (j <= n + 1) {
    if (at(rule.start, j)) {
      let end = j + 1; // _forward: extend while each token is "inside" relative to its predecessor
      while (end <= n + 1 && at(rule.inside, end)) end++;
      // The sentinel "O" is never inside, so end <= n + 1. Only a properly closed chunk counts.
      if (at(rule.end, end)) out.push([type[j], j - 1, end - 1]);
      j = end;
    } else {
      j++;
    }
  }
  return out;
}

// ---- Aggregation (seqeval v1 _precision_recall_fscore_support with zero_division="warn" → 0) ----

/** Entities per type, each as a number unique to its (start, end) in one global offset space. */
type EntitySets = Map<string, Set<number>>;
/** start + length * stride is collision-free for 0 <= start < stride and stays a small integer (fast Set key). */
const spanKey = (start: number, end: number, stride: number): number => start + (end - start) * stride;

const addEntity = (sets: EntitySets, type: string, key: number): unknown =>
  (sets.get(type) ?? sets.set(type, new Set()).get(type)!).add(key);

function defaultEntitySets(sentences: Sentences, total: number): EntitySets {
  const sets: EntitySets = new Map();
  const stride = total + sentences.length + 2; // > every offset, separators included
  for (const [type, start, end] of getEntities(sentences)) addEntity(sets, type, spanKey(start, end, stride));
  return sets;
}

function strictEntitySets(sentences: Sentences, total: number, scheme: TagScheme): EntitySets {
  const sets: EntitySets = new Map();
  const stride = total + 2;
  let offset = 0;
  sentences.forEach((sentence, s) => {
    for (const [type, start, end] of getStrictEntities(sentence, scheme, s)) {
      addEntity(sets, type, spanKey(offset + start, offset + end, stride));
    }
    offset += sentence.length;
  });
  return sets;
}

const ratio = (num: number, den: number): number => (den > 0 ? num / den : 0);
const f1Of = (p: number, r: number): number => (p + r > 0 ? (2 * p * r) / (p + r) : 0);

function summarize(counts: Map<string, Counts>, accuracy: number): ClassificationReport {
  const names = [...counts.keys()].sort(byString);
  const rows = names.map((name): [string, Scores] => {
    const c = counts.get(name)!;
    const precision = ratio(c.tp, c.pred);
    const recall = ratio(c.tp, c.gold);
    return [name, { precision, recall, f1: f1Of(precision, recall), support: c.gold }];
  });
  let [tp, pred, gold] = [0, 0, 0];
  for (const c of counts.values()) [tp, pred, gold] = [tp + c.tp, pred + c.pred, gold + c.gold];
  const microP = ratio(tp, pred);
  const microR = ratio(tp, gold);
  const mean = (pick: (s: Scores) => number, weighted: boolean): number => {
    let [num, den] = [0, 0];
    for (const [, s] of rows) [num, den] = [num + pick(s) * (weighted ? s.support : 1), den + (weighted ? s.support : 1)];
    return den > 0 ? num / den : 0; // seqeval: all-zero weights → 0 (warn); no types → 0 instead of NaN
  };
  const average = (weighted: boolean): Scores => ({
    precision: mean((s) => s.precision, weighted),
    recall: mean((s) => s.recall, weighted),
    f1: mean((s) => s.f1, weighted),
    support: gold,
  });
  return {
    perType: Object.fromEntries(rows), // fromEntries: a type named "__proto__" stays an own key
    micro: { precision: microP, recall: microR, f1: f1Of(microP, microR), support: gold },
    macro: average(false),
    weighted: average(true),
    accuracy,
  };
}

function tokenAccuracy(gold: Sentences, pred: Sentences): { correct: number; total: number } {
  let [correct, total] = [0, 0];
  gold.forEach((g, s) => {
    for (let i = 0; i < g.length; i++) if (g[i] === pred[s][i]) correct++;
    total += g.length;
  });
  return { correct, total };
}

/** seqeval classification_report (output_dict) plus token accuracy. */
export function classificationReport(gold: Sentences, pred: Sentences, opts: ReportOptions = {}): ClassificationReport {
  checkShapes(gold, pred);
  const mode = opts.mode ?? "default";
  if (mode !== "default" && mode !== "strict") throw new NerEngineError(`unknown metrics mode "${String(mode)}"`);
  const { correct, total } = tokenAccuracy(gold, pred);
  const extract = (seqs: Sentences): EntitySets =>
    mode === "strict" ? strictEntitySets(seqs, total, opts.scheme ?? "IOB2") : defaultEntitySets(seqs, total);
  const goldSets = extract(gold);
  const predSets = extract(pred);
  // Target names are the union of gold and predicted types (pred-only types get support 0).
  const counts = new Map<string, Counts>();
  for (const type of new Set([...goldSets.keys(), ...predSets.keys()])) {
    const g = goldSets.get(type) ?? new Set<number>();
    const p = predSets.get(type) ?? new Set<number>();
    let tp = 0;
    for (const key of p) if (g.has(key)) tp++;
    counts.set(type, { tp, pred: p.size, gold: g.size });
  }
  return summarize(counts, ratio(correct, total));
}

/** Word-level report: every tag (including "O") scored as its own class, token by token. */
export function tagReport(gold: Sentences, pred: Sentences): ClassificationReport {
  checkShapes(gold, pred);
  const counts = new Map<string, Counts>();
  const get = (tag: string): Counts => counts.get(tag) ?? counts.set(tag, { tp: 0, pred: 0, gold: 0 }).get(tag)!;
  const { correct, total } = tokenAccuracy(gold, pred);
  for (let s = 0; s < gold.length; s++) {
    for (let i = 0; i < gold[s].length; i++) {
      const [g, p] = [gold[s][i], pred[s][i]];
      get(g).gold++;
      get(p).pred++;
      if (g === p) get(g).tp++;
    }
  }
  return summarize(counts, ratio(correct, total));
}

// ---- Text output ----

const codePoints = (s: string): number => Array.from(s).length; // Python's len(), for column widths
const padLeft = (s: string, width: number): string => " ".repeat(Math.max(0, width - codePoints(s))) + s;
const padRight = (s: string, width: number): string => s + " ".repeat(Math.max(0, width - codePoints(s)));

/**
 * Fixed-point formatting as C printf / Python format do it: exact ties round half to even
 * (JS toFixed rounds them away from zero, e.g. 0.125 → "0.13" where printf gives "0.12").
 */
export function formatFixed(x: number, digits: number): string {
  const away = x.toFixed(digits);
  if (!Number.isFinite(x) || Math.abs(x) >= 1e21) return away;
  const exact = x.toFixed(100); // exact decimal expansion for doubles in the range we print
  const dot = exact.indexOf(".");
  if (!/^50*$/.test(exact.slice(dot + 1 + digits))) return away;
  const truncated = exact.slice(0, digits === 0 ? dot : dot + 1 + digits);
  return (truncated.charCodeAt(truncated.length - 1) - 48) % 2 === 0 ? truncated : away;
}

/** The text table of seqeval's classification_report (digits=4 by default). */
export function formatReport(report: ClassificationReport, digits = 4): string {
  const names = Object.keys(report.perType).sort(byString);
  const width = Math.max(12, digits, ...names.map(codePoints)); // 12 = len("weighted avg")
  const row = (name: string, s: Scores): string =>
    `${padLeft(name, width)} ` +
    [s.precision, s.recall, s.f1].map((v) => ` ${padLeft(formatFixed(v, digits), 9)}`).join("") +
    ` ${padLeft(String(s.support), 9)}`;
  const header = `${" ".repeat(width)} ` + ["precision", "recall", "f1-score", "support"].map((h) => ` ${padLeft(h, 9)}`).join("");
  const lines = names.map((n) => row(n, report.perType[n]));
  lines.push("", row("micro avg", report.micro), row("macro avg", report.macro), row("weighted avg", report.weighted), "");
  return `${header}\n\n${lines.join("\n")}`;
}

// ---- conlleval (the 2004-01-26 Perl script), run as if each sentence were followed by a blank line. ----

function conllEnd(prevTag: string, tag: string, prevType: string, type: string): boolean {
  if ((prevTag === "B" || prevTag === "I") && (tag === "B" || tag === "O")) return true;
  if (prevTag === "E" && (tag === "E" || tag === "I" || tag === "O")) return true;
  if (prevTag !== "O" && prevTag !== "." && prevType !== type) return true;
  return prevTag === "]" || prevTag === "[";
}

function conllStart(prevTag: string, tag: string, prevType: string, type: string): boolean {
  if ((prevTag === "B" || prevTag === "I" || prevTag === "O") && tag === "B") return true;
  if ((prevTag === "O" || prevTag === "E") && tag === "I") return true;
  if ((prevTag === "O" || prevTag === "E") && tag === "E") return true;
  if (tag !== "O" && tag !== "." && prevType !== type) return true;
  return tag === "[" || tag === "]";
}

/** Perl's /^([^-]*)-(.*)$/ split of a label into chunk tag and type. */
const conllTag = (label: string): string => (label.includes("-") ? label.slice(0, label.indexOf("-")) : label);
function conllType(label: string): string {
  const dash = label.indexOf("-");
  const type = dash < 0 ? "" : label.slice(dash + 1);
  return type === "0" ? "" : type; // "0" is false in Perl and conlleval maps false types to ""
}

/** The text conlleval prints for these tags (overall line, accuracy line, one line per type). */
export function conllevalSummary(gold: Sentences, pred: Sentences): string {
  checkShapes(gold, pred);
  type ChunkCounts = { correct: number; found: number; guessed: number };
  const total: ChunkCounts = { correct: 0, found: 0, guessed: 0 };
  const perType = new Map<string, ChunkCounts>();
  const bump = (type: string, field: keyof ChunkCounts): void => {
    (perType.get(type) ?? perType.set(type, { correct: 0, found: 0, guessed: 0 }).get(type)!)[field]++;
    total[field]++;
  };
  let [correctTags, tokenCounter, inCorrect] = [0, 0, false];
  let [lastC, lastCT, lastG, lastGT] = ["O", "", "O", ""];
  // One line of conlleval input: chunk tag and type for the gold (c) and guessed (g) column.
  const step = (c: string, ct: string, g: string, gt: string, boundary: boolean): void => {
    if (inCorrect) {
      const endC = conllEnd(lastC, c, lastCT, ct);
      const endG = conllEnd(lastG, g, lastGT, gt);
      if (endC && endG && lastGT === lastCT) {
        inCorrect = false;
        bump(lastCT, "correct");
      } else if (endC !== endG || gt !== ct) {
        inCorrect = false;
      }
    }
    const startC = conllStart(lastC, c, lastCT, ct);
    const startG = conllStart(lastG, g, lastGT, gt);
    if (startC && startG && gt === ct) inCorrect = true;
    if (startC) bump(ct, "found");
    if (startG) bump(gt, "guessed");
    if (!boundary) {
      if (c === g && gt === ct) correctTags++;
      tokenCounter++;
    }
    [lastC, lastCT, lastG, lastGT] = [c, ct, g, gt];
  };
  gold.forEach((sentence, s) => {
    sentence.forEach((label, i) => {
      const guess = pred[s][i];
      step(conllTag(label), conllType(label), conllTag(guess), conllType(guess), false);
    });
    step("O", "", "O", "", true); // the blank line after each sentence: both columns "O"
  });
  if (inCorrect) bump(lastCT, "correct");

  const pct = (v: number): string => padLeft(formatFixed(v, 2), 6);
  const prf = ({ correct, found, guessed }: ChunkCounts): [string, string, string, number] => {
    const p = guessed > 0 ? (100 * correct) / guessed : 0;
    const r = found > 0 ? (100 * correct) / found : 0;
    return [pct(p), pct(r), pct(p + r > 0 ? (2 * p * r) / (p + r) : 0), guessed];
  };
  const lines = [
    `processed ${tokenCounter} tokens with ${total.found} phrases; found: ${total.guessed} phrases; correct: ${total.correct}.`,
  ];
  if (tokenCounter > 0) {
    const [p, r, f] = prf(total);
    lines.push(`accuracy: ${pct((100 * correctTags) / tokenCounter)}%; precision: ${p}%; recall: ${r}%; FB1: ${f}`);
  }
  // Types that only ever closed a correct chunk (no start seen) are not listed, as in Perl.
  const types = [...perType.entries()].filter(([, c]) => c.found > 0 || c.guessed > 0);
  for (const [type, c] of types.sort(([a], [b]) => byString(a, b))) {
    const [p, r, f, guessed] = prf(c);
    // %17s pads by bytes (conlleval reads raw bytes); Perl's de-duplication of the sorted key list
    // (`not($lastType) or ...`) lets an empty type through twice when both columns have it.
    const line = `${" ".repeat(Math.max(0, 17 - Buffer.byteLength(type, "utf8")))}${type}: precision: ${p}%; recall: ${r}%; FB1: ${f}  ${guessed}`;
    lines.push(line);
    if (type === "" && c.found > 0 && c.guessed > 0) lines.push(line);
  }
  return lines.join("\n") + "\n";
}

// ---- Error inspection ----

export interface MistakenSentence {
  /** Index of the sentence in the input. */
  index: number;
  tokens: readonly string[];
  gold: readonly string[];
  pred: readonly string[];
}

/** Sentences where any predicted tag differs from gold, in input order, at most `limit` of them. */
export function mistakenSentences(tokens: Sentences, gold: Sentences, pred: Sentences, limit = Infinity): MistakenSentence[] {
  checkShapes(gold, pred, tokens);
  const out: MistakenSentence[] = [];
  for (let s = 0; s < gold.length && out.length < limit; s++) {
    if (gold[s].some((g, i) => g !== pred[s][i])) out.push({ index: s, tokens: tokens[s], gold: gold[s], pred: pred[s] });
  }
  return out;
}

/**
 * One block per sentence: a "# sentence N" line, then `TOKEN GOLD PRED` in aligned columns, wrong
 * lines marked with "*" in the first column; blocks separated by a blank line.
 */
export function formatMistakes(mistakes: readonly MistakenSentence[]): string {
  return mistakes
    .map((m) => {
      const wTok = Math.max(0, ...m.tokens.map(codePoints));
      const wGold = Math.max(0, ...m.gold.map(codePoints));
      const rows = m.tokens.map((tok, i) => {
        const mark = m.gold[i] === m.pred[i] ? " " : "*";
        return `${mark} ${padRight(tok, wTok)}  ${padRight(m.gold[i], wGold)}  ${m.pred[i]}`;
      });
      return [`# sentence ${m.index}`, ...rows].join("\n");
    })
    .join("\n\n")
    .concat(mistakes.length > 0 ? "\n" : "");
}

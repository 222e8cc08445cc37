/**
 * Evaluation metrics for NER taggers, reproducing seqeval 1.2 (default and strict modes) and the
 * conlleval Perl script number for number, plus word-level and error-inspection helpers.
 * Everything is a single pass over the tags: O(total tokens).
 */
import { NerEngineError } from "./errors.js";
import type { TagScheme } from "./types.js";

export interface Scores {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface ClassificationReport {
  /** Per entity type (or per tag, for tagReport); keys in sorted order. */
  perType: Record<string, Scores>;
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

interface Counts {
  tp: number;
  pred: number;
  gold: number;
}

/** Code-unit comparison, which equals Python's sorted() for everything outside the astral planes. */
const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

// ---------------------------------------------------------------------------------------------
// Input checks

function checkShapes(gold: Sentences, pred: Sentences, tokens?: Sentences): void {
  if (gold.length !== pred.length) {
    throw new NerEngineError(
      `gold has ${gold.length} sentences but pred has ${pred.length}`,
      `sentence ${Math.min(gold.length, pred.length)}`,
    );
  }
  for (let s = 0; s < gold.length; s++) {
    if (gold[s].length !== pred[s].length) {
      throw new NerEngineError(`gold has ${gold[s].length} tags but pred has ${pred[s].length}`, `sentence ${s}`);
    }
    if (tokens && tokens[s]?.length !== gold[s].length) {
      throw new NerEngineError(`${tokens[s]?.length ?? 0} tokens but ${gold[s].length} tags`, `sentence ${s}`);
    }
  }
  if (tokens && tokens.length !== gold.length) {
    throw new NerEngineError(`${tokens.length} token sentences but ${gold.length} tag sentences`);
  }
}

// ---------------------------------------------------------------------------------------------
// Default mode: seqeval get_entities / end_of_chunk / start_of_chunk (conlleval-derived, but
// unlike conlleval it knows S- and ends a chunk after E-/S-).

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

/** Feeds labels one by one through seqeval's chunker; `emit` receives each finished chunk. */
function defaultChunker(emit: (type: string, start: number, end: number) => void): (label: string) => void {
  let prevTag = "O";
  let prevType = "";
  let begin = 0;
  let i = 0;
  return (label) => {
    if (label.length === 0) throw new NerEngineError("empty tag", `position ${i}`);
    const tag = label[0];
    const rest = label.slice(1);
    const dash = rest.indexOf("-");
    // Python: chunk[1:].split('-', maxsplit=1)[-1] or '_'
    const type = (dash >= 0 ? rest.slice(dash + 1) : rest) || "_";
    if (endOfChunk(prevTag, tag, prevType, type)) emit(prevType, begin, i - 1);
    if (startOfChunk(prevTag, tag, prevType, type)) begin = i;
    prevTag = tag;
    prevType = type;
    i++;
  };
}

/**
 * seqeval's get_entities: for nested input the sentences are joined with an "O" between them,
 * so offsets run over that joined sequence; a final "O" flushes the last chunk.
 */
export function getEntities(seq: readonly string[] | Sentences): EntitySpan[] {
  const out: EntitySpan[] = [];
  const feed = defaultChunker((type, start, end) => out.push([type, start, end]));
  for (const item of seq as readonly (string | readonly string[])[]) {
    if (typeof item === "string") feed(item);
    else {
      for (const label of item) feed(label);
      feed("O");
    }
  }
  feed("O");
  return out;
}

// ---------------------------------------------------------------------------------------------
// Strict mode: seqeval.scheme Tokens.entities with the scheme's start/inside/end patterns.

const ANY = "IOBES";
/** Tag condition between the previous and current token. */
const Cond = { Any: 0, Same: 1, Diff: 2 } as const;
type Cond = (typeof Cond)[keyof typeof Cond];
/** [previous prefixes, current prefixes, tag condition]; a prefix matches if it is in the string. */
type Pattern = readonly [string, string, Cond];
interface SchemeRules {
  allowed: string;
  start: readonly Pattern[];
  inside: readonly Pattern[];
  end: readonly Pattern[];
}

const SCHEMES: Record<TagScheme, SchemeRules> = {
  // seqeval's IOB1: a B- after O is not a start (B- only separates same-type neighbours).
  IOB1: {
    allowed: "IOB",
    start: [["O", "I", Cond.Any], ["I", "I", Cond.Diff], ["B", "I", Cond.Any], ["I", "B", Cond.Same], ["B", "B", Cond.Same]],
    inside: [["B", "I", Cond.Same], ["I", "I", Cond.Same]],
    end: [["I", "I", Cond.Diff], ["I", "O", Cond.Any], ["I", "B", Cond.Any], ["B", "O", Cond.Any], ["B", "I", Cond.Diff], ["B", "B", Cond.Same]],
  },
  IOB2: {
    allowed: "IOB",
    start: [[ANY, "B", Cond.Any]],
    inside: [["B", "I", Cond.Same], ["I", "I", Cond.Same]],
    end: [["I", "O", Cond.Any], ["I", "I", Cond.Diff], ["I", "B", Cond.Any], ["B", "O", Cond.Any], ["B", "I", Cond.Diff], ["B", "B", Cond.Any]],
  },
  IOBES: {
    allowed: "IOBES",
    start: [[ANY, "B", Cond.Any], [ANY, "S", Cond.Any]],
    inside: [["B", "I", Cond.Same], ["B", "E", Cond.Same], ["I", "I", Cond.Same], ["I", "E", Cond.Same]],
    end: [["S", ANY, Cond.Any], ["E", ANY, Cond.Any]],
  },
};

function matches(patterns: readonly Pattern[], prevP: string, prevT: string, curP: string, curT: string): boolean {
  for (const [pp, cp, cond] of patterns) {
    if (pp.includes(prevP) && cp.includes(curP) && (cond === Cond.Any || (cond === Cond.Same) === (prevT === curT))) {
      return true;
    }
  }
  return false;
}

/** Entities of one sentence under a strict scheme, as seqeval's Tokens(...).entities ([type, start, end exclusive]). */
export function getStrictEntities(tags: readonly string[], scheme: TagScheme = "IOB2", sentence = 0): EntitySpan[] {
  const rules = SCHEMES[scheme];
  if (!rules) throw new NerEngineError(`unknown tag scheme "${String(scheme)}"`);
  const n = tags.length;
  // Parsed prefix/type per token, plus the "O" sentinel seqeval appends at index n.
  const prefix: string[] = new Array<string>(n + 1);
  const type: string[] = new Array<string>(n + 1);
  for (let i = 0; i < n; i++) {
    const label = tags[i];
    const p = label.charAt(0);
    if (!rules.allowed.includes(p) || p === "") {
      throw new NerEngineError(`tag "${label}" is not valid in ${scheme}`, `sentence ${sentence}, token ${i}`);
    }
    prefix[i] = p;
    type[i] = label.slice(1).replace(/^-+|-+$/g, "") || "_"; // Python: token[1:].strip('-') or '_'
  }
  prefix[n] = "O";
  type[n] = "_";

  const out: EntitySpan[] = [];
  let i = 0;
  while (i <= n) {
    // seqeval's `prev` is always the token before i (an outside "O" before the first one).
    const prevP = i > 0 ? prefix[i - 1] : "O";
    const prevT = i > 0 ? type[i - 1] : "_";
    if (matches(rules.start, prevP, prevT, prefix[i], type[i])) {
      let end = i + 1; // _forward: extend while each token is "inside" relative to its predecessor
      while (end <= n && matches(rules.inside, prefix[end - 1], type[end - 1], prefix[end], type[end])) end++;
      // The sentinel "O" is never inside, so end <= n here. Only a properly closed chunk counts.
      if (matches(rules.end, prefix[end - 1], type[end - 1], prefix[end], type[end])) out.push([type[i], i, end]);
      i = end;
    } else {
      i++;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Aggregation (seqeval v1 _precision_recall_fscore_support with zero_division="warn" → 0)

/** Entities keyed per type by a collision-free number (start, end) in one global offset space. */
type EntitySets = Map<string, Set<number>>;

function addEntity(sets: EntitySets, type: string, key: number): void {
  let set = sets.get(type);
  if (!set) sets.set(type, (set = new Set()));
  set.add(key);
}

function defaultEntitySets(sentences: Sentences, total: number): EntitySets {
  const sets: EntitySets = new Map();
  const stride = total + sentences.length + 2;
  const feed = defaultChunker((type, start, end) => addEntity(sets, type, start * stride + end));
  for (const sentence of sentences) {
    for (const label of sentence) feed(label);
    feed("O");
  }
  feed("O");
  return sets;
}

function strictEntitySets(sentences: Sentences, total: number, scheme: TagScheme): EntitySets {
  const sets: EntitySets = new Map();
  const stride = total + 2;
  let offset = 0;
  sentences.forEach((sentence, s) => {
    for (const [type, start, end] of getStrictEntities(sentence, scheme, s)) {
      addEntity(sets, type, (offset + start) * stride + offset + end);
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
  let tp = 0;
  let pred = 0;
  let gold = 0;
  for (const c of counts.values()) {
    tp += c.tp;
    pred += c.pred;
    gold += c.gold;
  }
  const microP = ratio(tp, pred);
  const microR = ratio(tp, gold);
  const mean = (pick: (s: Scores) => number, weighted: boolean): number => {
    let num = 0;
    let den = 0;
    for (const [, s] of rows) {
      const w = weighted ? s.support : 1;
      num += pick(s) * w;
      den += w;
    }
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
  let correct = 0;
  let total = 0;
  for (let s = 0; s < gold.length; s++) {
    const g = gold[s];
    const p = pred[s];
    for (let i = 0; i < g.length; i++) if (g[i] === p[i]) correct++;
    total += g.length;
  }
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
  const get = (tag: string): Counts => {
    let c = counts.get(tag);
    if (!c) counts.set(tag, (c = { tp: 0, pred: 0, gold: 0 }));
    return c;
  };
  const { correct, total } = tokenAccuracy(gold, pred);
  for (let s = 0; s < gold.length; s++) {
    for (let i = 0; i < gold[s].length; i++) {
      const g = gold[s][i];
      const p = pred[s][i];
      get(g).gold++;
      get(p).pred++;
      if (g === p) get(g).tp++;
    }
  }
  return summarize(counts, ratio(correct, total));
}

// ---------------------------------------------------------------------------------------------
// Text output

const codePoints = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};
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

// ---------------------------------------------------------------------------------------------
// conlleval (the 2004-01-26 Perl script), run as if each sentence were followed by a blank line.

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

/** Perl: /^([^-]*)-(.*)$/ split, and a type of "" or "0" (false in Perl) becomes "". */
function conllSplit(label: string): [string, string] {
  const dash = label.indexOf("-");
  if (dash < 0) return [label, ""];
  const type = label.slice(dash + 1);
  return [label.slice(0, dash), type === "0" ? "" : type];
}

/** The text conlleval prints for these tags (overall line, accuracy line, one line per type). */
export function conllevalSummary(gold: Sentences, pred: Sentences): string {
  checkShapes(gold, pred);
  let correctChunk = 0, foundCorrect = 0, foundGuessed = 0, correctTags = 0, tokenCounter = 0;
  const perCorrect = new Map<string, number>();
  const perFoundCorrect = new Map<string, number>();
  const perFoundGuessed = new Map<string, number>();
  const bump = (m: Map<string, number>, k: string): void => void m.set(k, (m.get(k) ?? 0) + 1);
  let inCorrect = false;
  let lastC = "O", lastCT = "", lastG = "O", lastGT = "";

  const step = (c: string, ct: string, g: string, gt: string, boundary: boolean): void => {
    if (inCorrect) {
      const endC = conllEnd(lastC, c, lastCT, ct);
      const endG = conllEnd(lastG, g, lastGT, gt);
      if (endC && endG && lastGT === lastCT) {
        inCorrect = false;
        correctChunk++;
        bump(perCorrect, lastCT);
      } else if (endC !== endG || gt !== ct) {
        inCorrect = false;
      }
    }
    const startC = conllStart(lastC, c, lastCT, ct);
    const startG = conllStart(lastG, g, lastGT, gt);
    if (startC && startG && gt === ct) inCorrect = true;
    if (startC) {
      foundCorrect++;
      bump(perFoundCorrect, ct);
    }
    if (startG) {
      foundGuessed++;
      bump(perFoundGuessed, gt);
    }
    if (!boundary) {
      if (c === g && gt === ct) correctTags++;
      tokenCounter++;
    }
    [lastC, lastCT, lastG, lastGT] = [c, ct, g, gt];
  };

  for (let s = 0; s < gold.length; s++) {
    for (let i = 0; i < gold[s].length; i++) {
      const [c, ct] = conllSplit(gold[s][i]);
      const [g, gt] = conllSplit(pred[s][i]);
      step(c, ct, g, gt, false);
    }
    step("O", "", "O", "", true); // sentence boundary: both sides "O"
  }
  if (inCorrect) {
    correctChunk++;
    bump(perCorrect, lastCT);
  }

  const pct = (v: number): string => padLeft(formatFixed(v, 2), 6);
  const prf = (correct: number, guessed: number, found: number): [number, number, number] => {
    const p = guessed > 0 ? (100 * correct) / guessed : 0;
    const r = found > 0 ? (100 * correct) / found : 0;
    return [p, r, p + r > 0 ? (2 * p * r) / (p + r) : 0];
  };
  const lines = [`processed ${tokenCounter} tokens with ${foundCorrect} phrases; found: ${foundGuessed} phrases; correct: ${correctChunk}.`];
  if (tokenCounter > 0) {
    const [p, r, f] = prf(correctChunk, foundGuessed, foundCorrect);
    lines.push(`accuracy: ${pct((100 * correctTags) / tokenCounter)}%; precision: ${pct(p)}%; recall: ${pct(r)}%; FB1: ${pct(f)}`);
  }
  // Perl de-duplicates the sorted key list with `not($lastType) or $lastType ne $i`, so "" and "0" repeat.
  const sortedTypes: string[] = [];
  let lastType: string | undefined;
  for (const t of [...perFoundCorrect.keys(), ...perFoundGuessed.keys()].sort(byString)) {
    if (!lastType || lastType === "0" || lastType !== t) sortedTypes.push(t);
    lastType = t;
  }
  for (const t of sortedTypes) {
    const guessed = perFoundGuessed.get(t) ?? 0;
    const [p, r, f] = prf(perCorrect.get(t) ?? 0, guessed, perFoundCorrect.get(t) ?? 0);
    // %17s pads by bytes: conlleval reads its input as raw bytes.
    const name = " ".repeat(Math.max(0, 17 - Buffer.byteLength(t, "utf8"))) + t;
    lines.push(`${name}: precision: ${pct(p)}%; recall: ${pct(r)}%; FB1: ${pct(f)}  ${guessed}`);
  }
  return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// Error inspection

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

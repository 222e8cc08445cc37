/**
 * Label sets, tagging-scheme conversion and CRF transition constraints.
 *
 * Tags are "O" or "<P>-<TYPE>" with P in B/I/E/S. Functions that take a tag
 * array work on ONE sentence: chunk boundaries never cross sentences.
 */
import { NerEngineError } from "../errors.js";
import type { Sentence, TagScheme } from "./types.js";

/** Score used for a forbidden transition: large enough to never win, small enough not to overflow sums. */
export const FORBIDDEN = -10000;

const TAG_PATTERN = /^[BIES]-.+$/;

/** True for "O" and "B-X", "I-X", "E-X", "S-X" (any scheme). */
export function isValidTag(tag: string): boolean {
  return tag === "O" || TAG_PATTERN.test(tag);
}

interface ParsedTag {
  /** "O" for outside, "B"/"I"/"E"/"S" otherwise; "?" for labels outside any scheme (PAD, UNK). */
  prefix: "O" | "B" | "I" | "E" | "S" | "?";
  type: string;
}

function parseTag(tag: string): ParsedTag {
  if (tag === "O") return { prefix: "O", type: "" };
  if (TAG_PATTERN.test(tag)) return { prefix: tag[0] as ParsedTag["prefix"], type: tag.slice(2) };
  return { prefix: "?", type: "" };
}

/** Entity type of a tag, or "" for O and non-scheme labels. */
function typeOf(tag: string | undefined): string {
  if (tag === undefined || tag === "O" || !TAG_PATTERN.test(tag)) return "";
  return tag.slice(2);
}

/** A fixed, ordered mapping between label strings and integer ids (the model's output classes). */
export class LabelSet {
  readonly labels: readonly string[];
  private readonly ids: Map<string, number>;

  constructor(labels: string[]) {
    if (labels.length === 0) throw new NerEngineError("label set is empty", "LabelSet");
    this.labels = Object.freeze([...labels]);
    this.ids = new Map();
    labels.forEach((label, i) => {
      if (this.ids.has(label)) throw new NerEngineError(`duplicate label "${label}"`, "LabelSet");
      this.ids.set(label, i);
    });
  }

  /**
   * Labels seen in `sentences`, sorted (code-unit order) with "O" first.
   * With `scheme`, every entity type also gets all prefixes that scheme uses
   * (IOB1/IOB2: B, I; IOBES: B, I, E, S) so a converted or decoded tag never
   * falls outside the set just because training happened not to contain it.
   */
  static fromSentences(sentences: readonly Sentence[], scheme?: TagScheme): LabelSet {
    const seen = new Set<string>();
    for (const s of sentences) for (const t of s.tags) seen.add(t);
    if (scheme) {
      const prefixes = scheme === "IOBES" ? ["B", "I", "E", "S"] : ["B", "I"];
      for (const tag of [...seen]) {
        const type = typeOf(tag);
        if (type) for (const p of prefixes) seen.add(`${p}-${type}`);
      }
      seen.add("O");
    }
    const rest = [...seen].filter((t) => t !== "O").sort();
    return new LabelSet(seen.has("O") ? ["O", ...rest] : rest);
  }

  get size(): number {
    return this.labels.length;
  }

  has(label: string): boolean {
    return this.ids.has(label);
  }

  id(label: string): number {
    const id = this.ids.get(label);
    if (id === undefined) throw new NerEngineError(`unknown label "${label}"`, "LabelSet");
    return id;
  }

  label(id: number): string {
    const label = this.labels[id];
    if (label === undefined) throw new NerEngineError(`label id ${id} out of range 0..${this.size - 1}`, "LabelSet");
    return label;
  }
}

// ---------------------------------------------------------------------------
// Scheme conversion (one sentence's tags at a time)

/** IOB1 → IOB2: an I-X that starts a chunk (after O, another type, or at the start) becomes B-X. */
export function iob1ToIob2(tags: readonly string[]): string[] {
  return tags.map((tag, i) => {
    if (!tag.startsWith("I-")) return tag;
    const type = tag.slice(2);
    return typeOf(tags[i - 1]) === type ? tag : `B-${type}`;
  });
}

/** IOB2 → IOB1: B-X stays only where it separates two adjacent chunks of type X; otherwise I-X. */
export function iob2ToIob1(tags: readonly string[]): string[] {
  return tags.map((tag, i) => {
    if (!tag.startsWith("B-")) return tag;
    const type = tag.slice(2);
    return typeOf(tags[i - 1]) === type ? tag : `I-${type}`;
  });
}

/**
 * IOB2 → IOBES: single-token chunks become S-X, chunk ends become E-X.
 * Ill-formed input (I-X opening a chunk) is repaired as in iob1ToIob2 first.
 */
export function iob2ToBioes(tags: readonly string[]): string[] {
  const iob2 = iob1ToIob2(tags);
  return iob2.map((tag, i) => {
    const { prefix, type } = parseTag(tag);
    const continues = iob2[i + 1] === `I-${type}`;
    if (prefix === "B") return continues ? tag : `S-${type}`;
    if (prefix === "I") return continues ? tag : `E-${type}`;
    return tag;
  });
}

/** IOBES → IOB2: S-X → B-X, E-X → I-X. */
export function bioesToIob2(tags: readonly string[]): string[] {
  return tags.map((tag) => {
    if (tag.startsWith("S-")) return `B-${tag.slice(2)}`;
    if (tag.startsWith("E-")) return `I-${tag.slice(2)}`;
    return tag;
  });
}

/**
 * Guess the scheme of a corpus: any E-/S- prefix means IOBES; any I-X that
 * opens a chunk means IOB1 (IOB2 never does that); otherwise IOB2.
 */
export function detectScheme(sentences: readonly Sentence[]): TagScheme {
  let opensWithI = false;
  for (const { tags } of sentences) {
    for (let i = 0; i < tags.length; i++) {
      const tag = tags[i]!;
      if (tag.startsWith("E-") || tag.startsWith("S-")) return "IOBES";
      if (tag.startsWith("I-") && typeOf(tags[i - 1]) !== tag.slice(2)) opensWithI = true;
    }
  }
  return opensWithI ? "IOB1" : "IOB2";
}

function toIob2(tags: readonly string[], from: TagScheme): string[] {
  return from === "IOBES" ? bioesToIob2(tags) : iob1ToIob2(tags);
}

function fromIob2(tags: string[], to: TagScheme): string[] {
  if (to === "IOBES") return iob2ToBioes(tags);
  if (to === "IOB1") return iob2ToIob1(tags);
  return tags;
}

/** Convert every sentence's tags between schemes (new objects; tokens and docId kept). */
export function convertScheme(sentences: readonly Sentence[], from: TagScheme, to: TagScheme): Sentence[] {
  return sentences.map((s) => ({ ...s, tags: from === to ? [...s.tags] : fromIob2(toIob2(s.tags, from), to) }));
}

// ---------------------------------------------------------------------------
// CRF transition constraints

export interface TransitionConstraints {
  /** transitions[i][j]: score added for moving from label i to label j. */
  transitions: number[][];
  /** start[j]: score for a sentence starting with label j. */
  start: number[];
  /** end[i]: score for a sentence ending with label i. */
  end: number[];
}

/**
 * 0 where the scheme allows a move, FORBIDDEN (-10000) where it does not.
 * IOB2: I-Y may only follow B-Y or I-Y (so not O, another type, or the start).
 * IOBES: after B-X/I-X only I-X or E-X may follow, and the sentence may not end;
 * elsewhere (start, after O/E-X/S-X) only O, B-Y or S-Y may follow.
 * Labels outside the scheme (PAD, UNK) behave like O.
 */
export function transitionConstraints(labels: readonly string[], scheme: "IOB2" | "IOBES"): TransitionConstraints {
  const parsed = labels.map((label) => {
    const p = parseTag(label);
    if (scheme === "IOB2" && (p.prefix === "E" || p.prefix === "S")) {
      throw new NerEngineError(`label "${label}" is not an IOB2 label`, "transitionConstraints");
    }
    return p.prefix === "?" ? { prefix: "O" as const, type: "" } : p;
  });
  const n = labels.length;
  const score = (ok: boolean): number => (ok ? 0 : FORBIDDEN);
  const transitions: number[][] = [];
  const start: number[] = [];
  const end: number[] = [];

  if (scheme === "IOB2") {
    // I-Y needs a predecessor inside a Y chunk; nothing else is restricted.
    const allowedInto = (from: ParsedTag | null, to: ParsedTag): boolean =>
      to.prefix !== "I" || (from !== null && (from.prefix === "B" || from.prefix === "I") && from.type === to.type);
    for (let i = 0; i < n; i++) transitions.push(parsed.map((to) => score(allowedInto(parsed[i]!, to))));
    for (const to of parsed) start.push(score(allowedInto(null, to)));
    for (let i = 0; i < n; i++) end.push(0);
  } else {
    const inside = (t: ParsedTag): boolean => t.prefix === "B" || t.prefix === "I";
    const opens = (t: ParsedTag): boolean => t.prefix === "O" || t.prefix === "B" || t.prefix === "S";
    const allowed = (from: ParsedTag, to: ParsedTag): boolean =>
      inside(from) ? (to.prefix === "I" || to.prefix === "E") && to.type === from.type : opens(to);
    for (let i = 0; i < n; i++) transitions.push(parsed.map((to) => score(allowed(parsed[i]!, to))));
    for (const to of parsed) start.push(score(opens(to)));
    for (const from of parsed) end.push(score(!inside(from)));
  }
  return { transitions, start, end };
}

// ---------------------------------------------------------------------------

export interface UnseenLabel {
  label: string;
  count: number;
}

/**
 * Labels in (eval) `sentences` that `labelSet` lacks, most frequent first.
 * A report for the caller to show or map to UNK — not an error.
 */
export function unseenLabels(sentences: readonly Sentence[], labelSet: LabelSet): UnseenLabel[] {
  const counts = new Map<string, number>();
  for (const { tags } of sentences) {
    for (const tag of tags) if (!labelSet.has(tag)) counts.set(tag, (counts.get(tag) ?? 0) + 1);
  }
  return [...counts]
    .map(([label, count]) => ({ label, count }))
    .sort((a, b) => b.count - a.count || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
}

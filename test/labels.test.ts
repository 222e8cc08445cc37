import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { NerEngineError } from "../src/errors.js";
import {
  FORBIDDEN,
  LabelSet,
  bioesToIob2,
  convertScheme,
  detectScheme,
  iob1ToIob2,
  iob2ToBioes,
  iob2ToIob1,
  isValidTag,
  transitionConstraints,
  unseenLabels,
} from "../src/data/labels.js";
import { readAtis, readConll } from "../src/data/readers.js";
import type { Sentence } from "../src/data/types.js";
import { itNeeding, SHARED_DATA } from "./helpers/shared.js";

const DATA = SHARED_DATA;
const itWithValid = itNeeding(join(DATA, "conll2003/valid.txt"));
const itWithTrain = itNeeding(join(DATA, "conll2003/train.txt"));
const itWithAtis = itNeeding(join(DATA, "atis"));
const sent = (...tags: string[]): Sentence => ({ tokens: tags.map((_, i) => `w${i}`), tags });

describe("scheme conversion", () => {
  it("IOB1 → IOB2: I-X opening a chunk becomes B-X", () => {
    expect(iob1ToIob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG", "I-MISC", "I-MISC"])).toEqual([
      "B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG", "B-MISC", "I-MISC",
    ]);
    expect(iob2ToIob1(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG"])).toEqual([
      "I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG",
    ]);
  });

  it("IOB2 → IOBES → IOB2 round trip", () => {
    const iob2 = ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG", "O", "B-X"];
    const bioes = iob2ToBioes(iob2);
    expect(bioes).toEqual(["B-PER", "I-PER", "E-PER", "O", "S-LOC", "B-LOC", "E-LOC", "S-ORG", "O", "S-X"]);
    expect(bioesToIob2(bioes)).toEqual(iob2);
    // Ill-formed IOB2 (I after O) is repaired rather than producing an invalid IOBES sequence.
    expect(iob2ToBioes(["O", "I-X", "I-X"])).toEqual(["O", "B-X", "E-X"]);
  });

  itWithValid("round trip over all of CoNLL-2003 valid, and scheme detection", () => {
    const { sentences } = readConll(join(DATA, "conll2003/valid.txt"));
    expect(detectScheme(sentences)).toBe("IOB2");
    const bioes = convertScheme(sentences, "IOB2", "IOBES");
    expect(detectScheme(bioes)).toBe("IOBES");
    expect(convertScheme(bioes, "IOBES", "IOB2")).toEqual(sentences);
    const iob1 = convertScheme(sentences, "IOB2", "IOB1");
    expect(detectScheme(iob1)).toBe("IOB1");
    expect(convertScheme(iob1, "IOB1", "IOB2")).toEqual(sentences);
    expect(bioes[0]!.docId).toBe(sentences[0]!.docId);
    expect(bioes[0]!.tokens).toEqual(sentences[0]!.tokens);
  });

  it("isValidTag", () => {
    for (const t of ["O", "B-PER", "I-fromloc.city_name", "E-X", "S-X"]) expect(isValidTag(t)).toBe(true);
    for (const t of ["o", "0", "BO", "B-", "X-PER", "B_PER", ""]) expect(isValidTag(t)).toBe(false);
  });
});

describe("LabelSet", () => {
  it("fromSentences: sorted, O first; id/label/has/size", () => {
    const set = LabelSet.fromSentences([sent("B-PER", "I-PER", "O"), sent("B-LOC")]);
    expect(set.labels).toEqual(["O", "B-LOC", "B-PER", "I-PER"]);
    expect(set.size).toBe(4);
    expect(set.id("B-PER")).toBe(2);
    expect(set.label(3)).toBe("I-PER");
    expect(set.has("I-LOC")).toBe(false);
    expect(() => set.id("I-LOC")).toThrow(NerEngineError);
    expect(() => set.label(4)).toThrow(NerEngineError);
  });

  it("fromSentences with a scheme completes every type's prefixes", () => {
    const set = LabelSet.fromSentences([sent("B-PER"), sent("S-LOC")], "IOBES");
    expect(set.labels).toEqual(["O", "B-LOC", "B-PER", "E-LOC", "E-PER", "I-LOC", "I-PER", "S-LOC", "S-PER"]);
  });

  itWithTrain("CoNLL-2003 train gives the 9 labels", () => {
    const set = LabelSet.fromSentences(readConll(join(DATA, "conll2003/train.txt")).sentences);
    expect(set.labels).toEqual(["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]);
  });

  it("refuses duplicate and empty label lists", () => {
    expect(() => new LabelSet(["O", "O"])).toThrow(/duplicate label "O"/);
    expect(() => new LabelSet([])).toThrow(NerEngineError);
  });

  it("unseenLabels reports eval labels training never saw", () => {
    const train = LabelSet.fromSentences([sent("O", "B-PER"), sent("I-PER")]);
    expect(unseenLabels([sent("B-LOC", "O", "B-LOC", "B-ORG", "B-PER")], train)).toEqual([
      { label: "B-LOC", count: 2 },
      { label: "B-ORG", count: 1 },
    ]);
  });

  itWithAtis("unseenLabels on ATIS test vs train", () => {
    const atis = LabelSet.fromSentences(readAtis(join(DATA, "atis"), "train").sentences);
    expect(atis.size).toBe(120);
    const unseen = unseenLabels(readAtis(join(DATA, "atis"), "test").sentences, atis);
    expect(unseen.length).toBeGreaterThan(0);
    for (const { label, count } of unseen) {
      expect(atis.has(label)).toBe(false);
      expect(count).toBeGreaterThan(0);
    }
  });
});

describe("transitionConstraints", () => {
  const allowed = (m: number[][], labels: string[], from: string, to: string): boolean =>
    m[labels.indexOf(from)]![labels.indexOf(to)] === 0;

  it("IOB2 forbids O→I-X, B-X→I-Y, I-X→I-Y and start→I-X", () => {
    const labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"];
    const { transitions: t, start, end } = transitionConstraints(labels, "IOB2");
    expect(t.length).toBe(5);
    expect(t.every((row) => row.length === 5 && row.every((v) => v === 0 || v === FORBIDDEN))).toBe(true);
    expect(FORBIDDEN).toBe(-10000);
    expect(allowed(t, labels, "O", "I-PER")).toBe(false);
    expect(allowed(t, labels, "B-PER", "I-LOC")).toBe(false);
    expect(allowed(t, labels, "I-PER", "I-LOC")).toBe(false);
    expect(allowed(t, labels, "B-PER", "I-PER")).toBe(true);
    expect(allowed(t, labels, "I-PER", "I-PER")).toBe(true);
    expect(allowed(t, labels, "I-PER", "B-LOC")).toBe(true);
    expect(allowed(t, labels, "O", "B-LOC")).toBe(true);
    expect(allowed(t, labels, "I-LOC", "O")).toBe(true);
    expect(start).toEqual([0, 0, FORBIDDEN, 0, FORBIDDEN]);
    expect(end).toEqual([0, 0, 0, 0, 0]);
    // Exactly the forbidden moves into I-X: 3 non-X predecessors for each of the 2 I- labels.
    expect(t.flat().filter((v) => v === FORBIDDEN).length).toBe(6);
    expect(() => transitionConstraints(["O", "S-X"], "IOB2")).toThrow(NerEngineError);
  });

  it("IOBES: chunks must close with E-X, only O/B/S open, end only outside a chunk", () => {
    const labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"];
    const { transitions: t, start, end } = transitionConstraints(labels, "IOBES");
    for (const from of ["B-PER", "I-PER"]) {
      for (const to of labels) expect(allowed(t, labels, from, to)).toBe(to === "I-PER" || to === "E-PER");
    }
    for (const from of ["O", "E-PER", "S-PER", "E-LOC", "S-LOC"]) {
      for (const to of labels) expect(allowed(t, labels, from, to)).toBe(/^(O|B-.*|S-.*)$/.test(to));
    }
    expect(start.map((v) => v === 0)).toEqual(labels.map((l) => /^(O|B-.*|S-.*)$/.test(l)));
    expect(end.map((v) => v === 0)).toEqual(labels.map((l) => /^(O|E-.*|S-.*)$/.test(l)));
  });

  itWithValid("every gold CoNLL-2003 path scores 0 under the IOB2 and IOBES constraints", () => {
    const { sentences } = readConll(join(DATA, "conll2003/valid.txt"));
    for (const scheme of ["IOB2", "IOBES"] as const) {
      const data = scheme === "IOBES" ? convertScheme(sentences, "IOB2", "IOBES") : sentences;
      const set = LabelSet.fromSentences(data, scheme);
      const { transitions, start, end } = transitionConstraints(set.labels, scheme);
      for (const { tags } of data) {
        const ids = tags.map((t) => set.id(t));
        let score = start[ids[0]!]! + end[ids.at(-1)!]!;
        for (let i = 1; i < ids.length; i++) score += transitions[ids[i - 1]!]![ids[i]!]!;
        expect(score).toBe(0);
      }
    }
  });
});

import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { FIXTURE_SETS, fixtureTitle, has, LOCAL_FIXTURES } from "./helpers/shared.js";
import { NerEngineError } from "../src/errors.js";
import type { TagScheme } from "../src/data/types.js";
import {
  classificationReport,
  conllevalSummary,
  formatFixed,
  formatMistakes,
  formatReport,
  getEntities,
  getStrictEntities,
  mistakenSentences,
  tagReport,
  type ClassificationReport,
  type Scores,
} from "../src/eval/metrics.js";

interface PyScores {
  precision: number;
  recall: number;
  "f1-score": number;
  support: number;
}
interface MetricsFixture {
  gold: string[][];
  pred: string[][];
  token_accuracy: number;
  seqeval_default: Record<string, PyScores>;
  seqeval_strict_iob2: Record<string, PyScores>;
  /** Absent from test/fixtures/metrics.json: the conlleval Perl script is not in the HF baseline kit. */
  conlleval_output?: string;
}

const readMetrics = (dir: string): MetricsFixture => JSON.parse(readFileSync(path.join(dir, "metrics.json"), "utf8")) as MetricsFixture;
/** The committed fixture (scripts/make-fixtures.py), for tests that only need some realistic tag sequences. */
const localFixture = readMetrics(LOCAL_FIXTURES);

function expectScores(actual: Scores | undefined, expected: PyScores, what: string): void {
  expect(actual, what).toBeDefined();
  const a = actual!;
  expect(Math.abs(a.precision - expected.precision), `${what} precision`).toBeLessThan(1e-6);
  expect(Math.abs(a.recall - expected.recall), `${what} recall`).toBeLessThan(1e-6);
  expect(Math.abs(a.f1 - expected["f1-score"]), `${what} f1`).toBeLessThan(1e-6);
  expect(a.support, `${what} support`).toBe(expected.support);
}

function expectMatchesSeqeval(report: ClassificationReport, expected: Record<string, PyScores>): void {
  const averages: Record<string, Scores> = {
    "micro avg": report.micro,
    "macro avg": report.macro,
    "weighted avg": report.weighted,
  };
  const expectedTypes = Object.keys(expected).filter((k) => !(k in averages)).sort();
  expect(Object.keys(report.perType)).toEqual(expectedTypes);
  for (const [name, scores] of Object.entries(expected)) {
    expectScores(averages[name] ?? report.perType[name], scores, name);
  }
}

function expectNoNaN(report: ClassificationReport): void {
  for (const s of [report.micro, report.macro, report.weighted, ...Object.values(report.perType)]) {
    for (const v of [s.precision, s.recall, s.f1, s.support]) expect(Number.isNaN(v)).toBe(false);
  }
  expect(Number.isNaN(report.accuracy)).toBe(false);
}

// The same tests on the committed small fixture (test/fixtures) and on ../shared's.
for (const set of FIXTURE_SETS) {
  const present = has(path.join(set.dir, "metrics.json"));
  describe.skipIf(!present)(fixtureTitle("fixture: seqeval 1.2 and conlleval", set, "metrics.json"), () => {
    const fixture = present ? readMetrics(set.dir) : localFixture;
    const hasConlleval = !present || fixture.conlleval_output !== undefined; // (a skipped suite needs no second reason)

    it("default mode matches seqeval classification_report", () => {
      expectMatchesSeqeval(classificationReport(fixture.gold, fixture.pred), fixture.seqeval_default);
    });

    it("strict IOB2 mode matches seqeval mode='strict', scheme=IOB2", () => {
      const report = classificationReport(fixture.gold, fixture.pred, { mode: "strict", scheme: "IOB2" });
      expectMatchesSeqeval(report, fixture.seqeval_strict_iob2);
      // IOB2 is the strict default.
      expect(classificationReport(fixture.gold, fixture.pred, { mode: "strict" })).toEqual(report);
    });

    it("token accuracy", () => {
      expect(Math.abs(classificationReport(fixture.gold, fixture.pred).accuracy - fixture.token_accuracy)).toBeLessThan(1e-9);
    });

    it.skipIf(!hasConlleval)(`conlleval output, byte for byte${hasConlleval ? "" : " (needs conlleval_output in metrics.json: the HF baseline kit has no conlleval script)"}`, () => {
      expect(conllevalSummary(fixture.gold, fixture.pred)).toBe(fixture.conlleval_output);
    });

    it("a CoNLL-test-sized corpus (copies of the fixture) scores like one copy, with every count that many times larger", () => {
      const tokens = fixture.gold.flat().length;
      const reps = Math.ceil(46_000 / tokens);
      const gold = Array.from({ length: reps }, () => fixture.gold).flat();
      const pred = Array.from({ length: reps }, () => fixture.pred).flat();
      const pairs: [string, ClassificationReport, ClassificationReport][] = [
        ["default", classificationReport(gold, pred), classificationReport(fixture.gold, fixture.pred)],
        ["strict", classificationReport(gold, pred, { mode: "strict" }), classificationReport(fixture.gold, fixture.pred, { mode: "strict" })],
        ["tags", tagReport(gold, pred), tagReport(fixture.gold, fixture.pred)],
      ];
      for (const [what, big, one] of pairs) {
        expect(Object.keys(big.perType), what).toEqual(Object.keys(one.perType));
        for (const [key, scores] of [...Object.entries(one.perType), ["micro", one.micro] as const, ["macro", one.macro] as const]) {
          const scaled = key === "micro" || key === "macro" ? big[key] : big.perType[key];
          expect(scaled.support, `${what} ${key} support`).toBe(scores.support * reps);
          expect(Math.abs(scaled.f1 - scores.f1), `${what} ${key} f1`).toBeLessThan(1e-9);
        }
        expect(Math.abs(big.accuracy - one.accuracy), `${what} accuracy`).toBeLessThan(1e-9);
      }
      expect(pairs[0][1].micro.support).toBe(fixture.seqeval_default["micro avg"].support * reps);
      if (fixture.conlleval_output === undefined) return;
      // conlleval: the same rates; the counts of the first line and each type's found phrases times reps.
      const [first, overall, ...types] = fixture.conlleval_output.split("\n");
      const counts = /^processed (\d+) tokens with (\d+) phrases; found: (\d+) phrases; correct: (\d+)\.$/.exec(first)!.slice(1).map(Number);
      expect(counts.slice(0, 2)).toEqual([tokens, fixture.seqeval_default["micro avg"].support]);
      const [, phrases, found, correct] = counts;
      const scaled = [
        `processed ${tokens * reps} tokens with ${phrases * reps} phrases; found: ${found * reps} phrases; correct: ${correct * reps}.`,
        overall,
        ...types.map((line) => line.replace(/\d+$/, (n) => String(Number(n) * reps))),
      ];
      expect(conllevalSummary(gold, pred)).toBe(scaled.join("\n"));
    });
  });
}

describe("seqeval entity extraction", () => {
  it("default chunking (get_entities)", () => {
    expect(getEntities(["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O", "B-PER", "I-PER"])).toEqual([
      ["MISC", 3, 5],
      ["PER", 7, 8],
    ]);
    // Nested input: sentences joined by an "O", so offsets skip one position per boundary.
    expect(getEntities([["O", "O", "O", "B", "I", "I", "O"], ["B", "I", "O"]])).toEqual([
      ["_", 3, 5],
      ["_", 8, 9],
    ]);
    // I- without B- starts a chunk; a type change ends one; E-/S- close chunks.
    expect(getEntities(["I-PER", "I-PER", "I-LOC", "O", "S-ORG", "B-PER", "E-PER", "I-PER"])).toEqual([
      ["PER", 0, 1],
      ["LOC", 2, 2],
      ["ORG", 4, 4],
      ["PER", 5, 6],
      ["PER", 7, 7],
    ]);
    expect(getEntities(["B-ORG-SUB", "I-ORG-SUB"])).toEqual([["ORG-SUB", 0, 1]]);
  });

  // Expected values from seqeval's own tests/test_scheme.py tables.
  const strictCases: [TagScheme, string[], [string, number, number][]][] = [
    ["IOB2", ["B-PER"], [["PER", 0, 1]]],
    ["IOB2", ["I-PER"], []],
    ["IOB2", ["O", "I-PER"], []],
    ["IOB2", ["I-PER", "B-ORG"], [["ORG", 1, 2]]],
    ["IOB2", ["B-PER", "I-PER"], [["PER", 0, 2]]],
    ["IOB2", ["B-PER", "I-ORG"], [["PER", 0, 1]]],
    ["IOB2", ["B-PER", "B-ORG"], [["PER", 0, 1], ["ORG", 1, 2]]],
    ["IOB2", ["B", "I"], [["_", 0, 2]]],
    ["IOB1", ["I-PER"], [["PER", 0, 1]]],
    ["IOB1", ["B-PER"], []],
    ["IOB1", ["I-PER", "I-ORG"], [["PER", 0, 1], ["ORG", 1, 2]]],
    ["IOB1", ["I-PER", "B-PER"], [["PER", 0, 1], ["PER", 1, 2]]],
    ["IOB1", ["I-PER", "B-ORG"], [["PER", 0, 1]]],
    ["IOB1", ["B-PER", "I-PER"], [["PER", 1, 2]]],
    ["IOB1", ["B-PER", "B-PER"], [["PER", 1, 2]]],
    ["IOBES", ["S-PER"], [["PER", 0, 1]]],
    ["IOBES", ["B-PER"], []],
    ["IOBES", ["B-PER", "I-PER"], []],
    ["IOBES", ["B-PER", "E-PER"], [["PER", 0, 2]]],
    ["IOBES", ["B-PER", "E-ORG"], []],
    ["IOBES", ["B-PER", "S-PER"], [["PER", 1, 2]]],
    ["IOBES", ["S-PER", "E-PER"], [["PER", 0, 1]]],
    ["IOBES", ["S-PER", "S-PER"], [["PER", 0, 1], ["PER", 1, 2]]],
    ["IOBES", ["I-PER", "S-PER"], [["PER", 1, 2]]],
    ["IOBES", ["B", "E"], [["_", 0, 2]]],
  ];
  it.each(strictCases)("strict %s %j", (scheme, tags, expected) => {
    expect(getStrictEntities(tags, scheme)).toEqual(expected);
  });

  it("strict mode rejects prefixes the scheme does not allow", () => {
    expect(() => getStrictEntities(["O", "S-PER"], "IOB2", 7)).toThrow(/sentence 7, token 1/);
    expect(() => getStrictEntities(["X-PER"], "IOBES")).toThrow(NerEngineError);
  });
});

describe("hand-made reports", () => {
  it("empty predictions give zeros, never NaN", () => {
    const gold = [["B-PER", "I-PER", "O"], ["B-LOC"]];
    const pred = [["O", "O", "O"], ["O"]];
    for (const mode of ["default", "strict"] as const) {
      const r = classificationReport(gold, pred, { mode });
      expectNoNaN(r);
      expect(r.perType).toEqual({
        LOC: { precision: 0, recall: 0, f1: 0, support: 1 },
        PER: { precision: 0, recall: 0, f1: 0, support: 1 },
      });
      for (const avg of [r.micro, r.macro, r.weighted]) expect(avg).toEqual({ precision: 0, recall: 0, f1: 0, support: 2 });
      expect(r.accuracy).toBeCloseTo(1 / 4, 12);
    }
    // No entities anywhere, and no tokens at all.
    expectNoNaN(classificationReport([["O"]], [["O"]]));
    expectNoNaN(classificationReport([], []));
    expect(classificationReport([], []).micro).toEqual({ precision: 0, recall: 0, f1: 0, support: 0 });
  });

  it("types only in predictions are reported with support 0", () => {
    const r = classificationReport([["B-PER", "O"]], [["B-PER", "B-LOC"]]);
    expect(Object.keys(r.perType)).toEqual(["LOC", "PER"]);
    expect(r.perType.LOC).toEqual({ precision: 0, recall: 0, f1: 0, support: 0 });
    expect(r.micro).toEqual({ precision: 0.5, recall: 1, f1: 2 / 3, support: 1 });
    expect(r.macro.precision).toBe(0.5);
    expect(r.weighted).toEqual({ precision: 1, recall: 1, f1: 1, support: 1 });
  });

  it("length mismatches name the sentence", () => {
    expect(() => classificationReport([["O"], ["O", "O"]], [["O"], ["O"]])).toThrow(NerEngineError);
    expect(() => classificationReport([["O"], ["O", "O"]], [["O"], ["O"]])).toThrow(/sentence 1/);
    expect(() => classificationReport([["O"], ["O"], ["O"]], [["O"]])).toThrow(/sentence 1: gold has 3 sentences but pred has 1/);
    expect(() => conllevalSummary([["O"]], [["O", "O"]])).toThrow(/sentence 0/);
    expect(() => tagReport([["O"]], [])).toThrow(NerEngineError);
    expect(() => mistakenSentences([["a", "b"]], [["O"]], [["O"]])).toThrow(/sentence 0/);
  });

  it("IOBES strict: only complete B…E / S chunks count", () => {
    const gold = [["B-PER", "E-PER", "O", "S-LOC"], ["B-ORG", "I-ORG", "E-ORG", "O"]];
    const pred = [["B-PER", "E-PER", "O", "S-LOC"], ["B-ORG", "I-ORG", "O", "S-PER"]];
    const r = classificationReport(gold, pred, { mode: "strict", scheme: "IOBES" });
    expect(r.perType).toEqual({
      LOC: { precision: 1, recall: 1, f1: 1, support: 1 },
      ORG: { precision: 0, recall: 0, f1: 0, support: 1 }, // pred B-I-O is not a complete entity
      PER: { precision: 0.5, recall: 1, f1: 2 / 3, support: 1 },
    });
    expect(r.micro.precision).toBeCloseTo(2 / 3, 12);
    expect(r.micro.recall).toBeCloseTo(2 / 3, 12);
    expect(r.macro.precision).toBeCloseTo(0.5, 12);
    // Default (conlleval-style) chunking accepts the unterminated B-I ORG chunk as ORG[4..5].
    const d = classificationReport(gold, pred);
    expect(d.perType.ORG).toEqual({ precision: 0, recall: 0, f1: 0, support: 1 });
    expect(() => classificationReport(gold, pred, { mode: "strict", scheme: "IOB2" })).toThrow(NerEngineError);
  });

  it("tag-level report", () => {
    const r = tagReport([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]]);
    expect(r.perType).toEqual({
      "B-PER": { precision: 1, recall: 1, f1: 1, support: 1 },
      "I-PER": { precision: 0, recall: 0, f1: 0, support: 1 },
      O: { precision: 0.5, recall: 1, f1: 2 / 3, support: 1 },
    });
    expect(r.micro.precision).toBeCloseTo(2 / 3, 12); // every token is in exactly one class
    expect(r.accuracy).toBeCloseTo(2 / 3, 12);
  });
});

describe("text output", () => {
  it("formatReport reproduces seqeval's table", () => {
    const gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]];
    const pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]];
    const expected2 = [
      "              precision    recall  f1-score   support",
      "",
      "        MISC       0.00      0.00      0.00         1",
      "         PER       1.00      1.00      1.00         1",
      "",
      "   micro avg       0.50      0.50      0.50         2",
      "   macro avg       0.50      0.50      0.50         2",
      "weighted avg       0.50      0.50      0.50         2",
      "",
    ].join("\n");
    const report = classificationReport(gold, pred);
    expect(formatReport(report, 2)).toBe(expected2);
    expect(formatReport(report).split("\n")[3]).toBe("         PER     1.0000    1.0000    1.0000         1");
  });

  it("formatFixed rounds exact ties to even like printf", () => {
    expect(formatFixed(0.125, 2)).toBe("0.12");
    expect(formatFixed(0.375, 2)).toBe("0.38");
    expect(formatFixed(2.5, 0)).toBe("2");
    expect(formatFixed(66.2222, 2)).toBe("66.22");
    expect(formatFixed(1.005, 2)).toBe("1.00"); // 1.005 is really 1.00499999…
    expect(formatFixed(0, 4)).toBe("0.0000");
  });

  it("mistaken sentences, aligned and marked", () => {
    const tokens = [["John", "lives", "here"], ["OK"], ["New", "York", "rocks"]];
    const gold = [["B-PER", "O", "O"], ["O"], ["B-LOC", "I-LOC", "O"]];
    const pred = [["B-PER", "O", "O"], ["O"], ["B-LOC", "B-LOC", "O"]];
    const mistakes = mistakenSentences(tokens, gold, pred);
    expect(mistakes.map((m) => m.index)).toEqual([2]);
    expect(formatMistakes(mistakes)).toBe(
      ["# sentence 2", "  New    B-LOC  B-LOC", "* York   I-LOC  B-LOC", "  rocks  O      O", ""].join("\n"),
    );
    const all = mistakenSentences(localFixture.gold, localFixture.gold, localFixture.pred);
    expect(mistakenSentences(localFixture.gold, localFixture.gold, localFixture.pred, 3)).toEqual(all.slice(0, 3));
    expect(formatMistakes(all.slice(0, 2)).split("\n\n")).toHaveLength(2);
    expect(formatMistakes([])).toBe("");
  });
});

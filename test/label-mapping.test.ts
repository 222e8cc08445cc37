// Fine-tuning a checkpoint that already has a head: its rows are kept under their label names (HF
// semantics), new labels get fresh rows only when asked (ignoreMismatchedSizes), and the log says which.
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { Engine } from "../src/app/engine.js";
import { readCheckpoint } from "../src/model/checkpoint.js";
import { labelList } from "../src/model/encoder-config.js";
import { describeMapping, mapLabelsByName } from "../src/model/label-mapping.js";
import { toFloat32 } from "../src/model/safetensors.js";
import type { Sentence } from "../src/data/types.js";
import { FIXTURE_SETS, fixtureTitle } from "./helpers/shared.js";

describe("mapLabelsByName", () => {
  const known = ["O", "B-PER", "I-PER", "B-LOC"];
  it("keeps the checkpoint's order when the data's labels are all known", () => {
    const m = mapLabelsByName(known, ["B-LOC", "O"], { ignoreMismatchedSizes: false, source: "ckpt" });
    expect(m).toMatchObject({ labels: known, rows: [0, 1, 2, 3], kept: known, initialised: [] });
  });
  it("refuses new labels unless asked, then appends them with fresh rows", () => {
    expect(() => mapLabelsByName(known, ["B-ORG", "O"], { ignoreMismatchedSizes: false, source: "ckpt" })).toThrow(/B-ORG.*ignoreMismatchedSizes/);
    const m = mapLabelsByName(known, ["B-ORG", "I-ORG", "O"], { ignoreMismatchedSizes: true, source: "ckpt" });
    expect(m.labels).toEqual([...known, "B-ORG", "I-ORG"]);
    expect(m.rows).toEqual([0, 1, 2, 3, -1, -1]);
    expect(describeMapping(m)).toContain("initialised: B-ORG (row 4), I-ORG (row 5)");
  });
  it("without a named head, the data's labels get a fresh head", () => {
    const m = mapLabelsByName(undefined, ["B-X", "O"], { ignoreMismatchedSizes: false, source: "ckpt" });
    expect(m).toMatchObject({ labels: ["B-X", "O"], rows: [-1, -1], kept: [] });
  });
});

const SENTENCES: Sentence[] = [
  { tokens: ["Peter", "Blackburn", "visited", "Berlin"], tags: ["B-PER", "I-PER", "O", "B-LOC"] },
  { tokens: ["The", "European", "Commission", "said"], tags: ["O", "B-ORG", "I-ORG", "O"] },
  { tokens: ["German", "beer", "in", "New", "York"], tags: ["B-MISC", "O", "O", "B-LOC", "I-LOC"] },
  { tokens: ["EU", "rejects", "British", "lamb"], tags: ["B-ORG", "O", "B-MISC", "I-MISC"] },
];

function rowsByLabel(dir: string): Map<string, number[]> {
  const ckpt = readCheckpoint(dir);
  const weight = ckpt.weights.get("classifier.weight")!;
  const bias = toFloat32(ckpt.weights.get("classifier.bias")!);
  const values = toFloat32(weight);
  const width = weight.shape[1];
  return new Map(labelList(ckpt.config).map((label, i) => [label, [...values.subarray(i * width, (i + 1) * width), bias[i]]]));
}

// On the committed small fixture (test/fixtures) and on ../shared's.
for (const set of FIXTURE_SETS) {
  const TINY_BERT = path.join(set.dir, "tiny-bert-ner");
  describe.skipIf(!existsSync(TINY_BERT))(fixtureTitle("fine-tuning tiny-bert-ner (unsorted id2label) at learning rate 0", set, "tiny-bert-ner"), () => {
    const H = () => readCheckpoint(TINY_BERT).config.hidden_size;
    const original = () => rowsByLabel(TINY_BERT);
    const fit = async (sentences: Sentence[], extra: Record<string, unknown> = {}) => {
      const out = mkdtempSync(path.join(tmpdir(), "ner-map-"));
      const engine = new Engine({ model: TINY_BERT, device: "cpu", output: out, training: { learningRate: 0, epochs: 1, batchSize: 2 }, ...extra });
      const log: string[] = [];
      const history = await engine.fit({ train: { source: "train", sentences } }, { onLog: (m) => log.push(m) });
      return { out, engine, history, log };
    };

    it("saves a classifier whose row for each label name equals the checkpoint's", async () => {
      const { out, engine, log } = await fit(SENTENCES);
      expect(engine.labels).toEqual(labelList(readCheckpoint(TINY_BERT).config));
      const before = original();
      const after = rowsByLabel(path.join(out, "model"));
      expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
      for (const [label, row] of before) expect(after.get(label), label).toEqual(row);
      expect(log.join("\n")).toContain("kept by name for 9 labels");
    });

    it("with one extra label: refused by default; with ignoreMismatchedSizes the known rows are kept and the log names the new rows", async () => {
      const withExtra = [...SENTENCES, { tokens: ["Covid", "spreads"], tags: ["B-DISEASE", "O"] }];
      await expect(fit(withExtra)).rejects.toThrow(/B-DISEASE.*ignoreMismatchedSizes/);
      const { out, history, log } = await fit(withExtra, { ignoreMismatchedSizes: true });
      const before = original();
      const after = rowsByLabel(path.join(out, "model"));
      expect(after.size).toBe(11); // the label set completes B-DISEASE with I-DISEASE
      for (const [label, row] of before) expect(after.get(label), label).toEqual(row);
      expect(history.headMapping?.initialised).toEqual(["B-DISEASE", "I-DISEASE"]);
      expect(log.join("\n")).toContain("initialised: B-DISEASE (row 9), I-DISEASE (row 10)");
    });

    it("continuing training from a model saved here keeps its labels and rows the same way", async () => {
      const first = await fit(SENTENCES);
      const saved = path.join(first.out, "model");
      const out = mkdtempSync(path.join(tmpdir(), "ner-map-"));
      const engine = new Engine({ model: saved, device: "cpu", output: out, training: { learningRate: 0, epochs: 1, batchSize: 2 } });
      await engine.fit({ train: { source: "train", sentences: SENTENCES.slice(0, 2) } });
      const before = rowsByLabel(saved);
      for (const [label, row] of rowsByLabel(path.join(out, "model"))) expect(row, label).toEqual(before.get(label));
    });

    it("a head tensor of another shape: an error naming it, or with ignoreMismatchedSizes kept at its init and logged", async () => {
      const first = await fit(SENTENCES, { head: { kind: "bilstm-crf", lstmHiddenSize: 8 } });
      const saved = path.join(first.out, "model");
      const again = (extra: Record<string, unknown>) =>
        new Engine({ model: saved, device: "cpu", training: { learningRate: 0, epochs: 1, batchSize: 2 }, head: { lstmHiddenSize: 16, learningRate: 0 }, ...extra });
      await expect(again({}).fit({ train: { source: "train", sentences: SENTENCES } })).rejects.toThrow(`lstm.weight_ih_l0" has shape [32, ${H()}], expected [64, ${H()}]`);
      const log: string[] = [];
      const engine = again({ ignoreMismatchedSizes: true });
      const history = await engine.fit({ train: { source: "train", sentences: SENTENCES } }, { onLog: (m) => log.push(m) });
      expect(engine.model!.spec.head).toMatchObject({ kind: "bilstm-crf", lstmHiddenSize: 16 }); // the saved head kind, the asked size
      expect(history.headMapping?.mismatched?.some((m) => m.startsWith(`lstm.weight_ih_l0 [32, ${H()}] vs [64, ${H()}]`))).toBe(true);
      expect(log.join("\n")).toContain("the checkpoint's shape differing: lstm.");
      // The CRF scores keep their rows by name; the classifier, now 2 x 16 wide, is one of the mismatched.
      expect(history.headMapping?.kept).toHaveLength(9);
      expect(history.headMapping?.mismatched?.some((m) => m.startsWith("classifier.weight [9, 16] vs [9, 32]"))).toBe(true);
      const transitions = (ckpt: string) => toFloat32(readCheckpoint(ckpt).weights.get("crf.transitions")!);
      expect(Array.from((await engine.model!.exportWeights()).find((w) => w.name === "crf.transitions")!.data)).toEqual(Array.from(transitions(saved)));
    });

    it("a checkpoint whose head is of another kind starts a fresh head, and says so", async () => {
      const log: string[] = [];
      const engine = new Engine({ model: TINY_BERT, device: "cpu", training: { learningRate: 0, epochs: 1, batchSize: 2 }, head: { kind: "crf" } });
      const history = await engine.fit({ train: { source: "train", sentences: SENTENCES } }, { onLog: (m) => log.push(m) });
      expect(history.headMapping?.kept).toEqual([]);
      expect(log.join("\n")).toContain("the checkpoint's head is softmax, this model's crf");
    });
  });
}

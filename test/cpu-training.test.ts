import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Engine, type TrainProgress } from "../src/app/engine.js";
import { runtimeInfo } from "../src/index.js";
import type { Sentence } from "../src/data/types.js";
import { trainWordPiece, writeTokenizerFiles } from "../src/text/vocab.js";

// The CPU AdamW pass (native/adamw.cpp) must give what torch::optim::AdamW gives, to the bit.
const build = path.resolve(import.meta.dirname, "../build");

let tokenizerDir: string;
let sentences: Sentence[];

beforeAll(() => {
  // Synthetic sentences of varied lengths, so batches pad differently and clipping engages.
  const words = ["alpha", "beta", "gamma", "delta", "Paris", "London", "Smith", "Jones", "runs", "the", "of", "ACME", "Corp"];
  const tags: Record<string, string> = { Paris: "B-LOC", London: "B-LOC", Smith: "B-PER", Jones: "B-PER", ACME: "B-ORG", Corp: "I-ORG" };
  let seed = 3;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  sentences = Array.from({ length: 96 }, () => {
    const tokens = Array.from({ length: 2 + Math.floor(next() * 14) }, () => words[Math.floor(next() * words.length)]);
    const labels = tokens.map((t, i) => (t === "Corp" && tokens[i - 1] !== "ACME" ? "B-ORG" : (tags[t] ?? "O")));
    return { tokens, tags: labels };
  });
  tokenizerDir = mkdtempSync(path.join(tmpdir(), "ner-adamw-vocab-"));
  writeTokenizerFiles(tokenizerDir, trainWordPiece(sentences.map((s) => s.tokens), { vocabSize: 200, lowercase: false }), { lowercase: false });
});

afterEach(() => {
  delete process.env.NER_CPU_ADAMW;
});

async function trainAndSave(head: "softmax" | "bilstm-crf", groupByLength: boolean | "hf" = true): Promise<{ weights: Buffer; losses: number[]; padFraction: number; phases: Record<string, number> }> {
  const engine = new Engine({
    tokenizer: tokenizerDir,
    device: "cpu",
    scratch: { hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 64, maxPositionEmbeddings: 64 },
    head: { kind: head, lstmHiddenSize: 16 },
    data: { maxLength: 32, devSplit: 0 }, // every sentence trains: the padding comparison needs the batches
    // A large learning rate and a small clip norm: clipping engages, weight decay acts.
    training: { epochs: 2, batchSize: 8, learningRate: 3e-3, weightDecay: 0.01, maxGradNorm: 0.5, warmupSteps: 3, progressEvery: 1, seed: 11, groupByLength },
  });
  const losses: number[] = [];
  const history = await engine.fit({ train: { source: "synthetic", sentences } }, { onProgress: (p: TrainProgress) => losses.push(p.loss) });
  const dir = mkdtempSync(path.join(tmpdir(), "ner-adamw-model-"));
  await engine.save(dir);
  return { weights: readFileSync(path.join(dir, "model.safetensors")), losses, padFraction: history.epochs[0].padFraction, phases: history.epochs[0].phaseSeconds };
}

describe("the CPU AdamW pass", () => {
  it("equals torch::optim::AdamW bit for bit on odd-sized tensors, with weight decay and a clipping coefficient; so does the embedding backward; the CPU dropout draws p and scales as torch does", () => {
    const file = path.join(build, "kernel_check");
    expect(existsSync(file), `${file} is built by npm install`).toBe(true);
    const out = execFileSync(file, { encoding: "utf8" }); // exits 1 on any difference
    expect(out.match(/max \|dw\| 0$/gm)).toHaveLength(10);
    expect(out).toMatch(/^embedding: max \|d out\| 0, max \|d grad\| 0$/m);
    expect(out.match(/^dropout 0\.[15]: .* scaled 1, gradient 1, same seed repeats 1, next draw differs 1$/gm)).toHaveLength(2);
  });

  it.each(["softmax", "bilstm-crf"] as const)("%s: training with it gives the same losses and weights as torch's AdamW + clip_grad_norm_", async (head) => {
    const ours = await trainAndSave(head);
    process.env.NER_CPU_ADAMW = "0";
    const torchs = await trainAndSave(head);
    expect(ours.losses.length).toBeGreaterThan(20);
    expect(ours.losses).toEqual(torchs.losses);
    expect(ours.weights.equals(torchs.weights)).toBe(true);
  });

  it("an epoch reports its padding share and where its time went", async () => {
    const { padFraction, phases } = await trainAndSave("softmax");
    expect(padFraction).toBeGreaterThanOrEqual(0);
    expect(padFraction).toBeLessThan(0.5); // length-grouped batches of 8 from lengths 2..15
    for (const key of ["batch", "forward", "backward", "optimizer"]) expect(phases[key]).toBeGreaterThan(0);
  });
});

describe("length grouping", () => {
  it("pads least with length-sorted pools or HF's megabatches, most in random order", async () => {
    const pools = await trainAndSave("softmax", true);
    const megabatch = await trainAndSave("softmax", "hf");
    const random = await trainAndSave("softmax", false);
    expect(pools.padFraction).toBeLessThan(random.padFraction / 2);
    expect(megabatch.padFraction).toBeLessThan(random.padFraction / 2);
    expect(random.padFraction).toBeGreaterThan(0.2); // lengths 2..15 in batches of 8
    // Different orders, different runs.
    expect(pools.losses).not.toEqual(megabatch.losses);
  });
});

describe("runtimeInfo", () => {
  it("names the BLAS and keeps the threads that run at once within the cores", () => {
    const info = runtimeInfo();
    expect(info.cores).toBeGreaterThanOrEqual(1);
    expect(info.blas.provider).toMatch(/^(openblas-(openmp|pthread|serial)|mkl|blis|atlas|reference|unknown)$/);
    expect(info.threadSource.length).toBeGreaterThan(0);
    if (!process.env.OMP_NUM_THREADS && !process.env.OPENBLAS_NUM_THREADS) {
      // OpenMP OpenBLAS runs on ATen's own threads; a pthread BLAS gets the cores while ATen keeps one.
      const atOnce = info.blas.provider === "openblas-openmp" ? info.threads : Math.max(info.threads, info.blas.threads);
      expect(atOnce).toBeLessThanOrEqual(info.cores);
      if (info.blas.provider === "openblas-pthread") expect(info.threads).toBe(1);
    }
    expect(info.blas.provider === "reference").toBe(Boolean(info.warning));
  });
});

/**
 * Training faults: bad datasets and options, a loss that turns non-finite, cancellation, callbacks
 * that throw, concurrent calls. None may crash the process; each gives a clear Error (or a clean
 * stop), and the engine keeps working afterwards. Tiny models from scratch keep this fast.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Engine, type TrainProgress } from "../src/app/engine.js";
import { NerEngineError } from "../src/errors.js";
import type { EngineConfigInput } from "../src/app/config.js";
import { parseSafetensors, serializeSafetensors } from "../src/model/safetensors.js";
import { native, type NativeDataset, type NativeTagger, type NativeTrainOptions } from "../src/model/native.js";
import { demoCorpus } from "../src/app/demo.js";
import type { Corpus } from "../src/data/types.js";
import { trainWordPiece, writeTokenizerFiles } from "../src/text/vocab.js";

const tmpRoot = mkdtempSync(path.join(tmpdir(), "ner-faults-"));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

let train: Corpus;
let tokenizerDir: string;

beforeAll(() => {
  // 120 sentences of the embedded synthetic demo corpus (CoNLL-style, IOB2): no ../shared needed.
  const all = demoCorpus().train;
  train = { source: all.source, sentences: all.sentences.slice(0, 120) };
  tokenizerDir = path.join(tmpRoot, "vocab");
  writeTokenizerFiles(tokenizerDir, trainWordPiece(train.sentences.map((s) => s.tokens), { vocabSize: 400, lowercase: false }), { lowercase: false });
});

type TrainingOverrides = Partial<NonNullable<EngineConfigInput["training"]>>;

/** A 1-layer, 32-wide BERT from scratch: about 15 steps an epoch on the 120 sentences. */
function tinyConfig(training: TrainingOverrides = {}, head: Partial<NonNullable<EngineConfigInput["head"]>> = {}): EngineConfigInput {
  return {
    tokenizer: tokenizerDir,
    device: "cpu",
    scratch: { hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 64, maxPositionEmbeddings: 64 },
    head: { kind: "softmax", ...head },
    data: { maxLength: 48 },
    training: { epochs: 1, batchSize: 8, learningRate: 1e-3, progressEvery: 1, seed: 3, ...training },
  };
}

function taggerOf(engine: Engine): NativeTagger {
  return engine.model!.native;
}

async function rejection(work: Promise<unknown>): Promise<Error> {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "the call should have rejected").toBeInstanceOf(Error);
  return err as Error;
}

async function nonFiniteWeights(engine: Engine): Promise<string[]> {
  const bad: string[] = [];
  for (const w of await taggerOf(engine).exportWeights()) if (w.data.some((v) => !Number.isFinite(v))) bad.push(w.name);
  return bad;
}

/** The engine still predicts (the process and the tagger are alive and usable). */
async function expectWorks(engine: Engine): Promise<void> {
  const [result] = await engine.predictWords([["EU", "rejects", "German", "call"]]);
  expect(result.words.map((w) => w.word)).toEqual(["EU", "rejects", "German", "call"]);
  for (const w of result.words) expect(engine.labels).toContain(w.tag);
}

const bert = { vocabSize: 50, hiddenSize: 16, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 32, maxPositionEmbeddings: 16, typeVocabSize: 2, layerNormEps: 1e-12, hiddenDropoutProb: 0.1, attentionProbsDropoutProb: 0.1, hiddenAct: "gelu" };
const options: NativeTrainOptions = {
  epochs: 1, batchSize: 2, gradientAccumulation: 1, seed: 1, progressEvery: 1, maxSteps: -1,
  encoderLearningRate: 1e-3, headLearningRate: 1e-3, weightDecay: 0, warmupRatio: 0, warmupSteps: 0, maxGradNorm: 1,
  adamBeta1: 0.9, adamBeta2: 0.999, adamEpsilon: 1e-8, bf16: false, tf32: false,
};
/** Two windows: [CLS] 5 6 [SEP] and [CLS] 7 [SEP] (hand-made, for the native API). */
const good = (): Required<Omit<NativeDataset, "tokenTypeIds">> => ({
  inputIds: Int32Array.of(2, 5, 6, 3, 2, 7, 3),
  windowOffsets: Int32Array.of(0, 4, 7),
  wordStarts: Int32Array.of(0, 1, 1, 0, 0, 1, 0),
  labels: Int32Array.of(-100, 1, 2, -100, -100, 0, -100),
});

/** A tiny native tagger (vocab 50, 3 labels) for hand-made datasets. */
function nativeTagger(): NativeTagger {
  return new (native().NativeTagger)({ encoder: bert, head: { kind: "softmax", numLabels: 3, classifierDropout: 0.1, lstmHiddenSize: 8, lstmLayers: 1, attentionHeads: 2, constrainTraining: false }, device: "cpu", seed: 1 });
}

describe("training data the engine cannot train on", () => {
  it("an empty training corpus", async () => {
    const engine = new Engine(tinyConfig());
    const err = await rejection(engine.fit({ train: { source: "empty.txt", sentences: [] } }));
    expect(err.message).toBe("empty.txt: the training set has no sentences");
  });

  it("a corpus whose sentences are all empty", async () => {
    const engine = new Engine(tinyConfig());
    const err = await rejection(engine.fit({ train: { source: "blank.txt", sentences: [{ tokens: [], tags: [] }, { tokens: [], tags: [] }] } }));
    expect(err.message).toBe("blank.txt: the training set has only empty sentences");
  });
});

describe("the native trainer validates hand-made datasets", () => {
  let tagger: NativeTagger;

  beforeAll(() => {
    tagger = nativeTagger();
  });

  function setupError(data: Partial<NativeDataset>, opts: Partial<NativeTrainOptions> = {}): string {
    let caught: unknown;
    try {
      tagger.setupTraining({ ...good(), ...data } as NativeDataset, { ...options, ...opts });
    } catch (e) {
      caught = e;
    }
    expect(caught, "setupTraining should have thrown").toBeInstanceOf(Error);
    return (caught as Error).message;
  }

  it("accepts the good dataset and trains on it", async () => {
    expect(tagger.setupTraining(good(), options)).toEqual({ stepsPerEpoch: 1, totalSteps: 1 });
    const summary = await tagger.trainEpoch(0);
    expect(summary.steps).toBe(1);
    expect(Number.isFinite(summary.meanLoss)).toBe(true);
  });

  it("an empty dataset", () => {
    const empty = { inputIds: new Int32Array(0), windowOffsets: Int32Array.of(0), wordStarts: new Int32Array(0), labels: new Int32Array(0) };
    expect(setupError(empty)).toBe("dataset: it holds no sentences (empty dataset)");
    expect(setupError({ ...empty, windowOffsets: new Int32Array(0) })).toBe("dataset: it holds no sentences (empty dataset)");
  });

  it("label ids out of range", () => {
    expect(setupError({ labels: Int32Array.of(-100, 1, 3, -100, -100, 0, -100) })).toBe("dataset: label id 3 at position 2 is out of range [0, 3)");
    expect(setupError({ labels: Int32Array.of(-100, 1, 2, -100, -100, -7, -100) })).toBe("dataset: label id -7 at position 5 is out of range [0, 3)");
    expect(setupError({ labels: undefined })).toBe("dataset: training data needs labels");
  });

  it("mismatched array lengths", () => {
    expect(setupError({ wordStarts: Int32Array.of(0, 1, 1, 0, 0, 1) })).toBe("dataset: wordStarts has 6 entries, inputIds 7");
    expect(setupError({ windowOffsets: Int32Array.of(0, 4, 6) })).toBe("dataset: windowOffsets ends at 6 but inputIds has 7 entries");
    expect(setupError({ windowOffsets: Int32Array.of(0, 4, 9) })).toBe("dataset: windowOffsets ends at 9 but inputIds has 7 entries");
    expect(setupError({ windowOffsets: Int32Array.of(1, 4, 7) })).toBe("dataset: windowOffsets must start at 0");
    expect(setupError({ windowOffsets: Int32Array.of(0, 5, 4, 7) })).toBe("dataset: window 1 is empty or its offsets decrease");
    expect(setupError({ labels: Int32Array.of(-100, 1, 2) })).toBe("dataset: labels has 3 entries, inputIds 7");
    expect(setupError({ tokenTypeIds: Int32Array.of(0, 0) })).toBe("dataset: tokenTypeIds has 2 entries, inputIds 7");
    expect(setupError({ inputIds: [2, 5, 6, 3, 2, 7, 3] as unknown as Int32Array })).toMatch(/dataset\.inputIds must be an? Int32Array/);
  });

  it("a window longer than max_position_embeddings", () => {
    const n = 17;
    const long = {
      inputIds: Int32Array.from({ length: n }, () => 5),
      windowOffsets: Int32Array.of(0, n),
      wordStarts: Int32Array.from({ length: n }, () => 1),
      labels: Int32Array.from({ length: n }, () => 0),
    };
    expect(setupError(long)).toBe("dataset: window 0 has 17 tokens, more than max_position_embeddings (16)");
  });

  it("ids outside the vocabulary", () => {
    expect(setupError({ inputIds: Int32Array.of(2, 5, 50, 3, 2, 7, 3) })).toBe("dataset: input id 50 at position 2 is outside the vocabulary (size 50)");
    expect(setupError({ inputIds: Int32Array.of(2, 5, 6, 3, 2, -1, 3) })).toBe("dataset: input id -1 at position 5 is outside the vocabulary (size 50)");
    expect(setupError({ tokenTypeIds: Int32Array.of(0, 0, 2, 0, 0, 0, 0) })).toMatch(/dataset: token type id 2 at position 2 is out of range/);
  });

  it("bad training options", () => {
    // batchSize 0 used to be divided by before the trainer checked it: SIGFPE, the whole process gone.
    expect(setupError({}, { batchSize: 0 })).toBe("batchSize must be at least 1");
    expect(setupError({}, { batchSize: -3 })).toBe("batchSize must be at least 1");
    expect(setupError({}, { gradientAccumulation: 0 })).toBe("gradientAccumulation must be at least 1");
    expect(setupError({}, { epochs: 0 })).toBe("epochs must be at least 1");
  });

  it("predict validates its dataset the same way, and the tagger still works after all of it", async () => {
    expect(() => tagger.predict({ ...good(), windowOffsets: Int32Array.of(0, 4, 8) }, { batchSize: 4, bf16: false })).toThrow("dataset: windowOffsets ends at 8 but inputIds has 7 entries");
    expect(() => tagger.predict(good(), { batchSize: 0, bf16: false })).toThrow("predict: batchSize must be at least 1");
    const out = await tagger.predict({ ...good(), labels: undefined }, { batchSize: 4, bf16: false });
    expect(out.tags.length).toBe(3); // one per word start: 2 in the first window, 1 in the second
    expect(out.scores.length).toBe(3);
    tagger.setupTraining(good(), options);
    expect((await tagger.trainEpoch(0)).steps).toBe(1);
  });
});

describe("a loss that turns non-finite", () => {
  it("NaN encoder weights: fit rejects naming the step", async () => {
    const engine = new Engine(tinyConfig({ maxSteps: 1 }));
    await engine.fit({ train });
    const tagger = taggerOf(engine);
    const nan = new Float32Array(32).fill(Number.NaN);
    await tagger.loadWeights(new Uint8Array(nan.buffer), [{ name: "bert.embeddings.LayerNorm.weight", dtype: "F32", shape: [32], byteOffset: 0, byteLength: nan.byteLength }], []);
    const err = await rejection(engine.fit({ train }));
    expect(err.message).toMatch(/loss became non-finite at step 1 \(epoch 1\)/);
    // Good weights back in: training works again.
    const ones = new Float32Array(32).fill(1);
    await tagger.loadWeights(new Uint8Array(ones.buffer), [{ name: "bert.embeddings.LayerNorm.weight", dtype: "F32", shape: [32], byteOffset: 0, byteLength: ones.byteLength }], []);
    const history = await engine.fit({ train });
    expect(Number.isFinite(history.epochs[0].trainLoss)).toBe(true);
    await expectWorks(engine);
  });

  it("a huge learning rate: fit rejects naming the step, and the weights stay finite", async () => {
    const engine = new Engine(tinyConfig({ learningRate: 1e30 }));
    const err = await rejection(engine.fit({ train }));
    expect(err.message).toMatch(/non-finite (at|in|after) (optimizer )?step \d+/);
    expect(await nonFiniteWeights(engine)).toEqual([]);
    await expectWorks(engine);
  });

  it("a step whose update overflows the weights is undone (weights of the last good step)", async () => {
    // lr * weightDecay >> 1: the decoupled decay multiplies the head's weights by (1 - lr*wd) each
    // step. Every loss stays finite, but by step 2 the gradients overflow; before the trainer checked
    // them, that update wrote inf into classifier.weight and only the next step's loss failed.
    const engine = new Engine(tinyConfig({ weightDecay: 0.5, epochs: 3 }, { learningRate: 1e35 }));
    const losses: number[] = [];
    const err = await rejection(engine.fit({ train }, { onProgress: (p) => losses.push(p.loss) }));
    expect(err.message).toMatch(/non-finite (at|in|after) (optimizer )?step \d+/);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(await nonFiniteWeights(engine)).toEqual([]);
    await expectWorks(engine);
  });

  it("an update that overflows a weight is undone: the weights are exactly those before the step", async () => {
    // Gradients and loss stay finite; only the decoupled weight decay (x (1 - lr*wd) = x -1e9) pushes
    // one huge embedding row of a token the data never uses ([MASK] = 4) past float32.
    const tagger = nativeTagger();
    const weights = await tagger.exportWeights();
    const embeddings = weights.find((w) => w.name === "bert.embeddings.word_embeddings.weight")!;
    embeddings.data.fill(1e30, 4 * 16, 5 * 16);
    await tagger.loadWeights(new Uint8Array(embeddings.data.buffer, embeddings.data.byteOffset, embeddings.data.byteLength), [{ name: embeddings.name, dtype: "F32", shape: embeddings.shape, byteOffset: 0, byteLength: embeddings.data.byteLength }], []);
    const before = await tagger.exportWeights();
    tagger.setupTraining(good(), { ...options, weightDecay: 1e12 });
    const err = await rejection(tagger.trainEpoch(0));
    expect(err.message).toBe("weights became non-finite in the update at step 1 (epoch 1) (learning rate or weight decay too large?); they are restored to those of the step before");
    const after = await tagger.exportWeights();
    expect(after.map((w) => w.name)).toEqual(before.map((w) => w.name));
    after.forEach((w, i) => expect(w.data, w.name).toEqual(before[i].data));
    // The tagger trains again once set up afresh.
    tagger.setupTraining(good(), options);
    expect(Number.isFinite((await tagger.trainEpoch(0)).meanLoss)).toBe(true);
  });

  it("a learning rate beyond float32 gives a clear error, not a LibTorch one", async () => {
    const engine = new Engine(tinyConfig({ learningRate: 1e39 }));
    const err = await rejection(engine.fit({ train }));
    expect(err.message).toMatch(/learning ?rate/i);
    expect(await nonFiniteWeights(engine)).toEqual([]);
    await expectWorks(engine);
  });
});

describe("stopping and concurrency", () => {
  it("engine.cancel() from the progress callback stops fit cleanly", async () => {
    const engine = new Engine(tinyConfig({ epochs: 3 }));
    const seen: TrainProgress[] = [];
    const history = await engine.fit(
      { train },
      {
        onProgress: (p) => {
          seen.push(p);
          if (p.step === 2) engine.cancel();
        },
      },
    );
    expect(history.cancelled).toBe(true);
    // The interrupted epoch is not recorded as done: a resume point (with an output folder) continues it.
    expect(history.epochs).toHaveLength(0);
    expect(seen.at(-1)!.step).toBeLessThan(seen[0].totalSteps);
    await expectWorks(engine);
  });

  it("a cancel that arrives as an epoch ends still stops fit (it is not lost between epochs)", async () => {
    const engine = new Engine(tinyConfig({ epochs: 3 }));
    let stepsPerEpoch = 0;
    const history = await engine.fit(
      { train },
      {
        onProgress: (p) => {
          stepsPerEpoch = p.totalSteps / 3;
          if (p.step === stepsPerEpoch) engine.cancel(); // the epoch's last step: the worker has no batch left to check it
        },
      },
    );
    expect(stepsPerEpoch).toBeGreaterThan(2);
    expect(history.cancelled).toBe(true);
    expect(history.epochs).toHaveLength(1);
    // ... and from onEpoch.
    const again = new Engine(tinyConfig({ epochs: 3 }));
    const h2 = await again.fit({ train }, { onEpoch: () => again.cancel() });
    expect(h2.cancelled).toBe(true);
    expect(h2.epochs).toHaveLength(1);
    // A cancel() while nothing runs does not cancel the next fit.
    const h3 = await again.fit({ train: { ...train, sentences: train.sentences.slice(0, 16) } });
    expect(h3.cancelled).toBe(false);
    expect(h3.epochs).toHaveLength(3);
    await expectWorks(again);
  });

  it("bf16 or tf32 on the CPU is a clear error, not silently ignored", async () => {
    for (const flag of ["bf16", "tf32"] as const) {
      const engine = new Engine(tinyConfig({ [flag]: true }));
      const err = await rejection(engine.fit({ train }));
      expect(err.message).toMatch(/bf16 and tf32 take effect on CUDA only/);
    }
    const auto = new Engine({ ...tinyConfig({ bf16: true }), device: "auto" });
    if (auto.device === "cpu") expect((await rejection(auto.fit({ train }))).message).toMatch(/CUDA only/);
  });

  it("calling fit twice concurrently: the second call rejects as busy, the first completes", async () => {
    const engine = new Engine(tinyConfig());
    const first = engine.fit({ train });
    const second = engine.fit({ train });
    const err = await rejection(second);
    expect(err.message).toMatch(/busy/);
    const history = await first;
    expect(history.epochs).toHaveLength(1);
    expect(history.cancelled).toBe(false);
    await expectWorks(engine);
  });

  it("a fit started between the epochs of another is refused too (it would swap the running trainer)", async () => {
    // Between epochs the native worker is idle, so only the engine can refuse: at every boundary,
    // the last one included (the running fit still has weights to restore and a test set to score).
    const engine = new Engine(tinyConfig({ epochs: 3 }));
    const inner: Promise<Error>[] = [];
    const history = await engine.fit({ train }, { onEpoch: () => void inner.push(rejection(engine.fit({ train }))) });
    expect(inner).toHaveLength(3);
    for (const err of await Promise.all(inner)) expect(err.message).toMatch(/busy/);
    expect(history.epochs.map((e) => e.epoch)).toEqual([0, 1, 2]);
    expect(history.cancelled).toBe(false);
    // The refused call leaves the running fit's state alone: a cancel() asked for just before it still stops the run.
    const cancelling = new Engine(tinyConfig({ epochs: 3 }));
    let refused: Promise<Error> | undefined;
    const h2 = await cancelling.fit({ train }, {
      onEpoch: (e) => {
        if (e.epoch !== 0) return;
        cancelling.cancel();
        refused = rejection(cancelling.fit({ train }));
      },
    });
    expect((await refused!).message).toMatch(/busy/);
    expect(h2.cancelled).toBe(true);
    expect(h2.epochs.map((e) => e.epoch)).toEqual([0]);
    // Once the running fit is over, fit is accepted again.
    const h3 = await cancelling.fit({ train: { ...train, sentences: train.sentences.slice(0, 16) } });
    expect(h3.cancelled).toBe(false);
    await expectWorks(engine);
  });

  it("predict while an epoch runs rejects as busy", async () => {
    const engine = new Engine(tinyConfig());
    let during: Promise<Error> | undefined;
    await engine.fit({ train }, { onProgress: (p) => { if (p.step === 1) during = rejection(engine.predictWords([["EU", "rejects"]])); } });
    expect((await during!).message).toMatch(/busy/);
    await expectWorks(engine);
  });

  it("trainer state calls while an epoch runs are refused as busy; a corrupt state is an Error", async () => {
    const engine = new Engine(tinyConfig({ maxSteps: 2 }));
    await engine.fit({ train });
    const tagger = taggerOf(engine);
    const saved = tagger.saveTrainerState();
    expect(saved.tensors.length).toBeGreaterThan(0);
    expect(saved.state.step).toBe(2);
    const parsed = parseSafetensors(serializeSafetensors(saved.tensors), "state");
    const bytes = serializeSafetensors(saved.tensors);
    const entries = [...parseSafetensors(bytes, "state").tensors.values()].map((v) => ({ name: v.name, dtype: v.dtype, shape: v.shape, byteOffset: v.data.byteOffset, byteLength: v.data.byteLength }));
    expect(parsed.tensors.size).toBe(saved.tensors.length);
    const running = tagger.trainEpoch(0);
    // Loading optimizer state under the running worker would race with it.
    expect(() => tagger.loadTrainerState(bytes, entries, saved.state)).toThrow(/busy/);
    expect(() => tagger.saveTrainerState()).toThrow(/busy/);
    expect(() => tagger.setupTraining({ inputIds: Int32Array.of(2, 3), windowOffsets: Int32Array.of(0, 2), wordStarts: Int32Array.of(0, 0), labels: Int32Array.of(-100, -100) }, {} as NativeTrainOptions)).toThrow(/busy/);
    await running;
    expect(() => tagger.loadTrainerState(Uint8Array.of(1, 2, 3, 4), [], saved.state)).toThrow(/incomplete/);
    expect(() => tagger.loadTrainerState(bytes, entries, { ...saved.state, dataFingerprint: "0000000000000000" })).toThrow(/other training data/);
    expect(() => tagger.loadTrainerState(bytes, entries, { ...saved.state, step: 1e9 })).toThrow(/step 1000000000 is outside/);
    tagger.loadTrainerState(bytes, entries, saved.state);
    await expectWorks(engine);
  });

  it("a progress callback that throws stops training and fit rejects with its message", async () => {
    const engine = new Engine(tinyConfig({ epochs: 2 }));
    let calls = 0;
    let totalSteps = 0;
    const err = await rejection(
      engine.fit(
        { train },
        {
          onProgress: (p) => {
            calls++;
            totalSteps = p.totalSteps;
            if (p.step === 3) throw new Error("dashboard went away at step 3");
          },
        },
      ),
    );
    expect(err.message).toContain("dashboard went away at step 3");
    expect(err.message).toContain("progress callback");
    // Stopped at the next step the worker reaches, not at the end of both epochs (how many steps that is
    // depends on how fast the main thread takes the progress queue on a busy machine).
    expect(calls).toBeLessThan(totalSteps);
    await expectWorks(engine);
    // And a fresh fit on the same engine works.
    const history = await engine.fit({ train: { ...train, sentences: train.sentences.slice(0, 16) } });
    expect(history.epochs).toHaveLength(2);
  });
});

describe("broken JSON files the engine reads", () => {
  it("a resume point whose trainer_state.json is not JSON, or not a resume record, and a model whose config.json is not JSON", async () => {
    const output = path.join(tmpRoot, "broken-json");
    await new Engine({ ...tinyConfig({ maxSteps: 2 }), output }).fit({ train });
    const last = path.join(output, "last");
    const statePath = path.join(last, "trainer_state.json");
    const resumeError = async (): Promise<Error> => rejection(new Engine(tinyConfig({ resumeFrom: last })).fit({ train }));
    writeFileSync(statePath, '{"epoch": 0,');
    let err = await resumeError();
    expect(err).toBeInstanceOf(NerEngineError);
    expect(err.message).toContain(statePath);
    expect(err.message).toMatch(/not valid JSON/);
    // Valid JSON of the wrong shape is refused too, naming the file (not a TypeError later on).
    for (const wrong of [null, [], { epoch: 0, best: null }]) {
      writeFileSync(statePath, JSON.stringify(wrong));
      err = await resumeError();
      expect(err).toBeInstanceOf(NerEngineError);
      expect(err.message).toContain(statePath);
    }
    // The engine reads config.json itself when given a model folder.
    const configPath = path.join(last, "config.json");
    writeFileSync(configPath, '{"hidden_size": 32,');
    let thrown: unknown;
    try {
      new Engine({ ...tinyConfig(), model: last });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(NerEngineError);
    expect((thrown as Error).message).toContain(configPath);
    expect((thrown as Error).message).toMatch(/not valid JSON/);
  });
});

describe("allocation failures", () => {
  it("an impossible allocation (LibTorch's CPU out-of-memory path) becomes a JS Error", () => {
    // 2^40 x 1024 floats = 4 PiB: malloc refuses at once, so this is safe to run. Real OOM is not
    // provoked; describe() in native/binding/napi_util.h turns c10 errors (and "out of memory"
    // ones) into Error messages the same way.
    const { NativeTagger } = native();
    expect(
      () =>
        new NativeTagger({
          encoder: { vocabSize: 2 ** 40, hiddenSize: 1024, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 8, maxPositionEmbeddings: 8 } as never,
          head: { kind: "softmax", numLabels: 3 } as never,
          device: "cpu",
          seed: 1,
        }),
    ).toThrow(/can.t allocate memory|out of memory/);
  });
});

/**
 * Bad input never crashes the process: every broken checkpoint and every malformed forward batch
 * gives a clear Error naming what is wrong and where, and the engine keeps working afterwards.
 * Broken checkpoints are built in temp folders from the shared fixture's files (never in shared/).
 */
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Engine, type ForwardInput } from "../src/app/engine.js";
import { readCheckpoint, writeCheckpoint } from "../src/model/checkpoint.js";
import { native, type NativeTagger } from "../src/model/native.js";
import { toFloat32, type TensorToWrite } from "../src/model/safetensors.js";
import { SHARED, TINY_BERT } from "./helpers/checkpoints.js";
import { FIXTURE_SETS, fixtureTitle, has, needs } from "./helpers/shared.js";

const TINY_BERT_BIN = path.join(SHARED, "fixtures/tiny-bert-ner-bin");
// The forward and native tests below use ../shared's tiny-bert-ner (hidden 64, vocab 30522, 128 positions): on a clone they skip.
const haveFixture = has(TINY_BERT, TINY_BERT_BIN);
const needsFixture = needs(TINY_BERT, TINY_BERT_BIN);
const tmpRoot = mkdtempSync(path.join(tmpdir(), "ner-errors-"));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

/** A writable copy of a fixture folder (the shared files are read-only and must stay untouched). */
function copyFixture(from = TINY_BERT): string {
  const dir = mkdtempSync(path.join(tmpRoot, "ckpt-"));
  for (const name of readdirSync(from)) {
    copyFileSync(path.join(from, name), path.join(dir, name));
    chmodSync(path.join(dir, name), 0o644);
  }
  return dir;
}

/** The safetensors header (parsed) and data buffer of a file. */
function readRaw(file: string): { header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; data: Buffer } {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString("utf8")), data: bytes.subarray(8 + n) };
}

function writeRaw(file: string, header: object, data: Buffer): void {
  let json = Buffer.from(JSON.stringify(header), "utf8");
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  rmSync(file, { force: true });
  writeFileSync(file, Buffer.concat([len, json, data]));
}

/** The fixture's tensors (F32), for rewriting into a broken checkpoint. */
function fixtureTensors(from = TINY_BERT): TensorToWrite[] {
  const ck = readCheckpoint(from);
  return [...ck.weights].map(([name, view]) => ({ name, dtype: "F32" as const, shape: view.shape, data: Float32Array.from(toFloat32(view)) }));
}

function rewriteTensors(dir: string, edit: (tensors: TensorToWrite[]) => TensorToWrite[], from = TINY_BERT): void {
  const config = JSON.parse(readFileSync(path.join(from, "config.json"), "utf8"));
  rmSync(path.join(dir, "model.safetensors"));
  writeCheckpoint(dir, { config, tensors: edit(fixtureTensors(from)) });
}

async function loadError(dir: string): Promise<Error> {
  const err = await Engine.load(dir, { device: "cpu" }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `Engine.load(${dir}) should have failed`).toBeInstanceOf(Error);
  return err as Error;
}

const VALID: ForwardInput = {
  inputIds: [
    [101, 7592, 2088, 102],
    [101, 2023, 102, 0],
  ],
  attentionMask: [
    [1, 1, 1, 1],
    [1, 1, 1, 0],
  ],
};

// On the committed small fixture (test/fixtures) and on ../shared's.
for (const set of FIXTURE_SETS) {
  const TINY = path.join(set.dir, "tiny-bert-ner");
  const BIN = path.join(set.dir, "tiny-bert-ner-bin");
  const FORWARD = path.join(set.dir, "bert-forward.json");
  describe.skipIf(!has(TINY, BIN, FORWARD))(fixtureTitle("Engine.load refuses broken checkpoints with a clear error", set, "tiny-bert-ner", "tiny-bert-ner-bin", "bert-forward.json"), () => {
    let H: number, K: number;
    beforeAll(() => {
      const config = JSON.parse(readFileSync(path.join(TINY, "config.json"), "utf8"));
      H = config.hidden_size;
      K = Object.keys(config.id2label).length;
    });

    it("missing config.json", async () => {
      const dir = copyFixture(TINY);
      rmSync(path.join(dir, "config.json"));
      const err = await loadError(dir);
      expect(err.message).toContain("config.json is missing");
      expect(err.message).toContain(path.join(dir, "config.json"));
    });

    it("config.json that is not JSON", async () => {
      const dir = copyFixture(TINY);
      writeFileSync(path.join(dir, "config.json"), '{"hidden_size": 64,');
      const err = await loadError(dir);
      expect(err.message).toMatch(/config\.json is not valid JSON/);
      expect(err.message).toContain(path.join(dir, "config.json"));
    });

    it("config.json with a bad field", async () => {
      const dir = copyFixture(TINY);
      const config = JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8"));
      writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...config, num_hidden_layers: -2 }));
      let err = await loadError(dir);
      expect(err.message).toContain('field "num_hidden_layers" must be a positive integer, got -2');
      expect(err.message).toContain(path.join(dir, "config.json"));
      writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...config, hidden_act: "mish" }));
      err = await loadError(dir);
      expect(err.message).toMatch(/field "hidden_act" must be one of .*got "mish"/);
      writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...config, num_attention_heads: 5 }));
      err = await loadError(dir);
      expect(err.message).toContain('field "hidden_size" must be divisible by num_attention_heads (5)');
    });

    it("truncated model.safetensors", async () => {
      const dir = copyFixture(TINY);
      const file = path.join(dir, "model.safetensors");
      const bytes = readFileSync(file);
      rmSync(file);
      writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
      let err = await loadError(dir);
      expect(err.message).toMatch(/run beyond the \d+-byte data buffer \(truncated file/);
      expect(err.message).toContain(file);
      // Cut inside the header too, and below the 8-byte length prefix.
      rmSync(file);
      writeFileSync(file, bytes.subarray(0, 100));
      err = await loadError(dir);
      expect(err.message).toMatch(/truncated safetensors file: header length \d+ runs beyond the file \(100 bytes\)/);
      rmSync(file);
      writeFileSync(file, bytes.subarray(0, 5));
      err = await loadError(dir);
      expect(err.message).toContain("truncated safetensors file: 5 bytes");
    });

    it("a header whose offsets point outside the file", async () => {
      const dir = copyFixture(TINY);
      const file = path.join(dir, "model.safetensors");
      const { header, data } = readRaw(file);
      const name = "bert.encoder.layer.0.attention.self.query.bias";
      const size = header[name].data_offsets[1] - header[name].data_offsets[0];
      header[name].data_offsets = [data.length + 1000, data.length + 1000 + size];
      writeRaw(file, header, data);
      const err = await loadError(dir);
      expect(err.message).toContain(`tensor "${name}"`);
      expect(err.message).toMatch(/data_offsets \[\d+, \d+\] run beyond the \d+-byte data buffer/);
    });

    it("overlapping offsets", async () => {
      const dir = copyFixture(TINY);
      const file = path.join(dir, "model.safetensors");
      const { header, data } = readRaw(file);
      // Two [hidden] tensors: make the second alias the first's bytes.
      const a = "bert.encoder.layer.0.attention.self.key.bias";
      const b = "bert.encoder.layer.0.attention.self.query.bias";
      header[b].data_offsets = [...header[a].data_offsets];
      writeRaw(file, header, data);
      const err = await loadError(dir);
      expect(err.message).toMatch(/data_offsets \[\d+, \d+\] overlap tensor "bert\.encoder\.layer\.0\.attention\.self\.(key|query)\.bias"/);
      expect(err.message).toContain(file);
    });

    it("a tensor with the wrong shape", async () => {
      const dir = copyFixture(TINY);
      const name = "bert.encoder.layer.0.attention.self.query.weight";
      // As many values as [H, H] (for H = 64: [32, 128]).
      rewriteTensors(dir, (ts) => ts.map((t) => (t.name === name ? { ...t, shape: [H / 2, 2 * H] } : t)), TINY);
      const err = await loadError(dir);
      expect(err.message).toContain(`tensor "${name}" has shape [${H / 2}, ${2 * H}], expected [${H}, ${H}]`);
      expect(err.message).toContain(dir);
    });

    it("a classifier for another label set (saved model: the head is required)", async () => {
      const dir = copyFixture(TINY);
      rewriteTensors(dir, (ts) =>
        ts.map((t) =>
          t.name === "classifier.weight" ? { ...t, shape: [4, H], data: t.data.slice(0, 4 * H) } : t.name === "classifier.bias" ? { ...t, shape: [4], data: t.data.slice(0, 4) } : t,
        ),
        TINY,
      );
      const err = await loadError(dir);
      expect(err.message).toContain(`tensor "classifier.weight" has shape [4, ${H}], expected [${K}, ${H}]`);
    });

    it("a tensor with the wrong dtype (I64)", async () => {
      const dir = copyFixture(TINY);
      const name = "bert.embeddings.LayerNorm.bias";
      rewriteTensors(dir, (ts) => ts.map((t) => (t.name === name ? { name, dtype: "I64" as const, shape: t.shape, data: new BigInt64Array(t.shape[0]) } : t)), TINY);
      const err = await loadError(dir);
      expect(err.message).toMatch(new RegExp(`tensor "${name.replaceAll(".", "\\.")}" has dtype (Long|I64|int64), expected a floating-point type`));
      expect(err.message).toContain(dir);
    });

    it("a missing tensor", async () => {
      const dir = copyFixture(TINY);
      const name = "bert.encoder.layer.1.output.dense.weight";
      rewriteTensors(dir, (ts) => ts.filter((t) => t.name !== name), TINY);
      const err = await loadError(dir);
      expect(err.message).toContain(`checkpoint is missing tensor "${name}"`);
      expect(err.message).toContain(dir);
    });

    it("no weights file at all", async () => {
      const dir = copyFixture(TINY);
      rmSync(path.join(dir, "model.safetensors"));
      const err = await loadError(dir);
      expect(err.message).toContain("no weights: expected model.safetensors");
    });

    it("pytorch_model.bin only: refuses the pickle and says how to convert", async () => {
      // Read-only use of the fixture folder: the refusal happens before anything is written.
      const err = await loadError(BIN);
      expect(err.message).toContain(BIN);
      expect(err.message).toContain("pytorch_model.bin");
      expect(err.message).toMatch(/pickle/);
      expect(err.message).toMatch(/arbitrary code/);
      expect(err.message).toContain("save_pretrained");
      expect(err.message).toContain("safe_serialization=True");
      expect(err.message).toContain("model.safetensors");
    });

    it("a good checkpoint still loads after all that (nothing global was left broken)", async () => {
      const engine = await Engine.load(copyFixture(TINY), { device: "cpu" });
      const f = JSON.parse(readFileSync(FORWARD, "utf8"));
      const out = await engine.forward({ inputIds: f.input_ids, attentionMask: f.attention_mask, tokenTypeIds: f.token_type_ids });
      expect(out.logits!.dims).toEqual(f.shape_logits);
    });
  });
}

describe.skipIf(!haveFixture)(`engine.forward rejects malformed batches and keeps working (${needsFixture})`, () => {
  let engine: Engine;
  let baseline: Float32Array;

  beforeAll(async () => {
    engine = await Engine.load(TINY_BERT, { device: "cpu" });
    baseline = (await engine.forward(VALID)).logits!.data;
  });

  /** Runs a bad forward, checks its message, then proves the engine still gives the same answers. */
  async function rejects(input: unknown, ...patterns: (string | RegExp)[]): Promise<void> {
    const err = await engine.forward(input as ForwardInput).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, "forward should have rejected").toBeInstanceOf(Error);
    for (const p of patterns) {
      if (typeof p === "string") expect((err as Error).message).toContain(p);
      else expect((err as Error).message).toMatch(p);
    }
    const again = await engine.forward(VALID);
    expect(again.logits!.data).toEqual(baseline);
  }

  it("input ids outside the vocabulary", async () => {
    await rejects({ inputIds: [[101, 40000, 102]], attentionMask: [[1, 1, 1]] }, "inputIds[0][1] = 40000 is outside the vocabulary [0, 30522)");
    await rejects({ inputIds: [[101, 7592, 102], [101, -1, 102]], attentionMask: [[1, 1, 1], [1, 1, 1]] }, "inputIds[1][1] = -1 is outside the vocabulary");
    await rejects({ inputIds: [[101, 30522, 102]], attentionMask: [[1, 1, 1]] }, "inputIds[0][1] = 30522 is outside the vocabulary");
  });

  it("ids that do not fit 32 bits are not wrapped into valid ids", async () => {
    // 2^32 + 5 would silently become id 5 if it were stored into an Int32Array unchecked.
    await rejects({ inputIds: [[101, 2 ** 32 + 5, 102]], attentionMask: [[1, 1, 1]] }, "inputIds[0][1] = 4294967301 is outside the vocabulary");
    await rejects({ inputIds: [[101, 7592, 102]], attentionMask: [[1, 2 ** 32 + 1, 1]] }, "attentionMask[0][1] = 4294967297 is not 0 or 1");
    await rejects({ inputIds: [[101, 7592, 102]], attentionMask: [[1, 2, 1]] }, "attentionMask[0][1] = 2 is not 0 or 1");
  });

  it("token type ids outside type_vocab_size", async () => {
    await rejects({ inputIds: [[101, 7592, 102]], attentionMask: [[1, 1, 1]], tokenTypeIds: [[0, 2, 0]] }, "tokenTypeIds[0][1] = 2 is outside [0, type_vocab_size=2)");
  });

  it("label ids outside the label set", async () => {
    await rejects({ inputIds: [[101, 7592, 102]], attentionMask: [[1, 1, 1]], labels: [[-100, 9, -100]] }, "labels[0][1] = 9 is neither -100 nor a label id in [0, 9)");
    await rejects({ inputIds: [[101, 7592, 102]], attentionMask: [[1, 1, 1]], labels: [[-100, -3, -100]] }, "labels[0][1] = -3 is neither");
  });

  it("a ragged batch", async () => {
    await rejects({ inputIds: [[101, 7592, 2088, 102], [101, 102]], attentionMask: [[1, 1, 1, 1], [1, 1]] }, "inputIds", "ragged", "row 1 has 2 entries, expected 4");
  });

  it("an empty batch ([] and [[]])", async () => {
    await rejects({ inputIds: [], attentionMask: [] }, "inputIds", "empty");
    await rejects({ inputIds: [[]], attentionMask: [[]] }, "inputIds[0] is empty");
    await rejects({ inputIds: undefined, attentionMask: [] }, "inputIds");
  });

  it("an attentionMask whose shape differs from inputIds", async () => {
    await rejects({ inputIds: VALID.inputIds, attentionMask: [[1, 1, 1, 1]] }, "attentionMask has 1 rows, expected 2 (the shape of inputIds)");
    await rejects({ inputIds: VALID.inputIds, attentionMask: [[1, 1, 1], [1, 1, 1]] }, "attentionMask does not have the shape of inputIds [2, 4]: row 0 has 3 entries, expected 4");
    await rejects({ inputIds: VALID.inputIds, attentionMask: [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]] }, "attentionMask", "row 0 has 5 entries, expected 4");
  });

  it("sequences longer than max_position_embeddings", async () => {
    const ids = [101, ...Array.from({ length: 127 }, () => 7592), 102];
    expect(ids).toHaveLength(129);
    await rejects({ inputIds: [ids], attentionMask: [ids.map(() => 1)] }, "sequence length 129 exceeds max_position_embeddings (128)");
    // 128 is the limit and works.
    const ok = await engine.forward({ inputIds: [ids.slice(1)], attentionMask: [ids.slice(1).map(() => 1)] });
    expect(ok.lastHiddenState.dims).toEqual([1, 128, 64]);
  });

  it("non-integer ids", async () => {
    await rejects({ inputIds: [[101, 7592.5, 102]], attentionMask: [[1, 1, 1]] }, "inputIds[0][1] is not an integer");
    await rejects({ inputIds: [[101, Number.NaN, 102]], attentionMask: [[1, 1, 1]] }, "inputIds[0][1] is not an integer");
    await rejects({ inputIds: [[101, "7592", 102]], attentionMask: [[1, 1, 1]] }, 'inputIds[0][1] is not an integer (got "7592")');
    await rejects({ inputIds: [[101, 7592, 102]], attentionMask: [[1, 0.5, 1]] }, "attentionMask[0][1] is not an integer (got 0.5)");
  });
});

describe.skipIf(!haveFixture)(`errors raised inside native code (main thread and worker thread) leave the process alive (${needsFixture})`, () => {
  let engine: Engine;
  let tagger: NativeTagger;

  beforeAll(async () => {
    engine = await Engine.load(TINY_BERT, { device: "cpu" });
    tagger = engine.model!.native;
  });

  it("a bad dataset passed to the native predict", async () => {
    const bad = { inputIds: Int32Array.of(101, 40000, 102), windowOffsets: Int32Array.of(0, 3), wordStarts: Int32Array.of(0, 1, 0) };
    // Validation runs in C++ before the work is queued; it must surface as a JS Error, not abort().
    const err = await Promise.resolve()
      .then(() => tagger.predict(bad, { batchSize: 8, bf16: false }))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain("dataset: input id 40000 at position 1 is outside the vocabulary (size 30522)");
    const wrongType = await Promise.resolve()
      .then(() => tagger.predict({ inputIds: [101, 102] as unknown as Int32Array, windowOffsets: Int32Array.of(0, 2), wordStarts: Int32Array.of(0, 0) }, { batchSize: 8, bf16: false }))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect((wrongType as Error).message).toContain("dataset.inputIds must be a");
    const [result] = await engine.predictWords([["Peter", "lives", "in", "Berlin"]]);
    expect(result.words).toHaveLength(4);
  });

  it("an error thrown by LibTorch on the worker thread rejects the promise", async () => {
    // The dtype/shape checks of loadWeights run in the AsyncWorker's Execute, off the JS thread.
    const bytes = new Uint8Array(64 * 8);
    const err = await tagger
      .loadWeights(bytes, [{ name: "bert.embeddings.LayerNorm.bias", dtype: "I64", shape: [64], byteOffset: 0, byteLength: 64 * 8 }], [])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/tensor "bert\.embeddings\.LayerNorm\.bias" has dtype \w+, expected a floating-point type/);
    const shape = await tagger
      .loadWeights(new Uint8Array(4 * 4), [{ name: "bert.embeddings.LayerNorm.bias", dtype: "F32", shape: [4], byteOffset: 0, byteLength: 16 }], [])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect((shape as Error).message).toContain('tensor "bert.embeddings.LayerNorm.bias" has shape [4], expected [64]');
    // A byte range outside the buffer is refused before any pointer is formed, including offsets
    // that would wrap around size_t back into the buffer (2^64 - 2048 + 4096 = 2048).
    const entry = (byteOffset: number, byteLength: number, shape = [byteLength / 4]) => [{ name: "bert.embeddings.LayerNorm.bias", dtype: "F32", shape, byteOffset, byteLength }];
    expect(() => tagger.loadWeights(new Uint8Array(16), entry(0, 32), [])).toThrow('tensor "bert.embeddings.LayerNorm.bias": byte range lies outside the 16-byte buffer');
    expect(() => tagger.loadWeights(new Uint8Array(4096), entry(2 ** 64 - 2048, 4096), [])).toThrow("byte range lies outside the 4096-byte buffer");
    expect(() => tagger.loadWeights(new Uint8Array(4096), entry(-256, 256), [])).toThrow("byte range lies outside");
    expect(() => tagger.loadWeights(new Uint8Array(4096), entry(0, 256, [32]), [])).toThrow("byte range does not match its shape and dtype");
    // The engine's weights were not touched by the failed loads.
    const out = await engine.forward(VALID);
    const fresh = await Engine.load(TINY_BERT, { device: "cpu" });
    expect(out.logits!.data).toEqual((await fresh.forward(VALID)).logits!.data);
  });

  it("the native forward checks ids itself (a backstop for callers that skip Engine.forward)", async () => {
    const batch = (ids: number[], labels?: number[]) => ({
      inputIds: Int32Array.from(ids),
      attentionMask: Int32Array.from(ids.map(() => 1)),
      labels: labels && Int32Array.from(labels),
      batchSize: 1,
      length: ids.length,
    });
    expect(() => tagger.forward(batch([101, 40000, 102]))).toThrow("input id outside the vocabulary (size 30522)");
    expect(() => tagger.forward(batch(Array.from({ length: 129 }, () => 101)))).toThrow("sequence length 129 exceeds the 128 positions the encoder has");
    expect(() => tagger.forward({ ...batch([101, 102]), length: 3 })).toThrow('"inputIds" has 2 values, expected 3');
    // A label id past the classifier is caught by LibTorch on the worker thread: a rejection, not an abort.
    const err = await tagger.forward(batch([101, 7592, 102], [-100, 9, -100])).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/Target 9 is out of bounds/);
    expect((await engine.forward(VALID)).logits!.dims).toEqual([2, 4, 9]);
  });

  it("bad constructor options throw a JS Error", () => {
    const { NativeTagger } = native();
    expect(() => new NativeTagger({ encoder: { vocabSize: 0 } as never, head: { kind: "softmax", numLabels: 3 } as never, device: "cpu", seed: 1 })).toThrow(/must be a positive integer|missing number/);
    expect(
      () =>
        new NativeTagger({
          encoder: { vocabSize: 10, hiddenSize: 8, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 16, maxPositionEmbeddings: 8 } as never,
          head: { kind: "softmax", numLabels: 3 } as never,
          device: "tpu",
          seed: 1,
        }),
    ).toThrow(/device must be "auto", "cpu" or "cuda", got "tpu"/);
  });
});

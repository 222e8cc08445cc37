import { afterAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { NerEngineError } from "../src/errors.js";
import { normaliseTensorName, readCheckpoint, writeCheckpoint } from "../src/model/checkpoint.js";
import { labelList, parseEncoderConfig as parseBertConfig, type EncoderConfig as BertConfig } from "../src/model/encoder-config.js";
import { tensorShapes } from "./helpers/checkpoints.js";
import { serializeSafetensors, toFloat32, type TensorToWrite, type TensorView } from "../src/model/safetensors.js";
import { FIXTURE_SETS, fixtureTitle, has, LOCAL_FIXTURES } from "./helpers/shared.js";

// The committed one (test/fixtures, made by scripts/make-fixtures.py): HF's own pytorch_model.bin.
const TINY_BIN = path.join(LOCAL_FIXTURES, "tiny-bert-ner-bin");

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "ner-checkpoint-test-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
const freshDir = (tag: string) => fs.mkdtempSync(path.join(tmpRoot, `${tag}-`));

function expectError(fn: () => unknown, ...fragments: string[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(NerEngineError);
  for (const f of fragments) expect((caught as Error).message).toContain(f);
}

/** A very small valid config: hidden 8, 1 layer, 2 heads, 3 labels. */
const SMALL_CONFIG = {
  model_type: "bert",
  vocab_size: 11,
  hidden_size: 8,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 16,
  max_position_embeddings: 12,
  type_vocab_size: 2,
  id2label: { "0": "O", "1": "B-PER", "2": "I-PER" },
  label2id: { O: 0, "B-PER": 1, "I-PER": 2 },
};

/** Deterministic F32 tensors for every name the encoder + classifier need. */
const SMALL_SHAPE = { vocabSize: 11, hidden: 8, layers: 1, heads: 2, intermediate: 16, maxPositions: 12, typeVocab: 2, eps: 1e-12, act: "gelu" as const, labels: ["O", "B-PER", "I-PER"] };

/** Every tensor name of the small encoder (+ classifier when `withClassifier`). */
function expectedNames(withClassifier: boolean): string[] {
  return tensorShapes({ ...SMALL_SHAPE, labels: withClassifier ? SMALL_SHAPE.labels : undefined }).map(([n]) => n).sort();
}

function smallTensors(rename: (n: string) => string = (n) => n): TensorToWrite[] {
  return tensorShapes(SMALL_SHAPE).map(([name, shape], k) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: n }, (_, i) => ((i * 7 + k * 13) % 17) / 17 - 0.5);
    return { name: rename(name), dtype: "F32" as const, shape, data };
  });
}

function writeSmall(dir: string, tensors = smallTensors(), config: object = SMALL_CONFIG): void {
  writeCheckpoint(dir, { config, tensors });
}

// On the committed small fixture (test/fixtures) and on ../shared's (hidden 64, vocab 30522).
for (const set of FIXTURE_SETS) {
  const TINY = path.join(set.dir, "tiny-bert-ner");
  describe.skipIf(!has(TINY))(fixtureTitle("readCheckpoint on the tiny-bert-ner fixture", set, "tiny-bert-ner"), () => {
    it("loads config, weights and tokenizer presence, and every tensor of the encoder and classifier with its shape", () => {
      const ckpt = readCheckpoint(TINY);
      const hf = JSON.parse(fs.readFileSync(path.join(TINY, "config.json"), "utf8"));
      expect(ckpt.config.hidden_size).toBe(hf.hidden_size);
      expect(ckpt.config.num_hidden_layers).toBe(2);
      expect(ckpt.config.hidden_act).toBe("gelu");
      expect(labelList(ckpt.config)).toEqual(["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]);
      expect(ckpt.config.label2id["B-MISC"]).toBe(7);
      expect(ckpt.hasTokenizer).toBe(true);
      expect(ckpt.fileBytes).toHaveLength(1);
      expect(ckpt.weights.get("bert.embeddings.word_embeddings.weight")?.data.buffer).toBe(ckpt.fileBytes[0].buffer);
      const shape = {
        vocabSize: hf.vocab_size, hidden: hf.hidden_size, layers: hf.num_hidden_layers, heads: hf.num_attention_heads, intermediate: hf.intermediate_size,
        maxPositions: hf.max_position_embeddings, typeVocab: hf.type_vocab_size, eps: 1e-12, act: "gelu" as const, labels: labelList(ckpt.config),
      };
      for (const [name, dims] of tensorShapes(shape)) expect(ckpt.weights.get(name)?.shape, name).toEqual(dims);
      expect(ckpt.weights.size).toBe(tensorShapes(shape).length);
    });

    it("survives a write/read round trip bitwise", () => {
      const src = readCheckpoint(TINY);
      const dir = freshDir("roundtrip");
      // ../shared's has a tokenizer.json; the committed one only vocab.txt (no fast tokenizers in the HF kit).
      const tokenizerFile = ["tokenizer.json", "vocab.txt"].find((f) => fs.existsSync(path.join(TINY, f)))!;
      writeCheckpoint(dir, {
        config: src.config.hf,
        tensors: [...src.weights.values()],
        tokenizerFiles: { [tokenizerFile]: fs.readFileSync(path.join(TINY, tokenizerFile)) },
      });
      const back = readCheckpoint(dir);
      expect(back.config).toEqual(src.config);
      expect(back.hasTokenizer).toBe(true);
      expect(back.weights.size).toBe(src.weights.size);
      for (const [name, t] of src.weights) {
        expect(Buffer.from(back.weights.get(name)!.data).equals(Buffer.from(t.data))).toBe(true);
      }
    });
  });
}

describe("parseBertConfig", () => {
  it("fills HF BertConfig defaults", () => {
    const c = parseBertConfig({}, "config.json");
    expect(c).toMatchObject({
      vocab_size: 30522, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12,
      intermediate_size: 3072, hidden_act: "gelu", hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1,
      max_position_embeddings: 512, type_vocab_size: 2, layer_norm_eps: 1e-12, pad_token_id: 0,
      classifier_dropout: null, family: "bert", sinusoidal_positions: false, hasLabelNames: false,
    });
    expect(c.id2label).toEqual({ "0": "LABEL_0", "1": "LABEL_1" });
    expect(c.label2id).toEqual({ LABEL_0: 0, LABEL_1: 1 });
  });

  it("derives label2id and keeps the engine's own section", () => {
    const c = parseBertConfig({ id2label: { "1": "B", "0": "O" }, ner_engine: { head: "crf" } }, "config.json");
    expect(c.label2id).toEqual({ O: 0, B: 1 });
    expect(c.ner_engine).toEqual({ head: "crf" });
  });

  it.each([
    [{ hidden_size: 10, num_attention_heads: 4 }, "hidden_size", "divisible"],
    [{ vocab_size: -3 }, "vocab_size", "positive integer"],
    [{ num_hidden_layers: 1.5 }, "num_hidden_layers", "positive integer"],
    [{ hidden_act: "gelu_fast" }, "hidden_act", "gelu_pytorch_tanh"],
    [{ position_embedding_type: "relative_key" }, "position_embedding_type", "absolute"],
    [{ layer_norm_eps: 0 }, "layer_norm_eps", "> 0"],
    [{ hidden_dropout_prob: 1.2 }, "hidden_dropout_prob", "[0, 1)"],
    [{ pad_token_id: 40000 }, "pad_token_id", "vocab_size"],
    [{ id2label: { "0": "O", "2": "B" } }, "id2label", "ids 0..1"],
    [{ id2label: { "0": "O", "1": "O" } }, "id2label", "twice"],
    [{ id2label: { "0": "O", "1": "B" }, label2id: { O: 1, B: 0 } }, "label2id", "inverse"],
    [{ model_type: "gpt2" }, "model_type", '"bert", "distilbert", "roberta", "xlm-roberta"'],
    [{ ner_engine: 3 }, "ner_engine", "object"],
  ])("rejects %j naming the field", (json, field, why) => {
    expectError(() => parseBertConfig(json, "/x/config.json"), "/x/config.json", field, why);
  });
});

describe("readCheckpoint errors", () => {
  it("missing directory", () => {
    expectError(() => readCheckpoint(path.join(tmpRoot, "nope")), "nope", "does not exist");
  });

  it("missing config.json", () => {
    const dir = freshDir("noconfig");
    fs.writeFileSync(path.join(dir, "model.safetensors"), serializeSafetensors(smallTensors()));
    expectError(() => readCheckpoint(dir), "config.json", "missing");
  });

  it("broken config.json", () => {
    const dir = freshDir("badjson");
    writeSmall(dir);
    fs.writeFileSync(path.join(dir, "config.json"), '{"hidden_size": 8,');
    expectError(() => readCheckpoint(dir), path.join(dir, "config.json"), "not valid JSON");
  });

  it("bad field value in config.json", () => {
    const dir = freshDir("badfield");
    writeSmall(dir);
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...SMALL_CONFIG, num_attention_heads: 3 }));
    expectError(() => readCheckpoint(dir), "config.json", "hidden_size", "num_attention_heads");
  });

  it("pytorch_model.bin only: refuses and explains the conversion", () => {
    expectError(
      () => readCheckpoint(TINY_BIN),
      "pytorch_model.bin",
      "pickle",
      "from transformers import AutoModelForTokenClassification",
      "from_pretrained(",
      "save_pretrained(",
      "safe_serialization=True",
    );
  });

  it("no weights file at all", () => {
    const dir = freshDir("noweights");
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(SMALL_CONFIG));
    expectError(() => readCheckpoint(dir), "no weights", "model.safetensors");
  });

  it("corrupt model.safetensors is reported with its path", () => {
    const dir = freshDir("corrupt");
    writeSmall(dir);
    const file = path.join(dir, "model.safetensors");
    fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 100));
    expectError(() => readCheckpoint(dir), file);
  });
});

describe("tensor name normalisation", () => {
  it("prefixes bare BertModel names and renames gamma/beta", () => {
    expect(normaliseTensorName("embeddings.word_embeddings.weight")).toBe("bert.embeddings.word_embeddings.weight");
    expect(normaliseTensorName("encoder.layer.0.output.LayerNorm.gamma")).toBe("bert.encoder.layer.0.output.LayerNorm.weight");
    expect(normaliseTensorName("bert.embeddings.LayerNorm.beta")).toBe("bert.embeddings.LayerNorm.bias");
    expect(normaliseTensorName("classifier.weight")).toBe("classifier.weight");
    expect(normaliseTensorName("cls.predictions.bias")).toBe("cls.predictions.bias");
  });

  it("reads a bare BertModel checkpoint with old LayerNorm names under the token-classification layout", () => {
    const dir = freshDir("bare");
    const bare = smallTensors((n) =>
      n.replace(/^bert\./, "").replace(/LayerNorm\.weight$/, "LayerNorm.gamma").replace(/LayerNorm\.bias$/, "LayerNorm.beta"),
    ).filter((t) => !t.name.startsWith("classifier."));
    bare.push({ name: "pooler.dense.bias", dtype: "F32", shape: [8], data: new Float32Array(8) });
    writeSmall(dir, bare);
    const ckpt = readCheckpoint(dir);
    expect(ckpt.weights.has("bert.embeddings.word_embeddings.weight")).toBe(true);
    expect(ckpt.weights.has("bert.encoder.layer.0.output.LayerNorm.weight")).toBe(true);
    expect(ckpt.weights.has("bert.pooler.dense.bias")).toBe(true);
    expect(ckpt.weights.get("bert.embeddings.LayerNorm.bias")!.name).toBe("bert.embeddings.LayerNorm.bias");
    expect(ckpt.hasTokenizer).toBe(false);
    expect([...ckpt.weights.keys()].filter((n) => !n.startsWith("bert.pooler.")).sort()).toEqual(expectedNames(false));
  });

  it("refuses two stored names that normalise to the same tensor", () => {
    const dir = freshDir("dup");
    const t = smallTensors();
    const ln = t.find((x) => x.name === "bert.embeddings.LayerNorm.weight")!;
    writeSmall(dir, [...t, { ...ln, name: "embeddings.LayerNorm.gamma" }]);
    expectError(() => readCheckpoint(dir), "bert.embeddings.LayerNorm.weight", "already provides");
  });
});

describe("sharded checkpoints", () => {
  it("merges shards listed in model.safetensors.index.json", () => {
    const dir = freshDir("sharded");
    const tensors = smallTensors();
    const half = Math.floor(tensors.length / 2);
    const shards = [tensors.slice(0, half), tensors.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((s, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      fs.writeFileSync(path.join(dir, file), serializeSafetensors(s));
      for (const t of s) weightMap[t.name] = file;
    });
    fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(SMALL_CONFIG));
    const ckpt = readCheckpoint(dir);
    expect(ckpt.fileBytes).toHaveLength(2);
    expect(ckpt.weights.size).toBe(tensors.length);
    expect([...ckpt.weights.keys()].sort()).toEqual(expectedNames(true));
    expect(Array.from(toFloat32(ckpt.weights.get("classifier.weight")!))).toEqual(
      Array.from(tensors.find((t) => t.name === "classifier.weight")!.data as Float32Array),
    );

    // A tensor the index promises but the shard lacks is an error, as is a missing shard.
    weightMap["bert.extra"] = "model-00001-of-00002.safetensors";
    fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: weightMap }));
    expectError(() => readCheckpoint(dir), '"bert.extra"', "not in this shard");
    weightMap["bert.extra"] = "model-00003-of-00003.safetensors";
    fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: weightMap }));
    expectError(() => readCheckpoint(dir), "model-00003-of-00003.safetensors", "missing");
  });
});

describe("writeCheckpoint", () => {
  it("creates the folder, replaces an existing checkpoint and leaves no temp files", () => {
    const dir = path.join(freshDir("write"), "nested", "ckpt");
    writeCheckpoint(dir, { config: SMALL_CONFIG, tensors: smallTensors(), tokenizerFiles: { "vocab.txt": "[PAD]\n[UNK]\n" } });
    const first = readCheckpoint(dir);
    expect(first.hasTokenizer).toBe(true);

    const changed = smallTensors().map((t) =>
      t.name === "classifier.bias" ? { ...t, data: new Float32Array([9, 8, 7]) } : t,
    );
    const newConfig = { ...SMALL_CONFIG, ner_engine: { head: "softmax" } };
    writeCheckpoint(dir, { config: newConfig, tensors: changed, tokenizerFiles: { "vocab.txt": "[PAD]\n" } });
    const second = readCheckpoint(dir);
    expect(Array.from(toFloat32(second.weights.get("classifier.bias")!))).toEqual([9, 8, 7]);
    expect((second.config as BertConfig).ner_engine).toEqual({ head: "softmax" });
    expect(fs.readFileSync(path.join(dir, "vocab.txt"), "utf8")).toBe("[PAD]\n");
    expect(fs.readdirSync(dir).sort()).toEqual(["config.json", "model.safetensors", "vocab.txt"]);
  });

  it("refuses an invalid config or unsafe tokenizer file name before touching the folder", () => {
    const dir = freshDir("refuse");
    writeSmall(dir);
    const before = fs.readFileSync(path.join(dir, "model.safetensors"));
    expectError(() => writeCheckpoint(dir, { config: { ...SMALL_CONFIG, hidden_act: "mish" }, tensors: [] }), "hidden_act");
    expectError(
      () => writeCheckpoint(dir, { config: SMALL_CONFIG, tensors: [], tokenizerFiles: { "../evil.txt": "x" } }),
      "plain file name",
    );
    expect(fs.readFileSync(path.join(dir, "model.safetensors")).equals(before)).toBe(true);
    expect(fs.readdirSync(dir).sort()).toEqual(["config.json", "model.safetensors"]);
  });
});

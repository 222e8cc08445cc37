/**
 * Hostile and broken inputs (issue 17): files that are not regular files or are far too big, configs
 * whose shapes disagree with the weights, deep nesting, duplicate and prototype keys, non-finite weights,
 * wrong argument shapes. Each must be a NerEngineError naming what and where, fast, without allocating
 * much, and never quoting the file's contents. Everything is built in temp folders.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NerEngineError } from "../src/errors.js";
import { Engine } from "../src/app/engine.js";
import { loadConfigFile, parseConfig, type EngineConfigInput } from "../src/app/config.js";
import { readResumePoint } from "../src/app/resume-point.js";
import { readRunFile, resumeStep, trimLogToStep } from "../src/app/run-control.js";
import { readConll, readJson as readJsonCorpus } from "../src/data/readers.js";
import type { Corpus } from "../src/data/types.js";
import { describeFsError, LIMITS, readBoundedFile } from "../src/model/bounded-read.js";
import { readCheckpoint } from "../src/model/checkpoint.js";
import { MAX_WEIGHT_BYTES } from "../src/model/checkpoint-checks.js";
import { labelList, parseEncoderConfig } from "../src/model/encoder-config.js";
import { parseSafetensors, serializeSafetensors } from "../src/model/safetensors.js";
import { MAX_JSON_DEPTH, parseJsonText } from "../src/model/safe-json.js";
import { loadTokenizer } from "../src/text/tokenizer.js";
import { randomTensors, SHARED, writeSmallCheckpoint, type SmallBertShape } from "./helpers/checkpoints.js";

// Checkpoints are built with writeSmallCheckpoint (no shared data needed); only DistilBERT needs shared/.
const TINY_DISTILBERT = path.join(SHARED, "fixtures/tiny-distilbert-ner");
const isRoot = process.getuid?.() === 0;

const tmpRoot = mkdtempSync(path.join(tmpdir(), "ner-hostile-"));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

const SECRET = "SECRET-TOKEN-7f3a9c";
const secretFile = path.join(tmpRoot, "secret.txt");
writeFileSync(secretFile, `${SECRET} do not print me\n`);

function tmp(name: string): string {
  return mkdtempSync(path.join(tmpRoot, `${name}-`));
}

function mkfifo(file: string): void {
  execFileSync("mkfifo", [file]);
}

/** The NerEngineError `fn` throws; checks it never quotes the secret. */
function errorOf(fn: () => unknown): NerEngineError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, "should have thrown").toBeInstanceOf(NerEngineError);
  expect((thrown as Error).message).not.toContain(SECRET);
  return thrown as NerEngineError;
}

async function rejectionOf(p: Promise<unknown>): Promise<NerEngineError> {
  const thrown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(thrown, "should have rejected").toBeInstanceOf(NerEngineError);
  expect((thrown as Error).message).not.toContain(SECRET);
  return thrown as NerEngineError;
}

/** A writable copy of a fixture folder. */
function copyFixture(from: string): string {
  const dir = tmp("ckpt");
  for (const name of readdirSync(from)) {
    copyFileSync(path.join(from, name), path.join(dir, name));
    chmodSync(path.join(dir, name), 0o644);
  }
  return dir;
}

function editConfig(dir: string, edit: (c: Record<string, unknown>) => Record<string, unknown>): void {
  const file = path.join(dir, "config.json");
  writeFileSync(file, JSON.stringify(edit(JSON.parse(readFileSync(file, "utf8")))));
}

const SMALL: SmallBertShape = { vocabSize: 1000, hidden: 16, layers: 2, heads: 2, intermediate: 32, maxPositions: 64, typeVocab: 2, eps: 1e-12, act: "gelu", labels: ["O", "B-X", "I-X"] };

/** A fresh small BERT checkpoint (2 layers, 16 wide, labels O/B-X/I-X, a vocab.txt) in a temp folder. */
function smallCheckpoint(): string {
  return writeSmallCheckpoint(SMALL, { dir: tmp("ckpt") });
}

let tokenizerDir: string | undefined;
/** A folder with a vocab.txt, for models trained from scratch. */
function tokenizerFolder(): string {
  tokenizerDir ??= smallCheckpoint();
  return tokenizerDir;
}

const tinyCorpus = (tags: string[][] = [["O", "B-X", "I-X"], ["O", "O", "B-X"]]): Corpus => ({
  source: "inline",
  sentences: tags.map((t, i) => ({ tokens: t.map((_, j) => ["the", "new", "york", "city", "is", "big"][(i + j) % 6]), tags: t })),
});

function scratchConfig(extra: Partial<EngineConfigInput> = {}): EngineConfigInput {
  return {
    tokenizer: tokenizerFolder(),
    device: "cpu",
    scratch: { hiddenSize: 16, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 32, maxPositionEmbeddings: 64 },
    data: { maxLength: 32 },
    training: { epochs: 1, batchSize: 2, maxSteps: 1 },
    ...extra,
  };
}

// ---------------------------------------------------------------------------------------------------

describe("1. unbounded inputs: only regular files, and never more than a stated size", () => {
  it("corpus files: a FIFO and /dev/zero (also behind a symlink) are refused without blocking or reading", () => {
    const dir = tmp("corpus");
    const fifo = path.join(dir, "train.fifo");
    mkfifo(fifo);
    expect(errorOf(() => readConll(fifo)).message).toMatch(/train\.fifo: file is a FIFO \(named pipe\), not a regular file/);
    expect(errorOf(() => readConll("/dev/zero")).message).toMatch(/\/dev\/zero: file is a character device, not a regular file/);
    const link = path.join(dir, "zero.conll");
    symlinkSync("/dev/zero", link);
    expect(errorOf(() => readJsonCorpus(link)).message).toContain("is a symlink to a character device");
    expect(errorOf(() => readConll(dir)).message).toContain("is a directory, expected a file");
  });

  it("a file larger than its limit is refused from its size, before it is read (sparse files: nothing is written)", () => {
    const dir = tmp("big");
    const big = path.join(dir, "config.json");
    writeFileSync(big, "{}");
    truncateSync(big, LIMITS.smallJson + 1);
    expect(errorOf(() => loadConfigFile(big)).message).toContain(`is ${LIMITS.smallJson + 1} bytes, more than the ${LIMITS.smallJson} bytes accepted`);
    const tok = path.join(dir, "tokenizer.json");
    writeFileSync(tok, "{}");
    truncateSync(tok, LIMITS.tokenizer + 1);
    const err = errorOf(() => loadTokenizer(dir));
    expect(err.message).toContain("tokenizer.json");
    expect(err.message).toContain(`more than the ${LIMITS.tokenizer} bytes`);
  });

  it("a /proc file (size 0, contents on read) is refused without quoting it", () => {
    const file = path.join(tmp("proc"), "c.json");
    symlinkSync("/proc/self/environ", file);
    const err = errorOf(() => loadConfigFile(file));
    expect(err.message).toContain("changed size while being read");
    expect(err.message).not.toMatch(/PATH=|HOME=/);
  });

  it("engine config file, run.json, trainer_state.json and log.jsonl as FIFOs", () => {
    const out = tmp("run");
    mkdirSync(path.join(out, "last"));
    for (const f of ["config.json", "run.json", "last/trainer_state.json", "log.jsonl"]) mkfifo(path.join(out, f));
    expect(errorOf(() => loadConfigFile(path.join(out, "config.json"))).message).toContain("config file is a FIFO");
    expect(errorOf(() => readRunFile(out)).message).toContain("run.json is a FIFO");
    expect(errorOf(() => resumeStep(out)).message).toContain("trainer_state.json is a FIFO");
    expect(errorOf(() => readResumePoint(path.join(out, "last"))).message).toContain("trainer_state.json is a FIFO");
    expect(errorOf(() => trimLogToStep(path.join(out, "log.jsonl"), 0)).message).toContain("log.jsonl is a FIFO");
  });

  it("a secret behind a symlink is never quoted: JSON syntax errors give line and column only", () => {
    const dir = tmp("secret");
    const cfg = path.join(dir, "engine.json");
    symlinkSync(secretFile, cfg);
    expect(errorOf(() => loadConfigFile(cfg)).message).toMatch(/engine\.json: invalid JSON: unexpected character at line 1, column 1$/);
    const corpus = path.join(dir, "train.json");
    writeFileSync(corpus, `[{"tokens": ["a"], "tags": ["O"]},\n {"tokens": ${SECRET}}]`);
    expect(errorOf(() => readJsonCorpus(corpus)).message).toMatch(/train\.json:2: invalid JSON: unexpected character \(column 13\)/);
    const lines = path.join(dir, "train.jsonl");
    writeFileSync(lines, `{"tokens": ["a"], "tags": ["O"]}\n{"tokens": "${SECRET}\n`);
    expect(errorOf(() => readJsonCorpus(lines)).message).toMatch(/train\.jsonl:2: invalid JSON: unterminated string \(column 12\)/);
    // The scanner agrees with JSON.parse on what is JSON.
    for (const ok of ['{"a": [1, -2.5e+3, true, null, "\\u00e9\\n"]}', "[]", '"x"', " 0 "]) expect(parseJsonText(ok, "t")).toEqual(JSON.parse(ok));
    for (const bad of ["{", '{"a" 1}', "[1,]", "01", "1.", '"\\x"', "{} {}", "tru", "", '{"a":1,}']) {
      expect(() => JSON.parse(bad)).toThrow();
      expect(errorOf(() => parseJsonText(bad, "t")).message).toMatch(/^t: not valid JSON: .* at line 1, column \d+$/);
    }
  });

  it(`checkpoint files: model.safetensors as /dev/zero or a FIFO, config.json as a secret or a folder`, () => {
    const dir = smallCheckpoint();
    const weights = path.join(dir, "model.safetensors");
    rmSync(weights);
    symlinkSync("/dev/zero", weights);
    const before = process.memoryUsage().rss;
    expect(errorOf(() => readCheckpoint(dir)).message).toContain(`${weights}: safetensors file is a symlink to a character device, not a regular file`);
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * 1024 * 1024);
    rmSync(weights);
    mkfifo(weights);
    expect(errorOf(() => readCheckpoint(dir)).message).toContain("safetensors file is a FIFO");
    const config = path.join(dir, "config.json");
    rmSync(config);
    symlinkSync(secretFile, config);
    expect(errorOf(() => readCheckpoint(dir)).message).toMatch(/config\.json is not valid JSON: unexpected character at line 1, column 1$/);
    rmSync(config);
    mkdirSync(config);
    expect(errorOf(() => readCheckpoint(dir)).message).toContain(`${config}: config.json is a directory, expected a file`);
  });

  it(`tokenizer files: vocab.txt as /dev/zero, special_tokens_map.json as a FIFO`, () => {
    const dir = tmp("tok");
    symlinkSync("/dev/zero", path.join(dir, "vocab.txt"));
    expect(errorOf(() => loadTokenizer(dir)).message).toContain("vocab.txt is a symlink to a character device");
    rmSync(path.join(dir, "vocab.txt"));
    copyFileSync(path.join(tokenizerFolder(), "vocab.txt"), path.join(dir, "vocab.txt"));
    mkfifo(path.join(dir, "special_tokens_map.json"));
    expect(errorOf(() => loadTokenizer(dir)).message).toContain("special_tokens_map.json is a FIFO");
  });

  it("safetensors: the header length is checked against the file's size before the rest is read", () => {
    const file = path.join(tmp("st"), "model.safetensors");
    const bytes = Buffer.alloc(64);
    bytes.writeBigUInt64LE(2n ** 40n, 0);
    writeFileSync(file, bytes);
    expect(errorOf(() => readBoundedFile(file, { maxBytes: 10, what: "x" })).message).toContain("more than the 10 bytes");
    expect(errorOf(() => readCheckpointWeights(file)).message).toMatch(/header length \d+ exceeds 100000000 bytes/);
  });
});

function readCheckpointWeights(file: string): unknown {
  const dir = path.dirname(file);
  writeFileSync(path.join(dir, "config.json"), JSON.stringify({ model_type: "bert" }));
  return readCheckpoint(dir);
}

describe(`2. config.json's shapes against the tensor table, before anything is allocated`, () => {
  it("num_hidden_layers: 100000 with 2 layers of weights: refused at once, naming the field and the missing layer", async () => {
    const dir = smallCheckpoint();
    editConfig(dir, (c) => ({ ...c, num_hidden_layers: 100000 }));
    const started = Date.now();
    const before = process.memoryUsage().rss;
    const err = await rejectionOf(Engine.load(dir, { device: "cpu" }));
    expect(err.message).toContain(`${path.join(dir, "config.json")}: field "num_hidden_layers" is 100000, but the checkpoint has no weights for layer 2 (it has layers 0-1)`);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * 1024 * 1024);
    // Fine-tuning from it is refused the same way.
    const fit = await rejectionOf(new Engine({ ...scratchConfig(), model: dir, tokenizer: undefined }).fit({ train: tinyCorpus() }));
    expect(fit.message).toContain('field "num_hidden_layers" is 100000');
  });

  it("num_hidden_layers: 1 with 2 layers of weights: refused, naming the tensors that would be dropped", async () => {
    const dir = smallCheckpoint();
    editConfig(dir, (c) => ({ ...c, num_hidden_layers: 1 }));
    const err = await rejectionOf(Engine.load(dir, { device: "cpu" }));
    expect(err.message).toMatch(/field "num_hidden_layers" is 1, but the checkpoint has weights for 1 more layer\(s\) \(1\), which would be silently dropped: 16 tensors, "bert\.encoder\.layer\.1\./);
  });

  it.skipIf(!existsSync(TINY_DISTILBERT))(`DistilBERT: n_layers against transformer.layer.N (needs ${TINY_DISTILBERT})`, async () => {
    const dir = copyFixture(TINY_DISTILBERT);
    const layers = (JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")) as { n_layers: number }).n_layers;
    editConfig(dir, (c) => ({ ...c, n_layers: layers + 5 }));
    expect((await rejectionOf(Engine.load(dir, { device: "cpu" }))).message).toContain(`field "n_layers" is ${layers + 5}, but the checkpoint has no weights for layer ${layers}`);
    editConfig(dir, (c) => ({ ...c, n_layers: layers - 1 }));
    expect((await rejectionOf(Engine.load(dir, { device: "cpu" }))).message).toContain(`"distilbert.transformer.layer.${layers - 1}.`);
  });

  it("a huge vocab_size / hidden_size: the config and the tensor table disagree, said before allocating", async () => {
    const dir = smallCheckpoint();
    editConfig(dir, (c) => ({ ...c, vocab_size: 1_000_000_000 }));
    const err = await rejectionOf(Engine.load(dir, { device: "cpu" }));
    expect(err.message).toContain('tensor "bert.embeddings.word_embeddings.weight" has shape [1000, 16], expected [1000000000, 16] (config.json\'s "vocab_size" x "hidden_size")');
    expect(err.message).not.toContain("allocate");
    // With ignoreMismatchedSizes the shapes may differ, but the size limit still holds.
    const fit = await rejectionOf(new Engine({ ...scratchConfig(), model: dir, tokenizer: undefined, ignoreMismatchedSizes: true }).fit({ train: tinyCorpus() }));
    expect(fit.message).toMatch(/config\.json: the model this config describes has 1\.6\d+e\+10 parameters \(59\.6 GiB of fp32 weights\), more than the 16\.0 GiB limit; most of it is the word embeddings \(vocab_size 1000000000 x hidden_size 16\)/);
  });

  it("a model from scratch beyond the size limit is refused before the native model is built", async () => {
    const err = await rejectionOf(new Engine(scratchConfig({ scratch: { hiddenSize: 32768, numHiddenLayers: 64, numAttentionHeads: 8, intermediateSize: 32768, maxPositionEmbeddings: 64 } })).fit({ train: tinyCorpus() }));
    expect(err.message).toContain(`more than the ${(MAX_WEIGHT_BYTES / 1024 ** 3).toPrecision(3)} GiB limit; most of it is the transformer layers (num_hidden_layers 64`);
  });
});

describe("3. nesting depth of JSON configs", () => {
  const deep = (n: number) => `{"a": ${"[".repeat(n)}${"]".repeat(n)}}`;

  it("a 100,000-deep value in an engine config file is a clear error, not a stack overflow later", () => {
    const file = path.join(tmp("deep"), "c.json");
    writeFileSync(file, deep(100_000));
    expect(errorOf(() => loadConfigFile(file)).message).toMatch(new RegExp(`c\\.json: invalid JSON: nested deeper than ${MAX_JSON_DEPTH} levels \\(under a\\[0\\]\\[0\\].*\\) at line 1, column \\d+`));
    writeFileSync(file, deep(MAX_JSON_DEPTH - 1)); // within the limit: parses (and fails validation as usual)
    expect(errorOf(() => loadConfigFile(file)).message).toContain("unknown key");
  });

  it(`in a checkpoint's config.json: Engine.load refuses it (so save() can never overflow)`, async () => {
    const dir = smallCheckpoint();
    writeFileSync(path.join(dir, "config.json"), readFileSync(path.join(dir, "config.json"), "utf8").replace(/\}\s*$/, `, "task_specific_params": ${"{\"k\": ".repeat(100_000)}1${"}".repeat(100_000)}}`));
    const err = await rejectionOf(Engine.load(dir, { device: "cpu" }));
    expect(err.message).toContain(`config.json is not valid JSON: nested deeper than ${MAX_JSON_DEPTH} levels (under task_specific_params.k.k`);
  });
});

describe("4. silent cases made loud", () => {
  it("a tensor named twice in a safetensors header is refused (JSON.parse would keep the second)", () => {
    const good = serializeSafetensors([{ name: "w", dtype: "F32", shape: [2], data: new Float32Array([1, 2]) }]);
    const n = Number(good.readBigUInt64LE(0));
    const header = good.subarray(8, 8 + n).toString("utf8").trimEnd();
    const twice = header.replace(/^\{/, '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},');
    const json = Buffer.from(twice.padEnd(Math.ceil(twice.length / 8) * 8, " "));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    const err = errorOf(() => parseSafetensors(Buffer.concat([len, json, good.subarray(8 + n)]), "dup.safetensors"));
    expect(err.message).toMatch(/^dup\.safetensors: safetensors header is not valid UTF-8 JSON: key w appears twice in one object \(the second would silently replace the first\) at line 1, column \d+$/);
  });

  it(`NaN / Inf weights are refused at load, naming the tensor and the element`, async () => {
    for (const [bad, word] of [[Number.NaN, "NaN"], [Number.NEGATIVE_INFINITY, "-Inf"]] as const) {
      const tensors = randomTensors(SMALL);
      const t = tensors.find((x) => x.name === "bert.encoder.layer.1.output.dense.weight")!;
      (t.data as Float32Array)[3 * 32 + 5] = bad;
      const dir = writeSmallCheckpoint(SMALL, { tensors, dir: tmp("nan") });
      const err = await rejectionOf(Engine.load(dir, { device: "cpu" }));
      expect(err.message).toContain(`${dir}: tensor "bert.encoder.layer.1.output.dense.weight" holds ${word} at [3, 5]: a model with non-finite weights predicts NaN scores`);
    }
  });

  it("__proto__ / constructor / prototype keys in config files are refused, naming the path", () => {
    const dir = tmp("proto");
    const file = path.join(dir, "c.json");
    writeFileSync(file, '{"__proto__": {"model": "/somewhere/else"}}');
    expect(errorOf(() => loadConfigFile(file)).message).toMatch(/c\.json: invalid JSON: key __proto__ is not allowed: "__proto__" is never a setting .* at line 1, column 2$/);
    writeFileSync(file, '{"training": {"epochs": 1, "constructor": {"epochs": 9}}}');
    expect(errorOf(() => loadConfigFile(file)).message).toContain("key training.constructor is not allowed");
    writeFileSync(file, '{"data": {"\\u005f_proto__": 1}}'); // an escaped spelling is the same key
    expect(errorOf(() => loadConfigFile(file)).message).toContain("key data.__proto__ is not allowed");
    writeFileSync(file, '{"training": {"epochs": 1, "epochs": 9}}');
    expect(errorOf(() => loadConfigFile(file)).message).toContain("key training.epochs appears twice");
  });

  it(`a checkpoint's config.json with a __proto__ key is refused; label names under label2id are fine`, () => {
    const dir = smallCheckpoint();
    const file = path.join(dir, "config.json");
    const text = readFileSync(file, "utf8");
    writeFileSync(file, text.replace(/^\{/, '{"__proto__": {"num_hidden_layers": 1},'));
    expect(errorOf(() => readCheckpoint(dir)).message).toContain("config.json is not valid JSON: key __proto__ is not allowed");
    const labels = ["O", "__proto__", "constructor", "prototype"];
    writeFileSync(file, JSON.stringify({ ...JSON.parse(text), id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])), label2id: Object.fromEntries(labels.map((l, i) => [l, i])) }));
    const ck = readCheckpoint(dir);
    expect(labelList(ck.config)).toEqual(labels);
    expect(Object.entries(ck.config.label2id)).toEqual(labels.map((l, i) => [l, i]));
  });

  it("label maps: labels named __proto__ / constructor parse, and a label2id that omits them is still refused", () => {
    const labels = ["O", "constructor", "__proto__", "toString"];
    const id2label = Object.fromEntries(labels.map((l, i) => [String(i), l]));
    const label2id = JSON.parse(JSON.stringify(Object.fromEntries(labels.map((l, i) => [l, i]))));
    const c = parseEncoderConfig({ model_type: "bert", id2label, label2id }, "config.json");
    expect(labelList(c)).toEqual(labels);
    expect(Object.hasOwn(c.label2id, "__proto__") && c.label2id.__proto__).toBe(2);
    expect(errorOf(() => parseEncoderConfig({ model_type: "bert", id2label, label2id: { O: 0, constructor: 1, toString: 3 } }, "config.json")).message).toContain('"label2id" disagrees');
  });

  it(`labels named __proto__ / constructor train, save and load back`, async () => {
    const engine = new Engine(scratchConfig());
    await engine.fit({ train: tinyCorpus([["O", "__proto__", "constructor"], ["constructor", "O", "__proto__"]]) });
    expect([...engine.labels].sort()).toEqual(["O", "__proto__", "constructor"].sort());
    const out = path.join(tmp("protolabels"), "model");
    await engine.save(out);
    const loaded = await Engine.load(out, { device: "cpu" });
    expect(loaded.labels).toEqual(engine.labels);
    const saved = JSON.parse(readFileSync(path.join(out, "config.json"), "utf8")) as { label2id: Record<string, number> };
    expect(Object.keys(saved.label2id).sort()).toEqual(["O", "__proto__", "constructor"].sort());
    engine.dispose();
    loaded.dispose();
  });
});

describe("5. errors that say what and where", () => {
  it(`bad predict / fit / evaluate arguments are NerEngineErrors, not TypeErrors`, async () => {
    const engine = await Engine.load(smallCheckpoint(), { device: "cpu" });
    const predict = (x: unknown) => rejectionOf(engine.predict(x as string[]));
    const predictWords = (x: unknown) => rejectionOf(engine.predictWords(x as string[][]));
    expect((await predictWords([[1, 2]])).message).toBe("Engine.predictWords: sentence 0, word 0 is a number, expected a string");
    expect((await predictWords([["a"], "b"])).message).toContain("sentence 1 is a string, expected an array of words");
    expect((await predict(["a", null])).message).toContain("texts[1] is null, expected a string");
    expect((await predict([["a"]])).message).toContain("texts[0] is an array: predict takes raw texts; for pre-split words call predictWords");
    expect((await predict(42)).message).toContain("got a number");
    expect((await predict(undefined)).message).toContain("got undefined");
    expect((await predictWords(undefined)).message).toContain("got undefined");
    const fit = (x: unknown) => rejectionOf(engine.fit(x as { train: Corpus }));
    expect((await fit(undefined)).message).toContain("Engine.fit: expected { train, dev?, test? }");
    expect((await fit({ train: [] })).message).toContain("Engine.fit: data.train: expected a corpus");
    expect((await fit({ train: {} })).message).toContain('Engine.fit: data.train: "sentences" is undefined');
    expect((await fit({ train: { source: "x", sentences: [{ tokens: ["a", 2], tags: ["O", "O"] }] } })).message).toBe("Engine.fit: data.train: sentences[0]: tokens[1] is a number, expected a string");
    expect((await fit({ train: tinyCorpus(), dev: { sentences: [{ tokens: ["a"], tags: [] }] } })).message).toContain("data.dev: sentences[0]: 1 tokens but 0 tags");
    const evaluate = (x: unknown, o?: unknown) => rejectionOf(engine.evaluate(x as Corpus, o as { tagScheme: "IOB2" }));
    expect((await evaluate(null)).message).toContain("Engine.evaluate: data: expected a corpus");
    expect((await evaluate(tinyCorpus(), { tagScheme: "BIO" })).message).toContain('opts.tagScheme must be "IOB1", "IOB2" or "IOBES", got "BIO"');
    // Still works afterwards.
    expect((await engine.predictWords([["John", "lives", "here"]]))[0].words).toHaveLength(3);
    engine.dispose();
  });

  it("fs errors are described by their code: permission denied and symlink loops are not 'missing'", () => {
    expect(describeFsError({ code: "EACCES" })).toContain("permission denied");
    expect(describeFsError({ code: "ELOOP" })).toContain("symlink loop");
    const dir = tmp("loop");
    symlinkSync(path.join(dir, "b"), path.join(dir, "a"));
    symlinkSync(path.join(dir, "a"), path.join(dir, "b"));
    expect(errorOf(() => readCheckpoint(path.join(dir, "a"))).message).toBe(`${path.join(dir, "a")}: checkpoint directory is a symlink loop (too many levels of symbolic links)`);
    const ckpt = tmp("loopcfg");
    symlinkSync(path.join(ckpt, "config.json"), path.join(ckpt, "config.json"));
    expect(errorOf(() => readCheckpoint(ckpt)).message).toContain("config.json: is a symlink loop");
    symlinkSync(path.join(ckpt, "nowhere"), path.join(ckpt, "model.safetensors"));
    expect(errorOf(() => readBoundedFile(path.join(ckpt, "model.safetensors"), { maxBytes: 10, what: "model.safetensors" })).message).toContain("model.safetensors is a symlink whose target does not exist");
  });

  it.skipIf(isRoot)("an unreadable (mode 000) folder is 'permission denied', not 'config.json is missing' (not as root: chmod does not stop root)", () => {
    const dir = tmp("noperm");
    writeFileSync(path.join(dir, "config.json"), "{}");
    chmodSync(dir, 0o000);
    try {
      const err = errorOf(() => readCheckpoint(dir));
      expect(err.message).toContain("permission denied");
      expect(err.message).not.toContain("is missing");
    } finally {
      chmodSync(dir, 0o755);
    }
  });

  const DIST_CHECKPOINT = path.resolve(import.meta.dirname, "../dist/model/checkpoint.js");
  const canDrop = isRoot && existsSync(DIST_CHECKPOINT) && ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].some(existsSync);
  it.skipIf(!canDrop)(`the same as user nobody, when the tests run as root (needs runuser and ${DIST_CHECKPOINT}: npm run build:ts)`, () => {
    const dir = mkdtempSync(path.join(tmpdir(), "ner-noperm-"));
    try {
      chmodSync(dir, 0o755);
      mkdirSync(path.join(dir, "ck"));
      writeFileSync(path.join(dir, "ck", "config.json"), "{}");
      chmodSync(path.join(dir, "ck"), 0o000);
      const script = `import(${JSON.stringify(DIST_CHECKPOINT)}).then((m) => { try { m.readCheckpoint(${JSON.stringify(path.join(dir, "ck"))}); } catch (e) { console.log(e.name + ": " + e.message); } })`;
      const out = execFileSync("runuser", ["-u", "nobody", "--", process.execPath, "-e", script], { encoding: "utf8" });
      expect(out.trim()).toBe(`NerEngineError: ${path.join(dir, "ck", "config.json")}: permission denied (the file or a folder on its path is not readable)`);
    } finally {
      chmodSync(path.join(dir, "ck"), 0o755);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("engine configs given as objects keep working (the checks are on files)", () => {
    expect(parseConfig({ tokenizer: "t", training: { epochs: 2 } }).training.epochs).toBe(2);
  });

  it(`a checkpoint written with writeCheckpoint still loads after every check`, async () => {
    const dir = smallCheckpoint();
    const engine = await Engine.load(dir, { device: "cpu" });
    expect(engine.labels).toEqual(SMALL.labels);
    engine.dispose();
  });
});

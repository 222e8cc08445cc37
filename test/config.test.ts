import { afterAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { configJsonSchema, defaultConfig, loadConfigFile, mergeConfig, parseConfig, DEFAULT_CRF_HEAD_LEARNING_RATE } from "../src/app/config.js";
import { DOCS_FILE, renderConfigDocs, SCHEMA_FILE, schemaFileText } from "../scripts/gen-config-docs.mjs";
import { NerEngineError } from "../src/errors.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "ner-config-test-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** The message parseConfig throws for `input` (fails the test if it does not throw). */
function errorOf(input: unknown, source?: string): string {
  try {
    parseConfig(input, source);
  } catch (e) {
    expect(e).toBeInstanceOf(NerEngineError);
    return (e as Error).message;
  }
  throw new Error("expected parseConfig to throw");
}

describe("defaults", () => {
  it("match HF run_ner.py / TrainingArguments", () => {
    const c = parseConfig({ model: "ckpt" });
    expect(c.training).toMatchObject({
      learningRate: 5e-5,
      epochs: 3,
      batchSize: 32,
      warmupRatio: 0,
      warmupSteps: 0,
      weightDecay: 0,
      seed: 42,
      maxGradNorm: 1.0,
      adamBeta1: 0.9,
      adamBeta2: 0.999,
      adamEpsilon: 1e-8,
      gradientAccumulation: 1,
      bf16: false,
      tf32: false,
      metricForBestModel: "f1",
    });
    expect(c.data.maxLength).toBe(128);
    expect(c.data.labelAllSubtokens).toBe(false);
    expect(c.head.kind).toBe("softmax");
    expect(c.device).toBe("auto");
    expect(c.metrics.mode).toBe("default");
  });

  it("tokenizer defaults to model; head lr defaults to lr for softmax, 1e-3 for CRF heads", () => {
    expect(parseConfig({ model: "ckpt" }).tokenizer).toBe("ckpt");
    expect(parseConfig({ model: "ckpt", training: { learningRate: 3e-5 } }).head.learningRate).toBe(3e-5);
    expect(parseConfig({ model: "ckpt", head: { kind: "crf" } }).head.learningRate).toBe(DEFAULT_CRF_HEAD_LEARNING_RATE);
    expect(parseConfig({ model: "ckpt", head: { kind: "bilstm-crf", learningRate: 0.01 } }).head.learningRate).toBe(0.01);
  });

  it("scratch sizes and head defaults", () => {
    const c = parseConfig({ tokenizer: "tok" });
    expect(c.scratch).toEqual({
      hiddenSize: 256, numHiddenLayers: 4, numAttentionHeads: 4, intermediateSize: 1024, maxPositionEmbeddings: 512,
      hiddenDropoutProb: 0.1, attentionProbsDropoutProb: 0.1, layerNormEps: 1e-12, hiddenAct: "gelu",
    });
    expect(c.head).toMatchObject({ lstmHiddenSize: 256, lstmLayers: 1, attentionHeads: 4, constrainDecoding: true, constrainTraining: false });
    expect(c.training).toMatchObject({ progressEvery: 10, evalBatchSize: 64 });
  });

  it("defaultConfig() returns the defaults without needing a model", () => {
    const d = defaultConfig();
    expect(d.training.learningRate).toBe(5e-5);
    expect(d.model).toBeUndefined();
    // A fresh object every time, so callers may mutate it.
    d.training.epochs = 10;
    expect(defaultConfig().training.epochs).toBe(3);
  });

  it("parsing a parsed config is a no-op (the engine re-validates what it gets)", () => {
    const once = parseConfig({ model: "ckpt", head: { kind: "crf" }, training: { epochs: 5 } });
    expect(parseConfig(once)).toEqual(once);
  });
});

describe("validation", () => {
  it("names every invalid field with its path", () => {
    const msg = errorOf({ model: "m", training: { batchSize: 0, learningRate: -1 }, head: { kind: "lstm" }, device: "tpu" }, "run.json");
    expect(msg).toMatch(/^run\.json: invalid configuration/);
    expect(msg).toContain("training.batchSize:");
    expect(msg).toContain("training.learningRate:");
    expect(msg).toMatch(/head\.kind: .*softmax/);
    expect(msg).toContain("device:");
  });

  it("rejects unknown keys at every level, suggesting the closest name", () => {
    const msg = errorOf({ model: "m", trainig: {}, training: { epoch: 3 }, data: { labelAllTokens: true } });
    expect(msg).toContain('trainig: unknown key (did you mean "training"?)');
    expect(msg).toContain('training.epoch: unknown key (did you mean "epochs"?)');
    expect(msg).toContain("data.labelAllTokens: unknown key");
  });

  it("rejects wrong types and non-integers", () => {
    expect(errorOf({ model: "m", training: { epochs: "3" } })).toContain("training.epochs:");
    expect(errorOf({ model: "m", training: { batchSize: 8.5 } })).toContain("training.batchSize:");
    expect(errorOf({ model: "m", data: { format: "csv" } })).toContain("data.format:");
    expect(errorOf("not an object")).toContain("expected object");
  });

  it("checks cross-field rules", () => {
    expect(errorOf({})).toContain("tokenizer: required when training from scratch");
    expect(errorOf({ tokenizer: "t", data: { maxLength: 1024 } })).toContain("data.maxLength: 1024 exceeds scratch.maxPositionEmbeddings");
    expect(errorOf({ tokenizer: "t", scratch: { hiddenSize: 100, numAttentionHeads: 3 } })).toContain("scratch.hiddenSize:");
    expect(errorOf({ model: "m", data: { stride: 126 } })).toContain("data.stride:");
    expect(errorOf({ model: "m", data: { format: "json", conllTagColumn: 3 } })).toContain("data.format:");
  });
});

describe("config files", () => {
  const write = (name: string, text: string): string => {
    const p = path.join(tmpRoot, name);
    fs.writeFileSync(p, text);
    return p;
  };

  it("loads a valid file", () => {
    const p = write("ok.json", JSON.stringify({ model: "ckpt", training: { epochs: 5 }, head: { kind: "crf" } }));
    const c = loadConfigFile(p);
    expect(c.training.epochs).toBe(5);
    expect(c.head.kind).toBe("crf");
  });

  it("names the file for validation errors, bad JSON and missing files", () => {
    const bad = write("bad.json", JSON.stringify({ model: "ckpt", training: { epocs: 5 } }));
    expect(() => loadConfigFile(bad)).toThrow(/bad\.json: invalid configuration:\n\s+training\.epocs: unknown key \(did you mean "epochs"\?\)/);
    const broken = write("broken.json", "{ \"model\": ");
    expect(() => loadConfigFile(broken)).toThrow(/broken\.json: invalid JSON/);
    const array = write("array.json", "[]");
    expect(() => loadConfigFile(array)).toThrow(/array\.json: config must be a JSON object/);
    expect(() => loadConfigFile(path.join(tmpRoot, "missing.json"))).toThrow(/missing\.json: config file not found/);
  });
});

describe("$schema key", () => {
  it("is accepted in a config (file) and dropped", () => {
    const c = parseConfig({ $schema: "./config.schema.json", model: "ckpt" });
    expect(c).not.toHaveProperty("$schema");
    expect(c).toEqual(parseConfig({ model: "ckpt" }));
    const file = path.join(tmpRoot, "with-schema.json");
    fs.writeFileSync(file, JSON.stringify({ $schema: "./node_modules/ner-engine/config.schema.json", model: "ckpt", training: { epochs: 2 } }));
    expect(loadConfigFile(file).training.epochs).toBe(2);
    expect(errorOf({ $schema: 1, model: "ckpt" })).toContain("$schema:");
  });
});

describe("JSON Schema and docs/config.md", () => {
  type Node = { properties?: Record<string, Node>; description?: string; default?: unknown; type?: string };
  const schema = configJsonSchema() as Node;
  /** Every key of the schema, as [dotted path, its schema]. */
  const keys = (node: Node, prefix = ""): [string, Node][] =>
    Object.entries(node.properties ?? {}).flatMap(([k, s]) => [[prefix + k, s] as [string, Node], ...keys(s, `${prefix}${k}.`)]);
  const root = fileURLToPath(new URL("../", import.meta.url));

  it("are up to date with the schema (run `npm run gen:config-docs` when this fails)", () => {
    expect(fs.readFileSync(path.join(root, SCHEMA_FILE), "utf8")).toBe(schemaFileText(schema));
    expect(fs.readFileSync(path.join(root, DOCS_FILE), "utf8")).toBe(renderConfigDocs(schema));
  });

  it("describe every key (a .describe() on each field)", () => {
    expect(keys(schema).filter(([, s]) => !s.description).map(([k]) => k)).toEqual([]);
    const docs = renderConfigDocs(schema);
    for (const [k] of keys(schema)) expect(docs).toContain(`| \`${k}\` |`);
  });

  it("show the defaults parseConfig fills in (the input side of the schema)", () => {
    const defaults = defaultConfig() as unknown as Record<string, unknown>;
    const at = (p: string): unknown => p.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], defaults);
    const withDefault = keys(schema).filter(([, s]) => "default" in s && s.type !== "object");
    expect(withDefault.length).toBeGreaterThan(30);
    for (const [k, s] of withDefault) expect(at(k), k).toEqual(s.default);
  });
});

describe("mergeConfig", () => {
  it("deep-merges objects with the override winning and skips undefined", () => {
    const merged = mergeConfig({ model: "a", training: { epochs: 3, seed: 1 } }, { training: { epochs: 5 }, device: undefined });
    expect(merged).toEqual({ model: "a", training: { epochs: 5, seed: 1 } });
  });
});

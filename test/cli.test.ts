import { afterAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Writable } from "node:stream";
import Ajv2020 from "ajv/dist/2020.js";
import { buildTrainConfig, main, parseCliArgs, type TrainCommand } from "../src/app/cli.js";
import { OPTIONS } from "../src/app/cli-args.js";
import { demoConfig, demoCorpus, DEMO_SIZES } from "../src/app/demo.js";
import { NerEngineError } from "../src/errors.js";
import { isValidTag } from "../src/data/labels.js";
import { parseConfig } from "../src/app/config.js";
import { loadTokenizer } from "../src/text/tokenizer.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "ner-cli-test-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** Runs main() with captured stdout/stderr. Only for paths that never reach the engine. */
async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const capture = () => {
    const s = new Writable({ write(chunk, _e, cb) { s.text += chunk.toString(); cb(); } }) as Writable & { text: string };
    s.text = "";
    return s;
  };
  const [out, err] = [capture(), capture()];
  const code = await main(argv, { out, err });
  return { code, out: out.text, err: err.text };
}

function usageErrorOf(argv: string[]): string {
  try {
    parseCliArgs(argv);
  } catch (e) {
    expect(e).toBeInstanceOf(NerEngineError);
    return (e as Error).message;
  }
  throw new Error("expected a usage error");
}

describe("parseCliArgs", () => {
  it("defaults to train and runs the demo without --train", () => {
    expect(parseCliArgs([])).toEqual({ command: "train", demo: true, overrides: {}, verbose: false, train: undefined, dev: undefined, test: undefined, configFile: undefined, out: undefined });
    expect(parseCliArgs(["--epochs", "2"])).toMatchObject({ command: "train", demo: true, overrides: { training: { epochs: 2 } } });
  });

  it("maps train flags onto config fields", () => {
    const cmd = parseCliArgs([
      "train", "--train", "t.txt", "--dev", "d.txt", "--test", "e.txt", "--format", "bio", "--model", "ckpt", "--head", "crf",
      "--out", "runs/x", "--epochs", "4", "--batch-size", "16", "--lr", "3e-5", "--max-length", "256", "--seed", "7",
      "--device", "cpu", "--bf16", "--tf32", "--label-all-subtokens", "--document-context", "--scheme", "IOB1",
      "--max-steps", "100", "--patience", "2", "--config", "c.json",
    ]) as TrainCommand;
    expect(cmd).toMatchObject({ command: "train", demo: false, train: "t.txt", dev: "d.txt", test: "e.txt", out: "runs/x", configFile: "c.json" });
    expect(cmd.overrides).toEqual({
      model: "ckpt",
      device: "cpu",
      output: "runs/x",
      head: { kind: "crf" },
      data: { format: "bio", tagScheme: "IOB1", maxLength: 256, labelAllSubtokens: true, documentContext: true },
      training: { epochs: 4, batchSize: 16, learningRate: 3e-5, seed: 7, maxSteps: 100, earlyStoppingPatience: 2, bf16: true, tf32: true },
    });
  });

  it("parses evaluate and predict", () => {
    expect(parseCliArgs(["evaluate", "--model", "m", "--data", "d.txt"])).toEqual({
      command: "evaluate", model: "m", data: "d.txt", format: "conll", scheme: "IOB2", out: undefined, device: "auto", verbose: false,
    });
    expect(parseCliArgs(["predict", "--model", "m", "--text", "Hello Paris"])).toMatchObject({ command: "predict", text: "Hello Paris" });
    expect(parseCliArgs(["predict", "--model", "m", "--input", "lines.txt", "--device=cuda"])).toMatchObject({ input: "lines.txt", device: "cuda" });
    expect(parseCliArgs(["predict", "--model", "m", "--output", "o.jsonl", "--format", "spacy", "--aggregation", "max", "--batch-size", "8"]))
      .toMatchObject({ output: "o.jsonl", format: "spacy", aggregation: "max", batchSize: 8 });
    expect(parseCliArgs(["serve", "--model", "m"])).toEqual({
      command: "serve", model: "m", host: "127.0.0.1", port: 8080, maxBatch: 64, batchWindowMs: 3, maxQueue: 1024, device: "auto", verbose: false,
    });
    expect(parseCliArgs(["serve", "--model", "m", "--host", "0.0.0.0", "--port", "0", "--max-batch", "1", "--batch-window-ms", "0", "--max-queue", "8"]))
      .toMatchObject({ host: "0.0.0.0", port: 0, maxBatch: 1, batchWindowMs: 0, maxQueue: 8 });
  });

  it("rejects bad values with messages naming the flag", () => {
    expect(usageErrorOf(["--train", "t", "--epochs", "three"])).toContain('--epochs expects a number, got "three"');
    expect(usageErrorOf(["--train", "t", "--batch-size", "1.5"])).toContain('--batch-size expects an integer, got "1.5"');
    expect(usageErrorOf(["--train", "t", "--head", "lstm"])).toContain('--head must be one of softmax, crf, bilstm-crf, bilstm-attn-crf; got "lstm"');
    expect(usageErrorOf(["--train", "t", "--format", "csv"])).toContain("--format must be one of conll, json, bio, atis");
    expect(usageErrorOf(["--train", "t", "--device", "tpu"])).toContain("--device must be one of auto, cpu, cuda");
    expect(usageErrorOf(["--train", "t", "--lr"])).toMatch(/--lr <value>' argument missing/);
    expect(usageErrorOf(["--train", "t", "--bf16=yes"])).toContain("does not take an argument");
  });

  it("rejects unknown options, commands, stray arguments and incomplete commands", () => {
    expect(usageErrorOf(["--trian", "t"])).toContain('unknown option --trian for "train"');
    expect(usageErrorOf(["fit"])).toContain('unknown command "fit" (expected train, evaluate, predict, serve, print-config, help)');
    expect(usageErrorOf(["train", "data.txt"])).toContain("Unexpected argument 'data.txt'");
    expect(usageErrorOf(["evaluate", "--model", "m"])).toContain("evaluate needs --data FILE");
    expect(parseCliArgs(["predict", "--model", "m"])).toMatchObject({ command: "predict", text: undefined, input: undefined, format: "jsonl", batchSize: 64 }); // stdin
    expect(usageErrorOf(["predict", "--model", "m", "--text", "a", "--input", "f"])).toContain("not both");
    expect(usageErrorOf(["predict", "--model", "m", "--format", "xml"])).toContain("--format must be one of jsonl, conll, spacy");
    expect(usageErrorOf(["predict", "--model", "m", "--format", "conll", "--aggregation", "simple"])).toContain("--format conll writes tags");
    expect(usageErrorOf(["predict", "--model", "m", "--format", "spacy", "--aggregation", "none"])).toContain("--format spacy needs entity spans");
    expect(usageErrorOf(["predict", "--model", "m", "--batch-size", "0"])).toContain("--batch-size must be at least 1");
    expect(usageErrorOf(["serve"])).toContain("serve needs --model DIR");
    expect(usageErrorOf(["serve", "--model", "m", "--port", "70000"])).toContain("--port must be at most 65535");
    expect(usageErrorOf(["serve", "--model", "m", "--max-batch", "0"])).toContain("--max-batch must be at least 1");
    expect(usageErrorOf(["--dev", "d.txt"])).toContain("--dev needs --train FILE");
    expect(usageErrorOf(["evaluate", "--model", "m", "--data", "d", "--epochs", "3"])).toContain('unknown option --epochs for "evaluate"');
  });

  it("gives help for --help anywhere, and per command", () => {
    expect(parseCliArgs(["--help"])).toMatchObject({ command: "help" });
    expect((parseCliArgs(["evaluate", "--bogus", "-h"]) as { text: string }).text).toMatch(/^Usage: ner-engine evaluate/);
    expect((parseCliArgs(["help", "predict"]) as { text: string }).text).toMatch(/^Usage: ner-engine predict/);
  });
});

describe("buildTrainConfig", () => {
  it("lets flags override the --config file", () => {
    const file = path.join(tmpRoot, "cfg.json");
    fs.writeFileSync(file, JSON.stringify({ model: "ckpt", training: { epochs: 10, seed: 1 }, head: { kind: "crf" } }));
    const cmd = parseCliArgs(["--train", "t", "--config", file, "--epochs", "2"]) as TrainCommand;
    const c = buildTrainConfig(cmd);
    expect(c.training.epochs).toBe(2);
    expect(c.training.seed).toBe(1);
    expect(c.head.kind).toBe("crf");
  });

  it("reports config errors naming the file and the field", () => {
    const file = path.join(tmpRoot, "typo.json");
    fs.writeFileSync(file, JSON.stringify({ model: "ckpt", training: { batchsize: 8 } }));
    const cmd = parseCliArgs(["--train", "t", "--config", file]) as TrainCommand;
    expect(() => buildTrainConfig(cmd)).toThrow(/typo\.json: invalid configuration:\n\s+training\.batchsize: unknown key \(did you mean "batchSize"\?\)/);
    const flags = parseCliArgs(["--train", "t", "--model", "m", "--batch-size", "0"]) as TrainCommand;
    expect(() => buildTrainConfig(flags)).toThrow(/command line: invalid configuration:\n\s+training\.batchSize: Too small/);
  });
});

describe("main", () => {
  it("prints usage for --help and exits 0", async () => {
    const r = await run(["--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("Usage: ner-engine [train|evaluate|predict|serve|print-config]");
    expect(r.out).toContain("--train FILE");
    expect(r.err).toBe("");
  });

  it("prints `error: <message>` and exits 1 on usage errors, without a stack trace", async () => {
    const r = await run(["frobnicate"]);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/^error: unknown command "frobnicate"/);
    expect(r.err).not.toMatch(/\n\s+at /);
    const bad = await run(["--train", "x", "--batch-size", "many"]);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('error: --batch-size expects an integer, got "many"');
  });

  it("reports a missing config file before touching the engine", async () => {
    const r = await run(["--train", "t.txt", "--config", path.join(tmpRoot, "nope.json")]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: .*nope\.json: config file not found\n$/);
  });

  it("reports a missing data file with its name", async () => {
    const r = await run(["--train", path.join(tmpRoot, "absent.txt"), "--model", "m", "--out", path.join(tmpRoot, "o")]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: .*absent\.txt: file not found\n$/);
  });
});

describe("--help and the argument tables", () => {
  // Flags named in a usage text: "--long" and a leading "-h," style short flag.
  const flagsIn = (text: string): Set<string> => new Set([...text.matchAll(/(?<![\w-])--?[a-z][a-z0-9-]*/g)].map((m) => m[0]));

  for (const [command, options] of Object.entries(OPTIONS)) {
    it(`${command} --help lists exactly the flags ${command} takes`, () => {
      const help = parseCliArgs([command, "--help"]);
      expect(help.command).toBe("help");
      const text = (help as { text: string }).text;
      expect(text).toMatch(new RegExp(`^Usage: ner-engine ${command}`));
      const expected = new Set(Object.entries(options).flatMap(([name, o]) => ["--" + name, ...("short" in o ? ["-" + o.short] : [])]));
      const listed = flagsIn(text);
      expect([...expected].filter((f) => !listed.has(f)), "flags missing from the usage").toEqual([]);
      expect([...listed].filter((f) => !expected.has(f)), "usage names flags the command does not take").toEqual([]);
    });
  }

  it("lists every command in the main usage", () => {
    const text = (parseCliArgs(["--help"]) as { text: string }).text;
    for (const command of Object.keys(OPTIONS)) expect(text).toMatch(new RegExp(`^  ${command} `, "m"));
  });
});

describe("--version", () => {
  it("prints package.json's version for --version and -v", async () => {
    const { version } = JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    for (const flag of ["--version", "-v"]) {
      const r = await run([flag]);
      expect(r).toEqual({ code: 0, out: `${version}\n`, err: "" });
    }
  });
});

describe("print-config", () => {
  const schema = JSON.parse(fs.readFileSync(new URL("../config.schema.json", import.meta.url), "utf8")) as object;
  const validate = new Ajv2020({ strict: true, allErrors: true }).compile(schema);
  /** Runs print-config, checks it succeeded and that its output is valid against the shipped schema. */
  async function printConfig(args: string[]): Promise<Record<string, any>> {
    const r = await run(["print-config", ...args]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const config = JSON.parse(r.out) as Record<string, any>;
    expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
    return config;
  }

  it("prints the defaults, valid against config.schema.json", async () => {
    const config = await printConfig([]);
    // From scratch with no tokenizer: train trains one at run time, so it stays unset.
    expect(config).not.toHaveProperty("tokenizer");
    expect(config).toEqual(JSON.parse(JSON.stringify({ ...parseConfig({ tokenizer: "t" }), tokenizer: undefined })));
    // No model: the from-scratch recipe's learning rate (fine-tuning keeps HF's 5e-5).
    expect(config.training).toMatchObject({ epochs: 3, batchSize: 32, learningRate: 1e-3 });
  });

  it("reflects flags over the --config file over the defaults, as train merges them", async () => {
    const file = path.join(tmpRoot, "print.json");
    fs.writeFileSync(file, JSON.stringify({ $schema: "../config.schema.json", model: "ckpt", head: { kind: "crf" }, training: { epochs: 10, seed: 1 } }));
    const args = ["--config", file, "--epochs", "2", "--lr", "3e-5", "--head", "bilstm-crf", "--max-length", "256", "--bf16", "--group-by-length", "hf", "--out", "runs/x"];
    const config = await printConfig(args);
    expect(config).toMatchObject({ model: "ckpt", tokenizer: "ckpt", output: "runs/x" });
    expect(config.training).toMatchObject({ epochs: 2, seed: 1, learningRate: 3e-5, bf16: true, groupByLength: "hf" });
    expect(config.head).toMatchObject({ kind: "bilstm-crf", learningRate: 1e-3 });
    expect(config.data.maxLength).toBe(256);
    expect(config).not.toHaveProperty("$schema");
    // The same flags given to train build the same config.
    expect(config).toEqual(JSON.parse(JSON.stringify(buildTrainConfig(parseCliArgs(["--train", "t", ...args]) as TrainCommand))));
  });

  it("reports bad flags and invalid configs like train, with nothing on stdout", async () => {
    const bad = await run(["print-config", "--train", "t"]);
    expect(bad).toMatchObject({ code: 1, out: "" });
    expect(bad.err).toContain('unknown option --train for "print-config"');
    const invalid = await run(["print-config", "--model", "m", "--batch-size", "0"]);
    expect(invalid).toMatchObject({ code: 1, out: "" });
    expect(invalid.err).toMatch(/command line: invalid configuration:\n\s+training\.batchSize: Too small/);
  });
});

describe("demo", () => {
  it("generates the promised sizes deterministically", () => {
    const a = demoCorpus();
    const b = demoCorpus();
    expect(a.train.sentences.length).toBe(DEMO_SIZES.train);
    expect(a.dev.sentences.length).toBe(DEMO_SIZES.dev);
    expect(a.test.sentences.length).toBe(DEMO_SIZES.test);
    expect(DEMO_SIZES).toEqual({ train: 1500, dev: 300, test: 300 });
    expect(b).toEqual(a);
    expect(demoCorpus(99).train.sentences).not.toEqual(a.train.sentences);
  });

  it("is valid IOB2 with all four types, multi-word entities and documents", () => {
    const { train, dev, test } = demoCorpus();
    const types = new Set<string>();
    let multiWord = 0;
    const problems: string[] = []; // collected, so a failure shows every bad sentence at once
    for (const [n, s] of [...train.sentences, ...dev.sentences, ...test.sentences].entries()) {
      if (s.tokens.length !== s.tags.length) problems.push(`${n}: ${s.tokens.length} tokens, ${s.tags.length} tags`);
      if (!s.tokens.every((t) => t.length > 0 && !/\s/.test(t))) problems.push(`${n}: empty or spaced token`);
      s.tags.forEach((tag, i) => {
        if (!isValidTag(tag) || /^[ES]-/.test(tag)) problems.push(`${n}: tag ${tag}`);
        // IOB2: an I-X continues a chunk of the same type.
        if (tag.startsWith("I-") && s.tags[i - 1] !== tag && s.tags[i - 1] !== `B-${tag.slice(2)}`) problems.push(`${n}: ${tag} at ${i}`);
        if (tag.startsWith("B-")) types.add(tag.slice(2));
        if (tag.startsWith("I-") && s.tags[i - 1]?.startsWith("B-")) multiWord++;
      });
    }
    expect(problems).toEqual([]);
    expect([...types].sort()).toEqual(["LOC", "MISC", "ORG", "PER"]);
    expect(multiWord).toBeGreaterThan(500);
    const docs = new Set(train.sentences.map((s) => s.docId));
    expect(docs.size).toBeGreaterThan(100);
    expect(docs.size).toBeLessThan(train.sentences.length);
  });

  it("writes a tokenizer and returns a valid from-scratch BiLSTM-CRF config", () => {
    const out = path.join(tmpRoot, "demo");
    const input = demoConfig(out);
    const config = parseConfig(input);
    expect(config.tokenizer).toBe(path.join(out, "tokenizer"));
    expect(config.model).toBeUndefined();
    expect(config.head.kind).toBe("bilstm-crf");
    expect(config.scratch.hiddenSize).toBe(128);
    const tok = loadTokenizer(config.tokenizer!);
    expect(tok.vocabSize).toBeGreaterThan(200);
  });
});

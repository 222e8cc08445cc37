#!/usr/bin/env node
/**
 * Command line: `train` (default; the built-in demo without --train), `evaluate`, `predict` (streaming:
 * predict-stream.ts), `serve` (HTTP: server.ts), `print-config`; `--version`. The argument tables and usage texts are in cli-args.ts.
 *
 * Parsing (parseCliArgs) is pure and separate from running, so it is testable without the native
 * engine; the engine module is imported only when a command actually runs.
 */
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { COMMANDS, DEVICES, OPTIONS, SCHEMES, USAGE } from "./cli-args.js";
import { CORPUS_FORMATS, HEAD_KINDS, mergeConfig, parseConfig, readConfigJson, withSavedModelDefaults, type EngineConfig, type EngineConfigInput } from "./config.js";
import { DEMO_EXAMPLES, demoConfig, demoCorpus } from "./demo.js";
import { NerEngineError } from "../errors.js";
import { pretokenize } from "../data/alignment.js";
import { convertScheme } from "../data/labels.js";
import { formatMistakes, formatReport, mistakenSentences } from "../eval/metrics.js";
import { readCorpus, type CorpusFormat } from "../data/readers.js";
import { JsonlLogger, ProgressBar, writeRunArtifacts, type HistoryLike, type ProgressEvent } from "../eval/report.js";
import type { Corpus, TagScheme } from "../data/types.js";
import { trainWordPiece, writeTokenizerFiles } from "../text/vocab.js";
import { PREDICT_FORMATS, type PredictFormat } from "./predict-stream.js";
import { AGGREGATIONS, type Aggregation } from "./text-tagger.js";
import { defaultResumeFolder, EXIT_CODE, normaliseResumeFlag, onInterrupt, readRunFile, resumeStep, RUN_FILE, trimLogToStep, writeRunFile } from "./run-control.js";

// ---- commands ----

export interface TrainCommand {
  command: "train";
  /** No --train: run the embedded demo. */
  demo: boolean;
  train?: string;
  dev?: string;
  test?: string;
  configFile?: string;
  /** Config values given as flags; they override the --config file. */
  overrides: EngineConfigInput;
  out?: string;
  /** Vocabulary size to train from --train when there is no --model or --tokenizer. */
  vocabSize?: number;
  /** Run folder to continue (train --resume). */
  resume?: string;
  verbose: boolean;
}
export interface EvaluateCommand { command: "evaluate"; model: string; data: string; format: CorpusFormat; scheme: TagScheme; out?: string; device: Device; verbose: boolean }
export interface PredictCommand {
  command: "predict"; model: string; text?: string; input?: string; output?: string; format: PredictFormat; aggregation?: Aggregation;
  batchSize: number; device: Device; verbose: boolean;
}
export interface ServeCommand { command: "serve"; model: string; host: string; port: number; maxBatch: number; batchWindowMs: number; maxQueue: number; device: Device; verbose: boolean }
/** Prints the config train would use: same flags and merge, nothing run. */
export interface PrintConfigCommand { command: "print-config"; configFile?: string; overrides: EngineConfigInput; verbose: boolean }
export interface HelpCommand { command: "help"; text: string }
export interface VersionCommand { command: "version" }
export type CliCommand = TrainCommand | EvaluateCommand | PredictCommand | ServeCommand | PrintConfigCommand | HelpCommand | VersionCommand;
type Device = "auto" | "cpu" | "cuda";

const usageError = (message: string, command?: keyof typeof USAGE): NerEngineError =>
  new NerEngineError(`${message}\n(run "ner-engine ${command && command !== "main" ? `${command} ` : ""}--help" for usage)`);

function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw usageError(`--${flag} must be one of ${allowed.join(", ")}; got "${value}"`);
  return value as T;
}

function groupByLengthFlag(value: string | undefined): boolean | "hf" | undefined {
  const choice = oneOf("group-by-length", value, ["on", "hf", "off"] as const);
  return choice === undefined ? undefined : choice === "hf" ? "hf" : choice === "on";
}

function numberFlag(flag: string, value: string | undefined, integer: boolean): number | undefined {
  if (value === undefined) return undefined;
  const n = value.trim() === "" ? NaN : Number(value);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw usageError(`--${flag} expects ${integer ? "an integer" : "a number"}, got "${value}"`);
  }
  return n;
}

/** util.parseArgs with its errors reworded as usage errors. */
function parseFlags<O extends NonNullable<ParseArgsConfig["options"]>>(command: keyof typeof OPTIONS, args: string[], options: O) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (typeof err.code !== "string" || !err.code.startsWith("ERR_PARSE_ARGS")) throw e;
    const name = /'(-[^' ]+)/.exec(err.message)?.[1];
    if (err.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && name) throw usageError(`unknown option ${name} for "${command}"`, command);
    throw usageError(err.message.split(". ")[0], command);
  }
}

/** Turns argv (without node and script) into a typed command; throws NerEngineError on bad usage. */
export function parseCliArgs(argv: readonly string[]): CliCommand {
  if (argv[0] === "--version" || argv[0] === "-v") return { command: "version" };
  let args = [...argv];
  let command: (typeof COMMANDS)[number] = "train";
  if (args.length > 0 && !args[0].startsWith("-")) {
    if (!(COMMANDS as readonly string[]).includes(args[0])) throw usageError(`unknown command "${args[0]}" (expected ${COMMANDS.join(", ")})`);
    command = args[0] as (typeof COMMANDS)[number];
    args = args.slice(1);
  }
  if (command === "help") {
    const topic = args[0] as keyof typeof USAGE | undefined;
    return { command: "help", text: topic && topic in USAGE ? USAGE[topic] : USAGE.main };
  }
  // --help wins over anything else, even invalid flags, so users can always get to the usage.
  if (args.includes("--help") || args.includes("-h")) {
    return { command: "help", text: argv.length > 0 && argv[0] === command ? USAGE[command] : `${USAGE.main}\n\n${USAGE.train}` };
  }
  if (command === "evaluate") {
    const v = parseFlags("evaluate", args, OPTIONS.evaluate);
    if (!v.model) throw usageError("evaluate needs --model DIR", "evaluate");
    if (!v.data) throw usageError("evaluate needs --data FILE", "evaluate");
    return {
      command: "evaluate", model: v.model, data: v.data, out: v.out, verbose: v.verbose ?? false,
      format: oneOf("format", v.format, CORPUS_FORMATS) ?? "conll",
      scheme: oneOf("scheme", v.scheme, SCHEMES) ?? "IOB2",
      device: oneOf("device", v.device, DEVICES) ?? "auto",
    };
  }
  if (command === "predict") {
    const v = parseFlags("predict", args, OPTIONS.predict);
    if (!v.model) throw usageError("predict needs --model DIR", "predict");
    if (v.text !== undefined && v.input !== undefined) throw usageError("predict takes --text \"...\" or --input FILE, not both (neither: stdin)", "predict");
    const format = oneOf("format", v.format, PREDICT_FORMATS) ?? "jsonl";
    const aggregation = oneOf("aggregation", v.aggregation, AGGREGATIONS);
    if (aggregation && format === "conll") throw usageError("--aggregation shapes entities; --format conll writes tags", "predict");
    if (aggregation === "none" && format === "spacy") throw usageError("--format spacy needs entity spans: --aggregation simple, first, average or max", "predict");
    const batchSize = numberFlag("batch-size", v["batch-size"], true) ?? 64;
    if (batchSize < 1) throw usageError("--batch-size must be at least 1", "predict");
    return {
      command: "predict", model: v.model, text: v.text, input: v.input, output: v.output, format, aggregation, batchSize,
      device: oneOf("device", v.device, DEVICES) ?? "auto", verbose: v.verbose ?? false,
    };
  }
  if (command === "serve") {
    const v = parseFlags("serve", args, OPTIONS.serve);
    if (!v.model) throw usageError("serve needs --model DIR", "serve");
    const atLeast = (flag: string, n: number | undefined, min: number, fallback: number): number => {
      if (n !== undefined && n < min) throw usageError(`--${flag} must be at least ${min}`, "serve");
      return n ?? fallback;
    };
    const port = atLeast("port", numberFlag("port", v.port, true), 0, 8080);
    if (port > 65535) throw usageError("--port must be at most 65535", "serve");
    return {
      command: "serve", model: v.model, host: v.host ?? "127.0.0.1", port,
      maxBatch: atLeast("max-batch", numberFlag("max-batch", v["max-batch"], true), 1, 64),
      batchWindowMs: atLeast("batch-window-ms", numberFlag("batch-window-ms", v["batch-window-ms"], true), 0, 3),
      maxQueue: atLeast("max-queue", numberFlag("max-queue", v["max-queue"], true), 1, 1024),
      device: oneOf("device", v.device, DEVICES) ?? "auto", verbose: v.verbose ?? false,
    };
  }
  if (command === "print-config") {
    const v = parseFlags("print-config", args, OPTIONS["print-config"]);
    return { command: "print-config", configFile: v.config, overrides: configOverrides(v), verbose: v.verbose ?? false };
  }

  const v = parseFlags("train", normaliseResumeFlag(args), OPTIONS.train);
  if (v.resume !== undefined) {
    const others = Object.keys(v).filter((k) => !["resume", "verbose", "device", "out"].includes(k));
    if (others.length) throw usageError(`--resume continues a run as it was configured; drop --${others.join(", --")}`, "train");
    const overrides = stripUndefined({ device: oneOf("device", v.device, DEVICES) }) as EngineConfigInput;
    return { command: "train", demo: false, resume: defaultResumeFolder(v.resume || v.out), overrides, verbose: v.verbose ?? false };
  }
  const demo = v.train === undefined;
  if (demo) {
    const userData = (["dev", "test", "format", "scheme", "model"] as const).filter((k) => v[k] !== undefined);
    if (userData.length > 0) {
      throw usageError(`--${userData[0]} needs --train FILE (without --train the built-in demo runs on its own data)`, "train");
    }
  }
  const overrides = configOverrides(v);
  return {
    command: "train", demo, train: v.train, dev: v.dev, test: v.test, configFile: v.config, out: v.out,
    overrides, verbose: v.verbose ?? false,
    vocabSize: numberFlag("vocab-size", v["vocab-size"], true),
  };
}

/** The config values the flags set (train's and print-config's), absent flags left out. */
function configOverrides(v: ReturnType<typeof parseFlags<(typeof OPTIONS)["print-config"]>>): EngineConfigInput {
  const overrides: EngineConfigInput = {
    model: v.model,
    ignoreMismatchedSizes: v["ignore-mismatched-sizes"],
    tokenizer: v.tokenizer,
    device: oneOf("device", v.device, DEVICES),
    output: v.out,
    head: { kind: oneOf("head", v.head, HEAD_KINDS) },
    data: {
      format: oneOf("format", v.format, CORPUS_FORMATS),
      tagScheme: oneOf("scheme", v.scheme, SCHEMES),
      maxLength: numberFlag("max-length", v["max-length"], true),
      labelAllSubtokens: v["label-all-subtokens"],
      documentContext: v["document-context"],
    },
    training: {
      epochs: numberFlag("epochs", v.epochs, false),
      batchSize: numberFlag("batch-size", v["batch-size"], true),
      learningRate: numberFlag("lr", v.lr, false),
      seed: numberFlag("seed", v.seed, true),
      maxSteps: numberFlag("max-steps", v["max-steps"], true),
      earlyStoppingPatience: numberFlag("patience", v.patience, true),
      groupByLength: groupByLengthFlag(v["group-by-length"]),
      bf16: v.bf16,
      tf32: v.tf32,
    },
  };
  return stripUndefined(overrides) as EngineConfigInput;
}

/** Drops undefined values and then-empty objects, so absent flags never override the config file. */
function stripUndefined(x: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(x)) {
    if (v === undefined) continue;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      const inner = stripUndefined(v as Record<string, unknown>);
      if (Object.keys(inner).length > 0) out[k] = inner;
    } else out[k] = v;
  }
  return out;
}

/**
 * What print-config prints: the config of `train --train ...` with the same flags (buildTrainConfig).
 * From scratch without a tokenizer, train trains one into OUT/tokenizer at run time; it stays unset
 * here, as in a config file that train would accept.
 */
export function buildPrintedConfig(cmd: PrintConfigCommand): EngineConfig {
  const file = cmd.configFile ? readConfigJson(cmd.configFile) : {};
  const trainsVocab = !cmd.overrides.model && !cmd.overrides.tokenizer && !file.model && !file.tokenizer;
  if (!trainsVocab) return buildTrainConfig(cmd);
  return { ...buildTrainConfig(cmd, { tokenizer: "OUT/tokenizer" }), tokenizer: undefined };
}

/** The package's version, from its package.json: two levels up from both src/app and dist/app. */
export function packageVersion(): string {
  const file = new URL("../../package.json", import.meta.url);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new NerEngineError(`cannot read the package's version (${(e as Error).message})`, file.pathname);
  }
  const version = (json as { version?: unknown } | null)?.version;
  if (typeof version !== "string") throw new NerEngineError('expected a string "version"', file.pathname);
  return version;
}

/** Validated config of a train command: base (demo config or {}) ← --config file ← flags. */
export function buildTrainConfig(cmd: Pick<TrainCommand, "configFile" | "overrides">, base: EngineConfigInput = {}): EngineConfig {
  const file = cmd.configFile ? readConfigJson(cmd.configFile) : {};
  const merged = withSavedModelDefaults(mergeConfig(mergeConfig(base as Record<string, unknown>, file), cmd.overrides as Record<string, unknown>));
  const flags = Object.keys(cmd.overrides).length > 0;
  const source = cmd.configFile ? (flags ? `${cmd.configFile} (with command-line flags)` : cmd.configFile) : flags ? "command line" : undefined;
  return parseConfig(merged, source);
}

// ---- running ----

/** The engine (and with it the native addon) is imported only when a command runs, so parsing and --help never load it. */
async function loadEngineModule(): Promise<typeof import("./engine.js")> {
  return import("./engine.js");
}
type EngineInstance = InstanceType<Awaited<ReturnType<typeof loadEngineModule>>["Engine"]>;

export interface Io {
  /** Where predict reads without --text / --input (default process.stdin). */
  in?: NodeJS.ReadableStream;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

/**
 * Reads one split; for ATIS a folder holds train/dev/test subfolders (or seq.in itself). Tags stay in
 * config.data.tagScheme: the engine converts them.
 */
function readSplit(path: string, config: EngineConfig, split: "train" | "dev" | "test"): Corpus {
  const d = config.data;
  return d.format === "atis"
    ? readCorpus(path, "atis", existsSync(join(path, "seq.in")) ? {} : { split })
    : readCorpus(path, d.format, { tokenColumn: d.conllTokenColumn, tagColumn: d.conllTagColumn, order: d.bioOrder });
}


export interface TextEntity { type: string; text: string; start: number; end: number; score: number }

/** Tags raw texts in one engine call (a batch of texts); start / end count code points, as Python's str. */
async function predictTexts(engine: Pick<EngineInstance, "predict">, texts: readonly string[]): Promise<TextEntity[][]> {
  const results = await engine.predict(texts);
  return results.map((r) => r.entities.map((e) => ({ type: e.type, text: e.text, start: e.start!, end: e.end!, score: Number(e.score.toFixed(4)) })));
}

const timestamp = (): string => new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);

async function runTrain(cmd: TrainCommand, io: Io): Promise<number> {
  const say = (s: string): void => void io.out.write(s + "\n");
  const out = cmd.resume ?? cmd.out ?? (cmd.demo ? join("runs", "demo") : join("runs", `run-${timestamp()}`));
  let data: { train: Corpus; dev?: Corpus; test?: Corpus };
  let config: EngineConfig;
  let earlier: ProgressEvent[] = [];
  if (cmd.resume) {
    const run = readRunFile(out);
    config = parseConfig({ ...run.config, device: cmd.overrides.device ?? run.config.device, training: { ...run.config.training, resumeFrom: out } }, join(out, RUN_FILE));
    data = run.demo
      ? demoCorpus()
      : { train: readSplit(run.train!, config, "train"), dev: run.dev ? readSplit(run.dev, config, "dev") : undefined, test: run.test ? readSplit(run.test, config, "test") : undefined };
    earlier = trimLogToStep(join(out, "log.jsonl"), resumeStep(out)) as unknown as ProgressEvent[];
    say(`resuming ${out}`);
  } else if (cmd.demo) {
    say(`No --train given: running the built-in demo (synthetic PER/ORG/LOC/MISC corpus, small BERT-BiLSTM-CRF from scratch) into ${out}`);
    data = demoCorpus();
    config = buildTrainConfig({ ...cmd, overrides: { ...cmd.overrides, output: out } }, demoConfig(out, data));
  } else {
    // From scratch with no tokenizer given: a vocabulary is trained on --train into OUT/tokenizer.
    const fileConfig = cmd.configFile ? readConfigJson(cmd.configFile) : {};
    const vocabDir = !cmd.overrides.model && !cmd.overrides.tokenizer && !fileConfig.model && !fileConfig.tokenizer ? join(out, "tokenizer") : undefined;
    config = buildTrainConfig({ ...cmd, overrides: { ...cmd.overrides, output: out, ...(vocabDir ? { tokenizer: vocabDir } : {}) } });
    const atisDefault = (split: "dev" | "test"): string | undefined =>
      config.data.format === "atis" && existsSync(join(cmd.train!, split)) ? cmd.train : undefined;
    const devPath = cmd.dev ?? atisDefault("dev");
    const testPath = cmd.test ?? atisDefault("test");
    data = {
      train: readSplit(cmd.train!, config, "train"),
      dev: devPath ? readSplit(devPath, config, "dev") : undefined,
      test: testPath ? readSplit(testPath, config, "test") : undefined,
    };
    if (vocabDir) {
      const size = cmd.vocabSize ?? 8000;
      say(`training a ${size}-token WordPiece vocabulary on ${cmd.train} into ${vocabDir}`);
      const lowercase = config.data.lowercase ?? false;
      const vocab = trainWordPiece(data.train.sentences.map((s) => s.tokens), { vocabSize: size, lowercase });
      if (vocab.length < size) {
        say(`warning: the vocabulary has ${vocab.length} tokens, not the ${size} asked for: the training data has no more pieces that occur at least twice (WordPiece stops when no pair can be merged)`);
      }
      writeTokenizerFiles(vocabDir, vocab, { lowercase });
    }
  }
  if (!cmd.resume) writeRunFile(out, { demo: cmd.demo, train: cmd.train, dev: data.dev?.source, test: data.test?.source, config });
  const { Engine } = await loadEngineModule();
  const engine = new Engine(config);
  const sizes = (["train", "dev", "test"] as const).filter((k) => data[k]).map((k) => `${k} ${data[k]!.sentences.length}`).join(", ");
  say(`device ${engine.device}; ${sizes} sentences; head ${config.head.kind}${config.model ? ` on ${config.model}` : " (from scratch)"}`);

  const bar = new ProgressBar({ stream: io.err });
  const logger = new JsonlLogger(join(out, "log.jsonl"));
  logger.log("start", { config, sizes });
  const progress: ProgressEvent[] = [...earlier];
  const interrupt = onInterrupt(() => engine.cancel(), (line) => bar.log(line));
  let history: Awaited<ReturnType<typeof engine.fit>>;
  try {
    history = await engine.fit(data, {
      onLog: (message) => {
        bar.log(message, io.out);
        logger.log("info", { message });
      },
      onProgress: (p) => {
        progress.push({ ...p });
        logger.progress(p);
        bar.update(p);
      },
      onEpoch: (e) => {
        logger.epoch(e);
        const head = `epoch ${e.epoch}: train loss ${e.trainLoss.toFixed(4)}, ${e.seconds.toFixed(1)} s, ` +
          `${e.sentencesPerSecond.toFixed(0)} sentences/s, ${(100 * e.padFraction).toFixed(1)}% padding${e.isBest ? " (best so far)" : ""}`;
        bar.log(e.dev ? `${head}\ndev:\n${formatReport(e.dev.report)}` : head, io.out);
      },
    });
  } finally {
    interrupt.dispose();
    bar.done();
  }
  if (history.test) say(`test:\n${formatReport(history.test.report)}`);
  if (history.stoppedEarly) say("stopped early (no improvement on dev)");
  const paths = writeRunArtifacts(out, { history, config, labels: engine.labels, progress, title: cmd.demo ? "NER demo run" : undefined });
  logger.log("end", { best: history.best, stoppedEarly: history.stoppedEarly, cancelled: history.cancelled, seconds: history.seconds });
  const signal = interrupt.received();
  if (history.cancelled) {
    const best = history.best;
    say(best ? `interrupted; ${join(out, "model")} holds the best model so far (epoch ${best.epoch}, dev ${config.training.metricForBestModel} ${best.metric.toFixed(4)})`
      : existsSync(join(out, "model")) ? `interrupted; ${join(out, "model")} is from before the interruption (no dev set: the last completed epoch)`
      : "interrupted before any epoch completed: there is no model yet");
    say(`resume with: ner-engine train --resume ${out}`);
    return signal ? EXIT_CODE[signal] : 130;
  }
  // fit() wrote OUT/model (the best epoch's weights, or the last when there is no dev set).
  say(`model saved to ${join(out, "model")}; metrics ${paths.metrics}; report ${paths.report}`);
  if (cmd.demo) {
    say("\nexample predictions:");
    const results = await predictTexts(engine, DEMO_EXAMPLES);
    results.forEach((entities, i) => {
      say(`  ${DEMO_EXAMPLES[i]}`);
      for (const ent of entities) say(`    ${ent.type.padEnd(5)} ${ent.text}  (${ent.score.toFixed(2)})`);
    });
  }
  return 0;
}

async function runEvaluate(cmd: EvaluateCommand, io: Io): Promise<number> {
  const corpus = cmd.format === "atis" ? readCorpus(cmd.data, "atis", existsSync(join(cmd.data, "seq.in")) ? {} : { split: "test" }) : readCorpus(cmd.data, cmd.format);
  const { Engine } = await loadEngineModule();
  const engine = await Engine.load(cmd.model, { device: cmd.device });
  const result = await engine.evaluate(corpus, { tagScheme: cmd.scheme });
  io.out.write(`${corpus.source}: ${corpus.sentences.length} sentences, ${(result.seconds ?? 0).toFixed(1)} s\n${formatReport(result.report)}\n`);
  for (const u of result.unseenLabels ?? []) io.err.write(`warning: label ${u.label} (${u.count}×) is not in the model's label set\n`);
  const mistakes = mistakenSentences(result.tokens, result.gold, result.pred, 20);
  if (mistakes.length > 0) io.out.write(`\nfirst ${mistakes.length} sentences with mistakes (* = wrong; columns: token gold pred):\n${formatMistakes(mistakes)}`);
  if (cmd.out) {
    const history: HistoryLike = { epochs: [], test: result, stoppedEarly: false, seconds: result.seconds ?? 0 };
    const paths = writeRunArtifacts(cmd.out, { history, config: engine.config, labels: engine.labels, title: `Evaluation of ${cmd.model}` });
    io.out.write(`metrics ${paths.metrics}; report ${paths.report}\n`);
  }
  return 0;
}

async function runPredict(cmd: PredictCommand, io: Io): Promise<number> {
  const { Engine } = await loadEngineModule();
  const { runPredictCommand } = await import("./predict-stream.js");
  return runPredictCommand(cmd, io, (dir, device) => Engine.load(dir, { device }));
}

async function runServe(cmd: ServeCommand, io: Io): Promise<number> {
  const { Engine } = await loadEngineModule();
  const { runServeCommand } = await import("./server.js");
  return runServeCommand(cmd, io, (dir, device) => Engine.load(dir, { device }), packageVersion());
}

/** Runs the CLI; returns the exit code (0 ok, 1 error). */
export async function main(argv: string[], io: Io = { out: process.stdout, err: process.stderr }): Promise<number> {
  let verbose = argv.includes("--verbose");
  try {
    const cmd = parseCliArgs(argv);
    if (cmd.command === "help" || cmd.command === "version") {
      io.out.write((cmd.command === "help" ? cmd.text : packageVersion()) + "\n");
      return 0;
    }
    verbose = cmd.verbose;
    if (cmd.command === "evaluate") return await runEvaluate(cmd, io);
    if (cmd.command === "predict") return await runPredict(cmd, io);
    if (cmd.command === "serve") return await runServe(cmd, io);
    if (cmd.command === "print-config") {
      io.out.write(JSON.stringify(buildPrintedConfig(cmd), null, 2) + "\n");
      return 0;
    }
    return await runTrain(cmd, io);
  } catch (e) {
    if (e instanceof NerEngineError) io.err.write(`error: ${e.message}\n`);
    else if (verbose) io.err.write(`error: ${(e as Error)?.stack ?? String(e)}\n`);
    else io.err.write(`error: ${(e as Error)?.message ?? String(e)}\n(run with --verbose for the stack trace)\n`);
    return 1;
  }
}

/** True when this file is the process entry point (also through npm's bin symlink). */
function isEntryPoint(): boolean {
  if (!process.argv[1]) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // `ner-engine predict ... | head`: a closed pipe ends the output, not with a crash.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}

/**
 * What the train command needs around a run besides training: the run file (`OUT/run.json`: the data
 * paths and the effective configuration, so `train --resume OUT` needs nothing else), interrupts
 * (SIGINT / SIGTERM stop after the current step and leave a resume point; a second one exits at once),
 * and the log of a resumed run (progress beyond the resume point, left by a killed process, is dropped).
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { NerEngineError } from "../errors.js";
import { writeFileAtomic } from "../model/safetensors.js";
import { LIMITS, pathExists, readBoundedFile } from "../model/bounded-read.js";
import { CONFIG_JSON, readJsonFile } from "../model/safe-json.js";
import { parseConfig, type EngineConfig } from "./config.js";

export const RUN_FILE = "run.json";

const runFileSchema = z.strictObject({
  format: z.literal(1),
  demo: z.boolean(),
  train: z.string().optional(),
  dev: z.string().optional(),
  test: z.string().optional(),
  config: z.record(z.string(), z.unknown()),
});
export type RunFile = Omit<z.output<typeof runFileSchema>, "config"> & { config: EngineConfig };

/** Writes OUT/run.json (absolute data paths, so a resume works from any directory). */
export function writeRunFile(out: string, run: Omit<RunFile, "format">): void {
  const abs = (p: string | undefined) => (p === undefined ? undefined : path.resolve(p));
  const record = { format: 1, demo: run.demo, train: abs(run.train), dev: abs(run.dev), test: abs(run.test), config: run.config };
  writeFileAtomic(path.join(out, RUN_FILE), `${JSON.stringify(record, null, 2)}\n`);
}

/** Reads a run folder's run.json, validated; the configuration is parsed again (and so checked). */
export function readRunFile(out: string): RunFile {
  const file = path.join(out, RUN_FILE);
  if (!pathExists(file)) throw new NerEngineError(`not a run folder this version can resume (${RUN_FILE} is missing)`, out);
  const json = readJsonFile(file, { maxBytes: LIMITS.smallJson, what: RUN_FILE }, { ...CONFIG_JSON, invalid: `${RUN_FILE} is not valid JSON` });
  const parsed = runFileSchema.safeParse(json);
  if (!parsed.success) throw new NerEngineError(`not a valid run file: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`, file);
  return { ...parsed.data, config: parseConfig(parsed.data.config, file) };
}

/** The run folder `train --resume` continues when none is named: --out if given, else the newest runs/run-*. */
export function defaultResumeFolder(out: string | undefined): string {
  if (out) return out;
  const runs = existsSync("runs") ? readdirSync("runs").filter((n) => n.startsWith("run-")).map((n) => path.join("runs", n)) : [];
  const resumable = runs.filter((r) => existsSync(path.join(r, RUN_FILE))).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (!resumable.length) throw new NerEngineError("--resume: no run folder given and no runs/run-* with a run.json to continue");
  return resumable[0];
}

/**
 * `--resume` may stand alone (continue the default run) or name a folder; util.parseArgs wants a value,
 * so a bare one gets "" here and is resolved by defaultResumeFolder.
 */
export function normaliseResumeFlag(args: string[]): string[] {
  return args.flatMap((a, i) => (a === "--resume" && (i + 1 >= args.length || args[i + 1].startsWith("-")) ? ["--resume="] : [a]));
}

export type Interrupt = "SIGINT" | "SIGTERM";
export const EXIT_CODE: Record<Interrupt, number> = { SIGINT: 130, SIGTERM: 143 };

/**
 * Until the returned function is called: the first SIGINT/SIGTERM calls `stop` (finish the step, write
 * the resume point), a second exits at once (every file is written atomically, so nothing is left torn).
 */
export function onInterrupt(stop: (signal: Interrupt) => void, say: (line: string) => void): { received: () => Interrupt | undefined; dispose: () => void } {
  let received: Interrupt | undefined;
  const handler = (signal: Interrupt) => () => {
    if (received) process.exit(EXIT_CODE[signal]);
    received = signal;
    say(`${signal === "SIGINT" ? "interrupt" : "SIGTERM"}: stopping after the current step and writing the resume point (${signal === "SIGINT" ? "Ctrl-C" : "SIGTERM"} again to exit now)`);
    stop(signal);
  };
  const onInt = handler("SIGINT");
  const onTerm = handler("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  return {
    received: () => received,
    dispose: () => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
    },
  };
}

/** The optimizer step OUT/last was written at (fit validates the whole resume point later). */
export function resumeStep(out: string): number {
  const file = path.join(out, "last", "trainer_state.json");
  if (!pathExists(file)) throw new NerEngineError("there is no resume point to continue from (last/trainer_state.json is missing)", out);
  let json: unknown;
  try {
    json = readJsonFile(file, { maxBytes: LIMITS.smallJson, what: "trainer_state.json" });
  } catch (e) {
    // Unreadable (not a regular file, too big, ...) is said now; bad JSON is reported with its cause when fit() reads it.
    if (!(e instanceof NerEngineError) || !/not valid JSON/.test(e.message)) throw e;
  }
  const step = (json as { trainer?: { step?: unknown } } | undefined)?.trainer?.step;
  if (typeof step === "number" && Number.isSafeInteger(step) && step >= 0) return step;
  throw new NerEngineError("not a valid resume record (trainer.step)", file);
}

/** log.jsonl's progress events up to `step` (what the resume point covers); later ones are dropped from the file. */
export function trimLogToStep(logFile: string, step: number): Record<string, unknown>[] {
  if (!pathExists(logFile)) return [];
  const kept: string[] = [];
  const progress: Record<string, unknown>[] = [];
  // Decoded leniently: a kill may have torn the last line inside a UTF-8 sequence.
  for (const line of readBoundedFile(logFile, { maxBytes: LIMITS.text, what: "log.jsonl" }).toString("utf8").split("\n")) {
    if (!line.trim()) continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line);
    } catch {
      continue;  // a line torn by a kill
    }
    if (entry.event === "progress" && typeof entry.step === "number") {
      if (entry.step > step) continue;
      progress.push(entry);
    }
    kept.push(line);
  }
  writeFileAtomic(logFile, kept.length ? `${kept.join("\n")}\n` : "");
  return progress;
}

/**
 * The resume point (`<run>/last/`): everything needed to continue a run at the exact step it stopped.
 *   - the model as a normal checkpoint folder (config.json, model.safetensors, tokenizer files);
 *   - trainer_state.safetensors: the optimizer's moments and step counts (plain tensors);
 *   - trainer_state.json: where training is (step, epoch, batch, dropout stream, partial sums), the run's
 *     history (epochs, best, early-stopping counter), the training options, and a manifest with the size
 *     and SHA-256 of every other file, so a folder that is not whole is refused rather than half-used.
 * Nothing in it is code or a pickle: it is read as JSON and safetensors, and every value is validated.
 * The folder is replaced in one step (atomic-dir.ts).
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { NerEngineError } from "../errors.js";
import { writeNewFile } from "../model/atomic-dir.js";
import { readSafetensorsFile, serializeSafetensors, type TensorToWrite } from "../model/safetensors.js";
import { readCheckpoint } from "../model/checkpoint.js";
import { LIMITS, pathExists, readBoundedFile } from "../model/bounded-read.js";
import { readJsonFile } from "../model/safe-json.js";
import { labelList } from "../model/encoder-config.js";
import type { NativeTagger, NativeTrainerState, NativeTrainOptions, NativeWeightEntry } from "../model/native.js";
import type { Tagger, WeightArrays } from "../model/tagger.js";
import type { EvaluationResult, TrainingHistory } from "./results.js";

export const RESUME_FORMAT = 1;
const STATE_JSON = "trainer_state.json";
const STATE_TENSORS = "trainer_state.safetensors";

const count = () => z.number().int().min(0);
const finite = () => z.number().finite();

const epochRecordSchema = z.object({
  epoch: count(),
  trainLoss: finite(),
  seconds: finite(),
  sentencesPerSecond: finite(),
  tokensPerSecond: finite(),
  padFraction: finite(),
  phaseSeconds: z.object({ batch: finite(), forward: finite(), backward: finite(), optimizer: finite() }),
  isBest: z.boolean(),
  /** The dev scores of the epoch (reports only; the sentences are not kept). */
  dev: z.record(z.string(), z.unknown()).optional(),
});

const recordSchema = z.strictObject({
  format: z.literal(RESUME_FORMAT),
  trainer: z.strictObject({
    step: count(),
    epoch: z.number().int().min(-1),
    nextBatch: count(),
    dropoutState: z.string().regex(/^[0-9]{1,20}$/),
    summary: z.strictObject({ steps: count(), sentences: count(), tokens: count(), paddedTokens: count(), lossSum: finite(), seconds: finite() }),
    window: z.strictObject({ loss: finite(), batches: count(), tokens: count(), sentences: count() }),
    dataFingerprint: z.string().regex(/^[0-9a-f]{16}$/),
  }),
  history: z.strictObject({
    epochs: z.array(epochRecordSchema),
    best: z.strictObject({ epoch: count(), metric: finite() }).nullable(),
    sinceBest: count(),
    /** SHA-256 of the best epoch's model.safetensors in the run's model/ folder (to restore it at the end). */
    bestWeightsSha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  }),
  /** The training options the state belongs to (compared on resume). */
  options: z.record(z.string(), z.unknown()),
  files: z.record(z.string(), z.strictObject({ bytes: count(), sha256: z.string().regex(/^[0-9a-f]{64}$/) })),
});
export type ResumeRecord = z.output<typeof recordSchema>;
export type ResumeHistory = ResumeRecord["history"];

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Writes the resume point as folder `dir`, replacing the previous one in one step. */
export async function writeResumePoint(
  dir: string,
  tagger: Tagger,
  weights: WeightArrays,
  history: ResumeHistory,
  options: Record<string, unknown>,
  extraFiles: Record<string, string> = {},
): Promise<void> {
  const trainer = tagger.native.saveTrainerState();
  const tensors: TensorToWrite[] = trainer.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: t.data }));
  const stateBytes = serializeSafetensors(tensors);
  await tagger.save(dir, {
    weights,
    extraFiles: { [STATE_TENSORS]: stateBytes, ...extraFiles },
    // Written last, inside the new folder: the manifest of everything else in it.
    finish: (tmp) => {
      const files: ResumeRecord["files"] = {};
      for (const name of fs.readdirSync(tmp)) {
        const bytes = fs.readFileSync(path.join(tmp, name));
        files[name] = { bytes: bytes.byteLength, sha256: sha256(bytes) };
      }
      const record: ResumeRecord = { format: RESUME_FORMAT, trainer: trainer.state, history, options, files };
      writeNewFile(path.join(tmp, STATE_JSON), `${JSON.stringify(record, null, 2)}\n`);
    },
  });
}

/** A validated resume point: the record, and the optimizer tensors as views for loadTrainerState. */
export interface ResumePoint {
  dir: string;
  record: ResumeRecord;
  tensorBytes: Uint8Array;
  tensorEntries: NativeWeightEntry[];
}

/**
 * Reads and checks a resume point: the record's schema, then every file against the manifest (size
 * and hash), then the tensor file. Anything off is an error naming the file and what is wrong.
 */
export function readResumePoint(dir: string): ResumePoint {
  const statePath = path.join(dir, STATE_JSON);
  if (!pathExists(statePath)) {
    const legacy = pathExists(path.join(dir, "trainer_state.pt"));
    throw new NerEngineError(
      legacy
        ? "this resume point was written by an earlier release (trainer_state.pt, a TorchScript archive, which is never loaded: it could run code); start the run again"
        : `not a resume point (${STATE_JSON} is missing)`,
      dir,
    );
  }
  // Bounded; no duplicate keys, no deep nesting. Prototype keys are not refused here: the dev reports
  // are keyed by entity type, which may be any name; the schema below drops nothing silently.
  const json = readJsonFile(statePath, { maxBytes: LIMITS.smallJson, what: STATE_JSON }, { invalid: `${STATE_JSON} is not valid JSON` });
  const parsed = recordSchema.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 8).map((i) => `${i.path.map(String).join(".") || "(root)"}: ${i.message}`);
    throw new NerEngineError(`not a valid resume record:\n  ${lines.join("\n  ")}`, statePath);
  }
  const record = parsed.data;
  for (const [name, expected] of Object.entries(record.files)) {
    if (name !== path.basename(name)) throw new NerEngineError(`manifest entry ${JSON.stringify(name)} is not a file name`, statePath);
    const file = path.join(dir, name);
    const notWhole = (why: string) => new NerEngineError(`the resume point is not whole: ${name} is missing or unreadable (${why})`, dir);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(file);
    } catch (e) {
      throw notWhole((e as NodeJS.ErrnoException).code ?? "unreadable");
    }
    if (!st.isFile()) throw notWhole("not a regular file");
    // Never read more than the manifest says: a file of another size is refused unread.
    if (st.size !== expected.bytes) {
      throw new NerEngineError(`the resume point is not whole: ${name} does not match its manifest (${st.size} bytes, expected ${expected.bytes})`, dir);
    }
    let bytes: Buffer;
    try {
      bytes = readBoundedFile(file, { maxBytes: expected.bytes, what: name });
    } catch (e) {
      throw notWhole((e as Error).message.replace(`${file}: `, ""));
    }
    if (bytes.byteLength !== expected.bytes || sha256(bytes) !== expected.sha256) {
      throw new NerEngineError(`the resume point is not whole: ${name} does not match its manifest (${bytes.byteLength} bytes, expected ${expected.bytes})`, dir);
    }
  }
  const tensorsPath = path.join(dir, STATE_TENSORS);
  const file = readSafetensorsFile(tensorsPath);
  const tensorEntries = [...file.tensors.values()].map((t) => ({
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
    byteOffset: t.data.byteOffset - file.bytes.byteOffset,
    byteLength: t.data.byteLength,
  }));
  return { dir, record, tensorBytes: file.bytes, tensorEntries };
}

/** Puts the trainer where the resume point says (after the weights are loaded); native checks every value. */
export function applyTrainerState(native: NativeTagger, point: ResumePoint): void {
  try {
    native.loadTrainerState(point.tensorBytes, point.tensorEntries, point.record.trainer as NativeTrainerState);
  } catch (e) {
    throw new NerEngineError((e as Error).message, point.dir);
  }
}

/** The option values that differ between a resume point and this run, as "key: saved -> now". */
export function optionDifferences(saved: Record<string, unknown>, now: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(saved), ...Object.keys(now)]);
  return [...keys].filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(now[k])).map((k) => `${k}: ${JSON.stringify(saved[k])} -> ${JSON.stringify(now[k])}`);
}

// ---- a run's resume points, as Engine.fit uses them ----

/** What fit() tracks across epochs besides the history. */
export interface RunState {
  /** The best epoch's weights, kept in memory (not after a resume: then model/ holds them). */
  bestWeights: WeightArrays | undefined;
  sinceBest: number;
  bestWeightsSha256: string | null;
}

export function fileSha256(file: string): string {
  return sha256(readBoundedFile(file, { maxBytes: LIMITS.safetensors, what: path.basename(file) }));
}

/** Writes `<output>/last`: the weights now, the optimizer and position, and the run's history. */
export async function saveRunResumePoint(output: string, tagger: Tagger, history: TrainingHistory, run: RunState, options: NativeTrainOptions, weights?: WeightArrays): Promise<void> {
  const record: ResumeHistory = {
    epochs: history.epochs.map(({ dev, ...rest }) => ({ ...rest, ...(dev ? { dev: { report: dev.report, tagReport: dev.tagReport, seconds: dev.seconds, sentencesPerSecond: dev.sentencesPerSecond, unseenLabels: dev.unseenLabels } } : {}) })),
    best: history.best ?? null,
    sinceBest: run.sinceBest,
    bestWeightsSha256: run.bestWeightsSha256,
  };
  await writeResumePoint(path.join(output, "last"), tagger, weights ?? (await tagger.exportWeights()), record, { ...options });
}

/**
 * Continues a run from its resume point: the weights, the optimizer, the position inside the epoch and
 * the history, after checking that it belongs to this model, these options and this data. Returns the
 * epoch to continue with.
 */
export async function resumeRun(
from: string,
tagger: Tagger,
options: NativeTrainOptions,
history: TrainingHistory,
run: RunState,
onLog?: (message: string) => void,
): Promise<[number, number]> {
  const dir = pathExists(path.join(from, "last", "trainer_state.json")) || pathExists(path.join(from, "last", "trainer_state.pt")) ? path.join(from, "last") : from;
  const point = readResumePoint(dir);
  const saved = point.record;
  const differences = optionDifferences(saved.options, { ...options });
  if (differences.length) throw new NerEngineError(`the resume point was written with other training options:\n  ${differences.join("\n  ")}`, dir);
  const checkpoint = readCheckpoint(dir);
  // The optimizer's moments are row-ordered, so a resume point must have exactly this model's labels.
  const labels = labelList(checkpoint.config);
  if (labels.join("\u0000") !== tagger.labels.join("\u0000")) {
    throw new NerEngineError(`the resume point's labels (${labels.join(", ")}) are not this model's (${tagger.labels.join(", ")})`, dir);
  }
  await tagger.loadCheckpoint(checkpoint, { complete: true });
  applyTrainerState(tagger.native, point);
  const h = saved.history;
  history.epochs = h.epochs.map((e) => ({ ...e, dev: e.dev ? ({ tokens: [], gold: [], pred: [], ...e.dev } as unknown as EvaluationResult) : undefined }));
  history.best = h.best ?? undefined;
  run.sinceBest = h.sinceBest;
  run.bestWeightsSha256 = h.bestWeightsSha256;
  const t = saved.trainer;
  const epochDone = history.epochs.some((e) => e.epoch === t.epoch);
  onLog?.(`resuming from ${dir} at step ${t.step} (epoch ${t.epoch + 1}${epochDone ? ", done" : `, batch ${t.nextBatch}`})`);
  return [epochDone ? t.epoch + 1 : Math.max(0, t.epoch), t.step];
}

/** Puts the best epoch's weights back: from memory, or, after a resume, from the run's model/ folder. */
export async function restoreBest(tagger: Tagger, run: RunState, output: string | undefined): Promise<void> {
  if (run.bestWeights) return tagger.restoreWeights(run.bestWeights);
  if (!output) return;
  const dir = path.join(output, "model");
  const sha = pathExists(path.join(dir, "model.safetensors")) ? fileSha256(path.join(dir, "model.safetensors")) : null;
  if (!run.bestWeightsSha256 || sha !== run.bestWeightsSha256) {
    throw new NerEngineError("the best epoch's weights are gone: model/ no longer holds the model the resume point names", dir);
  }
  await tagger.loadCheckpoint(readCheckpoint(dir), { complete: true });
}

// The train command interrupted with SIGINT / SIGTERM in the middle of an epoch, then `train --resume`:
// the resumed run ends on the weights of an uninterrupted one and logs the same per-step losses. Runs the
// built CLI (dist/, made by `npm ci` / `npm run build:ts`) in child processes, on generated data.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { demoCorpus } from "../src/app/demo.js";
import { readCheckpoint } from "../src/model/checkpoint.js";
import { toFloat32 } from "../src/model/safetensors.js";
import type { Corpus } from "../src/data/types.js";

const CLI = path.resolve(import.meta.dirname, "../dist/app/cli.js");
const work = mkdtempSync(path.join(tmpdir(), "ner-resume-cli-"));

function writeConll(corpus: Corpus, n: number, file: string): string {
  writeFileSync(file, corpus.sentences.slice(0, n).map((s) => s.tokens.map((t, i) => `${t} ${s.tags[i]}`).join("\n")).join("\n\n") + "\n");
  return file;
}
const demo = demoCorpus();
const train = writeConll(demo.train, 320, path.join(work, "train.txt")); // 40 steps an epoch: room to interrupt mid-epoch
const dev = writeConll(demo.dev, 30, path.join(work, "dev.txt"));
const config = path.join(work, "config.json");
writeFileSync(config, JSON.stringify({
  scratch: { hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 64, maxPositionEmbeddings: 64 },
  data: { maxLength: 64 },
  training: { epochs: 2, batchSize: 8, learningRate: 1e-3, progressEvery: 1, seed: 7 },
}));

/** Runs the CLI; `interruptAfter(line)` may return a signal to send once a log line is seen. */
function runCli(args: string[], interrupt?: { signal: NodeJS.Signals; when: (logLines: unknown[]) => boolean; log: string }) {
  return new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1" } });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    let sent = false;
    const timer = interrupt
      ? setInterval(() => {
          if (sent || !existsSync(interrupt.log)) return;
          const lines = readFileSync(interrupt.log, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
          if (interrupt.when(lines)) {
            sent = true;
            child.kill(interrupt.signal);
          }
        }, 20)
      : undefined;
    child.on("close", (code) => {
      if (timer) clearInterval(timer);
      resolve({ code, out });
    });
  });
}

const progressOf = (out: string) =>
  readFileSync(path.join(out, "log.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.event === "progress").map((e) => [e.step, e.loss]);

function maxWeightDiff(a: string, b: string): number {
  const wa = readCheckpoint(a).weights, wb = readCheckpoint(b).weights;
  let max = 0;
  for (const [name, view] of wa) {
    const x = toFloat32(view), y = toFloat32(wb.get(name)!);
    for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i] - y[i]));
  }
  return max;
}

describe.skipIf(!existsSync(CLI))(`train interrupted and resumed (needs ${CLI}: npm run build:ts)`, () => {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    it(`${signal} in epoch 2 after 5 steps, then --resume: exit ${signal === "SIGINT" ? 130 : 143}, model/ = epoch 1's, and the resumed run equals an uninterrupted one`, async () => {
      const full = path.join(work, `full-${signal}`);
      const cut = path.join(work, `cut-${signal}`);
      const args = (out: string) => ["train", "--train", train, "--dev", dev, "--config", config, "--out", out, "--device", "cpu"];
      expect((await runCli(args(full))).code).toBe(0);
      const stepsPerEpoch = progressOf(full).length / 2;

      const log = path.join(cut, "log.jsonl");
      const interrupted = await runCli(args(cut), { signal, log, when: (lines) => lines.filter((l) => (l as { event: string }).event === "progress").length >= stepsPerEpoch + 5 });
      expect(interrupted.code, interrupted.out).toBe(signal === "SIGINT" ? 130 : 143);
      expect(interrupted.out).toContain(`resume with: ner-engine train --resume ${cut}`);
      expect(interrupted.out).toContain("holds the best model so far (epoch 0");
      const stepsDone = progressOf(cut).length;
      expect(stepsDone).toBeGreaterThan(stepsPerEpoch + 4);
      expect(stepsDone).toBeLessThan(2 * stepsPerEpoch);
      // model/ is the first epoch's (the only one completed), as the uninterrupted run's was then.
      expect(JSON.parse(readFileSync(path.join(cut, "last", "trainer_state.json"), "utf8")).history.best.epoch).toBe(0);

      const resumed = await runCli(["train", "--resume", cut, "--device", "cpu"]);
      expect(resumed.code, resumed.out).toBe(0);
      expect(progressOf(cut)).toEqual(progressOf(full));
      expect(maxWeightDiff(path.join(cut, "last"), path.join(full, "last"))).toBeLessThanOrEqual(1e-6);
      expect(maxWeightDiff(path.join(cut, "model"), path.join(full, "model"))).toBeLessThanOrEqual(1e-6);
      const metrics = (dir: string) => JSON.parse(readFileSync(path.join(dir, "metrics.json"), "utf8"));
      expect(metrics(cut).epochs.map((e: { epoch: number }) => e.epoch)).toEqual([0, 1]);
      expect(metrics(cut).best).toEqual(metrics(full).best);
    }, 240_000);
  }

  it("SIGINT in the first epoch: no model/ yet, said so; the resumed run still equals the uninterrupted one", async () => {
    const full = path.join(work, "full-SIGINT");  // from the test above
    const cut = path.join(work, "cut-early");
    const interrupted = await runCli(["train", "--train", train, "--dev", dev, "--config", config, "--out", cut, "--device", "cpu"], {
      signal: "SIGINT",
      log: path.join(cut, "log.jsonl"),
      when: (lines) => lines.filter((l) => (l as { event: string }).event === "progress").length >= 5,
    });
    expect(interrupted.code, interrupted.out).toBe(130);
    expect(interrupted.out).toContain("interrupted before any epoch completed: there is no model yet");
    expect(existsSync(path.join(cut, "model"))).toBe(false);
    const resumed = await runCli(["train", "--resume", cut]);
    expect(resumed.code, resumed.out).toBe(0);
    expect(progressOf(cut)).toEqual(progressOf(full));
    expect(maxWeightDiff(path.join(cut, "model"), path.join(full, "model"))).toBeLessThanOrEqual(1e-6);
  }, 240_000);

  it("--resume refuses flags that would change the run, and a folder that is not a run", async () => {
    const refused = await runCli(["train", "--resume", work, "--epochs", "5"]);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain("drop --epochs");
    const notRun = await runCli(["train", "--resume", work]);
    expect(notRun.code).toBe(1);
    expect(notRun.out).toContain("run.json is missing");
  });
});

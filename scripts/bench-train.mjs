// Training throughput on CoNLL-2003 for a BERT-mini shape (4 layers, hidden 256, 4 heads, FFN 1024),
// one run per head, in this one command; prints real (non-pad) tokens/s, sentences/s and each head's
// step cost as a ratio to the softmax head measured in the same run. Each head runs in a child process
// of its own: a process that has already trained another model runs measurably slower (heap state),
// which would bias the comparison towards whichever head goes first.
//   node scripts/bench-train.mjs [--steps 150] [--heads softmax,crf,bilstm-crf,bilstm-attn-crf] [--json out.json]
// Needs `npm run build` first (it imports dist/).
import os from "node:os";
import path from "node:path";
import { writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { Engine } from "../dist/engine.js";
import { readConll } from "../dist/readers.js";

const { values } = parseArgs({
  options: {
    steps: { type: "string", default: "150" },
    heads: { type: "string", default: "softmax,crf,bilstm-crf,bilstm-attn-crf" },
    "batch-size": { type: "string", default: "32" },
    json: { type: "string" },
    device: { type: "string", default: "auto" },
    hidden: { type: "string", default: "256" },
    layers: { type: "string", default: "4" },
    child: { type: "boolean", default: false },
  },
});
const shared = path.resolve(import.meta.dirname, "../../shared");
const train = readConll(path.join(shared, "data/conll2003/train.txt"));
const steps = Number(values.steps);
const hidden = Number(values.hidden);
const results = [];

async function measure(head) {
  const engine = new Engine({
    tokenizer: path.join(shared, "tokenizers/bert-base-uncased"),
    device: values.device,
    scratch: { hiddenSize: hidden, numHiddenLayers: Number(values.layers), numAttentionHeads: hidden / 64, intermediateSize: hidden * 4, maxPositionEmbeddings: 512 },
    head: { kind: head },
    data: { maxLength: 128 },
    training: { epochs: 1, batchSize: Number(values["batch-size"]), maxSteps: steps + 10, progressEvery: 10, seed: 1 },
  });
  const progress = [];
  const history = await engine.fit({ train }, { onProgress: (p) => progress.push(p) });
  // The first report covers warm-up (allocator, first kernels): leave it out.
  const measured = progress.slice(1);
  const seconds = measured.reduce((s, p) => s + 10 / (p.sentencesPerSecond / Number(values["batch-size"])), 0);
  const sentences = measured.length * 10 * Number(values["batch-size"]);
  const tokens = measured.reduce((s, p) => s + p.tokensPerSecond * (10 / (p.sentencesPerSecond / Number(values["batch-size"]))), 0);
  const row = {
    head,
    steps: measured.length * 10,
    sentencesPerSecond: sentences / seconds,
    tokensPerSecond: tokens / seconds,
    msPerStep: (1000 * seconds) / (measured.length * 10),
    finalLoss: progress.at(-1).loss,
    device: engine.device,
    epochSeconds: history.epochs[0]?.seconds,
  };
  return row;
}

if (values.child) {
  process.stdout.write(JSON.stringify(await measure(values.heads)));
  process.exit(0);
}
for (const head of values.heads.split(",")) {
  const args = process.argv.slice(2).filter((a, i, all) => a !== "--heads" && all[i - 1] !== "--heads" && !a.startsWith("--json") && all[i - 1] !== "--json");
  const row = JSON.parse(execFileSync(process.execPath, [import.meta.filename, ...args, "--heads", head, "--child"], { encoding: "utf8", maxBuffer: 1 << 26 }));
  results.push(row);
  console.log(`${head.padEnd(16)} ${row.sentencesPerSecond.toFixed(1).padStart(8)} sent/s ${row.tokensPerSecond.toFixed(0).padStart(8)} tok/s ${row.msPerStep.toFixed(1).padStart(8)} ms/step  (loss ${row.finalLoss.toFixed(3)})`);
}
const softmax = results.find((r) => r.head === "softmax");
if (softmax) {
  console.log("\nstep time as a ratio to the softmax head (same run):");
  for (const r of results) console.log(`  ${r.head.padEnd(16)} ${(r.msPerStep / softmax.msPerStep).toFixed(3)}x`);
}
const machine = { cpu: os.cpus()[0]?.model, cores: os.cpus().length, threads: process.env.OMP_NUM_THREADS ?? "default", node: process.version };
console.log(`\nmachine: ${machine.cpu}, ${machine.cores} cores; batch ${values["batch-size"]}, ${steps} measured steps per head, hidden ${hidden}`);
if (values.json) writeFileSync(values.json, JSON.stringify({ machine, results }, null, 2));

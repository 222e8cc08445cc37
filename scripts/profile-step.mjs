// Where a training step's time goes: trains --steps steps of one head (BERT-mini shape, CoNLL-2003
// train, batch 32, max length 128) under LibTorch's profiler (NER_PROFILE, native/trainer.cpp), then
// sums each op's self time (its time minus that of the ops it called) into categories: GEMMs, attention
// softmax, layer norm, GELU, dropout, embedding backward, cross-entropy, CRF, LSTM, optimizer, other.
//   node scripts/profile-step.mjs [--head softmax] [--steps 30] [--top 25]
// The profiler adds overhead per op, so the shares matter, not the absolute milliseconds; run it with
// OMP_NUM_THREADS=1 to see the single-thread picture. Needs `npm run build` first.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    head: { type: "string", default: "softmax" },
    steps: { type: "string", default: "30" },
    top: { type: "string", default: "25" },
    child: { type: "string" },
  },
});

if (values.child) {
  const { Engine } = await import("../dist/app/engine.js");
  const { readConll } = await import("../dist/data/readers.js");
  const shared = path.resolve(import.meta.dirname, "../../shared");
  const engine = new Engine({
    tokenizer: path.join(shared, "tokenizers/bert-base-uncased"),
    scratch: { hiddenSize: 256, numHiddenLayers: 4, numAttentionHeads: 4, intermediateSize: 1024 },
    head: { kind: values.head },
    data: { maxLength: 128 },
    training: { epochs: 1, batchSize: 32, maxSteps: Number(values.steps), progressEvery: 10, seed: 1 },
  });
  const history = await engine.fit({ train: readConll(path.join(shared, "data/conll2003/train.txt")) });
  const e = history.epochs[0];
  process.stdout.write(JSON.stringify({ seconds: e.seconds, steps: Number(values.steps), padFraction: e.padFraction, phases: e.phaseSeconds }));
  process.exit(0);
}

const dir = mkdtempSync(path.join(os.tmpdir(), "ner-profile-"));
const trace = path.join(dir, "trace.json");
const summary = JSON.parse(
  execFileSync(process.execPath, [import.meta.filename, "--child", "1", "--head", values.head, "--steps", values.steps], {
    encoding: "utf8",
    env: { ...process.env, NER_PROFILE: trace },
    maxBuffer: 1 << 26,
  }),
);
const events = JSON.parse(readFileSync(trace, "utf8")).filter((e) => e.ph === "X");
rmSync(dir, { recursive: true, force: true });

// Category of an op from its own name, or from the nearest enclosing op that has one (a dropout's
// bernoulli_/mul count as dropout; a backward node's ops count as that node's category).
const rules = [
  [/ner::optimizer/, "optimizer (clip + AdamW + guard)"],
  [/Dropout|aten::dropout|bernoulli/i, "dropout"],
  [/EmbeddingBackward|embedding_dense_backward|aten::embedding/, "embedding (+ backward)"],
  [/layer_norm|LayerNorm/i, "layer norm"],
  [/gelu/i, "GELU"],
  [/softmax_backward|_softmax|SoftmaxBackward/, "attention softmax"],
  [/nll_loss|log_softmax|LogSoftmax|NllLoss|cross_entropy/i, "cross-entropy"],
  [/crf|Crf|logsumexp/i, "CRF"],
  [/lstm|LSTM|Rnn|rnn/, "LSTM"],
  [/aten::(addmm|mm|bmm|baddbmm)$|MmBackward|AddmmBackward|BmmBackward/, "GEMM"],
];
const categoryOf = (name) => rules.find(([re]) => re.test(name))?.[1];

const byThread = new Map();
for (const e of events) {
  if (!byThread.has(e.tid)) byThread.set(e.tid, []);
  byThread.get(e.tid).push(e);
}
const selfByOp = new Map();
const selfByCategory = new Map();
let total = 0;
for (const list of byThread.values()) {
  list.sort((a, b) => a.ts - b.ts || b.dur - a.dur);
  const stack = [];
  const finish = (e) => {
    const self = e.dur - e.childTime;
    selfByOp.set(e.name, (selfByOp.get(e.name) ?? 0) + self);
    const category = [e, ...stack.slice().reverse()].map((x) => categoryOf(x.name)).find(Boolean) ??
      (stack.some((x) => x.name === "ner::backward") ? "other (backward)" : "other (forward)");
    selfByCategory.set(category, (selfByCategory.get(category) ?? 0) + self);
    total += self;
  };
  for (const e of list) {
    e.childTime = 0;
    while (stack.length && stack.at(-1).ts + stack.at(-1).dur <= e.ts) finish(stack.pop());
    if (stack.length) stack.at(-1).childTime += e.dur;
    stack.push(e);
  }
  while (stack.length) finish(stack.pop());
}
const ms = (us) => (us / 1000 / Number(values.steps)).toFixed(1).padStart(8);
const pct = (us) => ((100 * us) / total).toFixed(1).padStart(5) + "%";
console.log(`head ${values.head}, ${values.steps} steps, threads ${process.env.OMP_NUM_THREADS ?? "default"}, ` +
  `OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? "(unset)"}; padding ${(100 * summary.padFraction).toFixed(1)}%`);
const p = summary.phases;
const stepMs = (s) => ((1000 * s) / summary.steps).toFixed(1);
console.log(`phases per step (wall, profiler on): forward ${stepMs(p.forward)} ms, backward ${stepMs(p.backward)} ms, ` +
  `optimizer ${stepMs(p.optimizer)} ms, batching ${stepMs(p.batch)} ms`);
console.log("\nself time by category (ms/step, share of profiled time):");
for (const [name, us] of [...selfByCategory].sort((a, b) => b[1] - a[1])) console.log(`  ${name.padEnd(34)} ${ms(us)} ${pct(us)}`);
console.log(`\ntop ${values.top} ops by self time:`);
for (const [name, us] of [...selfByOp].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top)))
  console.log(`  ${name.slice(0, 60).padEnd(60)} ${ms(us)} ${pct(us)}`);

// CPU training and inference throughput, ner-engine against HuggingFace transformers, in one command.
// Same data (CoNLL-2003 train; test for inference), same shape (BERT-mini: 4 layers, hidden 256, 4 heads,
// FFN 1024, random init, bert-base-uncased vocabulary), batch 32, max length 128, first sub-token labelled.
// Every run is a child process of its own (a process that has trained before runs measurably slower), the
// runs of a round go in turn (reversed every other round, against drift), and each figure and ratio is
// the median over the rounds; the ratios are taken within a round.
//
//   node scripts/bench-train.mjs [--rounds 3] [--steps 60] [--warmup 10] [--heads softmax,crf,bilstm-crf]
//                                [--no-infer] [--no-threads] [--json out.json]
//
// HF runs scripts/bench_hf_cpu.py (the loop Trainer runs, by hand: Trainer needs accelerate) with the kit
// of ../shared/hf-baseline/README.md, found at $HF_BASELINE (default ~/hf-baseline); without it the
// benchmark says so and prints no ratios. Needs `npm run build` first.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    steps: { type: "string", default: "60" },
    warmup: { type: "string", default: "10" },
    heads: { type: "string", default: "softmax,crf,bilstm-crf" },
    "no-infer": { type: "boolean", default: false },
    "no-threads": { type: "boolean", default: false },
    json: { type: "string" },
    child: { type: "string" }, // internal: one ner-engine run, "train:<head>" or "infer:<head>"
  },
});
const root = path.resolve(import.meta.dirname, "..");
const shared = process.env.NER_SHARED ?? path.resolve(root, "../shared");
const steps = Number(values.steps), warmup = Number(values.warmup), batch = 32;

if (values.child) {
  const [mode, head] = values.child.split(":");
  const { Engine } = await import("../dist/app/engine.js");
  const { readConll } = await import("../dist/data/readers.js");
  const { runtimeInfo } = await import("../dist/index.js");
  const train = readConll(path.join(shared, "data/conll2003/train.txt"));
  const engine = new Engine({
    tokenizer: path.join(shared, "tokenizers/bert-base-uncased"),
    device: "cpu",
    scratch: { hiddenSize: 256, numHiddenLayers: 4, numAttentionHeads: 4, intermediateSize: 1024, maxPositionEmbeddings: 512 },
    head: { kind: head },
    data: { maxLength: 128 },
    training: { epochs: 1, batchSize: batch, maxSteps: mode === "train" ? warmup + steps : 1, progressEvery: warmup, seed: 1 },
  });
  const windows = [];
  const history = await engine.fit({ train }, { onProgress: (p) => windows.push(p) });
  const info = runtimeInfo();
  const base = { threads: info.threads, blas: info.blas.provider, blasThreads: info.blas.threads };
  if (mode === "train") {
    // Progress windows of `warmup` steps; the first is the warm-up (allocator, first kernels).
    const measured = windows.slice(1);
    const seconds = measured.reduce((s, p) => s + (warmup * batch) / p.sentencesPerSecond, 0);
    const tokens = measured.reduce((s, p) => s + p.tokensPerSecond * ((warmup * batch) / p.sentencesPerSecond), 0);
    const sentences = measured.length * warmup * batch;
    process.stdout.write(JSON.stringify({
      ...base, sentencesPerSecond: sentences / seconds, tokensPerSecond: tokens / seconds, msPerStep: (1000 * seconds) / (measured.length * warmup),
      padFraction: history.epochs[0].padFraction, peakRssBytes: process.resourceUsage().maxRSS * 1024, finalLoss: windows.at(-1).loss,
    }));
  } else {
    const test = readConll(path.join(shared, "data/conll2003/test.txt"));
    const result = await engine.evaluate(test); // tokenisation, forward, decoding and metrics all counted
    process.stdout.write(JSON.stringify({ ...base, sentencesPerSecond: result.sentencesPerSecond, peakRssBytes: process.resourceUsage().maxRSS * 1024 }));
  }
  process.exit(0);
}

// ---- the driver ----
const kit = process.env.HF_BASELINE ?? path.join(os.homedir(), "hf-baseline");
const python = process.env.HF_PYTHON ?? "/usr/bin/python3";
const haveHf = existsSync(path.join(kit, "src/transformers")) && existsSync(python);
const cores = os.availableParallelism();
const cache = mkdtempSync(path.join(os.tmpdir(), "bench-hf-"));
const heads = values.heads.split(",");

const runs = [];
const ours = (name, child, env = {}) => runs.push({ name, tool: "ner-engine", child, env });
const hf = (name, args) => haveHf && runs.push({ name, tool: "hf", args });
hf("hf softmax random", ["--variant", "softmax", "--order", "random"]);
hf("hf softmax grouped", ["--variant", "softmax", "--order", "grouped"]);
hf(`hf softmax grouped ${cores}t`, ["--variant", "softmax", "--order", "grouped", "--threads", String(cores)]);
if (heads.some((h) => h.startsWith("bilstm"))) hf("hf bilstm-crf grouped", ["--variant", "bilstm-crf", "--order", "grouped"]);
for (const head of heads) ours(`ours ${head}`, `train:${head}`);
if (!values["no-threads"]) {
  ours("ours softmax 1t", "train:softmax", { OMP_NUM_THREADS: "1" });
  ours(`ours softmax ${cores}t`, "train:softmax", { OMP_NUM_THREADS: String(cores) });
}
if (!values["no-infer"]) {
  hf("hf softmax infer", ["--variant", "softmax", "--infer"]);
  hf(`hf softmax infer ${cores}t`, ["--variant", "softmax", "--infer", "--threads", String(cores)]);
  if (heads.includes("bilstm-crf")) hf("hf bilstm-crf infer", ["--variant", "bilstm-crf", "--infer"]);
  ours("ours softmax infer", "infer:softmax");
  if (!values["no-threads"]) ours("ours softmax infer 1t", "infer:softmax", { OMP_NUM_THREADS: "1" });
  if (heads.includes("bilstm-crf")) ours("ours bilstm-crf infer", "infer:bilstm-crf");
}

function runOnce(run) {
  const common = { encoding: "utf8", maxBuffer: 1 << 26, stdio: ["ignore", "pipe", "pipe"] };
  const out = run.tool === "hf"
    ? execFileSync(python, [path.join(root, "scripts/bench_hf_cpu.py"), ...run.args, "--steps", String(steps), "--warmup", String(warmup), "--cache", cache],
      { ...common, env: { ...process.env, PYTHONPATH: `${kit}/src:${kit}/site` } })
    : execFileSync(process.execPath, [import.meta.filename, "--child", run.child, "--steps", String(steps), "--warmup", String(warmup)],
      { ...common, env: { ...process.env, ...run.env } });
  const r = JSON.parse(out.trim().split("\n").at(-1));
  if (r.sentencesPerSecond === undefined) throw new Error(`${run.name}: no figure in ${out}`);
  return r;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const rounds = Number(values.rounds);
const results = Object.fromEntries(runs.map((r) => [r.name, []]));
console.log(`${runs.length} runs x ${rounds} rounds; ${steps} measured steps after ${warmup} warm-up steps; batch ${batch}, max length 128, BERT-mini`);
if (!haveHf) console.log(`HF baseline missing (no kit at ${kit}; set HF_BASELINE, see ${path.join(shared, "hf-baseline/README.md")}): ner-engine figures only, no ratios`);
for (let round = 0; round < rounds; round++) {
  const order = round % 2 ? [...runs].reverse() : runs;
  for (const run of order) {
    const r = runOnce(run);
    results[run.name][round] = r;
    console.log(`  round ${round + 1}  ${run.name.padEnd(26)} ${r.sentencesPerSecond.toFixed(1).padStart(7)} sent/s` +
      (r.msPerStep ? `  ${r.msPerStep.toFixed(0).padStart(5)} ms/step  pad ${(100 * r.padFraction).toFixed(1)}%` : "") +
      `  RSS ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB  threads ${r.threads}`);
  }
}

console.log("\nmedian of the rounds:");
console.log(`  ${"run".padEnd(26)} ${"sent/s".padStart(8)} ${"tok/s".padStart(8)} ${"ms/step".padStart(8)} ${"pad".padStart(6)} ${"peak RSS".padStart(9)}`);
const med = (name, key) => median(results[name].map((r) => r[key]));
for (const run of runs) {
  const has = (k) => results[run.name][0][k] !== undefined && results[run.name][0][k] !== null;
  console.log(`  ${run.name.padEnd(26)} ${med(run.name, "sentencesPerSecond").toFixed(1).padStart(8)} ` +
    `${has("tokensPerSecond") ? med(run.name, "tokensPerSecond").toFixed(0).padStart(8) : "".padStart(8)} ` +
    `${has("msPerStep") ? med(run.name, "msPerStep").toFixed(0).padStart(8) : "".padStart(8)} ` +
    `${has("padFraction") && run.name.indexOf("infer") < 0 ? `${(100 * med(run.name, "padFraction")).toFixed(1)}%`.padStart(6) : "".padStart(6)} ` +
    `${(med(run.name, "peakRssBytes") / 2 ** 20).toFixed(0).padStart(5)} MiB`);
}

// Ratios within each round, then their median.
const ratios = [];
const ratio = (label, f, goal) => {
  const perRound = [...Array(rounds).keys()].map((i) => f((name, key = "sentencesPerSecond") => results[name]?.[i]?.[key]));
  if (perRound.some((x) => x === undefined || Number.isNaN(x))) return;
  ratios.push({ label, median: median(perRound), perRound, goal });
};
const bestOf = (get, ...names) => Math.max(...names.map((n) => get(n) ?? -Infinity));
if (haveHf) {
  ratio("softmax vs HF group_by_length (its best of 1 thread / all cores)", (g) => g("ours softmax") / bestOf(g, "hf softmax grouped", `hf softmax grouped ${cores}t`), ">= 2.0");
  ratio("softmax vs HF group_by_length, 1 thread (HF's default)", (g) => g("ours softmax") / g("hf softmax grouped"), "");
  ratio("softmax vs HF random order", (g) => g("ours softmax") / g("hf softmax random"), ">= 3.0");
  ratio("bilstm-crf vs HF BERT+BiLSTM+pytorch-crf grouped", (g) => g("ours bilstm-crf") / g("hf bilstm-crf grouped"), ">= 2.0");
  ratio("inference softmax vs HF forward (best of 1 / all cores)", (g) => g("ours softmax infer") / bestOf(g, "hf softmax infer", `hf softmax infer ${cores}t`), ">= 5");
  ratio("inference bilstm-crf vs HF + pytorch-crf decode", (g) => g("ours bilstm-crf infer") / g("hf bilstm-crf infer"), "");
  ratio("peak RSS, training softmax: ours / HF grouped", (g) => g("ours softmax", "peakRssBytes") / g("hf softmax grouped", "peakRssBytes"), "<= 1.0");
}
ratio("crf step time / softmax step time", (g) => g("ours crf", "msPerStep") / g("ours softmax", "msPerStep"), "<= 1.15");
ratio("default threads / best of {1, all cores}, training", (g) => g("ours softmax") / bestOf(g, "ours softmax 1t", `ours softmax ${cores}t`), ">= 1 within noise");
ratio("default threads / 1 thread, inference", (g) => g("ours softmax infer") / g("ours softmax infer 1t"), ">= 1 within noise");
console.log("\nratios (median of the rounds' ratios; per round in brackets):");
for (const r of ratios) console.log(`  ${r.label.padEnd(66)} ${r.median.toFixed(2).padStart(6)}x  [${r.perRound.map((x) => x.toFixed(2)).join(", ")}]${r.goal ? `  goal ${r.goal}` : ""}`);

const first = runs.filter((r) => r.tool === "ner-engine").map((r) => results[r.name][0]).find(Boolean) ?? {};
const machine = {
  cpu: os.cpus()[0]?.model, cores, node: process.version, openblasCoretype: process.env.OPENBLAS_CORETYPE ?? "(unset)",
  ompNumThreads: process.env.OMP_NUM_THREADS ?? "(unset)", blas: first.blas, date: new Date().toISOString(),
};
console.log(`\nmachine: ${machine.cpu}, ${cores} cores, OPENBLAS_CORETYPE=${machine.openblasCoretype}, BLAS ${machine.blas}, node ${machine.node}`);
if (values.json) writeFileSync(values.json, JSON.stringify({ machine, steps, warmup, rounds, results, ratios }, null, 2));

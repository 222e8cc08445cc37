// This engine's side of the GPU comparison with HuggingFace (issue 5; scripts/bench_hf.py is the other
// side). For each shape (base: BERT-base 12/768/12/3072, mini: BERT-mini 4/256/4/1024, tiny: 2/64/2/128)
// and head (softmax, bilstm-crf), randomly initialised with the bert-base-uncased vocabulary: one epoch of
// CoNLL-2003 train (batch 32, max length 128, bf16 + TF32 on CUDA), then prediction of test (batch 64,
// tokenisation included). Each run is its own process (clean allocator statistics). Reports sentences/s,
// real (non-pad) tokens/s, the CUDA allocator's peak bytes and inference sentences/s.
//   node scripts/bench-gpu.mjs [--shapes base,mini] [--heads softmax,bilstm-crf] [--max-sentences N]
//        [--device auto|cuda|cpu] [--json out.json] [--hf-json hf.json] [--md BENCHMARKS.md]
//   node scripts/bench-gpu.mjs --dry-run     # tiny shape, 200 sentences, whatever device there is (CPU here)
// With --hf-json (bench_hf.py --json) it prints engine/HF ratios and appends a dated section with both
// sides' figures to --md (default BENCHMARKS.md; not in a dry run unless --md is given).
// Needs `npm run build` first (imports dist/). Data: $NER_SHARED (default ../shared).
import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

const root = path.resolve(import.meta.dirname, "..");
const shared = process.env.NER_SHARED ?? path.resolve(root, "../shared");
const SHAPES = { base: [12, 768, 12, 3072], mini: [4, 256, 4, 1024], tiny: [2, 64, 2, 128] };
const PAIRS = { softmax: "hf", "bilstm-crf": "hf+crf" }; // which HF variant each head is compared with
const GiB = 2 ** 30;

const { values } = parseArgs({
  options: {
    shapes: { type: "string", default: "base,mini" },
    heads: { type: "string", default: "softmax,bilstm-crf" },
    "max-sentences": { type: "string" },
    device: { type: "string", default: "auto" },
    json: { type: "string" },
    "hf-json": { type: "string" },
    md: { type: "string" },
    "dry-run": { type: "boolean", default: false },
    child: { type: "string" }, // internal: "shape:head", runs one measurement and prints its JSON
  },
});
if (values["dry-run"]) {
  values.shapes = "tiny";
  values["max-sentences"] ??= "200";
}
const maxSentences = values["max-sentences"] ? Number(values["max-sentences"]) : undefined;

if (values.child) await child(values.child);
else await parent();

async function child(spec) {
  const [shape, head] = spec.split(":");
  const { Engine } = await import("../dist/app/engine.js");
  const { readConll } = await import("../dist/data/readers.js");
  const { native } = await import("../dist/model/native.js");
  const slice = (file) => {
    const corpus = readConll(path.join(shared, "data/conll2003", file));
    return { ...corpus, sentences: corpus.sentences.slice(0, maxSentences) };
  };
  const train = slice("train.txt");
  const test = slice("test.txt").sentences.filter((s) => s.tokens.length > 0);
  const [layers, hidden, heads, ffn] = SHAPES[shape];
  const cudaWanted = values.device === "cuda" || (values.device === "auto" && native().cudaAvailable);
  const engine = new Engine({
    tokenizer: path.join(shared, "tokenizers/bert-base-uncased"),
    device: values.device,
    scratch: { hiddenSize: hidden, numHiddenLayers: layers, numAttentionHeads: heads, intermediateSize: ffn, maxPositionEmbeddings: 512 },
    head: { kind: head },
    data: { maxLength: 128 },
    training: { epochs: 1, batchSize: 32, evalBatchSize: 64, progressEvery: 50, seed: 42, bf16: cudaWanted, tf32: cudaWanted },
  });
  const memory = () => native().cudaMemoryStats();
  memory()?.resetPeak();
  const started = performance.now();
  const history = await engine.fit({ train });
  const fitSeconds = (performance.now() - started) / 1000;
  const trainPeak = memory()?.peakAllocatedBytes ?? null;
  const epoch = history.epochs[0];
  memory()?.resetPeak();
  const t0 = performance.now();
  const predicted = await engine.predictWords(test.map((s) => s.tokens));
  const inferSeconds = (performance.now() - t0) / 1000;
  const row = {
    shape, head, layers, hidden, heads, ffn, device: engine.device,
    trainSeconds: epoch.seconds, fitSeconds, sentences: train.sentences.length,
    sentencesPerSecond: epoch.sentencesPerSecond, tokensPerSecond: epoch.tokensPerSecond,
    peakAllocatedBytes: trainPeak, inferencePeakAllocatedBytes: memory()?.peakAllocatedBytes ?? null,
    inferenceSentencesPerSecond: test.length / inferSeconds, inferenceWords: predicted.reduce((n, p) => n + p.words.length, 0),
    finalLoss: epoch.trainLoss,
    optimizer: native().fusedAdamW && engine.device === "cuda" && process.env.NER_FUSED_ADAMW !== "0" ? "at::_fused_adamw_" : "torch::optim::AdamW",
    attention: native().libtorchVersion.startsWith("1.") || engine.device !== "cuda" ? "explicit" : "sdpa",
  };
  console.log(`RESULT ${JSON.stringify(row)}`);
}

async function parent() {
  const { native } = await import("../dist/model/native.js");
  const results = [];
  for (const shape of values.shapes.split(",")) {
    if (!SHAPES[shape]) throw new Error(`unknown shape ${shape} (${Object.keys(SHAPES).join(", ")})`);
    for (const head of values.heads.split(",")) {
      const args = [import.meta.filename, "--child", `${shape}:${head}`, "--device", values.device];
      if (maxSentences) args.push("--max-sentences", String(maxSentences));
      const run = spawnSync(process.execPath, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 64 << 20 });
      const line = run.stdout.split("\n").find((l) => l.startsWith("RESULT "));
      if (run.status !== 0 || !line) {
        console.error(`${shape} ${head}: failed (exit ${run.status})\n${run.stdout}`);
        results.push({ shape, head, error: `exit ${run.status}` });
        continue;
      }
      const row = JSON.parse(line.slice(7));
      results.push(row);
      console.log(
        `${shape.padEnd(5)} ${head.padEnd(11)} train ${row.trainSeconds.toFixed(1).padStart(7)} s ${row.sentencesPerSecond.toFixed(1).padStart(8)} sent/s ` +
          `${row.tokensPerSecond.toFixed(0).padStart(9)} tok/s  peak ${gib(row.peakAllocatedBytes)}  infer ${row.inferenceSentencesPerSecond.toFixed(1).padStart(8)} sent/s  ` +
          `loss ${row.finalLoss.toFixed(3)}  (${row.device}, ${row.optimizer}, ${row.attention})`,
      );
      if (values.json) writeFileSync(values.json, JSON.stringify(report(), null, 2)); // after every run
    }
  }
  const out = report();
  if (values.json) writeFileSync(values.json, JSON.stringify(out, null, 2));
  if (values["hf-json"]) compare(out, JSON.parse(readFileSync(values["hf-json"], "utf8")));
  if (results.some((r) => r.error)) process.exitCode = 1;

  function report() {
    return {
      tool: "ner-engine", gpu: gpuName(), libtorch: native().libtorchVersion, cuda: native().cudaAvailable, node: process.version,
      command: ["node", path.relative(root, import.meta.filename), ...process.argv.slice(2)].join(" "),
      config: { batchSize: 32, evalBatchSize: 64, maxLength: 128, bf16: "on CUDA", tf32: "on CUDA", maxSentences: maxSentences ?? null },
      results,
    };
  }
}

function compare(ours, hf) {
  const rows = [];
  for (const r of ours.results.filter((x) => !x.error)) {
    const peer = hf.results.find((h) => h.shape === r.shape && h.variant === PAIRS[r.head]);
    if (peer) rows.push({ r, peer });
  }
  if (!rows.length) {
    console.log("\nno HF result matches these shapes and heads: nothing to compare");
    return;
  }
  if (hf.config?.trainSentences !== undefined && rows.some(({ r }) => r.sentences !== hf.config.trainSentences))
    console.log(`\nnote: the two sides trained on different sentence counts (${rows[0].r.sentences} here, ${hf.config.trainSentences} in HF)`);
  const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}x` : "n/a");
  const lines = rows.map(({ r, peer }) =>
    `| ${r.shape} | ${r.head} / ${peer.variant} | ${ratio(r.sentencesPerSecond, peer.sentencesPerSecond)} | ${ratio(r.tokensPerSecond, peer.tokensPerSecond)} | ` +
    `${ratio(r.inferenceSentencesPerSecond, peer.inferenceSentencesPerSecond)} | ${ratio(r.peakAllocatedBytes, peer.peakAllocatedBytes)} |`,
  );
  const ratioTable = ["| shape | engine / HF | train sent/s | train tok/s | infer sent/s | peak memory |", "|---|---|---|---|---|---|", ...lines].join("\n");
  console.log(`\nthis engine / HF (same command; >1 = faster, and for memory >1 = more):\n${ratioTable}`);

  const fig = (x, name) =>
    `| ${x.shape} | ${name} | ${x.sentencesPerSecond.toFixed(1)} | ${x.tokensPerSecond.toFixed(0)} | ${gib(x.peakAllocatedBytes)} | ${x.inferenceSentencesPerSecond.toFixed(1)} | ${x.finalLoss?.toFixed(3) ?? "n/a"} | ${x.optimizer ?? ""}, ${x.attention ?? ""} |`;
  const figures = rows.flatMap(({ r, peer }) => [fig(r, `ner-engine ${r.head}`), fig(peer, `HF ${peer.variant}`)]);
  const mdPath = values.md ?? (values["dry-run"] ? undefined : path.join(root, "BENCHMARKS.md"));
  if (!mdPath) return;
  const section = [
    `\n## ${new Date().toISOString().slice(0, 10)}: GPU training and inference against HuggingFace (${ours.gpu ?? hf.gpu ?? "no GPU"})`,
    "",
    `One epoch of CoNLL-2003 train (${rows[0].r.sentences} sentences), batch 32, max length 128, ${ours.cuda ? "bf16 autocast + TF32" : "fp32 on the CPU"}, random init ` +
      `(bert-base-uncased vocabulary); inference on test (batch 64, tokenisation included). Real tokens = non-pad sub-tokens. ` +
      `The bilstm-crf head is set against HF + a pytorch-crf-style CRF without a BiLSTM, so it does more work than its peer.`,
    "",
    `- GPU: ${ours.gpu ?? "n/a"}; this engine: LibTorch ${ours.libtorch}, Node ${ours.node}; HF: torch ${hf.torch}, transformers ${hf.transformers}`,
    `- commands (one run, same machine): \`${hf.command}\` and \`${ours.command}\`${process.env.NER_BENCH_COMMAND ? ` (from \`${process.env.NER_BENCH_COMMAND}\`)` : ""}`,
    "",
    "| shape | run | train sent/s | train real tok/s | peak GiB (train) | infer sent/s | final loss | optimizer, attention |",
    "|---|---|---|---|---|---|---|---|",
    ...figures,
    "",
    ratioTable,
    "",
  ].join("\n");
  appendFileSync(mdPath, (existsSync(mdPath) || path.basename(mdPath) !== "BENCHMARKS.md" ? "" : "# Benchmarks\n") + section);
  console.log(`\nappended the figures to ${mdPath}`);
}

function gib(bytes) {
  return bytes == null ? "n/a" : (bytes / GiB).toFixed(2);
}

function gpuName() {
  try {
    return execFileSync("nvidia-smi", ["--query-gpu=name,driver_version", "--format=csv,noheader"], { encoding: "utf8", timeout: 30_000, stdio: ["ignore", "pipe", "ignore"] }).trim() || null;
  } catch {
    return null;
  }
}

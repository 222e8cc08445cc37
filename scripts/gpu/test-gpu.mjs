// Checks for the GPU machine, in plain node + assert (no vitest there): exits non-zero if any fails.
//   node scripts/gpu/test-gpu.mjs [--device cuda|cpu]     (default cuda; --device cpu runs the same checks here)
// 1. forward parity: Engine.load(tiny-bert-ner) on the device against HF's last_hidden_state / logits / loss
//    (fixtures/bert-forward.json, bert-loss.json) within 1e-3, fp32 with TF32 off (nothing has turned it on yet);
// 2. CRF parity against pytorch-crf (fixtures/crf.json): the exported CRF ops run on CPU tensors whatever the
//    device, so this checks the build, not CUDA kernels;
// 3. training on a CoNLL-2003 slice with bf16 + TF32 (CUDA): the loss falls, for softmax and bilstm-crf, and
//    the CUDA allocator's statistics are there; a model trained on the device predicts the same tags after
//    save + load on the CPU;
// 4. fused AdamW: the same fp32 run without dropout with NER_FUSED_ADAMW=1 and =0 (child processes) gives
//    the same losses and logits (on the CPU both use torch::optim::AdamW, so there it only checks the probe).
// Data: $NER_SHARED (default ../shared). Imports dist/ (npm run build first).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Engine } from "../../dist/app/engine.js";
import { native } from "../../dist/model/native.js";
import { readConll } from "../../dist/data/readers.js";

const { values } = parseArgs({ options: { device: { type: "string", default: "cuda" }, probe: { type: "string" } } });
const device = values.device;
const root = path.resolve(import.meta.dirname, "../..");
const shared = process.env.NER_SHARED ?? path.resolve(root, "../shared");
const TINY_BERT = path.join(shared, "fixtures/tiny-bert-ner");
const TOKENIZER = path.join(shared, "tokenizers/bert-base-uncased");
const fixture = (name) => JSON.parse(readFileSync(path.join(shared, "fixtures", name), "utf8"));
const conllSlice = (n) => {
  const corpus = readConll(path.join(shared, "data/conll2003/train.txt"));
  return { ...corpus, sentences: corpus.sentences.slice(0, n) };
};
const onCuda = device === "cuda";

if (values.probe) {
  await adamwProbe(); // child process of check 4
  process.exit(0);
}

let failed = 0;
async function check(name, body) {
  const started = performance.now();
  try {
    const note = await body();
    console.log(`ok   ${name} (${((performance.now() - started) / 1000).toFixed(1)} s)${note ? `: ${note}` : ""}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e?.stack ?? e}`);
  }
}

/** max |a - b| over positions whose mask is 1; `width` values per position. */
function maxMaskedDiff(a, b, mask, width) {
  let max = 0;
  const T = mask[0].length;
  mask.forEach((row, bi) =>
    row.forEach((m, t) => {
      if (!m) return;
      for (let k = 0; k < width; k++) max = Math.max(max, Math.abs(a[(bi * T + t) * width + k] - b[(bi * T + t) * width + k]));
    }),
  );
  return max;
}

function maxDiff(a, b) {
  if (Array.isArray(a)) {
    assert.equal(a.length, b.length);
    return a.reduce((m, x, i) => Math.max(m, maxDiff(x, b[i])), 0);
  }
  return Math.abs(a - b);
}

console.log(`device ${device}; LibTorch ${native().libtorchVersion}, CUDA available: ${native().cudaAvailable}, fused AdamW built: ${native().fusedAdamW}`);

await check("runtime: CUDA is there when asked for, and the allocator statistics with it", () => {
  const stats = native().cudaMemoryStats();
  if (!onCuda) {
    assert.equal(stats, null, "cudaMemoryStats() must be null without CUDA");
    return "cudaMemoryStats() is null on the CPU";
  }
  assert.ok(native().cudaAvailable, "device cuda asked for, but the addon sees no CUDA");
  assert.ok(stats && stats.peakAllocatedBytes >= 0 && typeof stats.resetPeak === "function", "cudaMemoryStats() should report on CUDA");
  return `allocator: ${stats.allocatedBytes} bytes allocated, peak ${stats.peakAllocatedBytes}`;
});

await check("forward parity with HF (tiny-bert-ner) within 1e-3, fp32", async () => {
  const forward = fixture("bert-forward.json");
  const loss = fixture("bert-loss.json");
  const engine = await Engine.load(TINY_BERT, { device });
  assert.equal(engine.device, device);
  const input = { inputIds: forward.input_ids, attentionMask: forward.attention_mask, tokenTypeIds: forward.token_type_ids };
  const out = await engine.forward(input);
  assert.deepEqual(out.lastHiddenState.dims, forward.shape_last_hidden_state);
  const hidden = maxMaskedDiff(out.lastHiddenState.data, forward.last_hidden_state, forward.attention_mask, forward.shape_last_hidden_state[2]);
  const logits = maxMaskedDiff(out.logits.data, forward.logits, forward.attention_mask, forward.shape_logits[2]);
  const withLabels = await engine.forward({ ...input, labels: loss.labels });
  const lossDiff = Math.abs(withLabels.loss - loss.loss);
  assert.ok(hidden <= 1e-3 && logits <= 1e-3 && lossDiff <= 1e-3, `max diff: hidden ${hidden}, logits ${logits}, loss ${lossDiff}`);
  return `max diff hidden ${hidden.toExponential(2)}, logits ${logits.toExponential(2)}, loss ${lossDiff.toExponential(2)}`;
});

await check("CRF parity with pytorch-crf within 1e-4 (exported ops: CPU tensors)", () => {
  const f = fixture("crf.json");
  const input = { emissions: f.emissions, mask: f.mask, tags: f.tags, transitions: f.transitions, startTransitions: f.start_transitions, endTransitions: f.end_transitions };
  const llh = maxDiff(native().crfLogLikelihood(input), f.log_likelihood);
  const grads = native().crfGradients(input);
  const gEm = maxDiff(grads.emissions, f.grad_emissions_of_sum_llh);
  const gTr = maxDiff(grads.transitions, f.grad_transitions_of_sum_llh);
  assert.ok(llh <= 1e-4 && gEm <= 1e-4 && gTr <= 1e-4, `max diff: llh ${llh}, grad emissions ${gEm}, grad transitions ${gTr}`);
  assert.deepEqual(native().crfDecode(input), f.viterbi);
  return `max diff llh ${llh.toExponential(2)}, gradients ${Math.max(gEm, gTr).toExponential(2)}; Viterbi identical`;
});

for (const head of ["softmax", "bilstm-crf"]) {
  await check(`training ${head} on 640 CoNLL sentences${onCuda ? " (bf16 + TF32)" : ""}: the loss falls`, async () => {
    const engine = new Engine({
      tokenizer: TOKENIZER,
      device,
      scratch: { hiddenSize: 128, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 256, maxPositionEmbeddings: 128 },
      head: { kind: head, lstmHiddenSize: 64, learningRate: 5e-3 },
      data: { maxLength: 64 },
      training: { epochs: 3, batchSize: 16, learningRate: 2e-3, warmupRatio: 0.05, progressEvery: 10, seed: 7, bf16: onCuda, tf32: onCuda },
    });
    native().cudaMemoryStats()?.resetPeak();
    const progress = [];
    const train = conllSlice(640);
    await engine.fit({ train }, { onProgress: (p) => progress.push(p) });
    const peak = native().cudaMemoryStats()?.peakAllocatedBytes;
    if (onCuda) assert.ok(peak > 0, "the CUDA allocator saw no allocation");
    const early = (progress[0].loss + progress[1].loss) / 2;
    const late = progress.slice(-3).reduce((s, p) => s + p.loss, 0) / 3;
    assert.ok(Number.isFinite(late) && late < early * 0.8, `loss ${early.toFixed(3)} -> ${late.toFixed(3)}`);
    // Save on the device, load on the CPU: the same tags, bar a few that bf16 (on CUDA) flips; a broken
    // export would agree on little more than the O words (~83% of CoNLL).
    const words = train.sentences.slice(0, 100).map((s) => s.tokens);
    const here = await engine.predictWords(words);
    const dir = mkdtempSync(path.join(tmpdir(), "ner-gpu-"));
    try {
      await engine.save(dir);
      const there = await (await Engine.load(dir, { device: "cpu" })).predictWords(words);
      const tags = (r) => r.flatMap((s) => s.words.map((w) => w.tag));
      const a = tags(here), b = tags(there);
      const same = a.filter((t, i) => t === b[i]).length / a.length;
      assert.ok(same >= 0.95, `only ${(100 * same).toFixed(1)}% of the tags agree after save + load on the CPU`);
      return `loss ${early.toFixed(3)} -> ${late.toFixed(3)}${peak ? `, peak ${(peak / 2 ** 20).toFixed(0)} MiB` : ""}; ${(100 * same).toFixed(1)}% tags the same on the CPU`;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

await check("fused AdamW gives torch::optim::AdamW's run (fp32, no dropout, 40 steps)", () => {
  const run = (fused) => {
    const r = spawnSync(process.execPath, [import.meta.filename, "--device", device, "--probe", "adamw"], {
      encoding: "utf8",
      env: { ...process.env, NER_FUSED_ADAMW: fused ? "1" : "0" },
    });
    const line = r.stdout.split("\n").find((l) => l.startsWith("PROBE "));
    assert.ok(r.status === 0 && line, `probe (NER_FUSED_ADAMW=${fused ? 1 : 0}) failed: ${r.stderr}${r.stdout}`);
    return JSON.parse(line.slice(6));
  };
  const fused = run(true), plain = run(false);
  const lossDiff = Math.max(...fused.losses.map((l, i) => Math.abs(l - plain.losses[i]) / Math.max(1, Math.abs(plain.losses[i]))));
  const logitDiff = fused.logits.reduce((m, x, i) => Math.max(m, Math.abs(x - plain.logits[i])), 0);
  assert.ok(lossDiff <= 1e-3 && logitDiff <= 1e-3, `relative loss diff ${lossDiff}, logit diff ${logitDiff}`);
  const used = native().fusedAdamW && onCuda ? "fused kernel vs per-tensor AdamW" : "per-tensor AdamW both times (no fused kernel here)";
  return `${used}; max relative loss diff ${lossDiff.toExponential(2)}, logit diff ${logitDiff.toExponential(2)}`;
});

async function adamwProbe() {
  const engine = new Engine({
    tokenizer: TOKENIZER,
    device,
    scratch: { hiddenSize: 64, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 128, maxPositionEmbeddings: 128, hiddenDropoutProb: 0, attentionProbsDropoutProb: 0 },
    head: { kind: "softmax", classifierDropout: 0 },
    data: { maxLength: 64 },
    training: { epochs: 1, batchSize: 16, maxSteps: 40, learningRate: 1e-3, weightDecay: 0.01, progressEvery: 5, seed: 3 },
  });
  const losses = [];
  await engine.fit({ train: conllSlice(640) }, { onProgress: (p) => losses.push(p.loss) });
  const forward = fixture("bert-forward.json");
  const out = await engine.forward({ inputIds: forward.input_ids, attentionMask: forward.attention_mask, tokenTypeIds: forward.token_type_ids });
  console.log(`PROBE ${JSON.stringify({ losses, logits: Array.from(out.logits.data) })}`);
}

console.log(failed ? `\n${failed} check(s) failed` : "\nall checks passed");
process.exit(failed ? 1 : 0);

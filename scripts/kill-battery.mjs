// kill -9 battery (issue 17): a process killed at any moment of save() or of training must leave folders
// that load as exactly the old or exactly the new model, and resume points that resume exactly or are
// refused with a clear message.
//   node scripts/kill-battery.mjs [--saves 100] [--trainings 50]
// Needs the build (npm run build). Prints counts; exits 1 on any broken, mixed or silently different case.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

const root = path.resolve(import.meta.dirname, "..");
const { values } = parseArgs({ options: { saves: { type: "string", default: "100" }, trainings: { type: "string", default: "50" } } });
const work = mkdtempSync(path.join(tmpdir(), "ner-kill-"));
const env = { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1" };

// ---- a tiny model with two versions (A, B) differing in weights and labels ----
const child = (code) => spawn(process.execPath, ["--input-type=module", "-e", code], { env, stdio: ["ignore", "pipe", "pipe"] });
const run = (code) => spawnSync(process.execPath, ["--input-type=module", "-e", code], { env, encoding: "utf8" });
const setup = `
import { Tagger } from ${JSON.stringify(path.join(root, "dist/model/tagger.js"))};
import { scratchBertConfig } from ${JSON.stringify(path.join(root, "dist/model/encoder-config.js"))};
import { loadTokenizer } from ${JSON.stringify(path.join(root, "dist/text/tokenizer.js"))};
import { trainWordPiece, writeTokenizerFiles } from ${JSON.stringify(path.join(root, "dist/text/vocab.js"))};
const tokDir = ${JSON.stringify(path.join(work, "tokenizer"))};
const words = ["Anna", "lives", "in", "Berlin", "and", "works", "for", "Acme"];
writeTokenizerFiles(tokDir, trainWordPiece([words, words], { vocabSize: 80, lowercase: false }), { lowercase: false });
const tokenizer = loadTokenizer(tokDir);
const make = (labels, seed) => Tagger.create({
  encoder: scratchBertConfig({ vocab_size: tokenizer.vocabSize, hidden_size: 64, num_hidden_layers: 4, num_attention_heads: 2, intermediate_size: 256, max_position_embeddings: 128, hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1, layer_norm_eps: 1e-12, hidden_act: "gelu", pad_token_id: tokenizer.padId }),
  labels, head: { kind: "softmax", lstmHiddenSize: 8, lstmLayers: 1, attentionHeads: 2, constrainDecoding: true, constrainTraining: false },
  input: { trainScheme: "IOB2", maxLength: 32, labelAllSubtokens: false, documentContext: false },
}, tokenizer, tokDir, { device: "cpu", seed });
const A = make(["O", "B-PER", "I-PER"], 1), B = make(["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG"], 2);
`;
const fingerprint = (dir) => {
  const h = createHash("sha256");
  h.update(readFileSync(path.join(dir, "model.safetensors")));
  h.update(JSON.stringify(JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")).id2label));
  return h.digest("hex");
};

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// ---- 1. kill -9 during save(): the folder is old or new, never broken or mixed ----
async function saveBattery(n) {
  const ref = path.join(work, "ref");
  const r = run(`${setup}\nawait A.save(${JSON.stringify(path.join(ref, "A"))}); await B.save(${JSON.stringify(path.join(ref, "B"))});`);
  if (r.status !== 0) throw new Error(r.stderr);
  const known = { [fingerprint(path.join(ref, "A"))]: "A", [fingerprint(path.join(ref, "B"))]: "B" };
  const counts = { old: 0, new: 0, broken: 0, mixed: 0 };
  for (let i = 0; i < n; i++) {
    const dir = path.join(work, `save-${i}`);
    // Alternate saves of A and B into the same folder until killed.
    const p = child(`${setup}\nconst dir = ${JSON.stringify(dir)}; await A.save(dir); console.log("ready");\nfor (let k = 1; ; k++) await (k % 2 ? B : A).save(dir);`);
    const closed = new Promise((resolve) => p.on("close", resolve));
    await new Promise((resolve) => p.stdout.once("data", resolve));
    await sleep(Math.random() * 400);  // random moments within a few saves
    p.kill("SIGKILL");
    await closed;
    const check = run(`
import { Tagger } from ${JSON.stringify(path.join(root, "dist/model/tagger.js"))};
try { await Tagger.load(${JSON.stringify(dir)}, { device: "cpu" }); console.log("loads"); } catch (e) { console.log("error: " + e.message); }`);
    const loads = check.stdout.includes("loads");
    const which = loads ? known[fingerprint(dir)] : undefined;
    if (!loads) counts.broken++;
    else if (!which) counts.mixed++;
    else counts[which === "A" ? "old" : "new"]++;
    if (!loads || !which) console.log(`save ${i}: ${check.stdout.trim()} ${readdirSync(dir).join(",")}`);
  }
  console.log(`save(): ${n} kills -> A ${counts.old}, B ${counts.new}, broken ${counts.broken}, mixed ${counts.mixed}`);
  return counts.broken + counts.mixed;
}

// ---- 2. kill -9 during training with a resume point every step: resume is exact, or refused ----
async function trainBattery(n) {
  const data = path.join(work, "train.txt");
  const sentences = [];
  const names = ["Anna", "Carlos", "Mei", "John"], places = ["Berlin", "Paris", "Lagos", "Tokyo"];
  for (let i = 0; i < 160; i++) sentences.push(`${names[i % 4]} B-PER\nlives O\nin O\n${places[(i >> 2) % 4]} B-LOC\n. O`);
  writeFileSync(data, sentences.join("\n\n") + "\n");
  const config = path.join(work, "train.json");
  writeFileSync(config, JSON.stringify({
    scratch: { hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 64, maxPositionEmbeddings: 32 },
    data: { maxLength: 16, devSplit: 0 }, training: { epochs: 2, batchSize: 8, learningRate: 1e-3, saveSteps: 1, progressEvery: 1 },
  }));
  const cli = path.join(root, "dist/app/cli.js");
  const train = (out) => ["train", "--train", data, "--config", config, "--out", out, "--device", "cpu"];
  const full = path.join(work, "train-full");
  spawnSync(process.execPath, [cli, ...train(full)], { env });
  const reference = fingerprint(path.join(full, "model"));
  const counts = { exact: 0, refused: 0, different: 0, notStarted: 0 };
  for (let i = 0; i < n; i++) {
    const out = path.join(work, `train-${i}`);
    const p = spawn(process.execPath, [cli, ...train(out)], { env, stdio: "ignore" });
    const closed = new Promise((resolve) => p.on("close", resolve));  // it may end before the kill
    await sleep(300 + Math.random() * 2500);
    p.kill("SIGKILL");
    await closed;
    if (!existsSync(path.join(out, "last"))) {
      counts.notStarted++;
      continue;
    }
    const resumed = spawnSync(process.execPath, [cli, "train", "--resume", out], { env, encoding: "utf8" });
    if (resumed.status !== 0) {
      counts.refused++;
      console.log(`train ${i}: refused: ${resumed.stderr.trim().split("\n")[0]}`);
    } else if (fingerprint(path.join(out, "model")) === reference) counts.exact++;
    else {
      counts.different++;
      console.log(`train ${i}: resumed to different weights`);
    }
  }
  console.log(`training: ${n} kills -> exact ${counts.exact}, refused ${counts.refused}, silently different ${counts.different}, killed before a resume point ${counts.notStarted}`);
  return counts.different;
}

const bad = (await saveBattery(Number(values.saves))) + (await trainBattery(Number(values.trainings)));
process.exit(bad ? 1 : 0);

// Checks that what this engine writes loads in HuggingFace transformers (Python) and means the same, for
// every encoder family: a BERT tagger trained from scratch with a WordPiece vocabulary trained here, and
// DistilBERT / RoBERTa / XLM-R taggers fine-tuned briefly from the fixtures in ../shared/fixtures. Each is
// saved, then scripts/check_hf_compat.py loads it with AutoTokenizer / AutoModelForTokenClassification
// and compares token ids and logits with this engine's. Needs python3 with torch + transformers:
//   npm run build && PYTHON=python3 PYTHONPATH=$HF_BASELINE/src:$HF_BASELINE/site node scripts/hf-compat.mjs
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Engine } from "../dist/app/engine.js";
import { readConll } from "../dist/data/readers.js";
import { trainWordPiece, writeTokenizerFiles } from "../dist/text/vocab.js";

const shared = path.resolve(import.meta.dirname, "../../shared");
const work = mkdtempSync(path.join(os.tmpdir(), "ner-hf-compat-"));
const train = { source: "train", sentences: readConll(path.join(shared, "data/conll2003/train.txt")).sentences.slice(0, 400) };

function bertFromScratch() {
  const tokenizerDir = path.join(work, "tokenizer");
  writeTokenizerFiles(tokenizerDir, trainWordPiece(train.sentences.map((s) => s.tokens), { vocabSize: 2000, lowercase: false }), { lowercase: false });
  return {
    name: "bert (from scratch)",
    config: {
      tokenizer: tokenizerDir,
      scratch: { hiddenSize: 64, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 128, maxPositionEmbeddings: 64 },
      data: { maxLength: 64 },
    },
  };
}

const runs = [bertFromScratch()];
for (const family of ["distilbert", "roberta", "xlm-roberta"]) {
  const model = path.join(shared, `fixtures/tiny-${family}-ner`);
  if (existsSync(model)) runs.push({ name: `${family} (fine-tuned from ${path.basename(model)})`, config: { model } });
  else console.log(`skipping ${family}: ${model} is missing`);
}

const checks = [];
for (const run of runs) {
  const engine = new Engine({ ...run.config, device: "cpu", training: { epochs: 1, batchSize: 16, learningRate: 1e-3 } });
  await engine.fit({ train: { ...train, sentences: train.sentences.slice(0, 200) } });
  const modelDir = path.join(work, run.name.split(" ")[0]);
  await engine.save(modelDir);

  // Our ids for a few sentences (specials + sub-tokens, as the model sees them) and our logits for them.
  const tokenizer = engine.model.tokenizer;
  const sentences = train.sentences.slice(0, 4).map((s) => s.tokens);
  const ids = sentences.map((words) => [tokenizer.clsId, ...words.flatMap((w) => tokenizer.tokenizeWord(w)), tokenizer.sepId]);
  const length = Math.max(...ids.map((r) => r.length));
  const inputIds = ids.map((r) => [...r, ...Array(length - r.length).fill(tokenizer.padId)]);
  const attentionMask = ids.map((r) => [...r.map(() => 1), ...Array(length - r.length).fill(0)]);
  const out = await engine.forward({ inputIds, attentionMask });
  const expected = path.join(modelDir, "..", `${path.basename(modelDir)}-expected.json`);
  writeFileSync(expected, JSON.stringify({ name: run.name, sentences, inputIds, attentionMask, dims: out.logits.dims, logits: Array.from(out.logits.data) }));
  checks.push(modelDir, expected);
}
const python = process.env.PYTHON ?? "python3";
execFileSync(python, [path.join(import.meta.dirname, "check_hf_compat.py"), ...checks], { stdio: "inherit" });

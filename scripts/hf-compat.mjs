// Checks that what this engine writes loads in HuggingFace transformers (Python) and means the same:
// trains a small softmax tagger from scratch with a WordPiece vocabulary trained here, saves it, and has
// scripts/check_hf_compat.py load it with AutoTokenizer / BertForTokenClassification.from_pretrained and
// compare token ids and logits with this engine's. Needs python3 with torch + transformers (PYTHON=...).
//   npm run build && node scripts/hf-compat.mjs
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Engine } from "../dist/app/engine.js";
import { readConll } from "../dist/data/readers.js";
import { loadTokenizer } from "../dist/text/tokenizer.js";
import { trainWordPiece, writeTokenizerFiles } from "../dist/text/vocab.js";

const shared = path.resolve(import.meta.dirname, "../../shared");
const work = mkdtempSync(path.join(os.tmpdir(), "ner-hf-compat-"));
const train = { source: "train", sentences: readConll(path.join(shared, "data/conll2003/train.txt")).sentences.slice(0, 400) };
const tokenizerDir = path.join(work, "tokenizer");
writeTokenizerFiles(tokenizerDir, trainWordPiece(train.sentences.map((s) => s.tokens), { vocabSize: 2000, lowercase: false }), { lowercase: false });

const engine = new Engine({
  tokenizer: tokenizerDir,
  device: "cpu",
  scratch: { hiddenSize: 64, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 128, maxPositionEmbeddings: 64 },
  data: { maxLength: 64 },
  training: { epochs: 1, batchSize: 16, learningRate: 1e-3 },
});
await engine.fit({ train });
const modelDir = path.join(work, "model");
await engine.save(modelDir);

// Our ids for a few sentences, as [CLS] sub-tokens [SEP], and our logits for them.
const tokenizer = loadTokenizer(modelDir);
const sentences = train.sentences.slice(0, 4).map((s) => s.tokens);
const ids = sentences.map((words) => [tokenizer.clsId, ...words.flatMap((w) => tokenizer.tokenizeWord(w)), tokenizer.sepId]);
const length = Math.max(...ids.map((r) => r.length));
const inputIds = ids.map((r) => [...r, ...Array(length - r.length).fill(tokenizer.padId)]);
const attentionMask = ids.map((r) => [...r.map(() => 1), ...Array(length - r.length).fill(0)]);
const out = await engine.forward({ inputIds, attentionMask });
const expected = path.join(work, "expected.json");
writeFileSync(expected, JSON.stringify({ sentences, inputIds, attentionMask, dims: out.logits.dims, logits: Array.from(out.logits.data) }));
const python = process.env.PYTHON ?? "python3";
execFileSync(python, [path.join(import.meta.dirname, "check_hf_compat.py"), modelDir, expected], { stdio: "inherit" });

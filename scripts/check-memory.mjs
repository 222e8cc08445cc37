#!/usr/bin/env node
// Memory check: many predict() calls, each on words never seen before, must not make the process grow.
// RSS (and JS heap) are measured after call --from and after the last call, each after two full GCs,
// and their growth is compared with --limit (percent). Exits 1 when RSS grows by more than that.
//
//   node scripts/check-memory.mjs [--model DIR] [--calls 10000] [--from 1000] [--words 8]
//                                 [--cache-size 4000] [--limit 5]
//
// Needs the built package (npm run build:ts) and a saved model (default: the tiny-bert-ner fixture).
// It re-runs itself under --expose-gc (for the GCs) and --max-semi-space-size=1: otherwise V8 grows its
// young generation once, by up to 32 MB of RSS, some thousand calls in, a bounded one-off that a
// 5% limit on a ~250 MB process cannot tell from a leak.
// --cache-size sets the tokenizer's word cache: the default 4,000 words fill up within the first
// 1,000 calls (at 8 new words a call), so what is measured is growth past a full cache; the engine's
// own default (100k words, see WORD_CACHE_SIZE) needs 100k distinct words before it is full.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(import.meta.url);
if (typeof globalThis.gc !== "function") {
  const child = spawnSync(process.execPath, ["--expose-gc", "--max-semi-space-size=1", script, ...process.argv.slice(2)], { stdio: "inherit" });
  process.exit(child.status ?? 1);
}

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const root = path.resolve(path.dirname(script), "..");
const model = option("model", path.resolve(root, "../shared/fixtures/tiny-bert-ner"));
const calls = Number(option("calls", 10000));
const from = Number(option("from", 1000));
const wordsPerCall = Number(option("words", 8));
const cacheSize = Number(option("cache-size", 4000));
const limit = Number(option("limit", 5));
if (!existsSync(model)) {
  console.error(`no model at ${model} (pass --model DIR)`);
  process.exit(2);
}
if (!(from >= 1 && from < calls)) {
  console.error("--from must lie in [1, --calls)");
  process.exit(2);
}

const { Engine } = await import(path.join(root, "dist/index.js"));
const engine = await Engine.load(model, { device: "cpu" });
engine.model.tokenizer.cacheSize = cacheSize;

// Words no two calls share (alphanumeric, so BERT's pre-tokenizer keeps each whole), with seeded letters.
let state = 12345;
const letter = () => {
  state = (state * 1103515245 + 12345) % 2147483648;
  return String.fromCharCode(97 + (state % 26));
};
const word = (call, i) => `${letter()}${letter()}${call}x${i}${letter()}${letter()}`;

const settle = async () => {
  for (let i = 0; i < 2; i++) {
    globalThis.gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed };
};

const started = Date.now();
let baseline;
for (let call = 1; call <= calls; call++) {
  const words = Array.from({ length: wordsPerCall }, (_, i) => word(call, i));
  const [result] = await engine.predictWords([words]);
  if (result.words.length !== wordsPerCall) throw new Error(`call ${call}: ${result.words.length} words back, expected ${wordsPerCall}`);
  if (call === from) baseline = await settle();
}
const end = await settle();
const mb = (bytes) => +(bytes / 2 ** 20).toFixed(1);
const report = {
  calls,
  from,
  wordsPerCall,
  cacheSize: engine.model.tokenizer.cacheSize,
  cachedWords: engine.model.tokenizer.cachedWords,
  rssFromMB: mb(baseline.rss),
  rssEndMB: mb(end.rss),
  rssGrowthPercent: +((100 * (end.rss - baseline.rss)) / baseline.rss).toFixed(2),
  heapFromMB: mb(baseline.heapUsed),
  heapEndMB: mb(end.heapUsed),
  heapGrowthPercent: +((100 * (end.heapUsed - baseline.heapUsed)) / baseline.heapUsed).toFixed(2),
  seconds: (Date.now() - started) / 1000,
  limitPercent: limit,
};
report.ok = report.rssGrowthPercent < limit;
console.log(JSON.stringify(report));
engine.dispose();
process.exit(report.ok ? 0 : 1);

import { describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough, Readable, Writable } from "node:stream";
import { predictStream, readLines, type InputLine } from "../src/app/predict-stream.js";
import type { TextTagger } from "../src/app/text-tagger.js";
import { has, needs, REPO_ROOT, shared } from "./helpers/shared.js";

const TINY_BERT = shared("fixtures/tiny-bert-ner");
const CLI = path.join(REPO_ROOT, "dist/app/cli.js");
const MEMORY_SCRIPT = path.join(REPO_ROOT, "scripts/check-predict-memory.mjs");

async function collect(chunks: (string | Uint8Array)[], opts?: { maxLineBytes?: number }): Promise<InputLine[]> {
  const out: InputLine[] = [];
  for await (const l of readLines(Readable.from(chunks.map((c) => (typeof c === "string" ? Buffer.from(c) : Buffer.from(c)))), opts)) out.push(l);
  return out;
}

describe("readLines", () => {
  it("splits on \\n and \\r\\n, keeps empty lines, adds no line after a final newline, reads a last line without one", async () => {
    expect(await collect(["a\r\nb\n\nc\n"])).toEqual([{ line: 1, text: "a" }, { line: 2, text: "b" }, { line: 3, text: "" }, { line: 4, text: "c" }]);
    expect(await collect(["a\nlast"])).toEqual([{ line: 1, text: "a" }, { line: 2, text: "last" }]);
    expect(await collect([])).toEqual([]);
  });

  it("joins lines and multi-byte characters split across chunks", async () => {
    const bytes = Buffer.from("héllo 😀 wörld\nzwei\n");
    const chunks = Array.from(bytes, (b) => Uint8Array.of(b)); // one byte per chunk
    expect(await collect(chunks)).toEqual([{ line: 1, text: "héllo 😀 wörld" }, { line: 2, text: "zwei" }]);
  });

  it("drops a BOM on the first line only", async () => {
    expect(await collect(["\uFEFFa\n\uFEFFb\n"])).toEqual([{ line: 1, text: "a" }, { line: 2, text: "\uFEFFb" }]);
  });

  it("gives a line that is not UTF-8, or too long, an error and goes on", async () => {
    const lines = await collect([Buffer.from("ok\n"), Uint8Array.of(0xff, 0xfe, 0x41, 0x0a), Buffer.from("x".repeat(50) + "\nfine\n" + "y".repeat(30))], { maxLineBytes: 20 });
    expect(lines).toEqual([
      { line: 1, text: "ok" },
      { line: 2, error: "line 2 is not valid UTF-8" },
      { line: 3, error: "line 3 is longer than 20 bytes" },
      { line: 4, text: "fine" },
      { line: 5, error: "line 5 is longer than 20 bytes" },
    ]);
  });

  it("does not hold a too-long line (the rest of it is skipped as it streams)", async () => {
    // 64 MB without a newline in 64 KB chunks, then a short line: fine with a 1 KB limit.
    const chunk = Buffer.alloc(1 << 16, 0x61);
    const source = Readable.from((function* () {
      for (let i = 0; i < 1024; i++) yield chunk;
      yield Buffer.from("\nafter\n");
    })());
    const out: InputLine[] = [];
    for await (const l of readLines(source, { maxLineBytes: 1024 })) out.push(l);
    expect(out).toEqual([{ line: 1, error: "line 1 is longer than 1024 bytes" }, { line: 2, text: "after" }]);
  });
});

/** A tagger whose batch call fails when any of its texts contains BOOM (as an engine call would), with a random delay. */
function fakeTagger(calls: number[] = []): TextTagger {
  const delay = () => new Promise((r) => setTimeout(r, Math.random() * 3));
  return {
    async tagTexts(texts) {
      calls.push(texts.length);
      await delay();
      if (texts.some((t) => t.includes("BOOM"))) throw new Error("boom");
      return texts.map((t) => (t ? [{ type: "X", text: t, start: 0, end: [...t].length, score: 1 }] : []));
    },
    async tagWords(sentences) {
      calls.push(sentences.length);
      await delay();
      if (sentences.some((s) => s.includes("BOOM"))) throw new Error("boom");
      return sentences.map((s) => s.map((_, i) => (i === 0 ? "B-X" : "O")));
    },
  };
}

function sink(): Writable & { text: string } {
  const s = new Writable({ write(chunk, _e, cb) { s.text += chunk.toString(); cb(); } }) as Writable & { text: string };
  s.text = "";
  return s;
}

const linesOf = (texts: string[]): AsyncIterable<InputLine> => (async function* () {
  for (let i = 0; i < texts.length; i++) yield { line: i + 1, text: texts[i] };
})();

describe("predictStream", () => {
  it("writes one record per line, in order, in batches; a failing line gets its error and the rest of its batch is tagged", async () => {
    const texts = Array.from({ length: 1000 }, (_, i) => (i === 500 ? "BOOM here" : `text ${i} 😀`));
    const calls: number[] = [];
    const out = sink();
    const result = await predictStream({ tagger: fakeTagger(calls), lines: linesOf(texts), output: out, batchSize: 64 });
    const records = out.text.trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(records).toHaveLength(1000);
    records.forEach((r, i) => {
      if (i === 500) expect(r).toEqual({ line: 501, text: "BOOM here", error: "boom" });
      else expect(r).toEqual({ text: texts[i], entities: [{ type: "X", text: texts[i], start: 0, end: [...texts[i]].length, score: 1 }] });
    });
    expect(result).toMatchObject({ lines: 1000, errors: 1 });
    // 16 batches of 64 lines (the last of 40), each in length-sorted calls of 16; the call that failed
    // (16 of lines 449-512) again line by line.
    expect(Math.max(...calls)).toBe(16);
    expect(calls.filter((n) => n === 1)).toHaveLength(16);
    expect(calls.reduce((a, b) => a + b, 0)).toBe(1000 + 16);
  });

  it("writes CoNLL columns (a blank line after each sentence) and spaCy JSONL", async () => {
    const conll = sink();
    await predictStream({ tagger: fakeTagger(), lines: linesOf(["EU  rejects\tGerman", "", "a BOOM", "Paris"]), output: conll, format: "conll" });
    expect(conll.text).toBe("EU B-X\nrejects O\nGerman O\n\n\n# error (line 3): boom\n\nParis B-X\n\n");
    const spacy = sink();
    await predictStream({ tagger: fakeTagger(), lines: linesOf(["Paris 😀"]), output: spacy, format: "spacy" });
    expect(JSON.parse(spacy.text)).toEqual({ text: "Paris 😀", ents: [[0, 7, "X"]] });
  });

  it("passes a line that could not be read as an error record without calling the tagger for it", async () => {
    const out = sink();
    const lines = (async function* () {
      yield { line: 1, text: "a" } as InputLine;
      yield { line: 2, error: "line 2 is not valid UTF-8" } as InputLine;
    })();
    await predictStream({ tagger: fakeTagger(), lines, output: out });
    expect(out.text.trimEnd().split("\n").map((l) => JSON.parse(l))).toEqual([
      { text: "a", entities: [{ type: "X", text: "a", start: 0, end: 1, score: 1 }] },
      { line: 2, error: "line 2 is not valid UTF-8" },
    ]);
  });

  it("reads at most two batches ahead of a slow output (backpressure)", async () => {
    let pulled = 0;
    let written = 0;
    let maxAhead = 0;
    const lines = (async function* () {
      for (let i = 0; i < 2000; i++) {
        pulled++;
        maxAhead = Math.max(maxAhead, pulled - written);
        yield { line: i + 1, text: `t${i}` } as InputLine;
      }
    })();
    const slow = new Writable({
      highWaterMark: 1,
      write(chunk, _e, cb) {
        written += chunk.toString().split("\n").length - 1;
        setTimeout(cb, 2);
      },
    });
    await predictStream({ tagger: fakeTagger(), lines, output: slow, batchSize: 64 });
    expect(written).toBe(2000);
    expect(maxAhead).toBeLessThanOrEqual(4 * 64);
  });

  it("tags the lines of a slow input as they come, not when 64 have gathered", async () => {
    const input = new PassThrough();
    const out = sink();
    const done = predictStream({ tagger: fakeTagger(), lines: readLines(input), output: out, flushMs: 10 });
    input.write("first\n");
    await new Promise((r) => setTimeout(r, 200));
    expect(out.text).toContain('"text":"first"');
    input.end("second\n");
    await done;
    expect(out.text.trimEnd().split("\n")).toHaveLength(2);
  });
});

const built = existsSync(CLI);
describe.skipIf(!has(TINY_BERT) || !built)(`ner-engine predict, the built CLI (${!built ? "needs dist/: npm run build:ts" : has(TINY_BERT) ? "tiny-bert-ner" : needs(TINY_BERT)})`, () => {
  const env = { ...process.env, OPENBLAS_CORETYPE: process.env.OPENBLAS_CORETYPE ?? "Haswell" };

  it("10,000 lines on stdin give 10,000 JSONL records in order; a bad line gets an error record", async () => {
    const lines = Array.from({ length: 10_000 }, (_, i) => `${i} Angela Merkel met Peter in Paris on day ${i % 97} 😀 .`);
    const child = spawn(process.execPath, [CLI, "predict", "--model", TINY_BERT, "--device", "cpu"], { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const bad = 4321;
    const input = Buffer.concat(lines.map((l, i) => (i === bad ? Buffer.from([0xc3, 0x28, 0x0a]) : Buffer.from(l + "\n"))));
    child.stdin.end(input);
    const code = await new Promise((r) => child.on("close", r));
    expect(code, stderr).toBe(0);
    const records = stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(records).toHaveLength(10_000);
    records.forEach((r, i) => {
      if (i === bad) expect(r).toEqual({ line: bad + 1, error: `line ${bad + 1} is not valid UTF-8` });
      else {
        expect(r.text).toBe(lines[i]);
        for (const e of r.entities) expect([...lines[i]].slice(e.start, e.end).join("")).toBe(e.text); // code points
      }
    });
    // stderr is not a terminal: no progress, only the summary of the failed line.
    expect(stderr).toBe("warning: 1 of 10000 lines could not be tagged (their records say why)\n");
  }, 120_000);

  it("--input FILE --output FILE, --format conll, --text, and --aggregation as Engine.predict gives it", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "ner-predict-stream-"));
    try {
      const input = path.join(dir, "in.txt");
      writeFileSync(input, "EU rejects German call\n\nPeter Blackburn\n");
      const conll = path.join(dir, "out.conll");
      const r = spawnSync(process.execPath, [CLI, "predict", "--model", TINY_BERT, "--input", input, "--output", conll, "--format", "conll"], { env, encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe("");
      // Each blank line ends one input line's sentence (an empty input line: the blank line alone).
      const sentences: string[][] = [[]];
      for (const l of readFileSync(conll, "utf8").split("\n").slice(0, -1)) {
        if (l === "") sentences.push([]);
        else sentences.at(-1)!.push(l.split(" ")[0]);
      }
      expect(sentences).toEqual([["EU", "rejects", "German", "call"], [], ["Peter", "Blackburn"], []]);
      for (const l of readFileSync(conll, "utf8").split("\n").filter(Boolean)) expect(l).toMatch(/^\S+ (O|[BI]-(PER|ORG|LOC|MISC))$/);

      const one = spawnSync(process.execPath, [CLI, "predict", "--model", TINY_BERT, "--text", "Peter Blackburn went to Köln", "--aggregation", "simple"], { env, encoding: "utf8" });
      expect(one.status, one.stderr).toBe(0);
      const { Engine } = await import("../src/app/engine.js");
      const engine = await Engine.load(TINY_BERT, { device: "cpu" });
      try {
        const expected = await engine.predict("Peter Blackburn went to Köln", { aggregation: "simple" });
        // Another process (other thread counts) moves scores in the 8th decimal: compare them rounded.
        const rounded = (x: unknown) => JSON.parse(JSON.stringify(x), (k, v) => (k === "score" ? Number(v.toFixed(5)) : v));
        expect(rounded(JSON.parse(one.stdout))).toEqual(rounded({ text: "Peter Blackburn went to Köln", entities: expected }));
      } finally {
        engine.dispose();
      }
      const missing = spawnSync(process.execPath, [CLI, "predict", "--model", TINY_BERT, "--input", path.join(dir, "nope.txt")], { env, encoding: "utf8" });
      expect(missing.status).toBe(1);
      expect(missing.stderr).toMatch(/nope\.txt: file not found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("keeps nothing per line: JS heap after full GCs at line 10,000 within 10% of line 1,000 (scripts/check-predict-memory.mjs --in-process)", () => {
    // A child process: it needs --expose-gc. The RSS of the CLI itself is the script's default mode: it
    // grows with the engine's native allocations (glibc arenas, the largest batch shape), not with the
    // stream's; see BENCHMARKS.md.
    const child = spawnSync(process.execPath, [MEMORY_SCRIPT, "--in-process", "--model", TINY_BERT, "--lines", "10000", "--from", "1000"], { encoding: "utf8", env });
    expect(child.stderr).toBe("");
    const report = JSON.parse(child.stdout.trim().split("\n").at(-1)!);
    expect(report).toMatchObject({ records: 10000, inOrder: true, ok: true });
    expect(report.heapGrowthPercent).toBeLessThan(10);
  }, 120_000);
});

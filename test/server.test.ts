import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { MicroBatcher, OverloadedError } from "../src/app/micro-batch.js";
import { createServer, parsePredictBody, type ModelMetadata, type NerServer } from "../src/app/server.js";
import type { TextTagger } from "../src/app/text-tagger.js";
import { has, needs, REPO_ROOT, shared } from "./helpers/shared.js";

const TINY_BERT = shared("fixtures/tiny-bert-ner");
const CONLL_TEST = shared("data/conll2003/test.txt");
const CLI = path.join(REPO_ROOT, "dist/app/cli.js");
const env = { ...process.env, OPENBLAS_CORETYPE: process.env.OPENBLAS_CORETYPE ?? "Haswell" };

const META: ModelMetadata = { model: "fake", labels: ["O", "B-X", "I-X"], entityTypes: ["X"], encoder: "bert", maxLength: 128, head: "softmax", device: "cpu", version: "0.0.0" };

/** Entity groups of one word each for words starting with a capital; BOOM fails its call; `delayMs` per call. */
function fakeTagger(calls: number[], delayMs = 1): TextTagger {
  return {
    async tagTexts(texts, aggregation) {
      calls.push(texts.length);
      await new Promise((r) => setTimeout(r, delayMs));
      if (texts.some((t) => t.includes("BOOM"))) throw new Error("boom");
      return texts.map((t) => [...t.matchAll(/[A-Z]\w*/g)].map((m) => ({ entity_group: aggregation ?? "?", score: 0.5, word: m[0], start: m.index!, end: m.index! + m[0].length })));
    },
    async tagWords() {
      throw new Error("not used");
    },
  };
}

describe("parsePredictBody", () => {
  const opts = { maxInputs: 3, defaultAggregation: "simple" as const };
  it("takes a string or an array of strings, with HF's parameters", () => {
    expect(parsePredictBody({ inputs: "a" }, opts)).toEqual({ texts: ["a"], single: true, aggregation: "simple" });
    expect(parsePredictBody({ inputs: ["a", "b"], parameters: { aggregation_strategy: "max" }, options: { wait_for_model: true } }, opts)).toEqual({ texts: ["a", "b"], single: false, aggregation: "max" });
  });
  it("refuses everything else with a message naming the field", () => {
    const bad = (body: unknown) => {
      try {
        parsePredictBody(body, opts);
      } catch (e) {
        expect((e as { statusCode: number }).statusCode).toBe(400);
        return (e as Error).message;
      }
      throw new Error("accepted");
    };
    expect(bad(undefined)).toMatch(/expected a JSON object/);
    expect(bad([1])).toMatch(/got an array/);
    expect(bad({})).toMatch(/"inputs" is missing/);
    expect(bad({ inputs: 1 })).toMatch(/"inputs" is a number/);
    expect(bad({ inputs: "" })).toMatch(/empty string/);
    expect(bad({ inputs: [] })).toMatch(/empty array/);
    expect(bad({ inputs: ["a", 2] })).toMatch(/"inputs"\[1\] is a number/);
    expect(bad({ inputs: ["a", ""] })).toMatch(/"inputs"\[1\] is an empty string/);
    expect(bad({ inputs: ["a", "b", "c", "d"] })).toMatch(/at most 3 per request/);
    expect(bad({ inputs: "a", parameters: "x" })).toMatch(/"parameters" is a string/);
    expect(bad({ inputs: "a", parameters: { aggregation_strategy: "mean" } })).toMatch(/must be one of none, simple, first, average, max; got "mean"/);
    expect(bad({ inputs: "a", parameters: { top_k: 1 } })).toMatch(/unknown parameter "top_k"/);
    expect(bad({ inputs: "a", input: "b" })).toMatch(/unknown field "input"/);
  });
});

describe("MicroBatcher", () => {
  it("puts texts that arrive within the window into one call, at most maxBatch per call", async () => {
    const calls: number[] = [];
    const b = new MicroBatcher(fakeTagger(calls), { maxBatch: 8, windowMs: 5 });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => b.submit([`T${i}`], "simple")));
    results.forEach((r, i) => expect(r).toEqual([[{ entity_group: "simple", score: 0.5, word: `T${i}`, start: 0, end: `T${i}`.length }]]));
    expect(calls).toEqual([8, 8, 4]);
  });

  it("tags a batch sorted by length, in calls of at most callBatch texts", async () => {
    const seen: string[][] = [];
    const tagger = fakeTagger([]);
    const b = new MicroBatcher({ ...tagger, tagTexts: (texts, a) => (seen.push([...texts]), tagger.tagTexts(texts, a)) }, { maxBatch: 64, callBatch: 4, windowMs: 5 });
    const texts = ["Cccc", "A", "Eeeeee", "Bb", "Ddddd", "Ccc"];
    const results = await Promise.all(texts.map((t) => b.submit([t])));
    results.forEach((r, i) => expect(r).toEqual([[expect.objectContaining({ word: texts[i] })]]));
    expect(seen).toEqual([["A", "Bb", "Ccc", "Cccc"], ["Ddddd", "Eeeeee"]]);
  });

  it("with maxBatch 1 makes one call per text", async () => {
    const calls: number[] = [];
    const b = new MicroBatcher(fakeTagger(calls), { maxBatch: 1 });
    await Promise.all([b.submit(["A"]), b.submit(["B", "C"])]);
    expect(calls).toEqual([1, 1, 1]);
  });

  it("gives a failing text its error and the others their results; refuses past maxQueue", async () => {
    const calls: number[] = [];
    const b = new MicroBatcher(fakeTagger(calls, 20), { maxBatch: 4, maxQueue: 6 });
    const first = b.submit(["A", "BOOM", "C"]);
    expect(() => b.submit(["D", "E", "F", "G"])).toThrow(OverloadedError);
    const r = await first;
    expect(r[0]).toEqual([{ entity_group: "?", score: 0.5, word: "A", start: 0, end: 1 }]);
    expect(r[1]).toBeInstanceOf(Error);
    expect(r[2]).toEqual([{ entity_group: "?", score: 0.5, word: "C", start: 0, end: 1 }]);
    await b.idle();
  });
});

async function post(url: string, body: string | object, headers: Record<string, string> = { "content-type": "application/json" }) {
  const res = await fetch(`${url}/predict`, { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as unknown, headers: res.headers };
}

describe("the HTTP server (fake tagger)", () => {
  let server: NerServer;
  let url: string;
  const calls: number[] = [];
  beforeAll(async () => {
    server = createServer(fakeTagger(calls, 30), { metadata: META, maxQueue: 16, bodyLimit: 1 << 20 });
    url = await server.listen({ port: 0 });
  });
  afterAll(() => server.close());

  it("answers in HF's shape: a list for a string, a list per text for an array", async () => {
    expect(await post(url, { inputs: "Hello Paris" })).toMatchObject({ status: 200, json: [{ entity_group: "simple", score: 0.5, word: "Hello", start: 0, end: 5 }, { entity_group: "simple", word: "Paris", start: 6, end: 11 }] });
    const r = await post(url, { inputs: ["A b", "c D"], parameters: { aggregation_strategy: "first" } });
    expect(r).toMatchObject({ status: 200, json: [[{ entity_group: "first", word: "A" }], [{ word: "D", start: 2 }]] });
  });

  it("gives malformed requests 4xx with a message, and keeps serving", async () => {
    const cases: [string | object, number, RegExp, Record<string, string>?][] = [
      ["{not json", 400, /not JSON/],
      ["", 400, /not JSON/],
      ["[1, 2]", 400, /expected a JSON object/],
      [{ inputs: 42 }, 400, /"inputs" is a number/],
      [{ inputs: [] }, 400, /empty array/],
      [{ inputs: "" }, 400, /empty string/],
      [{ inputs: ["ok", null] }, 400, /"inputs"\[1\] is null/],
      [{ inputs: "x", parameters: { aggregation_strategy: 3 } }, 400, /aggregation_strategy/],
      [{ inputs: "BOOM" }, 500, /boom/],
      ['{"inputs": "form-encoded but JSON"}', 200, /.*/, { "content-type": "application/x-www-form-urlencoded" }],
    ];
    for (const [body, status, message, headers] of cases) {
      const r = await post(url, body, headers);
      expect(r.status, JSON.stringify(body)).toBe(status);
      if (status !== 200) expect((r.json as { error: string }).error).toMatch(message);
    }
    const big = await post(url, { inputs: "a".repeat(10 * 1024 * 1024) });
    expect(big.status).toBe(413);
    expect(big.json).toEqual({ error: "the request body is larger than 1048576 bytes" });
    const notFound = await fetch(`${url}/nope`);
    expect(notFound.status).toBe(404);
    expect((await post(url, { inputs: "Still Here" })).status).toBe(200);
  });

  it("answers 503 with Retry-After instead of queueing without bound", async () => {
    const waves = await Promise.all(Array.from({ length: 40 }, (_, i) => post(url, { inputs: [`A${i}`, `B${i}`] })));
    const statuses = waves.map((w) => w.status);
    expect(statuses).toContain(200);
    expect(statuses).toContain(503);
    expect(statuses.every((s) => s === 200 || s === 503)).toBe(true);
    const refused = waves.find((w) => w.status === 503)!;
    expect(refused.headers.get("retry-after")).toBe("1");
    expect((refused.json as { error: string }).error).toMatch(/overloaded/);
    expect((await post(url, { inputs: "After" })).status).toBe(200);
  });

  it("serves /health, /metadata and /openapi.json", async () => {
    expect(await (await fetch(`${url}/health`)).json()).toMatchObject({ status: "ok", queued: 0, inFlight: 0, requests: expect.any(Number) });
    expect(await (await fetch(`${url}/metadata`)).json()).toMatchObject({ labels: META.labels, encoder: "bert", maxLength: 128, batching: { maxBatch: 64, maxQueue: 16 } });
    const doc = (await (await fetch(`${url}/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths).sort()).toEqual(["/health", "/metadata", "/openapi.json", "/predict"]);
  });

  it("close() lets requests in flight finish, and refuses new connections", async () => {
    const s = createServer(fakeTagger([], 200), { metadata: META });
    const u = await s.listen({ port: 0 });
    const inFlight = post(u, { inputs: ["Slow One", "Slow Two"] });
    await new Promise((r) => setTimeout(r, 50));
    const closed = s.close();
    const r = await inFlight;
    expect(r.status).toBe(200);
    expect(r.json).toEqual([[{ entity_group: "simple", score: 0.5, word: "Slow", start: 0, end: 4 }, { entity_group: "simple", score: 0.5, word: "One", start: 5, end: 8 }], [expect.objectContaining({ word: "Slow" }), expect.objectContaining({ word: "Two" })]]);
    await closed;
    await expect(fetch(`${u}/health`)).rejects.toThrow();
  });
});

/** CoNLL-2003 test sentences, words joined by spaces. */
function conllSentences(n: number): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  for (const line of readFileSync(CONLL_TEST, "utf8").split("\n")) {
    const word = line.trim().split(/\s+/)[0];
    if (!word) {
      if (cur.length) out.push(cur.join(" "));
      cur = [];
      if (out.length >= n) break;
    } else if (word !== "-DOCSTART-") cur.push(word);
  }
  return out;
}

/** Starts `ner-engine serve` (the built CLI) on a free port; resolves with the child and its URL. */
async function startServe(args: string[] = []): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, "serve", "--model", TINY_BERT, "--device", "cpu", "--port", "0", ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.on("exit", (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
  return { child, url, stderr: () => stderr };
}

const ready = has(TINY_BERT, CONLL_TEST) && existsSync(CLI);
describe.skipIf(!ready)(`ner-engine serve on tiny-bert-ner (${!existsSync(CLI) ? "needs dist/: npm run build:ts" : has(TINY_BERT, CONLL_TEST) ? "CoNLL-2003 test sentences" : needs(TINY_BERT, CONLL_TEST)})`, () => {
  it("64 concurrent clients for 4 s: no errors, every answer equal to the CLI's prediction of the same text", async () => {
    const texts = conllSentences(300);
    // The CLI's predictions (HF "simple" groups, the server's default).
    const dir = mkdtempSync(path.join(tmpdir(), "ner-serve-"));
    const input = path.join(dir, "texts.txt");
    writeFileSync(input, texts.join("\n") + "\n");
    const cli = spawnSync(process.execPath, [CLI, "predict", "--model", TINY_BERT, "--device", "cpu", "--input", input, "--aggregation", "simple"], { env, encoding: "utf8" });
    rmSync(dir, { recursive: true, force: true });
    expect(cli.status, cli.stderr).toBe(0);
    const expected = cli.stdout.trimEnd().split("\n").map((l) => JSON.parse(l).entities as { entity_group: string; score: number; word: string; start: number; end: number }[]);
    expect(expected).toHaveLength(texts.length);

    const { child, url, stderr } = await startServe();
    try {
      const until = Date.now() + 4000;
      let requests = 0;
      const mismatches: string[] = [];
      const failures: string[] = [];
      await Promise.all(Array.from({ length: 64 }, async (_, client) => {
        for (let k = client; Date.now() < until; k += 64) {
          const i = (k * 7919) % texts.length;
          const res = await fetch(`${url}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ inputs: texts[i] }) });
          requests++;
          if (res.status !== 200) {
            failures.push(`${res.status} ${await res.text()}`);
            continue;
          }
          const got = (await res.json()) as typeof expected[number];
          // Labels, words and offsets exactly; scores up to float noise of another batch composition.
          const same = got.length === expected[i].length && got.every((e, j) => {
            const x = expected[i][j];
            return e.entity_group === x.entity_group && e.word === x.word && e.start === x.start && e.end === x.end && Math.abs(e.score - x.score) < 1e-4;
          });
          if (!same) mismatches.push(`${texts[i]}: ${JSON.stringify(got)} vs ${JSON.stringify(expected[i])}`);
        }
      }));
      expect(failures).toEqual([]);
      expect(mismatches).toEqual([]);
      expect(requests).toBeGreaterThan(64);
      const health = await (await fetch(`${url}/health`)).json();
      expect(health).toEqual({ status: "ok", queued: 0, inFlight: 0, requests });
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.on("close", r));
    }
    expect(stderr()).toContain("SIGTERM");
  }, 120_000);

  it("SIGTERM: requests in flight are answered, then it exits 0", async () => {
    // One text per engine call: 64 requests take a while to work off.
    const { child, url, stderr } = await startServe(["--max-batch", "1"]);
    const texts = conllSentences(64);
    const inFlight = texts.map((t) => fetch(`${url}/predict`, { method: "POST", body: JSON.stringify({ inputs: t }) }).then((r) => r.status, (e: Error) => e.message));
    // SIGTERM once all 64 have reached the server, while most still wait for the engine.
    let health: { queued: number; requests: number };
    do health = (await (await fetch(`${url}/health`)).json()) as typeof health;
    while (health.requests < 64);
    expect(health.queued).toBeGreaterThan(0);
    child.kill("SIGTERM");
    const code = await new Promise((r) => child.on("close", r));
    const statuses = await Promise.all(inFlight);
    expect(statuses.filter((s) => s !== 200), stderr()).toEqual([]);
    expect(code).toBe(0);
    expect(stderr()).toMatch(/SIGTERM: no new requests[\s\S]*stopped/);
  }, 60_000);
});

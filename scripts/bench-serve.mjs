#!/usr/bin/env node
// Serving benchmark (a script, not a test): requests/s and p50/p99 latency of `ner-engine serve` on
// loopback for 1, 8 and 64 concurrent clients (each sends one text, waits for the answer, sends the next),
// with micro-batching (--max-batch 64, 3 ms window, length-sorted engine calls of 16) and without
// (--max-batch 1), against a plain
// sequential loop of Engine.predict calls in one process (no HTTP). Texts: CoNLL-2003 test sentences
// (words joined by spaces), HF "simple" aggregation (the server's default) everywhere.
//
//   npm run build:ts && node scripts/bench-serve.mjs [--model DIR] [--seconds 30] [--clients 1,8,64]
//
// The server is the built CLI in a child process; the clients run in this process on the same machine
// (so on 2 cores they take CPU from the server: the figures are for client + server together). Every
// answer is checked to be HTTP 200; errors are counted and reported. Prints a Markdown table and a JSON line.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const shared = process.env.NER_SHARED_DIR || process.env.NER_SHARED || path.resolve(root, "../shared");
const model = option("model", path.join(shared, "fixtures/tiny-bert-ner"));
const conll = option("data", path.join(shared, "data/conll2003/test.txt"));
const seconds = Number(option("seconds", 30));
const warmup = Math.min(2, seconds / 5);
const clientCounts = option("clients", "1,8,64").split(",").map(Number);
for (const [what, p] of [["model", model], ["CoNLL-2003 test file", conll], ["built CLI (npm run build:ts)", path.join(root, "dist/app/cli.js")]]) {
  if (!existsSync(p)) {
    console.error(`no ${what} at ${p}`);
    process.exit(2);
  }
}

function sentences() {
  const out = [];
  let cur = [];
  for (const line of readFileSync(conll, "utf8").split("\n")) {
    const word = line.trim().split(/\s+/)[0];
    if (!word) {
      if (cur.length) out.push(cur.join(" "));
      cur = [];
    } else if (word !== "-DOCSTART-") cur.push(word);
  }
  if (cur.length) out.push(cur.join(" "));
  return out;
}
const texts = sentences();

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
function summary(latencies, elapsed, errors) {
  const sorted = Float64Array.from(latencies).sort();
  return { requests: latencies.length, rps: latencies.length / elapsed, p50: percentile(sorted, 50), p99: percentile(sorted, 99), errors };
}

// ---- the plain sequential loop: one process, one text per Engine.predict call, no HTTP ----
async function sequential() {
  const { Engine } = await import(path.join(root, "dist/index.js"));
  const engine = await Engine.load(model, { device: "cpu" });
  const run = async (duration) => {
    const latencies = [];
    const start = performance.now();
    for (let i = 0; performance.now() - start < duration * 1000; i++) {
      const t0 = performance.now();
      await engine.predict(texts[i % texts.length], { aggregation: "simple" });
      latencies.push(performance.now() - t0);
    }
    return summary(latencies, (performance.now() - start) / 1000, 0);
  };
  await run(warmup);
  const result = await run(seconds);
  engine.dispose();
  return result;
}

// ---- the server ----
async function startServer(maxBatch) {
  const child = spawn(process.execPath, [path.join(root, "dist/app/cli.js"), "serve", "--model", model, "--device", "cpu", "--port", "0", "--max-batch", String(maxBatch), "--max-queue", "4096"], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const url = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening on http:\/\/([^:]+):(\d+)/.exec(out);
      if (m) resolve({ host: m[1], port: Number(m[2]) });
    });
    child.on("exit", (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
  return { child, ...url };
}

// The requests, made once: a client sends bytes and reads the answer off a raw keep-alive socket (as
// wrk or autocannon do), so that on 2 cores the load generator takes as little CPU from the server as it can.
const requestBytes = texts.map((t) => {
  const body = Buffer.from(JSON.stringify({ inputs: t }));
  return Buffer.concat([Buffer.from(`POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
});

/** One client: a keep-alive connection; send(i) resolves with the answer's status code (0: connection error). */
function connect(where) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(where.port, where.host, () => resolve({ send, close: () => socket.destroy() }));
    socket.setNoDelay(true);
    let pending;
    let buf = Buffer.alloc(0);
    socket.on("data", (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const head = buf.indexOf("\r\n\r\n");
      if (head < 0 || !pending) return;
      const headers = buf.subarray(0, head).toString("latin1");
      const length = Number(/content-length:\s*(\d+)/i.exec(headers)?.[1] ?? 0);
      if (buf.length < head + 4 + length) return;
      const status = Number(headers.slice(9, 12));
      buf = buf.subarray(head + 4 + length);
      const p = pending;
      pending = undefined;
      p(status);
    });
    socket.on("error", (e) => (pending ? (pending(0), (pending = undefined)) : reject(e)));
    socket.on("close", () => pending && (pending(0), (pending = undefined)));
    const send = (i) => new Promise((r) => {
      pending = r;
      socket.write(requestBytes[i % requestBytes.length]);
    });
  });
}

async function load(where, clients, duration) {
  const connections = await Promise.all(Array.from({ length: clients }, () => connect(where)));
  const latencies = [];
  let errors = 0;
  const start = performance.now();
  await Promise.all(connections.map(async (c, client) => {
    for (let k = client; performance.now() - start < duration * 1000; k += clients) {
      const t0 = performance.now();
      const status = await c.send(k);
      if (status === 200) latencies.push(performance.now() - t0);
      else errors++;
    }
  }));
  const elapsed = (performance.now() - start) / 1000;
  for (const c of connections) c.close();
  return summary(latencies, elapsed, errors);
}

const loadAverageAtStart = os.loadavg();
const rows = [];
const fmt = (r) => `${r.rps.toFixed(1)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.errors}`;
console.error(`${texts.length} CoNLL-2003 test sentences; ${seconds} s per measurement (after ${warmup} s of warm-up)`);
const seq = await sequential();
rows.push({ mode: "sequential Engine.predict loop (no HTTP)", clients: 1, ...seq });
console.error(`sequential: ${fmt(seq)}`);
for (const [label, maxBatch] of [["serve, micro-batching (max 64, 3 ms, calls of 16)", 64], ["serve, batch size 1", 1]]) {
  const server = await startServer(maxBatch);
  try {
    for (const clients of clientCounts) {
      await load(server, clients, warmup);
      const r = await load(server, clients, seconds);
      rows.push({ mode: label, clients, ...r });
      console.error(`${label}, ${clients} clients: ${fmt(r)}`);
    }
  } finally {
    server.child.kill("SIGTERM");
    await new Promise((r) => server.child.on("close", r));
  }
}

const at = (mode, clients) => rows.find((r) => r.mode.startsWith(mode) && r.clients === clients);
const top = Math.max(...clientCounts);
const speedup = at("serve, micro", top).rps / at("serve, batch size 1", top).rps;
console.log(`| mode | clients | requests/s | p50 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|`);
for (const r of rows) console.log(`| ${r.mode} | ${r.clients} | ${fmt(r)} |`);
console.log(`\nmicro-batching / batch size 1 at ${top} clients: ${speedup.toFixed(2)}x requests/s`);
console.log(JSON.stringify({
  machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, OPENBLAS_CORETYPE: process.env.OPENBLAS_CORETYPE ?? null, loadAverageAtStart, loadAverageAtEnd: os.loadavg() },
  model, seconds, rows, speedupAtMaxClients: +speedup.toFixed(2),
}));

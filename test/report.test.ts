import { afterAll, describe, expect, it, vi } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Writable } from "node:stream";
import { classificationReport, tagReport } from "../src/eval/metrics.js";
import { JsonlLogger, ProgressBar, escapeHtml, fitAxis, formatDuration, lineChart, renderHtmlReport, writeRunArtifacts, type HistoryLike, type ProgressEvent } from "../src/eval/report.js";
import * as safetensors from "../src/model/safetensors.js";

// Spy on writeFileAtomic while keeping its real behaviour, to check that artifacts go through it.
vi.mock("../src/model/safetensors.js", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../src/model/safetensors.js")>();
  return { ...actual, writeFileAtomic: vi.fn(actual.writeFileAtomic) };
});

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "ner-report-test-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const tokens = [
  ["<script>alert(1)</script>", "met", "Anna", "Schmidt", "in", "Berlin"],
  ["Acme", "Corp", "hired", "Bob", "&", "co"],
];
const gold = [
  ["B-ORG", "O", "B-PER", "I-PER", "O", "B-LOC"],
  ["B-ORG", "I-ORG", "O", "B-PER", "O", "O"],
];
const pred = [
  ["B-ORG", "O", "B-PER", "I-PER", "O", "B-ORG"], // Berlin: wrong type
  ["B-ORG", "O", "O", "O", "O", "O"], // Acme Corp: wrong span; Bob missed
];

function evaluation() {
  return { report: classificationReport(gold, pred), tagReport: tagReport(gold, pred), tokens, gold, pred, unseenLabels: [], seconds: 0.5, sentencesPerSecond: 4 };
}

function history(): HistoryLike {
  const dev = evaluation();
  return {
    epochs: [
      { epoch: 0, trainLoss: 1.5, seconds: 10, sentencesPerSecond: 100, tokensPerSecond: 1500, dev, isBest: false },
      { epoch: 1, trainLoss: 0.7, seconds: 9, sentencesPerSecond: 110, tokensPerSecond: 1600, dev, isBest: true },
    ],
    best: { epoch: 1, metric: dev.report.micro.f1 },
    test: evaluation(),
    stoppedEarly: false,
    seconds: 25,
  };
}

const progress: ProgressEvent[] = Array.from({ length: 20 }, (_, i) => ({
  epoch: i < 10 ? 0 : 1, step: i + 1, totalSteps: 20, loss: 2 / (i + 1), learningRate: 5e-5 * (1 - i / 20),
  tokensPerSecond: 1234, sentencesPerSecond: 80, elapsedSeconds: (i + 1) * 2,
}));

describe("renderHtmlReport", () => {
  const html = renderHtmlReport({ history: history(), config: { model: "x" }, labels: ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"], progress });

  it("escapes all text (no injected markup)", () => {
    expect(html).not.toContain("<script>");
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(html).toContain("&amp;");
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  });

  it("is self-contained: inline SVG charts, no external assets", () => {
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
    expect((html.match(/<svg /g) ?? []).length).toBe(3); // loss, learning rate, dev F1
    expect(html).toContain("training loss");
    expect(html).toContain("learning rate");
    expect(html).toContain("dev F1");
    expect(html).not.toMatch(/\b(src|href)=/);
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
  });

  it("highlights predicted entities and marks mismatches", () => {
    // Correct PER span: a plain mark coloured by type.
    expect(html).toMatch(/<mark class="ent" style="background:#[0-9a-f]{6}" title="PER">Anna Schmidt<sub>PER<\/sub><\/mark>/);
    // Berlin predicted ORG, gold LOC: dashed (wrong) mark naming the gold tag; the gold LOC is missed.
    expect(html).toMatch(/<mark class="ent wrong"[^>]*title="predicted ORG; gold: B-LOC"><span class="missed"[^>]*>Berlin<\/span>/);
    // Bob is a missed gold PER with no prediction.
    expect(html).toContain(`<span class="missed" title="gold: B-PER">Bob</span>`);
    expect(html).toContain(`class="sent err"`);
  });

  it("renders the dev and test report tables, each heading, table and accuracy line in one block", () => {
    // One flex item per table: loose siblings were laid out side by side by .tables' flex row.
    expect(html).toMatch(/<div class="tables">\s*<section class="scores"><h3>dev<\/h3><table>.*?<\/table><p class="small">token accuracy [\d.]+<\/p><\/section>/s);
    expect(html).toMatch(/<section class="scores"><h3>test<\/h3><table>/);
    expect(html).toContain("<th>micro avg</th>");
  });

  it("labels epoch and step axes with whole numbers only", () => {
    const xticks = (svg: string): string[] => [...svg.matchAll(/class="xtick">([^<]*)</g)].map((m) => m[1]);
    const charts = html.split("<svg ").slice(1);
    expect(charts).toHaveLength(3);
    for (const svg of charts) for (const t of xticks(svg)) expect(t).toMatch(/^\d+$/);
    const f1 = charts.find((c) => c.includes("dev F1"))!;
    expect(xticks(f1)).toEqual(["0", "1"]); // epochs 0 and 1, not 0, 0.2, …, 1
    expect(xticks(lineChart("t", "epoch", [{ name: "a", points: [[3, 0.5]] }], { integerX: true }))).toEqual(["3"]);
    expect(xticks(lineChart("t", "epoch", [{ name: "a", points: [[0, 1], [2, 2]] }], { integerX: true }))).toEqual(["0", "1", "2"]);
  });

  it("fits the F1 and loss axes to the data", () => {
    const yticks = (svg: string): number[] => [...svg.matchAll(/class="ytick">([^<]*)</g)].map((m) => Number(m[1]));
    const f1 = yticks(lineChart("f1", "epoch", [{ name: "f1", points: [[0, 0.86], [1, 0.9], [2, 0.93]] }], { integerX: true, yFloor: 0, yCeil: 1 }));
    expect(f1[0]).toBeGreaterThanOrEqual(0.8);
    expect(f1[0]).toBeLessThan(0.86);
    expect(f1.at(-1)!).toBeGreaterThan(0.93);
    expect(f1.at(-1)!).toBeLessThanOrEqual(1);
    const loss = yticks(lineChart("loss", "step", [{ name: "loss", points: [[1, 0.31], [2, 0.27], [3, 0.25]] }], { integerX: true, yFloor: 0 }));
    expect(loss[0]).toBeGreaterThan(0.2); // not pinned to 0
    expect(loss.at(-1)!).toBeLessThan(0.35);
  });

  it("caps the number of test sentences", () => {
    const capped = renderHtmlReport({ history: history(), config: {}, labels: ["O", "B-PER"], maxSentences: 1 });
    expect((capped.match(/<p class="sent /g) ?? []).length).toBe(1);
    expect(capped).toContain("First 1 of 2");
  });

  it("picks nice axis ranges and ticks", () => {
    expect(fitAxis(0, 1, { integer: true })).toEqual({ min: 0, max: 1, ticks: [0, 1] });
    expect(fitAxis(0, 7, { integer: true }).ticks).toEqual([0, 2, 4, 6]);
    expect(fitAxis(3, 3, { integer: true }).ticks).toEqual([3]);
    // Padded by 5% of the span, rounded outward to whole ticks, never past the bounds.
    expect(fitAxis(0.85, 0.95, { margin: 0.05, floor: 0, ceil: 1 })).toEqual({ min: 0.8, max: 1, ticks: [0.8, 0.85, 0.9, 0.95, 1] });
    expect(fitAxis(0.1, 2, { margin: 0.05, floor: 0 })).toEqual({ min: 0, max: 2.5, ticks: [0, 0.5, 1, 1.5, 2, 2.5] });
    expect(fitAxis(1, 1, { margin: 0.05, floor: 0, ceil: 1 })).toMatchObject({ min: 0.95, max: 1 });
    expect(fitAxis(0, 0, { margin: 0.05, floor: 0, ceil: 1 })).toMatchObject({ min: 0, max: 0.05 });
    // Bounds only hold data that lies inside them.
    expect(fitAxis(-1, 2, { margin: 0.05, floor: 0 }).min).toBeLessThan(-1);
  });

  it("draws charts for degenerate inputs", () => {
    expect(lineChart("t", "x", [{ name: "a", points: [] }])).toContain("no data");
    const one = lineChart("t", "x", [{ name: "a", points: [[1, 0.5]] }]);
    expect(one).toContain("<circle");
    expect(one).not.toContain("NaN");
  });
});

describe("writeRunArtifacts", () => {
  it("writes metrics.json and report.html atomically, replacing old files", () => {
    const dir = path.join(tmpRoot, "run");
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "metrics.json"), "stale");
    const spy = vi.mocked(safetensors.writeFileAtomic);
    spy.mockClear();
    const paths = writeRunArtifacts(dir, { history: history(), config: { model: "x" }, labels: ["O", "B-PER"], progress });
    expect(spy.mock.calls.map((c) => path.basename(c[0]))).toEqual(["metrics.json", "report.html"]);
    expect(fs.readdirSync(dir).sort()).toEqual(["metrics.json", "report.html"]); // no temp files left
    const metrics = JSON.parse(fs.readFileSync(paths.metrics, "utf8"));
    expect(metrics.best).toEqual({ epoch: 1, metric: expect.any(Number) });
    expect(metrics.epochs).toHaveLength(2);
    expect(metrics.epochs[1]).toMatchObject({ epoch: 1, trainLoss: 0.7, isBest: true, dev: { f1: expect.any(Number) } });
    expect(metrics.test.micro.f1).toBeCloseTo(classificationReport(gold, pred).micro.f1);
    expect(metrics.dev.perType.PER).toBeDefined();
    expect(metrics.test.tokens).toBeUndefined(); // per-sentence arrays stay out of metrics.json
    expect(metrics.config).toEqual({ model: "x" });
  });
});

describe("JsonlLogger", () => {
  it("appends one timestamped JSON object per line", () => {
    const file = path.join(tmpRoot, "logs", "log.jsonl");
    const log = new JsonlLogger(file);
    log.progress(progress[0]);
    log.epoch(history().epochs[0]);
    const lines = fs.readFileSync(file, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ event: "progress", step: 1, totalSteps: 20 });
    expect(lines[1]).toMatchObject({ event: "epoch", epoch: 0, trainLoss: 1.5, dev: { f1: expect.any(Number) } });
    for (const l of lines) expect(new Date(l.time).toString()).not.toBe("Invalid Date");
  });
});

/** A writable that records everything written to it. */
function sink(tty: boolean): Writable & { text: string; isTTY: boolean; columns: number } {
  const s = new Writable({
    write(chunk, _enc, cb) {
      s.text += chunk.toString();
      cb();
    },
  }) as Writable & { text: string; isTTY: boolean; columns: number };
  s.text = "";
  s.isTTY = tty;
  s.columns = 200;
  return s;
}

describe("ProgressBar", () => {
  it("prints plain periodic lines without a TTY", () => {
    const out = sink(false);
    let clock = 0;
    const bar = new ProgressBar({ stream: out, plainIntervalSeconds: 10, now: () => clock });
    for (const p of progress) {
      clock = 100 + p.step * 2; // 2 s per step
      // The engine's elapsedSeconds restarts each epoch; the bar must not depend on it.
      bar.update({ ...p, elapsedSeconds: p.epoch === 0 ? p.step * 2 : (p.step - 10) * 2 });
    }
    bar.done();
    expect(out.text).not.toContain("\r");
    const lines = out.text.trimEnd().split("\n");
    // First update, then every 10 s (steps 1, 6, 11, 16), then the final step.
    expect(lines.map((l) => /step (\d+)\//.exec(l)?.[1])).toEqual(["1", "6", "11", "16", "20"]);
    expect(lines[0]).toMatch(/^epoch 0 step 1\/20\s+5% loss 2\.0000 lr 5\.00e-5 1\.2k tok\/s elapsed 00:02 eta --:--$/);
    expect(lines[1]).toMatch(/elapsed 00:12 eta 00:28$/);
    expect(lines[3]).toMatch(/^epoch 1 step 16\/20 .* elapsed 00:32 eta 00:08$/);
    expect(lines[4]).toMatch(/100% .* eta 00:00$/);
  });

  it("redraws one line on a TTY and keeps logged text intact", () => {
    const out = sink(true);
    const bar = new ProgressBar({ stream: out });
    bar.update(progress[9]);
    bar.log("epoch report");
    bar.update(progress[19]);
    bar.done();
    expect(out.text.startsWith("\r\x1b[2Kepoch 0 step 10/20 [############............]  50%")).toBe(true);
    expect(out.text).toContain("\r\x1b[2Kepoch report\n");
    expect(out.text).toContain("100%");
    expect(out.text.endsWith("\n")).toBe(true);
  });

  it("formats durations", () => {
    expect(formatDuration(5)).toBe("00:05");
    expect(formatDuration(3725)).toBe("1:02:05");
    expect(formatDuration(NaN)).toBe("--:--");
  });
});

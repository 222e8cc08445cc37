/**
 * Run artifacts: metrics.json, the log.jsonl event log, a self-contained report.html (inline SVG
 * charts, report tables, test sentences with highlighted entities) and the terminal progress bar.
 *
 * The types below are the structural subset of the engine's results that reporting needs, so this
 * module does not depend on the native engine (and is testable without it).
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { formatFixed, getEntities, type ClassificationReport } from "./metrics.js";
import { writeFileAtomic } from "../model/safetensors.js";
import type { NativeProgress } from "../model/native.js";

/** A training progress report, as the native trainer sends it. */
export type ProgressEvent = NativeProgress;

export interface EvaluationLike {
  report: ClassificationReport;
  tagReport?: ClassificationReport;
  gold?: string[][];
  pred?: string[][];
  tokens?: string[][];
  unseenLabels?: { label: string; count: number }[];
  seconds?: number;
  sentencesPerSecond?: number;
}

export interface EpochLike {
  epoch: number;
  trainLoss: number;
  seconds: number;
  sentencesPerSecond: number;
  tokensPerSecond: number;
  dev?: EvaluationLike;
  isBest: boolean;
}

export interface HistoryLike {
  epochs: EpochLike[];
  best?: { epoch: number; metric: number };
  test?: EvaluationLike;
  stoppedEarly: boolean;
  seconds: number;
}

export interface RunArtifactsInput {
  history: HistoryLike;
  config: unknown;
  labels: readonly string[];
  /** Progress events seen during training (for the loss / learning-rate curves). */
  progress?: readonly ProgressEvent[];
  title?: string;
}

// ---- metrics.json ----

/** An evaluation without its per-sentence arrays (those belong in report.html, not a metrics file). */
function summarizeEvaluation(e: EvaluationLike | undefined): object | undefined {
  if (!e) return undefined;
  return { ...e.report, tagReport: e.tagReport, unseenLabels: e.unseenLabels, seconds: e.seconds, sentencesPerSecond: e.sentencesPerSecond };
}

/** The dev evaluation the final model corresponds to: the best epoch's, else the last one with dev. */
function finalDev(history: HistoryLike): EvaluationLike | undefined {
  const best = history.best && history.epochs.find((e) => e.epoch === history.best!.epoch);
  return best?.dev ?? [...history.epochs].reverse().find((e) => e.dev)?.dev;
}

export function metricsJson({ history, config, labels }: RunArtifactsInput): object {
  return {
    labels,
    best: history.best ?? null,
    stoppedEarly: history.stoppedEarly,
    seconds: history.seconds,
    dev: summarizeEvaluation(finalDev(history)) ?? null,
    test: summarizeEvaluation(history.test) ?? null,
    epochs: history.epochs.map((e) => ({
      epoch: e.epoch,
      trainLoss: e.trainLoss,
      seconds: e.seconds,
      sentencesPerSecond: e.sentencesPerSecond,
      tokensPerSecond: e.tokensPerSecond,
      isBest: e.isBest,
      dev: e.dev ? { ...e.dev.report.micro, accuracy: e.dev.report.accuracy } : null,
    })),
    config,
  };
}

/** Writes metrics.json and report.html into `outDir` (each atomically); returns their paths. */
export function writeRunArtifacts(outDir: string, input: RunArtifactsInput): { metrics: string; report: string } {
  mkdirSync(outDir, { recursive: true });
  const metrics = join(outDir, "metrics.json");
  const report = join(outDir, "report.html");
  writeFileAtomic(metrics, JSON.stringify(metricsJson(input), null, 2) + "\n");
  writeFileAtomic(report, renderHtmlReport(input));
  return { metrics, report };
}

// ---- log.jsonl ----

/** Appends one JSON object per line, each with an ISO timestamp; survives crashes line by line. */
export class JsonlLogger {
  constructor(readonly path: string) {
    mkdirSync(join(path, ".."), { recursive: true });
  }

  log(event: string, data: object = {}): void {
    appendFileSync(this.path, JSON.stringify({ time: new Date().toISOString(), event, ...data }) + "\n");
  }

  progress(p: ProgressEvent): void {
    this.log("progress", p);
  }

  epoch(e: EpochLike): void {
    const { dev, ...rest } = e;
    this.log("epoch", { ...rest, dev: dev ? { ...dev.report.micro, accuracy: dev.report.accuracy } : undefined });
  }
}

// ---- HTML ----

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#e15759", "#bab0ac"];

/** The smallest 1, 2, 5 × 10^k step that splits `span` into at most `count` parts. */
function niceStep(span: number, count: number): number {
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw * (1 - 1e-9)) ?? 10 * mag;
}

export interface AxisOptions {
  /** Whole-number ticks only (epochs, steps): a tick at 0.5 epoch names nothing that exists. */
  integer?: boolean;
  /**
   * Value axes: pad the data range by this fraction of its span, then round outward to whole ticks,
   * so curves use the plot's height and the frame ends on labelled values. 0 (x axes): the exact data
   * range, with the ticks that fall inside it.
   */
  margin?: number;
  /** Limits padding never crosses while the data lies within them (0 for a loss, 0 and 1 for F1). */
  floor?: number;
  ceil?: number;
  /** Aim for about this many intervals (default 5). */
  count?: number;
}

/** An axis range fitted to the data [lo, hi] and its "nice" (1, 2, 5 × 10^k) tick values. */
export function fitAxis(lo: number, hi: number, opts: AxisOptions = {}): { min: number; max: number; ticks: number[] } {
  const { integer = false, margin = 0, count = 5 } = opts;
  const clamp = (v: number): number => {
    if (opts.floor !== undefined && opts.floor <= lo) v = Math.max(v, opts.floor);
    if (opts.ceil !== undefined && opts.ceil >= hi) v = Math.min(v, opts.ceil);
    return v;
  };
  const flat = !(hi > lo);
  // A flat series still needs a range: half a unit around a whole number (its one tick), else ±5%.
  const pad = !flat ? (hi - lo) * margin : integer ? 0.5 : Math.abs(lo) * 0.05 || 0.05;
  let [a, b] = [clamp(lo - pad), clamp(hi + pad)];
  const step = integer ? Math.max(1, niceStep(b - a, count)) : niceStep(b - a, count);
  if (margin > 0 || (flat && !integer)) [a, b] = [clamp(Math.floor(a / step + 1e-9) * step), clamp(Math.ceil(b / step - 1e-9) * step)];
  const round = (v: number): number => Number(v.toPrecision(12)); // 0.95, not 0.9500000000000001
  const ticks: number[] = [];
  for (let k = Math.ceil(a / step - 1e-9); k <= Math.floor(b / step + 1e-9); k++) ticks.push(round(k * step));
  return { min: round(a), max: round(b), ticks };
}

const tickLabel = (v: number): string => (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5) ? v.toExponential(1) : String(Number(v.toPrecision(4))));

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
}

export interface ChartOptions {
  /** The x axis counts whole things (epochs, steps): integer ticks only. */
  integerX?: boolean;
  /** Bounds of the y values (0 for a loss, 0 and 1 for F1): the fitted axis never extends past them. */
  yFloor?: number;
  yCeil?: number;
}

/** An inline SVG line chart; non-finite points are dropped. Both axes are fitted to the data. */
export function lineChart(title: string, xLabel: string, series: readonly Series[], opts: ChartOptions = {}): string {
  const [W, H, L, R, T, B] = [560, 260, 60, 16, 28, 40];
  const clean = series.map((s) => ({ ...s, points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)) }));
  const all = clean.flatMap((s) => s.points);
  const head = `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(title)}">` +
    `<text x="${W / 2}" y="18" text-anchor="middle" class="title">${escapeHtml(title)}</text>`;
  if (all.length === 0) return `${head}<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no data</text></svg>`;
  const xs = fitAxis(Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0])), { integer: opts.integerX });
  const ys = fitAxis(Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1])), { margin: 0.05, floor: opts.yFloor, ceil: opts.yCeil });
  const [x0, x1, y0, y1] = [xs.min, xs.max, ys.min, ys.max];
  const sx = (x: number): number => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number): number => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const f = (v: number): string => v.toFixed(1);
  const parts = [head, `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" class="frame"/>`];
  for (const v of ys.ticks) {
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${f(sy(v))}" y2="${f(sy(v))}" class="grid"/>`,
      `<text x="${L - 6}" y="${f(sy(v) + 4)}" text-anchor="end" class="ytick">${tickLabel(v)}</text>`);
  }
  for (const v of xs.ticks) parts.push(`<text x="${f(sx(v))}" y="${H - B + 16}" text-anchor="middle" class="xtick">${tickLabel(v)}</text>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">${escapeHtml(xLabel)}</text>`);
  clean.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const d = s.points.map(([x, y], k) => `${k === 0 ? "M" : "L"}${f(sx(x))},${f(sy(y))}`).join("");
    parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8"><title>${escapeHtml(s.name)}</title></path>`);
    // Few points (per-epoch series) get markers so a single epoch is still visible.
    if (s.points.length <= 50) for (const [x, y] of s.points) parts.push(`<circle cx="${f(sx(x))}" cy="${f(sy(y))}" r="3" fill="${color}"/>`);
    if (clean.length > 1) parts.push(`<text x="${L + 8 + i * 120}" y="${T + 14}" fill="${color}">${escapeHtml(s.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("");
}

function reportTable(title: string, report: ClassificationReport): string {
  const num = (v: number): string => formatFixed(v, 4);
  const row = (name: string, s: { precision: number; recall: number; f1: number; support: number }, cls = ""): string =>
    `<tr${cls ? ` class="${cls}"` : ""}><th>${escapeHtml(name)}</th><td>${num(s.precision)}</td><td>${num(s.recall)}</td><td>${num(s.f1)}</td><td>${s.support}</td></tr>`;
  const rows = Object.keys(report.perType).sort().map((t) => row(t, report.perType[t]));
  rows.push(row("micro avg", report.micro, "avg"), row("macro avg", report.macro, "avg"), row("weighted avg", report.weighted, "avg"));
  // One block per table: as loose siblings, heading, table and accuracy line each became a flex item
  // of .tables and were laid out side by side.
  return `<section class="scores"><h3>${escapeHtml(title)}</h3><table><thead><tr><th></th><th>precision</th><th>recall</th><th>f1</th><th>support</th></tr></thead>` +
    `<tbody>${rows.join("")}</tbody></table><p class="small">token accuracy ${num(report.accuracy)}</p></section>`;
}

/**
 * One sentence with predicted entities as coloured marks. A prediction that does not exactly match
 * a gold entity is outlined red (its title names the gold tags); words of gold entities that were
 * not predicted exactly are underlined with a wavy red line.
 */
export function renderSentence(tokens: readonly string[], gold: readonly string[], pred: readonly string[], colorOf: (type: string) => string): string {
  const goldSpans = getEntities(gold);
  const predSpans = getEntities(pred);
  const key = ([t, s, e]: readonly [string, number, number]): string => `${t}:${s}:${e}`;
  const goldKeys = new Set(goldSpans.map(key));
  const predKeys = new Set(predSpans.map(key));
  const missed = new Array<boolean>(tokens.length).fill(false);
  for (const span of goldSpans) if (!predKeys.has(key(span))) for (let i = span[1]; i <= span[2]; i++) missed[i] = true;
  const word = (i: number): string => (missed[i] ? `<span class="missed" title="gold: ${escapeHtml(gold[i])}">${escapeHtml(tokens[i])}</span>` : escapeHtml(tokens[i]));
  const out: string[] = [];
  let i = 0;
  for (const [type, start, end] of predSpans) {
    for (; i < start; i++) out.push(word(i));
    const ok = goldKeys.has(key([type, start, end]));
    const goldTags = gold.slice(start, end + 1).join(" ");
    const words: string[] = [];
    for (i = start; i <= end; i++) words.push(word(i));
    out.push(`<mark class="ent${ok ? "" : " wrong"}" style="background:${colorOf(type)}" title="${escapeHtml(ok ? type : `predicted ${type}; gold: ${goldTags}`)}">` +
      `${words.join(" ")}<sub>${escapeHtml(type)}</sub></mark>`);
  }
  for (; i < tokens.length; i++) out.push(word(i));
  const isOk = gold.every((g, k) => g === pred[k]);
  return `<p class="sent ${isOk ? "ok" : "err"}">${out.join(" ")}</p>`;
}

// Charts scale down (viewBox + height:auto) and sit two to a row on a wide page; a table that is still
// too wide for a narrow screen scrolls inside its own block instead of widening the page; long tokens
// break rather than overflow.
const CSS = `body{font:14px/1.5 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{background:#fff;border:1px solid #eee;box-sizing:border-box;flex:1 1 420px;max-width:min(100%,560px);min-width:0;height:auto}
.chart text{font-size:11px;fill:#444}.chart .title{font-size:13px;font-weight:600}.frame{fill:none;stroke:#ccc}.grid{stroke:#eee}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;text-align:right;border-bottom:1px solid #eee}
tbody th{text-align:left}tr.avg th,tr.avg td{color:#555;font-style:italic}
.tables{display:flex;flex-wrap:wrap;gap:12px 40px;align-items:flex-start}.scores{min-width:0;max-width:100%;overflow-x:auto}
@media (max-width:520px){td,th{padding:3px 5px}}
.small{color:#666;font-size:12px}.sent{margin:6px 0;padding:4px 6px;border-left:3px solid #cde;overflow-wrap:anywhere}.sent.err{border-left-color:#e15759}
mark.ent{padding:1px 3px;border-radius:3px;color:#fff}mark.ent sub{font-size:9px;margin-left:3px;opacity:.9}
mark.wrong{outline:2px dashed #d00;outline-offset:1px}.missed{text-decoration:underline wavy #d00}
#only-err:checked~.sents .ok{display:none}.legend mark{margin-right:8px}`;

export interface HtmlReportOptions extends RunArtifactsInput {
  /** Test sentences to render at most (default 200). */
  maxSentences?: number;
}

/** A self-contained report.html: no external assets, no scripts, every text escaped. */
export function renderHtmlReport(input: HtmlReportOptions): string {
  const { history, progress = [], labels } = input;
  const title = input.title ?? "NER training report";
  const types = [...new Set(labels.filter((l) => l !== "O").map((l) => l.replace(/^[BIES]-/, "")))].sort();
  const colorOf = (type: string): string => {
    const k = types.indexOf(type);
    return PALETTE[(k < 0 ? types.length + type.length : k) % PALETTE.length];
  };
  const parts: string[] = [
    `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<title>${escapeHtml(title)}</title><style>${CSS}</style></head><body><h1>${escapeHtml(title)}</h1>`,
  ];
  const best = history.best ? `best epoch ${history.best.epoch} (${formatFixed(history.best.metric, 4)})` : "no dev set";
  parts.push(`<p class="small">${history.epochs.length} epoch(s), ${formatFixed(history.seconds, 1)} s, ${escapeHtml(best)}` +
    `${history.stoppedEarly ? ", stopped early" : ""}.</p>`);

  parts.push(`<h2>Training</h2><div class="charts">`);
  const byStep = (f: (p: ProgressEvent) => number): [number, number][] => progress.map((p) => [p.step, f(p)]);
  const epochLoss: [number, number][] = history.epochs.map((e) => [e.epoch, e.trainLoss]);
  // Steps and epochs are counts (integer ticks); losses, rates and F1 are fitted to their data within
  // their natural bounds, so a curve near 0.9 F1 is not squashed into a flat line at the top.
  const counted: ChartOptions = { integerX: true, yFloor: 0 };
  parts.push(progress.length > 0 ? lineChart("training loss", "step", [{ name: "loss", points: byStep((p) => p.loss) }], counted) : lineChart("training loss per epoch", "epoch", [{ name: "loss", points: epochLoss }], counted));
  if (progress.length > 0) parts.push(lineChart("learning rate", "step", [{ name: "lr", points: byStep((p) => p.learningRate) }], counted));
  const devF1: [number, number][] = history.epochs.filter((e) => e.dev).map((e) => [e.epoch, e.dev!.report.micro.f1]);
  if (devF1.length > 0) parts.push(lineChart("dev F1 (micro) per epoch", "epoch", [{ name: "dev F1", points: devF1 }], { ...counted, yCeil: 1 }));
  parts.push(`</div>`);

  const dev = finalDev(history);
  if (dev || history.test) {
    parts.push(`<h2>Entity-level scores</h2><div class="tables">`);
    if (dev) parts.push(reportTable("dev", dev.report));
    if (history.test) parts.push(reportTable("test", history.test.report));
    parts.push(`</div>`);
  }

  const test = history.test;
  if (test?.tokens && test.gold && test.pred) {
    const limit = input.maxSentences ?? 200;
    const n = Math.min(limit, test.tokens.length);
    parts.push(`<h2>Test sentences</h2><p class="small">First ${n} of ${test.tokens.length}. Marks: predicted entities; ` +
      `<mark class="ent wrong" style="background:#888">dashed</mark> = not an exact gold entity; <span class="missed">wavy</span> = gold entity missed.</p>`);
    parts.push(`<p class="legend">${types.map((t) => `<mark class="ent" style="background:${colorOf(t)}">${escapeHtml(t)}</mark>`).join("")}</p>`);
    parts.push(`<input type="checkbox" id="only-err"><label for="only-err"> only sentences with errors</label><div class="sents">`);
    for (let s = 0; s < n; s++) parts.push(renderSentence(test.tokens[s], test.gold[s], test.pred[s], colorOf));
    parts.push(`</div>`);
  }
  parts.push(`</body></html>\n`);
  return parts.join("\n");
}

// ---- terminal progress ----

export interface ProgressBarOptions {
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Defaults to the stream's isTTY. */
  tty?: boolean;
  /** Without a TTY, print at most one line per this many seconds (default 15). */
  plainIntervalSeconds?: number;
  /** Clock in seconds (injectable for tests). */
  now?: () => number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--";
  const s = Math.round(seconds);
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const two = (v: number): string => String(v).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(sec)}` : `${two(m)}:${two(sec)}`;
}

const humanRate = (v: number): string => (v >= 1000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(0));

/**
 * One redrawn line on a TTY (\r), periodic plain lines otherwise (CI logs stay readable).
 * Time comes from the bar's own clock: the engine's elapsedSeconds restarts every epoch while
 * `step` counts the whole run, so ETA = wall time per step since the first update × steps left.
 */
export class ProgressBar {
  private readonly stream: NonNullable<ProgressBarOptions["stream"]>;
  private readonly tty: boolean;
  private readonly plainInterval: number;
  private readonly now: () => number;
  private start?: { time: number; step: number; before: number };
  private lastPlain = -Infinity;
  private lastLine = "";
  private lineActive = false;

  constructor(opts: ProgressBarOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = opts.tty ?? Boolean(this.stream.isTTY);
    this.plainInterval = opts.plainIntervalSeconds ?? 15;
    this.now = opts.now ?? (() => performance.now() / 1000);
  }

  /** The status text for one progress event; `elapsed` = seconds since the bar's first update. */
  format(p: ProgressEvent, withBar: boolean, elapsed: number, eta: number): string {
    const frac = p.totalSteps > 0 ? Math.min(1, p.step / p.totalSteps) : 0;
    const width = 24;
    const bar = withBar ? ` [${"#".repeat(Math.round(frac * width)).padEnd(width, ".")}]` : "";
    return `epoch ${p.epoch} step ${p.step}/${p.totalSteps}${bar} ${(frac * 100).toFixed(0).padStart(3)}% ` +
      `loss ${p.loss.toFixed(4)} lr ${p.learningRate.toExponential(2)} ${humanRate(p.tokensPerSecond)} tok/s ` +
      `elapsed ${formatDuration(elapsed)} eta ${formatDuration(eta)}`;
  }

  update(p: ProgressEvent): void {
    const t = this.now();
    // Rate is measured from the first event on (a resumed run does not start at step 0).
    this.start ??= { time: t, step: p.step, before: Math.max(0, p.elapsedSeconds) };
    const elapsed = t - this.start.time + this.start.before;
    const done = p.step - this.start.step;
    const eta = done > 0 ? ((t - this.start.time) / done) * Math.max(0, p.totalSteps - p.step) : NaN;
    if (this.tty) {
      const columns = this.stream.columns ?? 120;
      this.lastLine = this.format(p, true, elapsed, eta).slice(0, Math.max(20, columns - 1));
      this.stream.write(`\r\x1b[2K${this.lastLine}`);
      this.lineActive = true;
      return;
    }
    if (t - this.lastPlain >= this.plainInterval || p.step >= p.totalSteps) {
      this.lastPlain = t;
      this.stream.write(this.format(p, false, elapsed, eta) + "\n");
    }
  }

  /** Prints text (e.g. an epoch's report) above the bar, to `to` (default: the bar's stream), without garbling it. */
  log(text: string, to: { write(s: string): unknown } = this.stream): void {
    if (this.tty && this.lineActive) this.stream.write("\r\x1b[2K");
    to.write(text.endsWith("\n") ? text : text + "\n");
    if (this.tty && this.lineActive) this.stream.write(this.lastLine);
  }

  /** Ends the redrawn line so following output starts on a fresh line. */
  done(): void {
    if (this.tty && this.lineActive) this.stream.write("\n");
    this.lineActive = false;
  }
}

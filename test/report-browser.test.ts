/**
 * report.html in a real browser: headless Chromium (Debian's `chromium`, installed by
 * scripts/setup.sh) driven by puppeteer-core, which downloads no browser of its own. Checks what
 * string matching cannot: that the score tables and charts are laid out visibly, inside the page and
 * apart from each other at a wide and a narrow viewport, and that the highlighted entities the
 * browser shows are the predictions handed to writeRunArtifacts. Skips, saying why, without a browser.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import type { Browser, Page } from "puppeteer-core";
import { classificationReport, getEntities } from "../src/eval/metrics.js";
import { writeRunArtifacts, type EvaluationLike, type HistoryLike } from "../src/eval/report.js";

const chromium = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => p && fs.existsSync(p));
const puppeteer = await import("puppeteer-core").then((m) => m.default).catch(() => undefined);
const skipReason = !chromium
  ? "no Chromium at /usr/bin/chromium (bash scripts/setup.sh installs it; or set CHROMIUM_PATH)"
  : !puppeteer
    ? "puppeteer-core is not installed (npm ci)"
    : undefined;

// The sentences of test/report.test.ts (markup-like and '&' tokens, a wrong type, a wrong span, a
// missed entity) plus a correct LOC and one unbreakable 90-character token for the narrow viewport.
const longWord = "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaftskapitänin";
const tokens = [
  ["<script>alert(1)</script>", "met", "Anna", "Schmidt", "in", "Berlin"],
  ["Acme", "Corp", "hired", "Bob", "&", "co"],
  ["The", longWord, "flew", "to", "New", "York", "City", "."],
];
const gold = [
  ["B-ORG", "O", "B-PER", "I-PER", "O", "B-LOC"],
  ["B-ORG", "I-ORG", "O", "B-PER", "O", "O"],
  ["O", "B-PER", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O"],
];
const pred = [
  ["B-ORG", "O", "B-PER", "I-PER", "O", "B-ORG"],
  ["B-ORG", "O", "O", "O", "O", "O"],
  ["O", "B-PER", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O"],
];
const labels = ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"];

function evaluation(f1?: number): EvaluationLike {
  const report = classificationReport(gold, pred);
  return { report: f1 === undefined ? report : { ...report, micro: { ...report.micro, f1 } }, tokens, gold, pred };
}

// Four epochs with dev F1 near 0.9: on a 0-1 axis these were a flat line along the top.
const devF1 = [0.86, 0.895, 0.91, 0.905];
const history: HistoryLike = {
  epochs: devF1.map((f1, epoch) => ({ epoch, trainLoss: 0.4 / (epoch + 1), seconds: 10, sentencesPerSecond: 100, tokensPerSecond: 1500, dev: evaluation(f1), isBest: epoch === 2 })),
  best: { epoch: 2, metric: 0.91 },
  test: evaluation(),
  stoppedEarly: false,
  seconds: 40,
};

interface Box { left: number; top: number; right: number; bottom: number; width: number; height: number }
interface Layout {
  viewport: number;
  docScrollWidth: number;
  /** Elements whose box sticks out of the viewport horizontally (tag.class and box). */
  outside: string[];
  tables: { box: Box; h3: Box; table: Box; acc: Box; parent: Box; scrollWidth: number; clientWidth: number; visible: boolean }[];
  charts: { label: string; box: Box; parent: Box; visible: boolean; xticks: string[]; frame: Box; dotYs: number[] }[];
  sentences: { text: string; type: string; wrong: boolean; background: string; visible: boolean }[][];
  plainText: string[];
  legend: Record<string, string>;
}

/** Runs in the page: collects the geometry and the entities the tests assert on. */
function measure(): Layout {
  const box = (el: Element): Box => {
    const r = el.getBoundingClientRect();
    return { left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height };
  };
  const visible = (el: Element): boolean => {
    const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none" && Number(s.opacity) > 0;
  };
  const vw = document.documentElement.clientWidth;
  const outside = [...document.body.querySelectorAll("*")]
    .filter((el) => { const r = el.getBoundingClientRect(); return r.width > 0 && (r.left < -0.5 || r.right > vw + 0.5); })
    .map((el) => `${el.tagName.toLowerCase()}.${el.getAttribute("class") ?? ""} ${JSON.stringify(box(el))}`);
  const markText = (m: Element): string => {
    const copy = m.cloneNode(true) as Element;
    copy.querySelector("sub")?.remove();
    return (copy.textContent ?? "").trim();
  };
  return {
    viewport: vw,
    docScrollWidth: document.documentElement.scrollWidth,
    outside,
    tables: [...document.querySelectorAll(".tables > section.scores")].map((s) => ({
      box: box(s), h3: box(s.querySelector("h3")!), table: box(s.querySelector("table")!), acc: box(s.querySelector("p")!),
      parent: box(s.parentElement!), scrollWidth: s.scrollWidth, clientWidth: s.clientWidth, visible: visible(s.querySelector("table")!),
    })),
    charts: [...document.querySelectorAll("svg.chart")].map((c) => ({
      label: c.getAttribute("aria-label") ?? "", box: box(c), parent: box(c.parentElement!), visible: visible(c),
      xticks: [...c.querySelectorAll("text.xtick")].map((t) => t.textContent ?? ""), frame: box(c.querySelector("rect.frame")!),
      dotYs: [...c.querySelectorAll("circle")].map((d) => d.getBoundingClientRect().top + d.getBoundingClientRect().height / 2),
    })),
    sentences: [...document.querySelectorAll(".sents > p.sent")].map((p) => [...p.querySelectorAll("mark.ent")].map((m) => ({
      text: markText(m), type: (m.querySelector("sub")?.textContent ?? "").trim(), wrong: m.classList.contains("wrong"),
      background: getComputedStyle(m).backgroundColor, visible: visible(m),
    }))),
    plainText: [...document.querySelectorAll(".sents > p.sent")].map((p) => {
      const copy = p.cloneNode(true) as Element;
      copy.querySelectorAll("sub").forEach((sub) => sub.remove()); // the type labels
      return (copy.textContent ?? "").replace(/\s+/g, " ").trim();
    }),
    legend: Object.fromEntries([...document.querySelectorAll(".legend mark")].map((m) => [m.textContent ?? "", getComputedStyle(m).backgroundColor])),
  };
}

const inside = (a: Box, b: Box): boolean => a.left >= b.left - 0.5 && a.right <= b.right + 0.5 && a.top >= b.top - 0.5 && a.bottom <= b.bottom + 0.5;
const overlap = (a: Box, b: Box): boolean => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5;

describe.skipIf(skipReason)(`report.html in headless Chromium${skipReason ? ` (skipped: ${skipReason})` : ""}`, () => {
  let browser: Browser;
  let page: Page;
  let tmp: string | undefined;
  const layouts = new Map<number, Layout>();

  // One browser for every assertion; each viewport loads the page afresh and waits for its load event.
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ner-report-browser-"));
    const url = pathToFileURL(writeRunArtifacts(tmp, { history, config: {}, labels }).report).href;
    // --no-sandbox: Chromium's sandbox refuses to start as root (CI runs as root).
    browser = await puppeteer!.launch({ executablePath: chromium, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
    page = await browser.newPage();
    for (const width of [1280, 400]) {
      await page.setViewport({ width, height: 900 });
      await page.goto(url, { waitUntil: "load" });
      layouts.set(width, await page.evaluate(measure));
    }
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe.each([1280, 400])("at %i px", (width) => {
    const layout = (): Layout => layouts.get(width)!;

    it("fits the page: nothing sticks out horizontally, no horizontal scrolling", () => {
      expect(layout().viewport).toBe(width);
      expect(layout().outside).toEqual([]);
      expect(layout().docScrollWidth).toBeLessThanOrEqual(width);
    });

    it("shows both score tables, each heading, table and accuracy line stacked inside its own block", () => {
      const tables = layout().tables;
      expect(tables).toHaveLength(2); // dev and test
      for (const t of tables) {
        expect(t.visible).toBe(true);
        expect(t.scrollWidth).toBeLessThanOrEqual(t.clientWidth); // no hidden horizontal scroll either
        for (const part of [t.h3, t.table, t.acc]) expect(inside(part, t.box)).toBe(true);
        expect(inside(t.box, t.parent)).toBe(true);
        expect(t.h3.bottom).toBeLessThanOrEqual(t.table.top);
        expect(t.table.bottom).toBeLessThanOrEqual(t.acc.top);
      }
      // Side by side where they fit, one under the other where they do not.
      if (width === 1280) expect(tables[1].box.top).toBe(tables[0].box.top);
      else expect(tables[1].box.top).toBeGreaterThanOrEqual(tables[0].box.bottom);
    });

    it("shows the loss and dev F1 charts inside their row, with whole-epoch ticks and an F1 axis fitted to the data", () => {
      const charts = layout().charts;
      expect(charts.map((c) => c.label)).toEqual(["training loss per epoch", "dev F1 (micro) per epoch"]);
      for (const c of charts) {
        expect(c.visible).toBe(true);
        expect(c.box.width).toBeGreaterThan(200); // scaled down on a narrow screen, not squashed
        expect(inside(c.box, c.parent)).toBe(true);
        expect(c.xticks).toEqual(["0", "1", "2", "3"]);
      }
      // The F1 curve (0.86 … 0.91) spans at least half the plot's height rather than hugging its top.
      const f1 = charts[1];
      expect(Math.max(...f1.dotYs) - Math.min(...f1.dotYs)).toBeGreaterThan(0.5 * f1.frame.height);
    });

    it("keeps tables and charts apart", () => {
      const boxes = [...layout().tables.map((t) => t.box), ...layout().charts.map((c) => c.box)];
      expect(boxes).toHaveLength(4);
      for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) expect(overlap(boxes[i], boxes[j]), `blocks ${i} and ${j}`).toBe(false);
    });

    it("highlights exactly the predicted entities, with their types and the legend's colours", () => {
      const expected = pred.map((p, s) => {
        const goldKeys = new Set(getEntities(gold[s]).map(([t, a, b]) => `${t}:${a}:${b}`));
        return getEntities(p).map(([type, a, b]) => ({ text: tokens[s].slice(a, b + 1).join(" "), type, wrong: !goldKeys.has(`${type}:${a}:${b}`) }));
      });
      const shown = layout().sentences;
      expect(shown.map((s) => s.map(({ text, type, wrong }) => ({ text, type, wrong })))).toEqual(expected);
      for (const m of shown.flat()) {
        expect(m.visible).toBe(true);
        expect(m.background).toBe(layout().legend[m.type]);
      }
      // Each sentence reads as its tokens: markup-like text is shown, not interpreted.
      expect(layout().plainText).toEqual(tokens.map((t) => t.join(" ")));
    });
  });
});

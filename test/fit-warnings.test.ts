// What fit() and the train command tell a user about their data: the dev split held out when no dev data
// is given, and one warning per thing that would otherwise pass without a word.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { Engine } from "../src/app/engine.js";
import { main } from "../src/app/cli.js";
import { demoCorpus } from "../src/app/demo.js";
import type { Corpus, Sentence } from "../src/data/types.js";
import { trainWordPiece, writeTokenizerFiles } from "../src/text/vocab.js";

const demo = demoCorpus();
let tokenizerDir: string;

beforeAll(() => {
  tokenizerDir = mkdtempSync(path.join(tmpdir(), "ner-warn-vocab-"));
  writeTokenizerFiles(tokenizerDir, trainWordPiece(demo.train.sentences.map((s) => s.tokens), { vocabSize: 600, lowercase: false }), { lowercase: false });
});

const corpus = (sentences: Sentence[], source = "train.txt"): Corpus => ({ source, sentences });

async function fitLog(data: { train: Corpus; dev?: Corpus; test?: Corpus }, extra: { data?: Record<string, unknown>; training?: Record<string, unknown> } = {}) {
  const engine = new Engine({
    tokenizer: tokenizerDir,
    device: "cpu",
    scratch: { hiddenSize: 16, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 32, maxPositionEmbeddings: 32 },
    data: { maxLength: 16, ...extra.data },
    training: { epochs: 1, batchSize: 16, maxSteps: 2, ...extra.training },
  });
  const log: string[] = [];
  const history = await engine.fit(data, { onLog: (m) => log.push(m) });
  return { log: log.join("\n"), history };
}

describe("dev data", () => {
  it("without dev data, a seeded 10% of train is held out and used for best-model selection; the log says so", async () => {
    const { log, history } = await fitLog({ train: corpus(demo.train.sentences.slice(0, 200)) });
    expect(log).toContain("holding out 20 of 200 training sentences (10%, seed 42) as dev data");
    expect(history.epochs[0].dev?.report).toBeDefined();
    expect(history.best).toBeDefined();
    // Seeded: the same split (and so the same dev scores) on a second run.
    const again = await fitLog({ train: corpus(demo.train.sentences.slice(0, 200)) });
    expect(again.history.epochs[0].dev?.report.micro).toEqual(history.epochs[0].dev?.report.micro);
  });

  it("devSplit 0, or too few sentences: no selection, and the log says the last epoch's weights are kept", async () => {
    expect((await fitLog({ train: corpus(demo.train.sentences.slice(0, 50)) }, { data: { devSplit: 0 } })).log).toContain("devSplit 0: best-model selection and early stopping are off");
    expect((await fitLog({ train: corpus(demo.train.sentences.slice(0, 5)) })).log).toContain("5 training sentences are too few to hold out 10%");
    expect((await fitLog({ train: corpus(demo.train.sentences.slice(0, 50)) }, { data: { devSplit: 0 }, training: { earlyStoppingPatience: 2 } })).log).toContain(
      "earlyStoppingPatience is set but there is no dev data",
    );
  });
});

describe("warnings that name the thing", () => {
  const train = demo.train.sentences.slice(0, 60);

  it("labels of dev and test data never seen in training, per label with counts", async () => {
    const withNew = (s: Sentence): Sentence => ({ tokens: [...s.tokens, "Zorblax", "Prime"], tags: [...s.tags, "B-ALIEN", "I-ALIEN"] });
    const dev = corpus(demo.dev.sentences.slice(0, 5).map(withNew), "dev.txt");
    const test = corpus(demo.test.sentences.slice(0, 3).map(withNew), "test.txt");
    const { log } = await fitLog({ train: corpus(train), dev, test });
    expect(log).toContain("warning: dev data (dev.txt) has labels the model never saw in training: B-ALIEN (5×), I-ALIEN (5×)");
    expect(log).toContain("warning: test data (test.txt) has labels the model never saw in training: B-ALIEN (3×), I-ALIEN (3×)");
  });

  it("sentences split into windows, words cut to a window, words without sub-tokens, sentences without any", async () => {
    const long: Sentence = { tokens: Array.from({ length: 40 }, (_, i) => (i % 2 ? "Berlin" : "the")), tags: Array.from({ length: 40 }, (_, i) => (i % 2 ? "B-LOC" : "O")) };
    const hugeWord = "x".repeat(30).split("").join("q"); // many WordPiece pieces
    const odd: Sentence = { tokens: ["Anna", hugeWord, "\u200b"], tags: ["B-PER", "O", "O"] };
    const blank: Sentence = { tokens: ["\u200b"], tags: ["O"] };
    const short = demo.train.sentences.filter((s) => s.tokens.join("").length <= 20).slice(0, 30);  // one window each
    const { log } = await fitLog({ train: corpus([...short, long, long, odd, blank]) }, { data: { devSplit: 0 } });
    // The two long ones, and `odd`, whose cut word alone fills a window.
    expect(log).toContain("warning: 3 training sentence(s) are longer than maxLength 16 and were split into overlapping windows");
    expect(log).toContain("warning: 1 word(s) have more sub-tokens than a window holds (maxLength 16)");
    expect(log).toContain("warning: 2 word(s) have no sub-token");
    expect(log).toContain("warning: 1 training sentence(s) have no sub-tokens");
  });

  it("a vocabulary smaller than --vocab-size asked for, with the reason", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "ner-warn-cli-"));
    const file = path.join(dir, "train.txt");
    writeFileSync(file, train.slice(0, 40).map((s) => s.tokens.map((t, i) => `${t} ${s.tags[i]}`).join("\n")).join("\n\n") + "\n");
    const config = path.join(dir, "config.json");
    writeFileSync(config, JSON.stringify({ scratch: { hiddenSize: 16, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 32, maxPositionEmbeddings: 32 }, data: { maxLength: 16 }, training: { maxSteps: 1 } }));
    let out = "";
    const io = { out: { write: (s: string) => ((out += s), true) }, err: { write: () => true } };
    const code = await main(["train", "--train", file, "--config", config, "--out", path.join(dir, "run"), "--vocab-size", "9000", "--device", "cpu"], io as never);
    expect(code, out).toBe(0);
    expect(out).toMatch(/warning: the vocabulary has \d+ tokens, not the 9000 asked for: the training data has no more pieces that occur at least twice/);
  });
});

/**
 * The embedded demo behind `npm run train` with no arguments: a synthetic CoNLL-style NER corpus
 * (PER / ORG / LOC / MISC, IOB2) generated from word lists and sentence templates, and a config
 * for a small BERT-BiLSTM-CRF trained from scratch on it.
 *
 * Everything is generated from a seed with a local PRNG, so the corpus (and the demo's numbers)
 * are the same on every machine and need no downloaded data.
 */
import { join } from "node:path";
import type { EngineConfigInput } from "./config.js";
import type { Corpus, Sentence } from "../data/types.js";
import { trainWordPiece, writeTokenizerFiles } from "../text/vocab.js";

export const DEMO_SIZES = { train: 1500, dev: 300, test: 300 } as const;
export const DEMO_SEED = 13;

// ---- word lists (multi-word entries are space separated) ----

const FIRST_NAMES = [
  "Anna", "Carlos", "Mei", "John", "Fatima", "Lars", "Priya", "Kenji", "Olga", "Ahmed", "Sofia", "David", "Ingrid", "Pedro",
  "Aisha", "Tomasz", "Elena", "Samuel", "Yuki", "Marco", "Claire", "Ibrahim", "Nadia", "Victor", "Lucia", "Jordan", "Hannah",
  "Rafael", "Grace", "Dmitri", "Amara", "Henrik", "Chloe", "Mateo", "Leila", "Oscar", "Zara", "Felix", "Rosa", "Hugo",
];
const LAST_NAMES = [
  "Schmidt", "Garcia", "Chen", "Okafor", "Johansson", "Patel", "Tanaka", "Ivanova", "Haddad", "Rossi", "Miller", "Novak",
  "Dubois", "Silva", "Kowalski", "Nakamura", "Fischer", "Moreau", "Andersen", "Santos", "Murphy", "Costa", "Lindqvist",
  "Washington", "Kim", "Petrov", "Alvarez", "Berg", "Mensah", "Laurent", "Van der Berg", "De Luca", "O'Brien", "Hansen",
  "Yilmaz", "Walker", "Nguyen", "Sato", "Ortega", "Keller",
];
const ORGANISATIONS = [
  "Northwind Traders", "Acme Corporation", "United Nations", "Bank of Avalon", "Siemens", "Reuters", "Global Health Fund",
  "Red Cross", "Bluewater Energy", "Orion Airlines", "European Commission", "Real Madrid", "Ajax", "Helios Motors",
  "Apex Software", "National Bank of Kenya", "Stellar Mining Group", "Harbor Insurance", "World Bank", "Vertex Pharmaceuticals",
  "Quantum Labs", "Baltic Shipping Company", "FC Porto", "Juventus", "Nordic Telecom", "Summit Capital", "Greenfield University",
  "Pacific Rail", "Atlas Logistics", "Meridian Foods", "Silverline Media", "Crescent Bank", "Ironwood Steel", "Union Chemicals",
  "Central Statistics Office", "Lakeside Hospital", "Falcon Aerospace", "Evergreen Partners", "Riverside United", "Kappa Systems",
];
const LOCATIONS = [
  "Berlin", "New York", "Buenos Aires", "Germany", "South Korea", "Nairobi", "Paris", "Brazil", "Tokyo", "Lagos", "Sweden",
  "Cairo", "Mumbai", "Canada", "Lisbon", "Hong Kong", "Poland", "Jordan", "Sydney", "Mexico City", "Norway", "Istanbul",
  "Los Angeles", "Chile", "Vienna", "Cape Town", "Italy", "Rio de Janeiro", "Finland", "Singapore", "Moscow", "Peru",
  "San Francisco", "Ghana", "Madrid", "New Zealand", "Warsaw", "Vietnam", "Amsterdam", "Kuala Lumpur",
];
const NATIONALITIES = [
  "German", "Brazilian", "Japanese", "Kenyan", "French", "Swedish", "Indian", "Canadian", "Polish", "Italian", "Nigerian",
  "Chilean", "Norwegian", "Egyptian", "Mexican", "Finnish", "Korean", "Spanish", "Dutch", "Peruvian", "Turkish", "Australian",
];
const EVENTS = [
  "World Cup", "Olympic Games", "Champions League", "Tour de France", "Nobel Prize", "Davis Cup", "Paris Air Show",
  "Africa Cup of Nations", "Winter Olympics", "Grand Prix", "Wimbledon", "Cannes Film Festival", "Euro 2024", "Asian Games",
];
const ROLES = ["chairman", "chief executive", "spokeswoman", "spokesman", "director", "minister", "coach", "founder", "president"];
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/**
 * Sentence templates. Entity slots: {PER} (full name), {SUR} (surname only), {ORG}, {LOC}, {NAT}
 * and {EVENT} (both MISC). Filler slots (tagged O): {NUM}, {YEAR}, {MONTH}, {DAY}, {ROLE}.
 */
const TEMPLATES = [
  "{PER} was born in {LOC} in {YEAR} .",
  "{ORG} said on {DAY} that it will open a new office in {LOC} .",
  "The {NAT} delegation arrived in {LOC} on {DAY} .",
  "{PER} , the {ROLE} of {ORG} , said the company expects strong growth .",
  "Shares of {ORG} rose {NUM} percent in {LOC} on {DAY} .",
  "{SUR} scored twice as {ORG} beat {ORG} {NUM} - {NUM} .",
  "{LOC} will host the {EVENT} in {YEAR} .",
  "{PER} won the {EVENT} for the first time .",
  "{ORG} agreed to buy {ORG} for {NUM} million dollars .",
  "Police in {LOC} arrested {NUM} people after protests on {DAY} .",
  "The {ROLE} of {ORG} , {PER} , resigned in {MONTH} .",
  "{SUR} told reporters that talks with {ORG} had stalled .",
  "{NAT} officials met {PER} in {LOC} to discuss trade .",
  "Flights between {LOC} and {LOC} were cancelled because of the storm .",
  "{PER} and {PER} will lead the {NAT} team at the {EVENT} .",
  "The meeting was postponed until {MONTH} .",
  "Prices fell by {NUM} percent last year .",
  "{ORG} reported a profit of {NUM} million euros for {YEAR} .",
  "{SUR} , who joined {ORG} in {YEAR} , now lives in {LOC} .",
  "A {NAT} court sentenced {PER} to {NUM} years in prison .",
  "Thousands of fans travelled to {LOC} for the {EVENT} .",
  "{ORG} is based in {LOC} and employs {NUM} people .",
  "\" We are very happy with the result , \" {SUR} said .",
  "{PER} , a {NAT} writer , visited {LOC} in {MONTH} .",
  "The {EVENT} final will be played in {LOC} on {DAY} .",
  "{ORG} has appointed {PER} as its new {ROLE} .",
  "Heavy rain hit {LOC} on {DAY} , officials said .",
  "{SUR} denied the reports on {DAY} .",
  "Investors in {LOC} expect {ORG} to raise prices in {MONTH} .",
  "The {NAT} government and {ORG} signed an agreement in {LOC} .",
  "{PER} will face {PER} in the second round of the {EVENT} .",
  "Exports to {LOC} grew by {NUM} percent in {MONTH} .",
];

// ---- deterministic randomness ----

/** mulberry32: tiny, fast, and identical on every platform (Math.random is not seedable). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)];

/** Entity lists for one split: train sees only the first 80% of each list, so dev/test contain unseen names. */
interface Pools {
  first: readonly string[];
  last: readonly string[];
  org: readonly string[];
  loc: readonly string[];
  nat: readonly string[];
  event: readonly string[];
}

function pools(heldOut: boolean): Pools {
  const cut = <T>(xs: readonly T[]): readonly T[] => (heldOut ? xs : xs.slice(0, Math.ceil(xs.length * 0.8)));
  return { first: cut(FIRST_NAMES), last: cut(LAST_NAMES), org: cut(ORGANISATIONS), loc: cut(LOCATIONS), nat: cut(NATIONALITIES), event: cut(EVENTS) };
}

/** A document's recurring cast: later sentences mention its main person by surname only, as news does. */
interface Cast {
  person: [string, string];
  org: string;
  loc: string;
  personIntroduced: boolean;
}

function entityTokens(text: string, type: string): { tokens: string[]; tags: string[] } {
  const tokens = text.split(" ");
  return { tokens, tags: tokens.map((_, i) => `${i === 0 ? "B" : "I"}-${type}`) };
}

function fillTemplate(rng: Rng, template: string, p: Pools, cast: Cast): Sentence {
  const tokens: string[] = [];
  const tags: string[] = [];
  const used = new Set<string>(); // no "Flights between Paris and Paris": entities differ within a sentence
  const push = (part: { tokens: string[]; tags: string[] }): void => {
    tokens.push(...part.tokens);
    tags.push(...part.tags);
  };
  const entity = (type: string, choose: () => string): void => {
    let text = choose();
    for (let tries = 0; used.has(text) && tries < 20; tries++) text = choose();
    used.add(text);
    push(entityTokens(text, type));
  };
  const other = (text: string): { tokens: string[]; tags: string[] } => ({ tokens: text.split(" "), tags: text.split(" ").map(() => "O") });
  const person = (): string => {
    if (rng() < 0.5) {
      cast.personIntroduced = true;
      return cast.person.join(" ");
    }
    return `${pick(rng, p.first)} ${pick(rng, p.last)}`;
  };
  for (const slot of template.split(" ")) {
    switch (slot) {
      case "{PER}": entity("PER", person); break;
      case "{SUR}":
        // Surname alone once the document has introduced its person, otherwise a random surname.
        entity("PER", () => (cast.personIntroduced && rng() < 0.7 ? cast.person[1] : pick(rng, p.last)));
        break;
      case "{ORG}": entity("ORG", () => (rng() < 0.3 ? cast.org : pick(rng, p.org))); break;
      case "{LOC}": entity("LOC", () => (rng() < 0.3 ? cast.loc : pick(rng, p.loc))); break;
      case "{NAT}": entity("MISC", () => pick(rng, p.nat)); break;
      case "{EVENT}": entity("MISC", () => pick(rng, p.event)); break;
      case "{NUM}": push(other(String(1 + Math.floor(rng() * 99)))); break;
      case "{YEAR}": push(other(String(1950 + Math.floor(rng() * 75)))); break;
      case "{MONTH}": push(other(pick(rng, MONTHS))); break;
      case "{DAY}": push(other(pick(rng, DAYS))); break;
      case "{ROLE}": push(other(pick(rng, ROLES))); break;
      default: push(other(slot));
    }
  }
  return { tokens, tags };
}

/** `count` sentences in documents of 3–8 sentences (docId 0, 1, ...). */
function generateSplit(seed: number, count: number, heldOut: boolean, source: string): Corpus {
  const rng = mulberry32(seed);
  const p = pools(heldOut);
  const sentences: Sentence[] = [];
  for (let docId = 0; sentences.length < count; docId++) {
    const cast: Cast = { person: [pick(rng, p.first), pick(rng, p.last)], org: pick(rng, p.org), loc: pick(rng, p.loc), personIntroduced: false };
    const docLength = 3 + Math.floor(rng() * 6);
    for (let i = 0; i < docLength && sentences.length < count; i++) {
      sentences.push({ ...fillTemplate(rng, pick(rng, TEMPLATES), p, cast), docId });
    }
  }
  return { source, sentences };
}

/** The demo corpus: 1500 train / 300 dev / 300 test sentences, IOB2, the same for the same seed. */
export function demoCorpus(seed: number = DEMO_SEED): { train: Corpus; dev: Corpus; test: Corpus } {
  // Distinct seeds per split, derived from the one seed, so the splits are independent streams.
  return {
    train: generateSplit(seed * 3 + 1, DEMO_SIZES.train, false, "demo:train"),
    dev: generateSplit(seed * 3 + 2, DEMO_SIZES.dev, true, "demo:dev"),
    test: generateSplit(seed * 3 + 3, DEMO_SIZES.test, true, "demo:test"),
  };
}

/** Sentences shown with predictions at the end of the demo (not in any split). */
export const DEMO_EXAMPLES: readonly string[] = [
  "Lucia Ortega , the chief executive of Helios Motors , said on Monday that the company will open a factory in Lisbon .",
  "The Japanese team arrived in Cape Town for the World Cup .",
  "Shares of Northwind Traders fell 4 percent in Tokyo after Olga Petrov resigned .",
];

/**
 * Config for a small BERT-BiLSTM-CRF trained from scratch on the demo corpus. Trains a cased
 * WordPiece vocabulary on the train split (casing is the strongest NER cue here) and writes it to
 * `<outDir>/tokenizer`, which the config points at.
 */
export function demoConfig(outDir: string, corpus: { train: Corpus } = demoCorpus()): EngineConfigInput {
  const tokenizerDir = join(outDir, "tokenizer");
  const vocab = trainWordPiece(corpus.train.sentences.map((s) => s.tokens), { vocabSize: 1200, minFrequency: 2, lowercase: false });
  writeTokenizerFiles(tokenizerDir, vocab, { lowercase: false });
  return {
    tokenizer: tokenizerDir,
    output: outDir,
    device: "auto",
    scratch: {
      hiddenSize: 128,
      numHiddenLayers: 2,
      numAttentionHeads: 2,
      intermediateSize: 256,
      maxPositionEmbeddings: 128,
      hiddenDropoutProb: 0.1,
      attentionProbsDropoutProb: 0.1,
    },
    head: { kind: "bilstm-crf", lstmHiddenSize: 64, learningRate: 2e-3 },
    data: { format: "conll", maxLength: 64, documentContext: false },
    // From scratch the encoder needs a far larger lr than fine-tuning's 5e-5; warmup keeps post-LN stable.
    training: { epochs: 4, batchSize: 32, learningRate: 1e-3, warmupRatio: 0.1, seed: 42, progressEvery: 5 },
  };
}

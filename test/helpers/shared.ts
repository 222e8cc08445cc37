/**
 * Where the tests find data they do not carry themselves.
 *
 * ../shared (next to the repository) holds the data sets, the bigger HF fixtures and the tokenizers; a
 * clone alone does not have it. NER_SHARED_DIR points the tests elsewhere (`NER_SHARED_DIR=/nonexistent
 * npm test` runs the suite as a clone without it would). Tests that need it skip, and their suite or
 * test name says what is missing: `describe.skipIf(!has(...paths))(\`... (${needs(...paths)})\`)`.
 * Nothing may read from SHARED at module load or in a describe body (vitest runs those even for
 * skipped suites): read in the tests, in hooks, or behind a check.
 *
 * test/fixtures holds small HF-parity fixtures (made by scripts/make-fixtures.py) in the same layout
 * as ../shared/fixtures, so the same test code reads either: FIXTURE_SETS lists both.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { it } from "vitest";

export const REPO_ROOT = path.resolve(import.meta.dirname, "../..");
/** NER_SHARED_DIR, else NER_SHARED (what the benchmark scripts read), else ../shared. */
const fromEnv = process.env.NER_SHARED_DIR || process.env.NER_SHARED;
export const SHARED = fromEnv ? path.resolve(fromEnv) : path.resolve(REPO_ROOT, "../shared");
export const SHARED_FIXTURES = path.join(SHARED, "fixtures");
export const SHARED_DATA = path.join(SHARED, "data");
export const LOCAL_FIXTURES = path.join(REPO_ROOT, "test/fixtures");

/** A path under SHARED. */
export const shared = (...parts: string[]): string => path.join(SHARED, ...parts);

/** Whether every path exists. */
export const has = (...paths: string[]): boolean => paths.every((p) => existsSync(p));

/**
 * The reason to put in a suite's name: "needs A, B" (the paths it needs; the missing ones when some are),
 * paths under SHARED written relative to it: "needs data/conll2003/train.txt in /x/shared".
 */
export function needs(...paths: string[]): string {
  const missing = paths.filter((p) => !existsSync(p));
  const listed = missing.length > 0 ? missing : paths;
  const inShared = listed.every((p) => p.startsWith(SHARED + path.sep));
  if (!inShared) return `needs ${listed.join(", ")}`;
  const where = existsSync(SHARED) ? SHARED : `${SHARED}, which is missing (NER_SHARED_DIR sets it)`;
  return `needs ${listed.map((p) => path.relative(SHARED, p)).join(", ")} in ${where}`;
}

/**
 * `it`, for a test that reads `paths`: without them it is skipped and its name says which are missing.
 * `const itWithConll = itNeeding(shared("data/conll2003/train.txt")); itWithConll("reads CoNLL", () => ...)`
 */
export function itNeeding(...paths: string[]): (name: string, fn: () => unknown, timeout?: number) => void {
  const ok = has(...paths);
  return (name, fn, timeout) => it.skipIf(!ok)(ok ? name : `${name} (${needs(...paths)})`, fn, timeout);
}

/** A folder of HF-parity fixtures: bert-forward.json, bert-loss.json, crf.json, metrics.json, tiny-bert-ner/. */
export interface FixtureSet {
  /** Short name for test titles. */
  name: string;
  dir: string;
}

/** The committed small fixtures (always there) and ../shared's bigger ones (when ../shared is). */
export const FIXTURE_SETS: FixtureSet[] = [
  { name: "test/fixtures", dir: LOCAL_FIXTURES },
  { name: "shared/fixtures", dir: SHARED_FIXTURES },
];

/** A suite title for `set` naming the files it needs: "title [set] (needs ...)" when they are missing. */
export function fixtureTitle(title: string, set: FixtureSet, ...files: string[]): string {
  const paths = files.map((f) => path.join(set.dir, f));
  return has(...paths) ? `${title} [${set.name}]` : `${title} [${set.name}] (${needs(...paths)})`;
}

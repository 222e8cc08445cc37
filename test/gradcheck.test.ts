import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

// Built with the addon (CMake option NER_BENCH, on by default): native programs that compare
// hand-written and autograd gradients with central finite differences in double precision.
const build = path.resolve(import.meta.dirname, "../build");

function run(binary: string, args: string[] = []): string {
  const file = path.join(build, binary);
  expect(existsSync(file), `${file} is built by npm install`).toBe(true);
  return execFileSync(file, args, { encoding: "utf8" }); // throws on a non-zero exit (a mismatch)
}

describe("gradient checks against finite differences", () => {
  it("CRF: the hand-written forward-backward gradients (emissions, transitions, start, end; lengths incl. 1; constraints)", () => {
    const out = run("crf_bench", ["--gradcheck"]);
    expect(out).toMatch(/gradcheck: all checks passed/);
  });

  it("every head's whole training loss (encoder + head + loss), with dropout off", () => {
    const out = run("head_gradcheck");
    for (const head of ["softmax", "crf", "bilstm-crf", "bilstm-attn-crf"]) expect(out).toMatch(new RegExp(`^${head} .* ok$`, "m"));
  });
});

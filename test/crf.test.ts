import { readFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { native } from "../src/model/native.js";
import { FIXTURE_SETS, fixtureTitle, has } from "./helpers/shared.js";

interface CrfInput {
  emissions: number[][][];
  mask: number[][];
  tags: number[][];
  transitions: number[][];
  startTransitions: number[];
  endTransitions: number[];
}

function maxDiff(a: unknown, b: unknown): number {
  if (Array.isArray(a) && Array.isArray(b)) {
    expect(a.length).toBe(b.length);
    return a.reduce((m: number, x, i) => Math.max(m, maxDiff(x, b[i])), 0);
  }
  return Math.abs((a as number) - (b as number));
}

// The same tests on the committed small fixture (test/fixtures) and on ../shared's.
for (const set of FIXTURE_SETS) {
  const present = has(path.join(set.dir, "crf.json"));
  let fixture: any;
  let input: CrfInput;
  beforeAll(() => {
    if (!present) return;
    fixture = JSON.parse(readFileSync(path.join(set.dir, "crf.json"), "utf8"));
    input = {
      emissions: fixture.emissions,
      mask: fixture.mask,
      tags: fixture.tags,
      transitions: fixture.transitions,
      startTransitions: fixture.start_transitions,
      endTransitions: fixture.end_transitions,
    };
  });
  describe.skipIf(!present)(fixtureTitle("CRF against pytorch-crf", set, "crf.json"), () => {
    it("log-likelihoods match within 1e-4 (masks of several lengths, one of length 1)", () => {
      const llh = native().crfLogLikelihood(input);
      expect(llh).toHaveLength(input.mask.length);
      expect(input.mask.map((r) => r.reduce((a, b) => a + b, 0))).toContain(1);
      expect(maxDiff(llh, fixture.log_likelihood)).toBeLessThanOrEqual(1e-4);
    });

    it("gradients of the summed log-likelihood w.r.t. emissions and transitions match within 1e-4", () => {
      const grads = native().crfGradients(input);
      expect(maxDiff(grads.emissions, fixture.grad_emissions_of_sum_llh)).toBeLessThanOrEqual(1e-4);
      expect(maxDiff(grads.transitions, fixture.grad_transitions_of_sum_llh)).toBeLessThanOrEqual(1e-4);
      // Masked-out positions get no gradient.
      input.mask.forEach((row, b) => row.forEach((m, t) => {
        if (!m) expect(Math.max(...grads.emissions[b][t].map(Math.abs))).toBe(0);
      }));
    });

    it("Viterbi paths are identical, each as long as its mask", () => {
      expect(native().crfDecode(input)).toEqual(fixture.viterbi);
    });

    it("rejects malformed input with a clear error instead of crashing", () => {
      const crf = native();
      expect(() => crf.crfLogLikelihood({ ...input, tags: input.tags.map((r) => r.map(() => 99)) })).toThrow(`tags must lie in [0, ${fixture.num_tags})`);
      expect(() => crf.crfLogLikelihood({ ...input, mask: input.mask.map((r) => [0, ...r.slice(1)]) })).toThrow(/mask/);
      expect(() => crf.crfDecode({ ...input, transitions: [[1, 2]] })).toThrow(/transitions/);
      expect(() => crf.crfDecode({ ...input, emissions: [[[1, 2], [3]]] })).toThrow(/ragged/);
    });
  });

  describe.skipIf(!present)(fixtureTitle("CRF marginals (the confidence predict reports for CRF heads)", set, "crf.json"), () => {
    it("equal pytorch-crf's: gold one-hot minus the gradient of the summed log-likelihood, within 1e-4", () => {
      const marginals = native().crfMarginals(input);
      let max = 0;
      input.mask.forEach((row, b) =>
        row.forEach((m, t) => {
          const p = marginals[b][t];
          if (!m) return expect(Math.max(...p.map(Math.abs))).toBe(0);
          expect(Math.abs(p.reduce((s, x) => s + x, 0) - 1)).toBeLessThan(1e-5);
          p.forEach((x, k) => {
            const expected = (input.tags[b][t] === k ? 1 : 0) - fixture.grad_emissions_of_sum_llh[b][t][k];
            max = Math.max(max, Math.abs(x - expected));
          });
        }),
      );
      expect(max).toBeLessThanOrEqual(1e-4);
    });
  });
}

/**
 * A deliberately naive BERT forward in plain TypeScript (loops, float64), independent of LibTorch:
 * the reference the native encoder is checked against for configs HF fixtures do not cover. It is
 * itself checked against HF's numbers in encoder.test.ts.
 */
export type Weights = Map<string, { shape: number[]; data: Float32Array }>;

export interface RefConfig {
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  eps: number;
  act: "gelu" | "gelu_new" | "relu";
}

function w(weights: Weights, name: string): Float32Array {
  const t = weights.get(name);
  if (!t) throw new Error(`reference: missing ${name}`);
  return t.data;
}

function linear(x: number[], weight: Float32Array, bias: Float32Array, outDim: number): number[] {
  const inDim = x.length;
  const y = new Array<number>(outDim);
  for (let o = 0; o < outDim; o++) {
    let s = bias[o];
    for (let i = 0; i < inDim; i++) s += weight[o * inDim + i] * x[i];
    y[o] = s;
  }
  return y;
}

function layerNorm(x: number[], gamma: Float32Array, beta: Float32Array, eps: number): number[] {
  const mean = x.reduce((a, b) => a + b, 0) / x.length;
  const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length;
  return x.map((v, i) => ((v - mean) / Math.sqrt(variance + eps)) * gamma[i] + beta[i]);
}

function erf(x: number): number {
  // Abramowitz-Stegun 7.1.26 is too coarse for 1e-5 checks; use a series / continued fraction instead.
  const t = Math.abs(x);
  if (t < 2.5) {
    let sum = t, term = t;
    for (let n = 1; n < 60; n++) {
      term *= (-t * t) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction for large |x|
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (t + f);
  const erfc = Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f);
  return Math.sign(x) * (1 - erfc);
}

function activation(x: number, act: RefConfig["act"]): number {
  if (act === "relu") return Math.max(0, x);
  if (act === "gelu_new") return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** last_hidden_state for one sequence ([T][H]), attending only to keys where mask is 1. */
export function referenceBertForward(weights: Weights, c: RefConfig, ids: number[], mask: number[], types: number[]): number[][] {
  const H = c.hidden, d = H / c.heads;
  const word = w(weights, "bert.embeddings.word_embeddings.weight");
  const pos = w(weights, "bert.embeddings.position_embeddings.weight");
  const typ = w(weights, "bert.embeddings.token_type_embeddings.weight");
  let h = ids.map((id, t) => {
    const e = new Array<number>(H);
    for (let k = 0; k < H; k++) e[k] = word[id * H + k] + pos[t * H + k] + typ[types[t] * H + k];
    return layerNorm(e, w(weights, "bert.embeddings.LayerNorm.weight"), w(weights, "bert.embeddings.LayerNorm.bias"), c.eps);
  });
  for (let l = 0; l < c.layers; l++) {
    const p = `bert.encoder.layer.${l}.`;
    const q = h.map((x) => linear(x, w(weights, p + "attention.self.query.weight"), w(weights, p + "attention.self.query.bias"), H));
    const k = h.map((x) => linear(x, w(weights, p + "attention.self.key.weight"), w(weights, p + "attention.self.key.bias"), H));
    const v = h.map((x) => linear(x, w(weights, p + "attention.self.value.weight"), w(weights, p + "attention.self.value.bias"), H));
    const context = h.map((_, t) => {
      const out = new Array<number>(H).fill(0);
      for (let head = 0; head < c.heads; head++) {
        const scores = h.map((__, s) => {
          if (!mask[s]) return -Infinity;
          let dot = 0;
          for (let j = 0; j < d; j++) dot += q[t][head * d + j] * k[s][head * d + j];
          return dot / Math.sqrt(d);
        });
        const max = Math.max(...scores);
        const exps = scores.map((x) => (x === -Infinity ? 0 : Math.exp(x - max)));
        const total = exps.reduce((a, b) => a + b, 0);
        exps.forEach((e, s) => {
          for (let j = 0; j < d; j++) out[head * d + j] += (e / total) * v[s][head * d + j];
        });
      }
      return out;
    });
    const attended = context.map((x, t) => {
      const y = linear(x, w(weights, p + "attention.output.dense.weight"), w(weights, p + "attention.output.dense.bias"), H);
      return layerNorm(y.map((v2, i) => v2 + h[t][i]), w(weights, p + "attention.output.LayerNorm.weight"), w(weights, p + "attention.output.LayerNorm.bias"), c.eps);
    });
    h = attended.map((x) => {
      const inter = linear(x, w(weights, p + "intermediate.dense.weight"), w(weights, p + "intermediate.dense.bias"), c.intermediate).map((v2) => activation(v2, c.act));
      const y = linear(inter, w(weights, p + "output.dense.weight"), w(weights, p + "output.dense.bias"), H);
      return layerNorm(y.map((v2, i) => v2 + x[i]), w(weights, p + "output.LayerNorm.weight"), w(weights, p + "output.LayerNorm.bias"), c.eps);
    });
  }
  return h;
}

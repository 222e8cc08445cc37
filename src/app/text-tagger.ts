/**
 * What the batch CLI (predict-stream.ts) and the HTTP server (server.ts) need from an engine: tag many raw
 * texts in one call (entities with code-point offsets, ours or in HF pipeline shape), tag pre-split
 * sentences, and keep one bad input from failing the others of its batch (`isolate`).
 *
 * Both go through `engineTagger`, so a text gets the same answer from the CLI and from the server.
 */
import type { Engine } from "./engine.js";
import { AGGREGATIONS, type Aggregation, type PipelineEntity } from "./pipeline.js";

export { AGGREGATIONS, type Aggregation };

/** Our entity: `start`/`end` in Unicode code points (Python `str` indices), `score` the mean word score (4 decimals). */
export interface TextEntity { type: string; text: string; start: number; end: number; score: number }

/** Per text: ours without an aggregation, HF's pipeline output (entity/index for "none", entity_group otherwise) with one. */
export type Entities = TextEntity[] | PipelineEntity[];

export interface TextTagger {
  /** One entity list per text, in order. Throws when the call fails. */
  tagTexts(texts: readonly string[], aggregation?: Aggregation): Promise<Entities[]>;
  /** IOB2 tags per word of pre-split sentences. Throws when the call fails. */
  tagWords(sentences: readonly (readonly string[])[]): Promise<string[][]>;
}

/** A TextTagger over an Engine's predict / predictWords. */
export function engineTagger(engine: Pick<Engine, "predict" | "predictWords">): TextTagger {
  return {
    async tagTexts(texts, aggregation) {
      if (texts.length === 0) return [];
      if (aggregation) return (await engine.predict(texts, { aggregation })) as PipelineEntity[][];
      const results = await engine.predict(texts);
      return results.map((r) => r.entities.map((e) => ({ type: e.type, text: e.text, start: e.start!, end: e.end!, score: Number(e.score.toFixed(4)) })));
    },
    async tagWords(sentences) {
      if (sentences.length === 0) return [];
      const results = await engine.predictWords(sentences);
      return results.map((r) => r.words.map((w) => w.tag));
    },
  };
}

/**
 * Runs `items` in one call; when that call fails, runs them one by one, so that only the items that fail
 * alone get an error (in their place) and the others their results.
 */
export async function isolate<I, O>(items: readonly I[], run: (batch: readonly I[]) => Promise<O[]>): Promise<(O | Error)[]> {
  if (items.length === 0) return [];
  try {
    return await run(items);
  } catch (error) {
    if (items.length === 1) return [asError(error)];
  }
  const out: (O | Error)[] = [];
  for (const item of items) {
    try {
      out.push((await run([item]))[0]);
    } catch (error) {
      out.push(asError(error));
    }
  }
  return out;
}

/**
 * `isolate` in calls of at most `callBatch` items, shortest first when there are more (the engine pads a
 * call's texts to its longest, so sorted calls pad little); results in the items' order.
 */
export async function inSortedCalls<I, O>(items: readonly I[], size: (item: I) => number, callBatch: number, run: (batch: readonly I[]) => Promise<O[]>): Promise<(O | Error)[]> {
  const order = items.map((_, i) => i);
  if (items.length > callBatch) order.sort((a, b) => size(items[a]) - size(items[b]));
  const out = new Array<O | Error>(items.length);
  for (let s = 0; s < order.length; s += callBatch) {
    const chunk = order.slice(s, s + callBatch);
    const results = await isolate(chunk.map((i) => items[i]), run);
    chunk.forEach((i, k) => (out[i] = results[k]));
  }
  return out;
}

export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

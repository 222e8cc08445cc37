/**
 * Micro-batching for the server: texts from concurrent requests are collected for a short window (or
 * until `maxBatch` are waiting) and tagged together: sorted by length, in engine calls of `callBatch`
 * texts. One batch runs at a time; texts that arrive meanwhile wait and go in the next batch as soon as
 * it is done. At most `maxQueue` texts may wait: past
 * that `submit` refuses at once (the server answers 503) instead of queueing without bound.
 */
import { NerEngineError } from "../errors.js";
import { isolate, type Aggregation, type Entities, type TextTagger } from "./text-tagger.js";

export interface MicroBatchOptions {
  /** Texts per engine call (1: no batching across requests). Default 64. */
  maxBatch?: number;
  /** How long the first text of a batch waits for others, in ms. Default 3. */
  windowMs?: number;
  /** Texts that may wait (not counting the running call). Default 1024. */
  maxQueue?: number;
  /**
   * Texts per engine call within a batch (default 16): a batch of more is sorted by length and tagged in
   * calls of at most this many, one after the other, so that each pads little (the engine pads a call's
   * texts to the longest of them; 64 CoNLL sentences in one call cost about twice 4 sorted calls of 16).
   */
  callBatch?: number;
}

/** `submit` refused: too many texts waiting. */
export class OverloadedError extends NerEngineError {
  constructor(message: string) {
    super(message);
    this.name = "OverloadedError";
  }
}

interface Pending { text: string; aggregation?: Aggregation; settle(result: Entities | Error): void }

export class MicroBatcher {
  readonly maxBatch: number;
  readonly windowMs: number;
  readonly maxQueue: number;
  readonly callBatch: number;
  private queue: Pending[] = [];
  private running = 0;
  private timer?: NodeJS.Timeout;
  private idleWaiters: (() => void)[] = [];
  /** Engine calls made and texts tagged so far. */
  readonly stats = { calls: 0, texts: 0 };

  constructor(private readonly tagger: TextTagger, opts: MicroBatchOptions = {}) {
    this.maxBatch = opts.maxBatch ?? 64;
    this.windowMs = opts.windowMs ?? 3;
    this.maxQueue = opts.maxQueue ?? 1024;
    this.callBatch = opts.callBatch ?? 16;
    for (const [name, v, min] of [["maxBatch", this.maxBatch, 1], ["windowMs", this.windowMs, 0], ["maxQueue", this.maxQueue, 1], ["callBatch", this.callBatch, 1]] as const) {
      if (!Number.isInteger(v) || v < min) throw new NerEngineError(`${name} must be an integer >= ${min}, got ${v}`);
    }
  }

  /** Texts waiting for a call. */
  get queued(): number {
    return this.queue.length;
  }

  /** Texts in the call now running. */
  get inFlight(): number {
    return this.running;
  }

  /**
   * Tags `texts` (in the batches that come); one result per text, an Error in place of a text that failed.
   * Throws OverloadedError, queueing nothing, when they do not fit in the queue.
   */
  submit(texts: readonly string[], aggregation?: Aggregation): Promise<(Entities | Error)[]> {
    if (this.queue.length + texts.length > this.maxQueue) {
      throw new OverloadedError(`overloaded: ${this.queue.length} texts are waiting (at most ${this.maxQueue}); retry later`);
    }
    const done = Promise.all(texts.map((text) => new Promise<Entities | Error>((settle) => this.queue.push({ text, aggregation, settle }))));
    this.schedule();
    return done;
  }

  /** Resolves once nothing is queued or running. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.running > 0 || this.queue.length === 0) return;
    if (this.queue.length >= this.maxBatch || this.windowMs === 0) {
      this.flush();
      return;
    }
    this.timer ??= setTimeout(() => this.flush(), this.windowMs);
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running > 0 || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.maxBatch);
    this.running = batch.length;
    void this.run(batch).finally(() => {
      this.running = 0;
      // Whatever arrived during the call has waited long enough: it goes now.
      if (this.queue.length > 0) this.flush();
      else for (const resolve of this.idleWaiters.splice(0)) resolve();
    });
  }

  /** Per aggregation strategy in the batch (usually one), length-sorted calls of `callBatch` texts. Never rejects. */
  private async run(batch: Pending[]): Promise<void> {
    const groups = new Map<Aggregation | undefined, Pending[]>();
    for (const p of batch) {
      const group = groups.get(p.aggregation);
      if (group) group.push(p);
      else groups.set(p.aggregation, [p]);
    }
    const sub = this.callBatch;
    for (const [aggregation, all] of groups) {
      const sorted = sub < all.length ? [...all].sort((a, b) => a.text.length - b.text.length) : all;
      for (let start = 0; start < sorted.length; start += sub) {
        const group = sorted.slice(start, start + sub);
        let results: (Entities | Error)[];
        try {
          results = await isolate(group.map((p) => p.text), (texts) => this.tagger.tagTexts(texts, aggregation));
        } catch (e) {
          results = group.map(() => (e instanceof Error ? e : new Error(String(e))));
        }
        this.stats.calls++;
        this.stats.texts += group.length;
        group.forEach((p, i) => p.settle(results[i]));
      }
    }
  }
}

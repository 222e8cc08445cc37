/**
 * The engine's one-call-at-a-time queue. The native tagger runs one call at a time and refuses a second
 * ("the engine is busy"); the engine puts its calls (predict, evaluate, forward, save, fit) through this
 * FIFO queue instead, so concurrent calls wait their turn and each settles as it would have alone.
 */
export class CallQueue {
  /** Settles when the last queued call has settled; never rejects, so one call's error does not stop the next. */
  private tail: Promise<void> = Promise.resolve();
  private pending = 0;

  /** Calls queued or running. */
  get size(): number {
    return this.pending;
  }

  /** Runs `work` once every call queued before it has settled; the promise settles with `work`'s result or error. */
  run<T>(work: () => Promise<T>): Promise<T> {
    this.pending++;
    const result = this.tail.then(work);
    const settled = (): void => {
      this.pending--;
    };
    this.tail = result.then(settled, settled);
    return result;
  }
}

/** When the queue is full: how many may wait, and the error for the next one. */
export interface QueueLimit {
  maxQueued: number;
  refuse: () => Error;
}

/**
 * At most `limit` holders at once; the others wait in order, at most `queue.maxQueued` of
 * them (one more is refused with `queue.refuse()`) unless they ask to wait regardless.
 */
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly limit: number,
    private readonly queue?: QueueLimit,
  ) {}

  /**
   * Wait for a slot (or the signal); resolves with the function that gives it back. With
   * `unbounded`, waits even when the queue is full (callers bounded elsewhere: trace jobs).
   */
  async acquire(signal?: AbortSignal, unbounded = false): Promise<() => void> {
    if (this.active >= this.limit) {
      if (this.queue && !unbounded && this.waiting.length >= this.queue.maxQueued) {
        throw this.queue.refuse();
      }
      await new Promise<void>((resolve, reject) => {
        const go = () => {
          signal?.removeEventListener("abort", abort);
          resolve();
        };
        const abort = () => {
          const i = this.waiting.indexOf(go);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(signal?.reason);
        };
        signal?.addEventListener("abort", abort, { once: true });
        this.waiting.push(go);
      });
    } else {
      this.active++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
  }

  get inUse(): number {
    return this.active;
  }

  /** Callers waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }
}

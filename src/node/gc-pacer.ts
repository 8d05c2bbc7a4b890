import type { RowPacer } from "../core/pacer.js";
import { fullGc } from "./full-gc.js";

/**
 * Runs a full collection after every `every` rows (ids, edges) a long stream handles, and at
 * the end of one that handled a tenth of that. A stream's short-lived objects are promoted by
 * the hundred KB per young collection, and a large request body or response leaves megabytes
 * behind; V8 lets that garbage pile up to its old-generation limit, which it sets from what is
 * live, so resident memory grows with the request. 0 or no `collect`: never.
 */
export class GcPacer implements RowPacer {
  private since = 0;

  constructor(
    private readonly collect: (() => void) | null | undefined,
    private readonly every: number,
  ) {}

  /** `n` more rows went by. */
  count(n: number): void {
    if (!this.collect || this.every <= 0) return;
    this.since += n;
    if (this.since >= this.every) this.run();
  }

  /** A stream ended: what it left is collected now rather than under the next request. */
  end(): void {
    if (this.collect && this.every > 0 && this.since * 10 >= this.every) this.run();
  }

  private run(): void {
    this.since = 0;
    this.collect?.();
  }
}

/** A pacer of full collections every `every` rows (0: none, and V8's flag left alone). */
export function gcPacer(every: number): GcPacer {
  return new GcPacer(every > 0 ? fullGc() : null, every);
}

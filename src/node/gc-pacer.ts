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
  private bytesSince = 0;

  constructor(
    private readonly collect: (() => void) | null | undefined,
    private readonly every: number,
    /** A young collection, run after every `everyBytes` bytes told to bytes(). */
    private readonly young: (() => void) | null = null,
    private readonly everyBytes = YOUNG_EVERY_BYTES,
  ) {}

  /**
   * `n` more bytes went by outside the heap (a response already JSON). A young collection
   * frees those a stream let go; without one they wait for the next that heap allocation
   * sets off, and a stream that allocates little heap holds tens of MB of them.
   */
  bytes(n: number): void {
    if (!this.young || this.every <= 0) return;
    this.bytesSince += n;
    if (this.bytesSince >= this.everyBytes) {
      this.bytesSince = 0;
      this.young();
    }
  }

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

/**
 * Bytes between young collections: fewer lower the peak and cost CPU (each is a collection of
 * what is young). Figures for 1, 2 and 4 MB: README, "MES trace".
 */
const YOUNG_EVERY_BYTES = 2 << 20;

/**
 * A pacer of full collections every `every` rows and young ones every MB of bytes (0: none,
 * and V8's flag left alone).
 */
export function gcPacer(every: number): GcPacer {
  const gc = every > 0 ? fullGc() : null;
  return new GcPacer(gc && (() => gc()), every, gc && (() => gc({ type: "minor" })));
}

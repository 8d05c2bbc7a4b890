/**
 * Cuts a byte stream into chunks of one size (the last one shorter), the way multipart uploads
 * and per-chunk digests need it. Buffers come from `fresh`, so a caller can reuse its own.
 */
export class FixedChunks {
  private buf: Uint8Array;
  private used = 0;

  constructor(
    readonly size: number,
    private readonly fresh: () => Uint8Array = () => new Uint8Array(size),
  ) {
    this.buf = fresh();
  }

  /** Copies `bytes` in; yields each chunk they complete, which is the caller's from then on. */
  *push(bytes: Uint8Array): Generator<Uint8Array, void, undefined> {
    for (let at = 0; at < bytes.byteLength; ) {
      const n = Math.min(this.size - this.used, bytes.byteLength - at);
      this.buf.set(bytes.subarray(at, at + n), this.used);
      this.used += n;
      at += n;
      if (this.used === this.size) {
        const full = this.buf;
        this.used = 0;
        yield full;
        // Asked for only once the caller is done with the full chunk (a pool has it back).
        this.buf = this.fresh();
      }
    }
  }

  /** The bytes pushed since the last full chunk (possibly none), handed over. */
  rest(): Uint8Array {
    const rest = this.buf.subarray(0, this.used);
    this.used = 0;
    return rest;
  }
}

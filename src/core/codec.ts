/** A transform as a pair of streams (what pipeThrough takes). */
export interface BytePipe {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
}

/** Compression for archives. Node injects zlib with large chunks; Workers use the web streams. */
export interface Codec {
  gzip(): BytePipe;
  gunzip(): BytePipe;
}

export const webCodec: Codec = {
  gzip: () => new CompressionStream("gzip") as BytePipe,
  gunzip: () => new DecompressionStream("gzip") as BytePipe,
};

/**
 * Let queued stream writes reach the compressor before the next synchronous page read, so
 * that compression (on another thread) overlaps reading instead of waiting behind it.
 */
export const yieldToEventLoop = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

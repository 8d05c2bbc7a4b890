/** A transform as a pair of streams (what pipeThrough takes). */
export interface BytePipe {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
}

/** Compression for archives. Node injects zlib with large chunks; Workers use the web streams. */
export interface Codec {
  gzip(): BytePipe;
  gunzip(): BytePipe;
  /**
   * gzip for a response read as it arrives: each chunk written comes out at once (a sync
   * flush), at some cost in size, instead of when the compressor's buffer fills.
   */
  gzipFlushed?(): BytePipe;
}

export const webCodec: Codec = {
  gzip: () => new CompressionStream("gzip") as BytePipe,
  gunzip: () => new DecompressionStream("gzip") as BytePipe,
};

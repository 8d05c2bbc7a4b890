import { constants, type Gunzip, type Gzip, createGunzip, createGzip } from "node:zlib";
import type { BytePipe, Codec } from "../core/bytes/codec.js";

// Gzip output buffers of 256 KiB hold a page's compressed bytes: one thread-pool job per
// page. Gunzip's 64 KiB keeps each decompressed chunk small, so it dies young in V8's heap.
const GZIP_CHUNK = 1 << 18;
const GUNZIP_CHUNK = 1 << 16;

/**
 * zlib as a pair of web streams with real backpressure, both ways. (Duplex.toWeb and Node's
 * own DecompressionStream read ahead without limit: ~18 MB buffered after one chunk of a
 * 17 MB archive.) Output: zlib is paused whenever the readable side holds a chunk, and
 * resumed when the reader pulls, so a highly compressible input cannot balloon. Input: a
 * write resolves once zlib has consumed the chunk, so the caller may reuse its buffer.
 */
function zlibPipe(z: Gzip | Gunzip): BytePipe {
  const readable = new ReadableStream<Uint8Array>(
    {
      start(c) {
        z.on("data", (out: Buffer) => {
          c.enqueue(out);
          if ((c.desiredSize ?? 0) <= 0) z.pause();
        });
        z.once("end", () => c.close());
        z.once("error", (err) => c.error(err));
      },
      pull() {
        z.resume();
      },
      cancel(reason) {
        z.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    { highWaterMark: 1 },
  );
  const writable = new WritableStream<Uint8Array>({
    write: (chunk) =>
      new Promise<void>((resolve, reject) => {
        z.write(chunk, (err) => (err ? reject(err) : resolve()));
      }),
    close: () =>
      new Promise<void>((resolve, reject) => {
        z.once("error", reject);
        z.end(resolve);
      }),
    abort(reason) {
      z.destroy(reason instanceof Error ? reason : undefined);
    },
  });
  return { readable, writable };
}

export const zlibCodec: Codec = {
  gzip: () => zlibPipe(createGzip({ chunkSize: GZIP_CHUNK })),
  gunzip: () => zlibPipe(createGunzip({ chunkSize: GUNZIP_CHUNK })),
  gzipFlushed: () => zlibPipe(createGzip({ flush: constants.Z_SYNC_FLUSH })),
};

import type { Codec } from "../bytes/codec.js";
import { type Sha256Factory, portableSha256 } from "../bytes/hash.js";
import { tap } from "../bytes/lines.js";
import type { RowPacer } from "../pacer.js";
import type { ObjectStore } from "../store.js";
import { ChunkDigester } from "./chunks.js";
import type { JobContext } from "./context.js";
import type { Lease } from "./ledger/lease.js";
import type { PartRecord } from "./ledger/records.js";
import type { PlannedColumn } from "./parquet/schema.js";
import {
  type PartFormat,
  manifestKeyOf,
  newAttempt,
  partManifestKey,
  partObjectKey,
} from "./partition.js";

/** Store a part's bytes; resolves once the store has them all. */
export type PutBody = (body: ReadableStream<Uint8Array>) => Promise<unknown>;

/** What the store was given for one object, final once the put has resolved. */
export interface StoredFacts {
  bytes: number;
  sha256: string;
  chunkBytes: number;
  chunkSha256: string;
}

/**
 * A put of `objectKey` into `store` that digests the bytes as they go (the whole sha256 and
 * each chunk's), for the ledger and the manifest; `facts()`, once, after the put resolved.
 */
function digestedPut(
  store: ObjectStore,
  objectKey: string,
  sha256: Sha256Factory,
): { put: PutBody; facts: () => StoredFacts } {
  const hash = sha256();
  const chunks = new ChunkDigester(sha256);
  let bytes = 0;
  const put: PutBody = (body) =>
    store.put(
      objectKey,
      body.pipeThrough(
        tap((chunk) => {
          hash.update(chunk);
          chunks.update(chunk);
          bytes += chunk.byteLength;
        }),
      ),
    );
  return {
    put,
    facts: () => ({
      bytes,
      sha256: hash.hex(),
      chunkBytes: chunks.chunkBytes,
      chunkSha256: chunks.finish(),
    }),
  };
}

/**
 * A new upload of part `part` of `date` in `format`: its own attempt's keys, named in the
 * ledger as pending (so that an upload a killed holder left is found), and its digesting put.
 */
export async function startUpload(
  ctx: JobContext,
  lease: Lease,
  date: string,
  part: number,
  format: PartFormat,
): Promise<{ objectKey: string; manifestKey: string; put: PutBody; facts: () => StoredFacts }> {
  const attempt = newAttempt();
  const spec = { ...ctx.spec, format };
  const objectKey = partObjectKey(spec, date, part, attempt);
  const manifestKey = partManifestKey(spec, date, part, attempt);
  await ctx.ledger.setPendingObject(lease, objectKey);
  const { put, facts } = digestedPut(ctx.store, objectKey, ctx.sha256 ?? portableSha256);
  return { objectKey, manifestKey, put, facts };
}

/** Remove the upload a dead holder began and never recorded: no part in `parts` refers to it. */
export async function removeUnrecordedUpload(
  ctx: JobContext,
  date: string,
  parts: readonly PartRecord[],
): Promise<void> {
  const pending = (await ctx.ledger.get(ctx.spec.table, date))?.pendingObject;
  if (pending && !parts.some((p) => p.objectKey === pending)) {
    await ctx.store.delete(pending);
    await ctx.store.delete(manifestKeyOf(pending));
  }
}

/** Lines in pages, in key order, as pagesByKey gives them. */
export type LinePages = AsyncIterable<{ lines: readonly string[] }>;

/**
 * Encodes a page of lines into a buffer it reuses, so that archiving a day allocates no
 * page-sized garbage (which V8 would keep until a major GC, growing RSS with the day).
 */
class PageEncoder {
  private buf = new Uint8Array(1 << 21);
  private readonly encoder = new TextEncoder();

  /** The page as JSONL bytes: a view valid until the next call. */
  encode(lines: readonly string[]): Uint8Array {
    let used = 0;
    for (const line of lines) {
      const worst = used + line.length * 3 + 1;
      // Stryker disable next-line EqualityOperator: equivalent; a buffer one byte early grows, the same bytes go in
      if (worst > this.buf.length) {
        // Stryker disable next-line ArithmeticOperator: equivalent; worst is past the buffer's length, so past half of it too: only the growth's amortization changes
        const bigger = new Uint8Array(Math.max(worst, this.buf.length * 2));
        bigger.set(this.buf.subarray(0, used));
        this.buf = bigger;
      }
      used += this.encoder.encodeInto(line, this.buf.subarray(used)).written;
      this.buf[used++] = 10;
    }
    return this.buf.subarray(0, used);
  }
}

/**
 * Write the pages as gzip JSONL through `put`; returns the uncompressed size. Two buffers
 * take turns: page k is compressed (on zlib's thread) while page k+1 is read. A write resolves
 * once the compressor has consumed its bytes, so a buffer is reused only after the write of
 * the page before it has resolved.
 */
export async function writeJsonlPart(
  codec: Codec,
  pages: LinePages,
  put: PutBody,
): Promise<number> {
  const gzip = codec.gzip();
  const stored = put(gzip.readable);
  stored.catch(() => undefined); // awaited below; a failure also surfaces through the writer
  const writer = gzip.writable.getWriter();
  const encoders = [new PageEncoder(), new PageEncoder()];
  let inFlight: Promise<void> | null = null;
  let pageNo = 0;
  let rawBytes = 0;
  try {
    for await (const page of pages) {
      const chunk = (encoders[pageNo++ % 2] as PageEncoder).encode(page.lines);
      await inFlight;
      inFlight = writer.write(chunk);
      inFlight.catch(() => undefined);
      rawBytes += chunk.byteLength;
    }
    await inFlight;
    await writer.close();
  } catch (err) {
    await writer.abort(err).catch(() => undefined);
    await stored.catch(() => undefined);
    throw err;
  }
  await stored;
  return rawBytes;
}

/**
 * Write the pages as a Parquet file through `put`, a row group encoded only when the store
 * reads on; returns the size of the same lines as JSONL. The encoder's own refusal
 * (NotExactError: a line Parquet would not give back byte for byte) is what it throws,
 * whatever the store made of the broken body. `pacer` is told of each page's rows; its end is
 * the caller's, once the writer (and the footer it held) is garbage.
 */
export async function writeParquetPart(
  pages: LinePages,
  plan: readonly PlannedColumn[],
  rowGroupRows: number | undefined,
  put: PutBody,
  pacer?: RowPacer,
): Promise<number> {
  const lines = (async function* () {
    for await (const page of pages) {
      pacer?.count(page.lines.length);
      yield page.lines;
    }
  })();
  const { encodeParquetStream } = await import("./parquet/encode.js");
  const { stream, totals, failure } = encodeParquetStream(lines, plan, { rowGroupRows });
  try {
    await put(stream);
  } catch (err) {
    throw failure() ?? err;
  }
  return totals.rawBytes;
}

import type { Codec } from "../bytes/codec.js";
import type { Sha256Factory } from "../bytes/hash.js";
import { readLines, tap } from "../bytes/lines.js";
import { VerificationError } from "../errors.js";
import type { RowPacer } from "../pacer.js";
import type { ObjectStore } from "../store.js";
import type { ExpectedObject } from "./chunks.js";
import { utf8Length } from "./parquet/line.js";
import { VerifiedRanges } from "./verified-ranges.js";

/** What reading a part's lines adds up as they come: their size as JSONL. */
export interface LineCounts {
  rawBytes: number;
}

/** A gzip JSONL part's lines from its stored bytes. */
export function jsonlLines(
  codec: Codec,
  stored: ReadableStream<Uint8Array>,
  counts: LineCounts,
): AsyncIterable<string[]> {
  const raw = stored.pipeThrough(codec.gunzip()).pipeThrough(
    tap((chunk) => {
      counts.rawBytes += chunk.byteLength;
    }),
  );
  return readLines(raw);
}

/**
 * A Parquet part's lines. A Parquet file is read from its footer, by ranges: first the whole
 * object once, in order, through `stored` (which checks its size, sha256 and every chunk), then
 * its rows from chunks checked again. Null, its problems in `problems`, when that first read
 * failed; `refused` is the chunk check's own refusal, if it made one. `pacer` is told of the
 * rows decoded.
 */
export async function parquetLines(
  store: ObjectStore,
  stored: ReadableStream<Uint8Array>,
  expected: ExpectedObject,
  sha256: Sha256Factory,
  counts: LineCounts,
  problems: string[],
  refused: () => VerificationError | null,
  pacer?: RowPacer,
): Promise<AsyncIterable<string[]> | null> {
  try {
    for await (const _ of stored);
  } catch (err) {
    problems.push(...(refused()?.problems ?? readProblems(err)));
    return null;
  }
  return decoded(new VerifiedRanges(store, expected, sha256), counts, pacer);
}

/** A part's lines decoded from Parquet, their JSONL size counted as they come. */
async function* decoded(
  file: VerifiedRanges,
  counts: LineCounts,
  pacer: RowPacer | undefined,
): AsyncGenerator<string[]> {
  // Loaded here: an archive of JSONL parts never loads the Parquet reader.
  const { decodeParquetLines } = await import("./parquet/decode.js");
  for await (const lines of decodeParquetLines(file)) {
    for (const line of lines) counts.rawBytes += utf8Length(line) + 1;
    pacer?.count(lines.length);
    yield lines;
  }
  pacer?.end();
}

/** What a read of the store that failed before any chunk was refused tells. */
function readProblems(err: unknown): string[] {
  if (err instanceof VerificationError) return err.problems;
  return [`read failed (${(err as Error).message})`];
}

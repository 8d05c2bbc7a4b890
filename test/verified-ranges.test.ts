import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FsStore } from "../src/adapters/fs/store.js";
import { ChunkDigester, type ExpectedObject } from "../src/core/archive/chunks.js";
import {
  decodeParquetLines,
  encodeParquet,
  planColumns,
} from "../src/core/archive/parquet/index.js";
import { VerifiedRanges } from "../src/core/archive/verified-ranges.js";
import { VerificationError } from "../src/core/errors.js";
import type { ObjectStore } from "../src/core/store.js";
import { putBytes } from "../src/core/store.js";
import { nodeSha256 } from "../src/node/owner.js";

/**
 * A Parquet part read by ranges: every byte the decoder gets comes from a chunk that matched
 * its recorded digest in that read, so a flipped byte stops the read at its chunk.
 */
const dir = mkdtempSync(join(tmpdir(), "sluice-ranges-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const CHUNK = 4096;
const KEY = "ev/date=2025-10-13/part-0000.parquet";

const plan = planColumns(
  [
    { name: "id", type: "INTEGER" },
    { name: "path", type: "TEXT" },
  ],
  "sqlite",
);
const lines = Array.from(
  { length: 3000 },
  (_, i) => `{"id":${i + 1},"path":"/p${(i * 7919) % 1000}"}`,
);

/** The part stored, and what the ledger would record of it. */
async function stored(): Promise<{ store: FsStore; expected: ExpectedObject; bytes: Uint8Array }> {
  const pages = [lines.slice(0, 1000), lines.slice(1000, 2000), lines.slice(2000)];
  const { chunks } = encodeParquet(pages, plan, { rowGroupRows: 500 });
  const parts: Uint8Array[] = [];
  for await (const c of chunks) parts.push(c);
  const bytes = new Uint8Array(Buffer.concat(parts));
  const digester = new ChunkDigester(nodeSha256, CHUNK);
  digester.update(bytes);
  const whole = nodeSha256();
  whole.update(bytes);
  const store = new FsStore(join(dir, `s${Math.random().toString(36).slice(2)}`));
  await putBytes(store, KEY, bytes);
  const expected = {
    objectKey: KEY,
    fileSize: bytes.byteLength,
    sha256: whole.hex(),
    chunkBytes: CHUNK,
    chunkSha256: digester.finish(),
  };
  return { store, expected, bytes };
}

async function decoded(ranges: VerifiedRanges): Promise<string[]> {
  const out: string[] = [];
  for await (const batch of decodeParquetLines(ranges)) out.push(...batch);
  return out;
}

/** A store that counts its ranged reads. */
function counting(inner: ObjectStore) {
  const calls: number[] = [];
  const store: ObjectStore = {
    put: (k, b) => inner.put(k, b),
    get: (k) => inner.get(k),
    getRange: (k, start, end) => {
      calls.push(start);
      return inner.getRange(k, start, end);
    },
    head: (k) => inner.head(k),
    delete: (k) => inner.delete(k),
    describe: () => inner.describe(),
  };
  return { store, calls };
}

describe("a part read by verified ranges", () => {
  it("decodes to exactly the lines encoded, over many chunks, every chunk read and checked", async () => {
    const { store, expected } = await stored();
    expect(expected.fileSize).toBeGreaterThan(CHUNK * 3);
    const ranges = new VerifiedRanges(store, expected, nodeSha256);
    expect(await decoded(ranges)).toEqual(lines);
    expect(ranges.untouched()).toEqual([]);
  });

  it("a slice across chunk bounds is the stored bytes; a chunk past the few kept is read again", async () => {
    const { store, expected, bytes } = await stored();
    const { store: s, calls } = counting(store);
    const ranges = new VerifiedRanges(s, expected, nodeSha256, 2);
    const got = new Uint8Array(await ranges.slice(CHUNK - 10, 2 * CHUNK + 10));
    expect(Buffer.from(got).equals(Buffer.from(bytes.subarray(CHUNK - 10, 2 * CHUNK + 10)))).toBe(
      true,
    );
    expect(calls).toEqual([0, CHUNK, 2 * CHUNK]);
    // A slice ending on a chunk's bound reads no chunk past it.
    await ranges.slice(2 * CHUNK - 1, 2 * CHUNK);
    expect(calls).toEqual([0, CHUNK, 2 * CHUNK]);
    expect((await ranges.slice(7, 7)).byteLength).toBe(0);
    // Chunks 1 and 2 are kept; 0 was dropped: asked again, it is fetched again.
    await ranges.slice(CHUNK + 1, CHUNK + 2);
    await ranges.slice(0, 1);
    expect(calls).toEqual([0, CHUNK, 2 * CHUNK, 0]);
    expect(ranges.untouched()).toEqual(
      Array.from({ length: Math.ceil(expected.fileSize / CHUNK) - 3 }, (_, i) => i + 3),
    );
  });

  it("a flipped byte fails the read at its chunk with the chunk named; no row of it decoded", async () => {
    const { store, expected } = await stored();
    const file = join(store.root, ...KEY.split("/"));
    const raw = readFileSync(file);
    const at = 2 * CHUNK + 17;
    raw[at] = (raw[at] as number) ^ 1;
    writeFileSync(file, raw);
    const ranges = new VerifiedRanges(store, expected, nodeSha256);
    const err = await decoded(ranges).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VerificationError);
    expect(String(err)).toMatch(/chunk 2 \(bytes 8192\.\.\) differs from its recorded sha256/);
  });

  it("an object shorter than recorded, a missing one, and digests for another size are refused", async () => {
    const { store, expected } = await stored();
    const file = join(store.root, ...KEY.split("/"));
    writeFileSync(file, readFileSync(file).subarray(0, expected.fileSize - 5));
    const short = new VerifiedRanges(store, expected, nodeSha256);
    const last = Math.ceil(expected.fileSize / CHUNK) - 1;
    const tail = expected.fileSize - last * CHUNK;
    await expect(short.slice(expected.fileSize - 3, expected.fileSize)).rejects.toThrow(
      `chunk ${last} (bytes ${last * CHUNK}..) has ${tail - 5} bytes; ${tail} were recorded`,
    );
    const missing = new VerifiedRanges(store, { ...expected, objectKey: "ev/none" }, nodeSha256);
    await expect(missing.slice(0, 4)).rejects.toThrow(/object is missing/);
    expect(
      () =>
        new VerifiedRanges(store, { ...expected, fileSize: expected.fileSize + CHUNK }, nodeSha256),
    ).toThrow(/chunk digests recorded for/);
    const whole = new VerifiedRanges(store, expected, nodeSha256);
    for (const [start, end] of [
      [0, expected.fileSize + 1],
      [-1, 4],
      [5, 3],
    ] as const) {
      await expect(whole.slice(start, end)).rejects.toThrow(
        `a read of bytes ${start}..${end} of an object of ${expected.fileSize}`,
      );
    }
  });
});

import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ChunkDigester, type ExpectedObject, verifiedChunks } from "../src/core/archive/chunks.js";
import { FixedChunks } from "../src/core/bytes/fixed-chunks.js";
import { portableSha256 } from "../src/core/bytes/hash.js";
import { VerificationError } from "../src/core/errors.js";

/**
 * Chunk digests: what cleanup trusts before it acts on a line. A chunk passes on only once its
 * bytes matched the digest recorded for it; anything else stops the read with the reason.
 */
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const CHUNK = 64;

function expected(bytes: Uint8Array, chunkBytes = CHUNK): ExpectedObject {
  const d = new ChunkDigester(portableSha256, chunkBytes);
  // Fed in uneven pieces: the digests must not depend on how the bytes arrive.
  for (let at = 0; at < bytes.length; at += 7) d.update(bytes.subarray(at, at + 7));
  return {
    objectKey: "t/date=2025-10-13/part-0000-00000000.jsonl.gz",
    fileSize: bytes.length,
    sha256: sha(bytes),
    chunkBytes,
    chunkSha256: d.finish(),
  };
}

/** Pipe `bytes` (in `piece`-sized writes) through the gate; what came out, or the error. */
async function gate(
  want: ExpectedObject,
  bytes: Uint8Array,
  piece = 10,
): Promise<{ out: Uint8Array[]; err: unknown; refused: VerificationError | null }> {
  let refused: VerificationError | null = null;
  const out: Uint8Array[] = [];
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (let at = 0; at < bytes.length; at += piece) c.enqueue(bytes.slice(at, at + piece));
      c.close();
    },
  });
  let err: unknown = null;
  try {
    const reader = body
      .pipeThrough(
        verifiedChunks(want, portableSha256, (e) => {
          refused = e;
        }),
      )
      .getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      out.push(value.slice());
    }
  } catch (e) {
    err = e;
  }
  return { out, err, refused };
}

describe("chunk digests", () => {
  it("digest each full chunk and the short last one, whatever the write sizes", () => {
    const bytes = randomBytes(CHUNK * 3 + 5);
    const d = new ChunkDigester(portableSha256, CHUNK);
    d.update(bytes);
    const hex = d.finish();
    expect(hex).toBe(
      [0, 1, 2, 3].map((i) => sha(bytes.subarray(i * CHUNK, (i + 1) * CHUNK))).join(""),
    );
    expect(expected(bytes).chunkSha256).toBe(hex);
  });

  it("an object of whole chunks has no empty last chunk", () => {
    const bytes = randomBytes(CHUNK * 2);
    expect(expected(bytes).chunkSha256.length).toBe(2 * 64);
  });

  it("pass the object through unchanged, one verified chunk at a time", async () => {
    const bytes = randomBytes(CHUNK * 3 + 5);
    const { out, err } = await gate(expected(bytes), bytes);
    expect(err).toBeNull();
    expect(out.map((c) => c.length)).toEqual([CHUNK, CHUNK, CHUNK, 5]);
    expect(Buffer.concat(out).equals(bytes)).toBe(true);
  });

  it("stop before the first changed chunk: nothing of it, or after it, is passed on", async () => {
    const bytes = randomBytes(CHUNK * 3 + 5);
    const want = expected(bytes);
    const changed = Uint8Array.from(bytes);
    changed[CHUNK + 3] = (changed[CHUNK + 3] as number) ^ 1;
    const { out, err, refused } = await gate(want, changed);
    expect(out.map((c) => c.length)).toEqual([CHUNK]);
    expect(err).toBeInstanceOf(VerificationError);
    expect(refused?.problems).toEqual([
      `chunk 1 (bytes ${CHUNK}..) differs from its recorded sha256`,
    ]);
  });

  it("refuse a short last chunk that differs, even when every full chunk matched", async () => {
    const bytes = randomBytes(CHUNK * 2 + 9);
    const changed = Uint8Array.from(bytes);
    changed[CHUNK * 2 + 8] = (changed[CHUNK * 2 + 8] as number) ^ 0x80;
    const { out, refused } = await gate(expected(bytes), changed);
    expect(out.length).toBe(2);
    expect(refused?.problems[0]).toMatch(/^chunk 2 /);
  });

  it("refuse an object with more chunks than recorded", async () => {
    const bytes = randomBytes(CHUNK * 2);
    const longer = Buffer.concat([bytes, randomBytes(3)]);
    const { out, refused } = await gate(expected(bytes), longer);
    expect(out.length).toBe(2);
    expect(refused?.problems).toEqual(["holds more than the 2 chunks recorded"]);
  });

  it("refuse an object cut short at a chunk boundary", async () => {
    const bytes = randomBytes(CHUNK * 3);
    const { out, refused } = await gate(expected(bytes), bytes.subarray(0, CHUNK * 2));
    expect(out.length).toBe(2);
    expect(refused?.problems).toEqual(["holds 2 chunks; 3 were recorded"]);
  });

  it("refuse a size or a whole sha256 other than the ledger's, though every chunk matched", async () => {
    const bytes = randomBytes(CHUNK + 1);
    const size = await gate({ ...expected(bytes), fileSize: CHUNK + 2 }, bytes);
    expect(size.refused?.problems).toEqual([
      `holds ${CHUNK + 1} bytes; ${CHUNK + 2} were recorded`,
    ]);
    const other = "0".repeat(64);
    const whole = await gate({ ...expected(bytes), sha256: other }, bytes);
    expect(whole.refused?.problems).toEqual([`sha256 ${sha(bytes)}; ${other} was recorded`]);
  });

  it("pass an empty object that was recorded empty, and refuse one that was not", async () => {
    const none = new Uint8Array(0);
    expect((await gate(expected(none), none)).err).toBeNull();
    const bytes = randomBytes(10);
    expect((await gate(expected(bytes), none)).refused?.problems[0]).toMatch(/holds 0 chunks; 1/);
  });
});

describe("fixed-size chunks (multipart parts, chunk digests)", () => {
  it("cut any pieces into whole chunks and a short rest, bytes in order, buffers reused", () => {
    const bytes = randomBytes(1000);
    const pool: Uint8Array[] = [];
    let fresh = 0;
    const chunks = new FixedChunks(64, () => {
      fresh++;
      return pool.pop() ?? new Uint8Array(64);
    });
    const out: Uint8Array[] = [];
    let at = 0;
    for (const size of [1, 63, 64, 65, 200, 7, 600]) {
      const piece = bytes.subarray(at, at + size);
      at += size;
      for (const chunk of chunks.push(piece)) {
        expect(chunk.length).toBe(64);
        out.push(Uint8Array.from(chunk));
        pool.push(chunk); // the caller gives the buffer back before the next one is taken
      }
    }
    const rest = chunks.rest();
    expect(rest.length).toBe(1000 % 64);
    expect(Buffer.concat([...out, rest])).toEqual(Buffer.from(bytes));
    expect(fresh).toBe(out.length + 1);
    expect(chunks.rest().length).toBe(0);
  });
});

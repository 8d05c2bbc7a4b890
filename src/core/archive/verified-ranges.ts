import type { Sha256Factory } from "../bytes/hash.js";
import { VerificationError } from "../errors.js";
import type { ObjectStore } from "../store.js";
import type { ExpectedObject } from "./chunks.js";

const HEX = 64;

/**
 * A stored part read by byte ranges (what a Parquet reader asks for), where every byte handed
 * out comes from a whole chunk whose sha256 matched the part's recorded chunk digest in this
 * same read: the rows decoded from it are rows of checked bytes, as a streamed read's are.
 * Holds at most `keep` chunks; `untouched()` names the chunks no slice has read yet.
 */
export class VerifiedRanges {
  readonly byteLength: number;

  private readonly chunks = new Map<number, Uint8Array>();

  private readonly read = new Set<number>();

  private readonly count: number;

  constructor(
    private readonly store: ObjectStore,
    private readonly expected: ExpectedObject,
    private readonly sha256: Sha256Factory,
    private readonly keep = 4,
  ) {
    this.byteLength = expected.fileSize;
    this.count = expected.chunkSha256.length / HEX;
    const needed = Math.ceil(expected.fileSize / expected.chunkBytes);
    if (this.count !== needed) {
      throw new VerificationError(expected.objectKey, [
        `${this.count} chunk digests recorded for ${expected.fileSize} bytes (${needed} chunks)`,
      ]);
    }
  }

  /** Bytes `[start, end)` as a fresh ArrayBuffer, each from a checked chunk. */
  async slice(start: number, end: number = this.byteLength): Promise<ArrayBuffer> {
    if (start < 0 || end > this.byteLength || start > end) {
      throw new VerificationError(this.expected.objectKey, [
        `a read of bytes ${start}..${end} of an object of ${this.byteLength}`,
      ]);
    }
    const size = this.expected.chunkBytes;
    const out = new Uint8Array(end - start);
    for (let i = Math.floor(start / size); i * size < end; i++) {
      const chunk = await this.chunk(i);
      const from = Math.max(start, i * size);
      const to = Math.min(end, (i + 1) * size);
      out.set(chunk.subarray(from - i * size, to - i * size), from - start);
    }
    return out.buffer;
  }

  /** The chunks no slice has read (a verification reads them too, so every byte is checked). */
  untouched(): number[] {
    const left: number[] = [];
    for (let i = 0; i < this.count; i++) if (!this.read.has(i)) left.push(i);
    return left;
  }

  /** Chunk `i`, fetched and checked, or from the few kept. */
  async chunk(i: number): Promise<Uint8Array> {
    const kept = this.chunks.get(i);
    if (kept) {
      // Most recently used last: the first key is the one to drop.
      this.chunks.delete(i);
      this.chunks.set(i, kept);
      return kept;
    }
    const { objectKey, chunkBytes, chunkSha256 } = this.expected;
    const from = i * chunkBytes;
    const to = Math.min(from + chunkBytes, this.byteLength);
    const bytes = await this.store.getRange(objectKey, from, to);
    if (bytes === null) {
      throw new VerificationError(objectKey, [`object is missing from ${this.store.describe()}`]);
    }
    if (bytes.byteLength !== to - from) {
      throw new VerificationError(objectKey, [
        `chunk ${i} (bytes ${from}..) has ${bytes.byteLength} bytes; ${to - from} were recorded`,
      ]);
    }
    const h = this.sha256();
    h.update(bytes);
    if (h.hex() !== chunkSha256.slice(i * HEX, (i + 1) * HEX)) {
      throw new VerificationError(objectKey, [
        `chunk ${i} (bytes ${from}..) differs from its recorded sha256`,
      ]);
    }
    this.read.add(i);
    this.chunks.set(i, bytes);
    if (this.chunks.size > this.keep) this.chunks.delete(this.chunks.keys().next().value as number);
    return bytes;
  }
}

import { FixedChunks } from "../bytes/fixed-chunks.js";
import type { Sha256, Sha256Factory } from "../bytes/hash.js";
import { VerificationError } from "../errors.js";

/**
 * Chunk digests: the sha256 of every CHUNK_BYTES of an archive's stored bytes, kept in the
 * ledger. A whole-object sha256 is known only at the end of a read, too late for a cleanup
 * that deletes as it reads; a chunk's digest is known as soon as its bytes are in, so every
 * line cleanup acts on comes from bytes checked in that same read.
 */
export const CHUNK_BYTES = 1 << 20;
const HEX = 64;

/** Digests of a byte stream as it passes, chunk by chunk. */
export class ChunkDigester {
  private hash: Sha256;
  private filled = 0;
  private readonly digests: string[] = [];

  constructor(
    private readonly sha256: Sha256Factory,
    readonly chunkBytes = CHUNK_BYTES,
  ) {
    this.hash = sha256();
  }

  update(bytes: Uint8Array): void {
    for (let at = 0; at < bytes.byteLength; ) {
      const n = Math.min(this.chunkBytes - this.filled, bytes.byteLength - at);
      this.hash.update(bytes.subarray(at, at + n));
      this.filled += n;
      at += n;
      if (this.filled === this.chunkBytes) {
        this.digests.push(this.hash.hex());
        this.hash = this.sha256();
        this.filled = 0;
      }
    }
  }

  /** Every chunk's digest, hex, concatenated (the last chunk may be short). */
  finish(): string {
    if (this.filled > 0) this.digests.push(this.hash.hex());
    this.filled = 0;
    return this.digests.join("");
  }
}

/** What an object must be, as the ledger recorded it. */
export interface ExpectedObject {
  objectKey: string;
  fileSize: number;
  sha256: string;
  chunkBytes: number;
  chunkSha256: string;
}

/**
 * Passes an object's bytes on only once the chunk they belong to has matched its recorded
 * digest; errors with a VerificationError at the first chunk that does not, and at the end if
 * the size or the whole sha256 differ. Holds one chunk.
 */
export function verifiedChunks(
  expected: ExpectedObject,
  sha256: Sha256Factory,
  /** Told of the refusal, whatever the streams downstream make of the error. */
  onRefuse?: (err: VerificationError) => void,
): TransformStream<Uint8Array, Uint8Array> {
  const { chunkBytes, chunkSha256, objectKey } = expected;
  const count = chunkSha256.length / HEX;
  const whole = sha256();
  const chunks = new FixedChunks(chunkBytes);
  let index = 0;
  let total = 0;
  const fail = (problem: string) => {
    const err = new VerificationError(objectKey, [problem]);
    onRefuse?.(err);
    return err;
  };
  const release = (chunk: Uint8Array, controller: TransformStreamDefaultController<Uint8Array>) => {
    if (index >= count) throw fail(`holds more than the ${count} chunks recorded`);
    const h = sha256();
    h.update(chunk);
    if (h.hex() !== chunkSha256.slice(index * HEX, (index + 1) * HEX)) {
      throw fail(`chunk ${index} (bytes ${index * chunkBytes}..) differs from its recorded sha256`);
    }
    whole.update(chunk);
    controller.enqueue(chunk);
    index++;
  };
  return new TransformStream({
    transform(bytes, controller) {
      total += bytes.byteLength;
      for (const chunk of chunks.push(bytes)) release(chunk, controller);
    },
    flush(controller) {
      const rest = chunks.rest();
      if (rest.byteLength > 0) release(rest, controller);
      if (index !== count) throw fail(`holds ${index} chunks; ${count} were recorded`);
      if (total !== expected.fileSize) {
        throw fail(`holds ${total} bytes; ${expected.fileSize} were recorded`);
      }
      const sha = whole.hex();
      if (sha !== expected.sha256) {
        throw fail(`sha256 ${sha}; ${expected.sha256} was recorded`);
      }
    },
  });
}

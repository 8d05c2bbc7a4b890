import { FixedChunks } from "../../core/bytes/fixed-chunks.js";
import type { ObjectInfo, ObjectStore } from "../../core/store.js";

/**
 * The parts of Cloudflare's R2 binding this adapter uses (structural, so that the Node build
 * needs no Workers type globals).
 */
export interface R2ObjectLike {
  key: string;
  size: number;
}
export interface R2ObjectBodyLike extends R2ObjectLike {
  body: ReadableStream<Uint8Array>;
}
export interface R2UploadedPartLike {
  partNumber: number;
  etag: string;
}
export interface R2MultipartUploadLike {
  uploadPart(partNumber: number, value: ArrayBuffer | ArrayBufferView): Promise<R2UploadedPartLike>;
  complete(parts: R2UploadedPartLike[]): Promise<R2ObjectLike>;
  abort(): Promise<void>;
}
export interface R2BucketLike {
  put(key: string, value: ArrayBuffer | ArrayBufferView): Promise<R2ObjectLike | null>;
  get(
    key: string,
    options?: { range?: { offset: number; length: number } },
  ): Promise<R2ObjectBodyLike | null>;
  head(key: string): Promise<R2ObjectLike | null>;
  delete(key: string): Promise<void>;
  createMultipartUpload(key: string): Promise<R2MultipartUploadLike>;
}

export interface R2StoreOptions {
  /** Key prefix inside the bucket, without leading or trailing '/'. */
  prefix?: string;
  /** Bytes per part. R2 wants at least 5 MiB, and every part but the last of equal size. */
  partSize?: number;
  /** The binding's name, for messages. */
  name?: string;
  /** Told of every part sent (progress, tests). */
  onPart?: (key: string, partNumber: number, bytes: number) => void;
}

export const R2_MIN_PART = 5 << 20;
const MAX_PARTS = 10_000;

/**
 * The object store over an R2 binding. A stream is cut into parts of exactly `partSize`
 * bytes, each sent as soon as it fills, into two buffers used in turn: one filling while the
 * other is sent. So a Worker holds about two parts, whatever the archive's size.
 */
export class R2Store implements ObjectStore {
  private readonly prefix: string;
  private readonly partSize: number;

  constructor(
    private readonly bucket: R2BucketLike,
    private readonly o: R2StoreOptions = {},
  ) {
    this.prefix = o.prefix ?? "";
    this.partSize = Math.max(R2_MIN_PART, o.partSize ?? R2_MIN_PART);
  }

  private key(key: string): string {
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  async put(key: string, body: ReadableStream<Uint8Array>): Promise<ObjectInfo> {
    const full = this.key(key);
    const size = this.partSize;
    const parts: R2UploadedPartLike[] = [];
    let upload: R2MultipartUploadLike | null = null;
    let spare: Uint8Array | null = null;
    const chunks = new FixedChunks(size, () => {
      const next = spare ?? new Uint8Array(size);
      spare = null;
      return next;
    });
    let total = 0;
    let sending: Promise<void> | null = null;

    const sendPart = async (bytes: Uint8Array) => {
      if (parts.length >= MAX_PARTS) {
        throw new Error(
          `r2: ${full} needs more than ${MAX_PARTS} parts of ${size >> 20} MiB; raise R2_PART_SIZE_MIB`,
        );
      }
      // One part in flight at a time: wait for the previous one before sending the next.
      if (sending) await sending;
      upload ??= await this.bucket.createMultipartUpload(full);
      const u = upload;
      const partNumber = parts.length + 1;
      parts.push({ partNumber, etag: "" });
      sending = u.uploadPart(partNumber, bytes).then((uploaded) => {
        parts[partNumber - 1] = uploaded;
        if (bytes.byteLength === size) spare = bytes;
        this.o.onPart?.(full, partNumber, bytes.byteLength);
      });
      // Catch here too, so that a failure is not unhandled before it is awaited.
      sending.catch(() => undefined);
    };

    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.byteLength;
        for (const chunk of chunks.push(value)) await sendPart(chunk);
      }
      const rest = chunks.rest();
      if (upload === null && sending === null) {
        // Smaller than one part: a plain put, which is atomic by itself.
        await this.bucket.put(full, rest);
      } else {
        if (rest.byteLength > 0) await sendPart(rest);
        await sending;
        await (upload as R2MultipartUploadLike | null)?.complete(parts);
      }
      return { key, bytes: total };
    } catch (err) {
      await reader.cancel(err).catch(() => undefined);
      if (sending) await (sending as Promise<void>).catch(() => undefined);
      const u = upload as R2MultipartUploadLike | null;
      if (u) {
        try {
          await u.abort();
        } catch (abortErr) {
          throw new Error(
            `${(err as Error).message} (and aborting the multipart upload failed: ${(abortErr as Error).message}; its parts remain until R2 expires them)`,
          );
        }
      }
      throw err;
    }
  }

  async get(key: string): Promise<ReadableStream<Uint8Array> | null> {
    const obj = await this.bucket.get(this.key(key));
    return obj ? obj.body : null;
  }

  async getRange(key: string, start: number, end: number): Promise<Uint8Array | null> {
    if (end <= start) return new Uint8Array(0);
    const obj = await this.bucket.get(this.key(key), {
      range: { offset: start, length: end - start },
    });
    return obj ? new Uint8Array(await new Response(obj.body).arrayBuffer()) : null;
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const obj = await this.bucket.head(this.key(key));
    return obj ? { key, bytes: obj.size } : null;
  }

  async delete(key: string): Promise<void> {
    await this.bucket.delete(this.key(key));
  }

  describe(): string {
    return `r2:${this.o.name ?? "bucket"}${this.prefix ? `/${this.prefix}` : ""}`;
  }
}

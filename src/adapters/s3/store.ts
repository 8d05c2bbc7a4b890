import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  type CompletedPart,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  NotFound,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { FixedChunks } from "../../core/bytes/fixed-chunks.js";
import { BadInputError } from "../../core/errors.js";
import type { ObjectInfo, ObjectStore } from "../../core/store.js";

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing '/'. */
  prefix: string;
  client: S3Client;
  /** Bytes per multipart part (S3 and R2: at least 5 MiB). */
  partSize?: number;
  /** Parts in flight at once; memory is about partSize x (queueSize + 1). */
  queueSize?: number;
}

/** S3's (and R2's) limit on the parts of one multipart upload. */
const MAX_PARTS = 10_000;

/**
 * S3 protocol (AWS S3, Cloudflare R2, MinIO). Objects are uploaded in parts as the stream
 * fills them, so memory does not depend on the object's size; an object appears only when
 * its upload completes, and a failed upload is aborted rather than left behind.
 */
export class S3Store implements ObjectStore {
  private readonly partSize: number;
  private readonly queueSize: number;

  constructor(private readonly o: S3StoreOptions) {
    this.partSize = o.partSize ?? 8 << 20;
    this.queueSize = o.queueSize ?? 2;
  }

  private key(key: string): string {
    return this.o.prefix ? `${this.o.prefix}/${key}` : key;
  }

  /**
   * Parts are cut into `queueSize + 1` buffers that are reused for the whole upload: one
   * filling while the others are sent. Buffers allocated per part (as lib-storage does) are
   * freed only when V8 next collects, and that slack grew RSS with the object's size.
   */
  async put(key: string, body: ReadableStream<Uint8Array>): Promise<ObjectInfo> {
    const { client, bucket: Bucket } = this.o;
    const Key = this.key(key);
    const size = this.partSize;
    const free: Uint8Array[] = [];
    const inFlight = new Set<Promise<void>>();
    const parts: CompletedPart[] = [];
    const chunks = new FixedChunks(size, () => free.pop() ?? new Uint8Array(size));
    let uploadId: string | undefined;
    let failure: { error: unknown } | null = null;
    const check = () => {
      if (failure) throw failure.error;
    };

    const sendPart = async (Body: Uint8Array) => {
      if (parts.length >= MAX_PARTS) {
        throw new Error(
          `s3: ${this.describe()}/${key} needs more than ${MAX_PARTS} parts of ${size >> 20} MiB; raise partSizeMiB`,
        );
      }
      uploadId ??= (await client.send(new CreateMultipartUploadCommand({ Bucket, Key }))).UploadId;
      const PartNumber = parts.length + 1;
      parts.push({ PartNumber });
      const sent: Promise<void> = client
        .send(
          new UploadPartCommand({
            Bucket,
            Key,
            UploadId: uploadId,
            PartNumber,
            Body,
            ContentLength: Body.byteLength,
          }),
        )
        .then(
          (res) => {
            parts[PartNumber - 1] = { PartNumber, ETag: res.ETag };
            if (Body.byteLength === size) free.push(Body);
          },
          (error: unknown) => {
            failure ??= { error };
          },
        )
        .finally(() => inFlight.delete(sent));
      inFlight.add(sent);
      while (inFlight.size >= this.queueSize) await Promise.race(inFlight);
      check();
    };

    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        check();
        if (done) break;
        for (const chunk of chunks.push(value)) await sendPart(chunk);
      }
      const rest = chunks.rest();
      if (uploadId === undefined) {
        // Smaller than one part: a plain PUT, which is atomic by itself.
        await client.send(
          new PutObjectCommand({ Bucket, Key, Body: rest, ContentLength: rest.byteLength }),
        );
      } else {
        if (rest.byteLength > 0) await sendPart(rest);
        await Promise.all(inFlight);
        check();
        await client.send(
          new CompleteMultipartUploadCommand({
            Bucket,
            Key,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts },
          }),
        );
      }
    } catch (err) {
      await reader.cancel(err).catch(() => undefined);
      await Promise.allSettled(inFlight);
      if (uploadId !== undefined) {
        try {
          await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: uploadId }));
        } catch (abortErr) {
          throw new Error(
            `${(err as Error).message} (and aborting the multipart upload failed: ${(abortErr as Error).message}; its parts may remain until the bucket's lifecycle rule removes them)`,
            { cause: err },
          );
        }
      }
      throw err;
    }
    const info = await this.head(key);
    if (!info) throw new Error(`s3: ${this.describe()}/${key} missing right after its upload`);
    return info;
  }

  async get(key: string): Promise<ReadableStream<Uint8Array> | null> {
    try {
      const res = await this.o.client.send(
        new GetObjectCommand({ Bucket: this.o.bucket, Key: this.key(key) }),
      );
      return (res.Body?.transformToWebStream() as ReadableStream<Uint8Array> | undefined) ?? null;
    } catch (err) {
      if (err instanceof NoSuchKey || err instanceof NotFound) return null;
      throw err;
    }
  }

  async getRange(key: string, start: number, end: number): Promise<Uint8Array | null> {
    if (end <= start) return new Uint8Array(0);
    try {
      const res = await this.o.client.send(
        new GetObjectCommand({
          Bucket: this.o.bucket,
          Key: this.key(key),
          Range: `bytes=${start}-${end - 1}`,
        }),
      );
      return (await res.Body?.transformToByteArray()) ?? new Uint8Array(0);
    } catch (err) {
      if (err instanceof NoSuchKey || err instanceof NotFound) return null;
      // A range that starts at or past the end: no bytes there.
      if ((err as { name?: string }).name === "InvalidRange") return new Uint8Array(0);
      throw err;
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const res = await this.o.client.send(
        new HeadObjectCommand({ Bucket: this.o.bucket, Key: this.key(key) }),
      );
      return { key, bytes: res.ContentLength ?? 0 };
    } catch (err) {
      if (err instanceof NotFound || (err as { name?: string }).name === "NotFound") return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.o.client.send(
      new DeleteObjectCommand({ Bucket: this.o.bucket, Key: this.key(key) }),
    );
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const strip = this.o.prefix ? this.o.prefix.length + 1 : 0;
    let token: string | undefined;
    do {
      const page = await this.o.client.send(
        new ListObjectsV2Command({
          Bucket: this.o.bucket,
          Prefix: this.key(prefix),
          ContinuationToken: token,
        }),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key) yield { key: o.Key.slice(strip), bytes: o.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  describe(): string {
    return `s3://${this.o.bucket}${this.o.prefix ? `/${this.o.prefix}` : ""}`;
  }
}

/**
 * `s3://BUCKET/PREFIX?endpoint=URL&region=R&forcePathStyle=true`. Credentials come from the
 * SDK's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles, roles). R2 and
 * MinIO need `endpoint`; MinIO and most local servers need `forcePathStyle=true`.
 */
export function s3StoreFromUrl(url: string): S3Store {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new BadInputError(`SLUICE_STORE '${url}' is not a URL (s3://bucket/prefix?endpoint=...)`);
  }
  const bucket = u.hostname;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new BadInputError(`SLUICE_STORE '${url}': '${bucket}' is not a bucket name`);
  }
  const q = u.searchParams;
  const client = new S3Client({
    endpoint: q.get("endpoint") ?? process.env.AWS_ENDPOINT_URL ?? undefined,
    region: q.get("region") ?? process.env.AWS_REGION ?? "auto",
    forcePathStyle: q.get("forcePathStyle") === "true",
  });
  const partMiB = Number(q.get("partSizeMiB") ?? 8);
  if (!Number.isFinite(partMiB) || partMiB < 5) {
    throw new BadInputError(`SLUICE_STORE '${url}': partSizeMiB must be at least 5`);
  }
  return new S3Store({
    bucket,
    prefix: u.pathname.replace(/^\/+|\/+$/g, ""),
    client,
    partSize: partMiB << 20,
  });
}

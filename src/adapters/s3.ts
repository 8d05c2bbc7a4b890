import { Readable } from "node:stream";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  NoSuchKey,
  NotFound,
  S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { BadInputError } from "../core/errors.js";
import type { ObjectInfo, ObjectStore } from "../core/store.js";

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

  async put(key: string, body: ReadableStream<Uint8Array>): Promise<ObjectInfo> {
    const source = Readable.fromWeb(body as import("node:stream/web").ReadableStream<Uint8Array>);
    let sourceError: Error | null = null;
    source.once("error", (err) => {
      sourceError = err;
    });
    const upload = new Upload({
      client: this.o.client,
      params: { Bucket: this.o.bucket, Key: this.key(key), Body: source },
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (err) {
      // lib-storage aborts the multipart upload on failure; if the abort fails too, its
      // error replaces the real cause. Keep the cause first, and say parts may remain.
      const cause = sourceError as Error | null;
      if (cause && err !== cause) {
        throw new Error(
          `${cause.message} (and aborting the multipart upload failed: ${(err as Error).message}; its parts may remain until the bucket's lifecycle rule removes them)`,
        );
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

import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readdir, rename, rm, stat, utimes } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { PartRecord } from "../../core/archive/ledger/records.js";
import { VerificationError } from "../../core/errors.js";
import type { ObjectStore } from "../../core/store.js";

/**
 * Parts of a store that is not a folder (S3, R2), fetched into a local folder for DuckDB under
 * their own keys (so `date=` stays in the path), each checked against the ledger's sha256 and
 * size as it arrives; least recently used parts go once the folder is over its cap.
 */
export class PartCache {
  constructor(
    readonly dir: string,
    private readonly capBytes: number,
  ) {}

  /** Where the part is, or will be, in the cache. */
  path(part: PartRecord): string {
    return join(this.dir, ...part.objectKey.split("/"));
  }

  /** The part's local path: from the cache when it is whole there, else fetched now. */
  async local(store: ObjectStore, part: PartRecord): Promise<string> {
    const path = this.path(part);
    const have = await stat(path).catch(() => null);
    if (have?.size === part.fileSize) {
      const now = new Date();
      await utimes(path, now, now);
      return path;
    }
    const body = await store.get(part.objectKey);
    if (!body) {
      throw new VerificationError(part.objectKey, [`object is missing from ${store.describe()}`]);
    }
    await mkdir(dirname(path), { recursive: true });
    const partial = `${path}.partial-${process.pid}`;
    const hash = createHash("sha256");
    let bytes = 0;
    try {
      await pipeline(
        Readable.fromWeb(body as import("node:stream/web").ReadableStream<Uint8Array>),
        async function* (chunks: AsyncIterable<Uint8Array>) {
          for await (const chunk of chunks) {
            hash.update(chunk);
            bytes += chunk.byteLength;
            yield chunk;
          }
        },
        createWriteStream(partial),
      );
      const sha256 = hash.digest("hex");
      if (sha256 !== part.sha256 || bytes !== part.fileSize) {
        throw new VerificationError(part.objectKey, [
          `downloaded ${bytes} bytes with sha256 ${sha256}; the ledger has ${part.fileSize} bytes, ${part.sha256}`,
        ]);
      }
      await rename(partial, path);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    return path;
  }

  /** Remove the least recently used parts until the cache fits its cap; `keep` stay. */
  async evict(keep: ReadonlySet<string>): Promise<number> {
    const files: { path: string; size: number; used: number }[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const path = join(dir, e.name);
        if (e.isDirectory()) await walk(path);
        else if (e.name.endsWith(".jsonl.gz") || e.name.endsWith(".parquet")) {
          const s = await stat(path);
          files.push({ path, size: s.size, used: s.mtimeMs });
        }
      }
    };
    await walk(this.dir);
    let total = files.reduce((n, f) => n + f.size, 0);
    let removed = 0;
    for (const f of files.sort((a, b) => a.used - b.used)) {
      if (total <= this.capBytes) break;
      if (keep.has(f.path)) continue;
      await rm(f.path, { force: true });
      total -= f.size;
      removed++;
    }
    return removed;
  }
}

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FsStore } from "../src/adapters/fs/store.js";
import { type R2BucketLike, R2Store } from "../src/adapters/r2/store.js";
import { S3Store } from "../src/adapters/s3/store.js";
import { type ObjectStore, putBytes } from "../src/core/store.js";
import { type S3Server, startS3rver } from "./s3rver.js";

/**
 * Ranged reads, what a Parquet reader asks of a store: on a folder, on a real S3-protocol
 * server over HTTP, and on R2 in workerd (Miniflare's bucket, reached from Node).
 */
const dir = mkdtempSync(join(tmpdir(), "sluice-ranges-"));
let s3: S3Server;
let mf: Miniflare;
const stores: [string, () => Promise<ObjectStore>][] = [
  ["a folder", async () => new FsStore(join(dir, "fs"))],
  ["S3 (s3rver)", async () => new S3Store({ client: s3.client, bucket: "ranges", prefix: "" })],
  ["R2 (workerd)", async () => new R2Store((await mf.getR2Bucket("B")) as unknown as R2BucketLike)],
];

beforeAll(async () => {
  s3 = await startS3rver(["ranges"]);
  mf = new Miniflare({
    modules: true,
    script: "export default { fetch() { return new Response('') } }",
    r2Buckets: ["B"],
    r2Persist: join(dir, "r2"),
  });
  await mf.ready;
});
afterAll(async () => {
  await mf?.dispose();
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** 3 MiB and 5 bytes, each byte a function of its offset. */
const SIZE = 3 * (1 << 20) + 5;
const bytes = Uint8Array.from({ length: SIZE }, (_, i) => (i * 31 + (i >> 10)) & 255);

for (const [name, open] of stores) {
  describe(`ranged reads on ${name}`, () => {
    it("returns exactly the bytes asked for, fewer at the end, none past it, null for no object", async () => {
      const store = await open();
      await putBytes(store, "t/date=2025-10-13/part-0000.parquet", bytes);
      const key = "t/date=2025-10-13/part-0000.parquet";
      const range = async (start: number, end: number) =>
        Array.from((await store.getRange(key, start, end)) ?? [], (b) => b);
      expect(await range(0, 10)).toEqual(Array.from(bytes.subarray(0, 10)));
      const mib = 1 << 20;
      expect(await range(mib - 3, mib + 3)).toEqual(Array.from(bytes.subarray(mib - 3, mib + 3)));
      const whole = await store.getRange(key, mib, 2 * mib);
      expect(whole?.byteLength).toBe(mib);
      expect(
        Buffer.from(whole as Uint8Array).equals(Buffer.from(bytes.subarray(mib, 2 * mib))),
      ).toBe(true);
      expect(await range(SIZE - 2, SIZE + 100)).toEqual(Array.from(bytes.subarray(SIZE - 2)));
      expect(await range(5, 5)).toEqual([]);
      expect(await store.getRange("t/date=2025-10-13/none.parquet", 0, 10)).toBeNull();
    });
  });
}

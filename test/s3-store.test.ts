import { createHash } from "node:crypto";
import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { S3Store } from "../src/adapters/s3/store.js";
import { type S3Server, startS3rver } from "./s3rver.js";

/**
 * The S3 store against a real S3-protocol server (s3rver) over HTTP on loopback. The jobs on
 * it (round trip, corruption, kill-and-rerun) are in the contract suite (contract-s3.test.ts).
 */
const BUCKET = "sluice-test";
let server: S3Server;
const sent: string[] = [];
/** Bytes handed to UploadPart calls so far. */
let partBytes = 0;
/** The memory behind the bodies handed to UploadPart calls. */
const partBuffers = new Set<ArrayBufferLike>();
let client: S3Client;

beforeAll(async () => {
  server = await startS3rver([BUCKET]);
  client = server.client;
  // Record every command the store sends, to see multipart really used (and aborted).
  client.middlewareStack.add(
    (next, context) => (args) => {
      sent.push(String(context.commandName));
      if (context.commandName === "UploadPartCommand") {
        const body = (args.input as { Body?: Uint8Array }).Body;
        partBytes += body?.byteLength ?? 0;
        if (body) partBuffers.add(body.buffer);
      }
      return next(args);
    },
    { step: "initialize" },
  );
});
afterAll(() => server?.stop());

/**
 * `mb` MiB of pseudo-random bytes (gzip cannot shrink them), hashed as they are made;
 * `maxLead` is how far the source ever got ahead of the bytes already handed to UploadPart.
 */
function bytes(mb: number, failAtMb?: number) {
  const hash = createHash("sha256");
  let i = 0;
  const state = { maxLead: 0 };
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (failAtMb !== undefined && i >= failAtMb) {
        c.error(new Error("source failed"));
        return;
      }
      if (i >= mb) return c.close();
      const chunk = new Uint8Array(1 << 20);
      let x = (i + 1) * 2654435761;
      for (let j = 0; j < chunk.length; j += 4) {
        x = (x ^ (x << 13) ^ (x >>> 17) ^ (x << 5)) >>> 0;
        chunk[j] = x & 255;
        chunk[j + 1] = (x >>> 8) & 255;
        chunk[j + 2] = (x >>> 16) & 255;
        chunk[j + 3] = x >>> 24;
      }
      hash.update(chunk);
      i++;
      state.maxLead = Math.max(state.maxLead, i * (1 << 20) - partBytes);
      c.enqueue(chunk);
    },
  });
  return { stream, digest: () => hash.digest("hex"), state };
}

describe("S3Store on an S3-protocol server", () => {
  it("streams a 110 MiB object up in parts with bounded memory, and back unchanged", async () => {
    const store = new S3Store({ bucket: BUCKET, prefix: "big", client, partSize: 8 << 20 });
    sent.length = 0;
    partBytes = 0;
    partBuffers.clear();
    const src = bytes(110);
    const info = await store.put("x/blob.bin", src.stream);
    expect(info.bytes).toBe(110 << 20);
    expect(sent.filter((c) => c === "UploadPartCommand").length).toBeGreaterThanOrEqual(13);
    expect(sent).toContain("CompleteMultipartUploadCommand");
    // It reads only a few parts ahead of what it sent, never the object: 8 MiB parts, 2 in
    // flight, one filling, plus stream buffers.
    expect(src.state.maxLead).toBeLessThan(40 << 20);
    // Parts are cut into a few reused buffers (queueSize + 1), not one new buffer per part,
    // whose garbage would make RSS grow with the object.
    expect(partBuffers.size).toBeLessThanOrEqual(3);
    console.log(
      `S3 upload read at most ${(src.state.maxLead / 1048576).toFixed(0)} MiB ahead of its parts`,
    );

    const back = createHash("sha256");
    let n = 0;
    const body = await store.get("x/blob.bin");
    for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
      back.update(chunk);
      n += chunk.byteLength;
    }
    expect(n).toBe(110 << 20);
    expect(back.digest("hex")).toBe(src.digest());
    expect(await store.get("x/missing.bin")).toBeNull();
    expect(await store.head("x/missing.bin")).toBeNull();
  });

  it("sends an object smaller than one part as a single PUT", async () => {
    const store = new S3Store({ bucket: BUCKET, prefix: "small", client, partSize: 5 << 20 });
    sent.length = 0;
    const src = bytes(3);
    expect((await store.put("x/small.bin", src.stream)).bytes).toBe(3 << 20);
    expect(sent).toContain("PutObjectCommand");
    expect(sent).not.toContain("CreateMultipartUploadCommand");
    const back = createHash("sha256").update(
      new Uint8Array(await new Response(await store.get("x/small.bin")).arrayBuffer()),
    );
    expect(back.digest("hex")).toBe(src.digest());
  });

  it("lists the objects under a key prefix, keys as the store names them", async () => {
    const store = new S3Store({ bucket: BUCKET, prefix: "listed", client });
    const put = (key: string) =>
      store.put(key, new Response(new TextEncoder().encode(key)).body as ReadableStream);
    for (const key of ["trace-jobs/a.status.json", "trace-jobs/a.json.gz", "other/b.json"]) {
      await put(key);
    }
    const listed = async (prefix: string) => {
      const out: { key: string; bytes: number }[] = [];
      for await (const o of store.list(prefix)) out.push(o);
      return out.sort((x, y) => x.key.localeCompare(y.key));
    };
    expect(await listed("trace-jobs/")).toEqual([
      { key: "trace-jobs/a.json.gz", bytes: 20 },
      { key: "trace-jobs/a.status.json", bytes: 24 },
    ]);
    expect(await listed("nothing/")).toEqual([]);
  });

  it("aborts a multipart upload whose source fails, leaving no object", async () => {
    const store = new S3Store({ bucket: BUCKET, prefix: "fail", client, partSize: 5 << 20 });
    sent.length = 0;
    // s3rver does not implement AbortMultipartUpload (405): the error keeps the real cause
    // first and says the abort failed, so that a person knows parts may remain.
    const err = await store.put("x/half.bin", bytes(40, 17).stream).catch((e: unknown) => e);
    expect(String(err)).toMatch(
      /^Error: source failed \(and aborting the multipart upload failed: /,
    );
    expect(sent).toContain("UploadPartCommand");
    expect(sent).toContain("AbortMultipartUploadCommand");
    expect(await store.head("x/half.bin")).toBeNull();
  });
});

import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { type PutBody, writeJsonlPart } from "../src/core/archive/write-part.js";
import { zlibCodec } from "../src/node/codec.js";

/** A put that keeps what the store would have been given. */
function keeping(): { put: PutBody; bytes: () => Buffer; failure: () => unknown } {
  const chunks: Uint8Array[] = [];
  let failed: unknown;
  const put: PutBody = async (body) => {
    try {
      for await (const c of body) chunks.push(c);
    } catch (err) {
      failed = err;
      throw err;
    }
  };
  return { put, bytes: () => Buffer.concat(chunks), failure: () => failed };
}

async function* pagesOf(...pages: string[][]) {
  for (const lines of pages) yield { lines };
}

describe("writeJsonlPart", () => {
  it("writes every line whole, with its newline, whatever its size in the page buffer", async () => {
    // The page buffer starts at 2 MiB: a line of 3-byte characters that fills it to the last
    // byte before its newline, then a line more than twice its size.
    const cjk = "中".repeat((2 ** 21 - 2) / 3);
    const long = "x".repeat(5 << 20);
    const pages = [["a", cjk], [long, "b"], ["c"]];
    const kept = keeping();
    const raw = await writeJsonlPart(zlibCodec, pagesOf(...pages), kept.put);
    const text = gunzipSync(kept.bytes()).toString("utf8");
    expect(text === `${pages.flat().join("\n")}\n`).toBe(true);
    expect(raw).toBe(Buffer.byteLength(text));
  });

  it("a source that fails mid-part fails the write, and the store's body fails with it", async () => {
    async function* failing() {
      yield { lines: ["one", "two"] };
      throw new Error("connection lost");
    }
    const kept = keeping();
    await expect(writeJsonlPart(zlibCodec, failing(), kept.put)).rejects.toThrow("connection lost");
    // The store saw a broken body, never an end: no object is completed from part of a page.
    expect(kept.failure()).toBeDefined();
  });
});

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { zlibCodec } from "../src/node/codec.js";

const ROOT = join(import.meta.dirname, "..");
const CLI = join(ROOT, "dist", "cli", "main.js");
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("memory stays flat", () => {
  it("gunzip holds about one chunk when its reader is slow (no read-ahead of the object)", async () => {
    // ~40 MB of JSONL, compressed: Duplex.toWeb buffered all of it after one read.
    const line = `${JSON.stringify({ id: 1, path: "/docs/x".repeat(20), n: Math.random() })}\n`;
    const gz = gzipSync(Buffer.from(line.repeat(200_000)));
    const source = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < gz.length; i += 65536) c.enqueue(gz.subarray(i, i + 65536));
        c.close();
      },
    });
    const before = process.memoryUsage().arrayBuffers;
    const reader = source.pipeThrough(zlibCodec.gunzip()).getReader();
    await reader.read();
    await new Promise((r) => setTimeout(r, 500));
    const held = process.memoryUsage().arrayBuffers - before;
    expect(held).toBeLessThan(8 * 1024 * 1024);
    await reader.cancel();
  });

  it("archiving 5x the rows peaks within a few MB of the RSS of archiving 1x", () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build'`);
    const peak = (rows: number): number => {
      const dir = mkdtempSync(join(tmpdir(), "sluice-mem-"));
      dirs.push(dir);
      const env = {
        ...process.env,
        SLUICE_DB: `sqlite:${join(dir, "hot.db")}`,
        SLUICE_STORE: `file:${join(dir, "a")}`,
      };
      const prep = spawnSync(
        process.execPath,
        [CLI, "prepare-data", `--count=${rows}`, "--date=2025-10-13"],
        { env, encoding: "utf8" },
      );
      expect(prep.status, prep.stderr).toBe(0);
      const run = spawnSync(
        process.execPath,
        [
          "--import",
          join(ROOT, "test", "fixtures", "report-rss.mjs"),
          CLI,
          "archive",
          "--date=2025-10-13",
        ],
        { env, encoding: "utf8" },
      );
      expect(run.status, run.stderr).toBe(0);
      const kib = Number(/sluice-test-maxrss-kib=(\d+)/.exec(run.stderr)?.[1]);
      expect(kib).toBeGreaterThan(0);
      return kib / 1024;
    };
    const small = peak(100_000);
    const large = peak(500_000);
    console.log(
      `archive peak RSS: 100K rows ${small.toFixed(1)} MB, 500K rows ${large.toFixed(1)} MB`,
    );
    expect(large - small).toBeLessThan(Math.max(12, small * 0.1));
  });
});

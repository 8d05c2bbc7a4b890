import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import Database from "better-sqlite3";
import { afterAll, expect, it } from "vitest";
import { archiveDate, cleanupDate } from "../src/core/archive/jobs.js";
import { CleanupIncompleteError, RowsChangedError, VerificationError } from "../src/core/errors.js";
import { putBytes } from "../src/core/store.js";
import { loadConfig } from "../src/node/config.js";
import { type NodeContext, openContext } from "../src/node/context.js";
import { openSource } from "../src/node/open.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";

/**
 * Cleanup with interactive transactions (SQLite here): where it resumes after rows it could
 * not delete, and a part recorded before chunk digests were kept.
 */
const DAY = "2025-10-13";
const dir = mkdtempSync(join(tmpdir(), "sluice-cleanup-resume-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

async function archived(rows: number): Promise<{ c: NodeContext; db: Database.Database }> {
  const file = join(dir, `hot-${++n}.db`);
  const source = await openSource(`sqlite:${file}`, { create: true });
  await prepareTrafficData(source, { date: DAY, count: rows });
  await source.close();
  const c = await openContext(
    loadConfig({ SLUICE_DB: `sqlite:${file}`, SLUICE_STORE: `file:${join(dir, `archive-${n}`)}` }),
  );
  await archiveDate(c.ctx, c.owner, DAY);
  return { c, db: new Database(file) };
}

const hot = (db: Database.Database) =>
  (db.prepare("SELECT COUNT(*) AS n FROM traffic_events").get() as { n: number }).n;

it("rows the database kept are tried again by the next run: the cursor stops before the first of them", async () => {
  const { c, db } = await archived(300);
  try {
    db.exec(
      "CREATE TRIGGER keep BEFORE DELETE ON traffic_events WHEN old.id IN (7, 250) BEGIN SELECT RAISE(IGNORE); END",
    );
    // Stopped by its batch limit after the batch that kept row 7: the saved cursor is before it.
    const stopped = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 40, maxBatches: 2 });
    expect(stopped).toMatchObject({ complete: false, deleted: 79, remaining: 221 });
    const [mid] = await c.ctx.ledger.parts("traffic_events", DAY);
    expect(mid?.cleanupCursor ?? 0).toBeLessThan(7);
    const err = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 40 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CleanupIncompleteError);
    expect(err).toMatchObject({ deleted: 298, remaining: 2 });
    const [part] = await c.ctx.ledger.parts("traffic_events", DAY);
    // Not past the batch that kept row 7: the next run compares it again.
    expect(part?.cleanupCursor ?? 0).toBeLessThan(7);
    db.exec("DROP TRIGGER keep");
    expect(await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 40 })).toMatchObject({
      complete: true,
      deleted: 2,
      deletedTotal: 300,
    });
    expect(hot(db)).toBe(0);
  } finally {
    db.close();
    await c.close();
  }
});

it("a part recorded without chunk digests: cleanup reads it whole first, records them, then deletes", async () => {
  const { c, db } = await archived(500);
  try {
    const [before] = await c.ctx.ledger.parts("traffic_events", DAY);
    db.exec("UPDATE archive_parts SET chunk_sha256 = NULL, chunk_bytes = NULL");
    expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({ complete: true, deleted: 500 });
    const [after] = await c.ctx.ledger.parts("traffic_events", DAY);
    expect(after).toMatchObject({
      chunkSha256: before?.chunkSha256,
      chunkBytes: before?.chunkBytes,
    });
  } finally {
    db.close();
    await c.close();
  }
});

it("a part without chunk digests whose object changed since it was verified: no row goes", async () => {
  const { c, db } = await archived(500);
  try {
    const [part] = await c.ctx.ledger.parts("traffic_events", DAY);
    const key = part?.objectKey as string;
    const body = await c.ctx.store.get(key);
    const text = gunzipSync(new Uint8Array(await new Response(body).arrayBuffer())).toString();
    // The same lines, compressed again: a valid archive whose bytes are not the verified ones.
    await putBytes(c.ctx.store, key, new Uint8Array(gzipSync(text, { level: 1 })));
    db.exec("UPDATE archive_parts SET chunk_sha256 = NULL, chunk_bytes = NULL");
    const err = await cleanupDate(c.ctx, c.owner, DAY).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VerificationError);
    expect(String(err)).toMatch(
      /changed since it was verified \(sha256 [0-9a-f]{64}, \d+ bytes; verified [0-9a-f]{64}, \d+ bytes\)/,
    );
    expect(hot(db)).toBe(500);
    expect((await c.ctx.ledger.parts("traffic_events", DAY))[0]?.chunkSha256).toBeNull();
  } finally {
    db.close();
    await c.close();
  }
});

it("rows changed since the archive, over two runs: every one counted and left, the first 20 keys named", async () => {
  const { c, db } = await archived(300);
  try {
    // 25 rows changed: 20 in the first batch, 5 in the last.
    db.exec(
      "UPDATE traffic_events SET path = path || '?changed' WHERE id BETWEEN 11 AND 30 OR id BETWEEN 281 AND 285",
    );
    const stopped = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 40, maxBatches: 1 });
    expect(stopped).toMatchObject({ complete: false, deleted: 20 });
    const err = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 40 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RowsChangedError);
    const keys = Array.from({ length: 20 }, (_, i) => String(11 + i));
    expect(err).toMatchObject({ changed: 25, keys, deleted: 275 });
    expect(String(err)).toContain(`(keys ${keys.join(", ")}, ...)`);
    const [part] = await c.ctx.ledger.parts("traffic_events", DAY);
    expect(part).toMatchObject({ changedCount: 25, changedKeys: keys.join(",") });
    expect(hot(db)).toBe(25);
    expect(await c.ctx.ledger.get("traffic_events", DAY)).toMatchObject({ state: "failed" });
  } finally {
    db.close();
    await c.close();
  }
});

it("rows changed in two parts of a day: all counted, 20 keys named in all", async () => {
  const { c, db } = await archived(100);
  try {
    // A late part: rows copied from the first ones under new keys, archived as part 1.
    db.exec(
      "INSERT INTO traffic_events SELECT id + 1000, event_date, ts, path, referrer, country, user_agent, status, duration_ms FROM traffic_events",
    );
    await archiveDate(c.ctx, c.owner, DAY);
    expect(await c.ctx.ledger.parts("traffic_events", DAY)).toHaveLength(2);
    db.exec(
      "UPDATE traffic_events SET path = path || '?changed' WHERE id BETWEEN 1 AND 15 OR id BETWEEN 1001 AND 1015",
    );
    const err = await cleanupDate(c.ctx, c.owner, DAY).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RowsChangedError);
    expect(err).toMatchObject({ changed: 30, deleted: 170 });
    expect((err as RowsChangedError).keys).toHaveLength(20);
    expect(hot(db)).toBe(30);
  } finally {
    db.close();
    await c.close();
  }
});

it("a late part is cleaned on its own: the day's cleaned part is not read again (its object may be gone)", async () => {
  const { c, db } = await archived(100);
  try {
    expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({ complete: true, deleted: 100 });
    const [first] = await c.ctx.ledger.parts("traffic_events", DAY);
    await c.ctx.store.delete(first?.objectKey as string);
    await prepareTrafficData(c.ctx.source, { date: DAY, count: 50 });
    await archiveDate(c.ctx, c.owner, DAY);
    expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({
      complete: true,
      deleted: 50,
      deletedTotal: 150,
    });
    expect(hot(db)).toBe(0);
  } finally {
    db.close();
    await c.close();
  }
});

it("the saved cursor is the end of the last batch every row of which went, and never past a kept row", async () => {
  // Row 50 kept, in the second batch: the cursor stays at the end of the first.
  const one = await archived(300);
  try {
    one.db.exec(
      "CREATE TRIGGER keep BEFORE DELETE ON traffic_events WHEN old.id = 50 BEGIN SELECT RAISE(IGNORE); END",
    );
    await cleanupDate(one.c.ctx, one.c.owner, DAY, { batchSize: 40, maxBatches: 2 });
    const [part] = await one.c.ctx.ledger.parts("traffic_events", DAY);
    expect(part?.cleanupCursor).toBe(40);
  } finally {
    one.db.close();
    await one.c.close();
  }
  // Row 7 kept, in the first batch: no batch after it moves the cursor past it.
  for (const maxBatches of [1, 3]) {
    const two = await archived(300);
    try {
      two.db.exec(
        "CREATE TRIGGER keep BEFORE DELETE ON traffic_events WHEN old.id = 7 BEGIN SELECT RAISE(IGNORE); END",
      );
      const out = await cleanupDate(two.c.ctx, two.c.owner, DAY, { batchSize: 40, maxBatches });
      expect(out).toMatchObject({ complete: false, deleted: 40 * maxBatches - 1 });
      const [part] = await two.c.ctx.ledger.parts("traffic_events", DAY);
      expect(part?.cleanupCursor ?? null, `after ${maxBatches} batches`).toBeNull();
    } finally {
      two.db.close();
      await two.c.close();
    }
  }
});

it("a time budget not yet spent lets every batch run; the progress counts to the day's archived rows", async () => {
  const { c, db } = await archived(300);
  try {
    const seen: { done: number; total: number }[] = [];
    c.ctx.onProgress = (p) => {
      if (p.phase === "cleanup") seen.push({ done: p.done, total: p.total ?? -1 });
    };
    const out = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 40, budgetMs: 600_000 });
    expect(out).toMatchObject({ complete: true, deleted: 300, deletedTotal: 300 });
    expect(seen.at(-1)).toEqual({ done: 300, total: 300 });
    expect(seen.length).toBe(8);
    expect(hot(db)).toBe(0);
    // A day never archived: said so, in words a person can act on.
    const none = await cleanupDate(c.ctx, c.owner, "2025-10-12").catch((e: unknown) => e);
    expect(String(none)).toContain(
      "no archive of traffic_events for 2025-10-12: run archive first",
    );
  } finally {
    db.close();
    await c.close();
  }
});

it("stopped in a late part: the rows left are that part's, not an earlier part's changed row", async () => {
  const { c, db } = await archived(300);
  try {
    await prepareTrafficData(c.ctx.source, { date: DAY, count: 100 });
    await archiveDate(c.ctx, c.owner, DAY);
    const parts = await c.ctx.ledger.parts("traffic_events", DAY);
    expect(parts.map((p) => p.eventCount)).toEqual([300, 100]);
    db.exec("UPDATE traffic_events SET path = '/changed' WHERE id = 5");
    // Part 0 takes 8 batches of 40 (299 deleted, 1 changed); the 9th is part 1's first.
    const out = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 40, maxBatches: 9 });
    expect(out).toMatchObject({ complete: false, deleted: 339, remaining: 60 });
  } finally {
    db.close();
    await c.close();
  }
});

it("a part without chunk digests whose object differs only in its gzip header's time: no row goes", async () => {
  const { c, db } = await archived(200);
  try {
    const [part] = await c.ctx.ledger.parts("traffic_events", DAY);
    const key = part?.objectKey as string;
    const bytes = new Uint8Array(await new Response(await c.ctx.store.get(key)).arrayBuffer());
    // MTIME (bytes 4-7): the same size and the same lines, but not the bytes verified.
    bytes[4] = (bytes[4] ?? 0) ^ 0xff;
    expect(gunzipSync(bytes).length).toBe(part?.rawSize);
    await putBytes(c.ctx.store, key, bytes);
    db.exec("UPDATE archive_parts SET chunk_sha256 = NULL, chunk_bytes = NULL");
    const err = await cleanupDate(c.ctx, c.owner, DAY).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VerificationError);
    expect(String(err)).toContain(`bytes; verified ${part?.sha256}, ${part?.fileSize} bytes)`);
    expect(hot(db)).toBe(200);
  } finally {
    db.close();
    await c.close();
  }
});

it("a day cleaned before rollups were kept: the late part's verification counts the old part from its archive, then cleanup goes on", async () => {
  const { c, db } = await archived(100);
  try {
    await cleanupDate(c.ctx, c.owner, DAY);
    db.exec("UPDATE archive_parts SET rollup_rows = NULL; DELETE FROM archive_rollups");
    await prepareTrafficData(c.ctx.source, { date: DAY, count: 30 });
    await archiveDate(c.ctx, c.owner, DAY);
    const parts = await c.ctx.ledger.parts("traffic_events", DAY);
    expect(parts.map((p) => p.rollupRows)).toEqual([100, 30]);
    expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({ complete: true, deleted: 30 });
    expect(hot(db)).toBe(0);
  } finally {
    db.close();
    await c.close();
  }
});

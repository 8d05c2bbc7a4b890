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
  const source = openSource(`sqlite:${file}`, { create: true });
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

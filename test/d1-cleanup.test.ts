import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { D1Source } from "../src/adapters/d1/source.js";
import { FsStore } from "../src/adapters/fs/store.js";
import type { JobContext } from "../src/core/archive/context.js";
import { archiveDate, cleanupDate, restoreDate } from "../src/core/archive/jobs.js";
import { Ledger } from "../src/core/archive/ledger/ledger.js";
import { partitionStatus } from "../src/core/archive/partition-status.js";
import { CleanupIncompleteError, RowsChangedError } from "../src/core/errors.js";
import { zlibCodec } from "../src/node/codec.js";
import { nodeSha256 } from "../src/node/owner.js";
import { d1Shim } from "./d1-shim.js";

/**
 * Cleanup as it runs on D1, where no transaction stays open while the Worker compares: one
 * DELETE per batch that removes only rows SQLite renders exactly as an archived line, in one
 * atomic batch with its ledger record. Here through the real D1Source over a SQLite file
 * (worker.test.ts runs the same in workerd).
 */
const DAY = "2025-10-13";
const dir = mkdtempSync(join(tmpdir(), "sluice-d1-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

async function d1(
  rows: number,
  rollups = true,
): Promise<{ ctx: JobContext; db: Database.Database }> {
  const name = `d1-${++n}`;
  const { binding, db } = d1Shim(join(dir, `${name}.db`));
  db.exec(
    "CREATE TABLE ev (id INTEGER PRIMARY KEY, event_date TEXT NOT NULL, path TEXT NOT NULL, n REAL)",
  );
  const insert = db.prepare("INSERT INTO ev VALUES (?, ?, ?, ?)");
  db.transaction(() => {
    for (let id = 1; id <= rows; id++) insert.run(id, DAY, `/p${id}`, id / 3);
    insert.run(rows + 1, "2025-10-14", "/other", 0);
  })();
  const source = new D1Source(binding);
  const ledger = new Ledger(source);
  await ledger.migrate();
  const ctx: JobContext = {
    source,
    store: new FsStore(join(dir, name)),
    ledger,
    spec: {
      table: "ev",
      partitionColumn: "event_date",
      keyColumn: "id",
      ...(rollups ? { rollupColumn: "path" } : {}),
    },
    sha256: nodeSha256,
    codec: zlibCodec,
  };
  return { ctx, db };
}

/** The deleted rows' counts the stats read (each row here has a path of its own). */
const deletedPaths = (db: Database.Database) =>
  (
    db.prepare("SELECT path, views FROM archive_deleted_rollups ORDER BY path").all() as {
      path: string;
      views: number;
    }[]
  ).map((r) => `${r.path} ${r.views}`);

const paths = (ids: number[], except: number[] = []) =>
  ids
    .filter((id) => !except.includes(id))
    .map((id) => `/p${id} 1`)
    .sort();

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

const count = (db: Database.Database, date = DAY) =>
  (db.prepare("SELECT COUNT(*) AS c FROM ev WHERE event_date = ?").get(date) as { c: number }).c;

describe("cleanup on D1 (one comparing DELETE per batch)", () => {
  it("refuses to clean a table too wide for SQLite's json_object, deleting nothing", async () => {
    const { ctx, db } = await d1(10);
    // 64 columns: json_object would need 128 arguments, one more than SQLite allows.
    for (let i = 0; i < 60; i++) db.exec(`ALTER TABLE ev ADD COLUMN c${i} INTEGER DEFAULT ${i}`);
    await archiveDate(ctx, "w:1:a", DAY);
    const err = await cleanupDate(ctx, "w:1:b", DAY).catch((e: unknown) => e);
    expect(String(err)).toMatch(/ev has too many columns for a content-checked delete on /);
    expect(count(db)).toBe(10);
    expect(await ctx.ledger.get("ev", DAY)).toMatchObject({ cleaned: false, cleanedCount: 0 });
  });

  it("a batch carries at most about 1 MiB of archived lines, whatever its row count (D1's 2 MB per value)", async () => {
    const { ctx, db } = await d1(10);
    db.prepare("UPDATE ev SET path = ? || path").run("x".repeat(300_000));
    await archiveDate(ctx, "w:1:a", DAY);
    // Four lines of 300 KB pass 1 MiB: the first batch stops there, not at 1000 rows.
    const first = await cleanupDate(ctx, "w:1:b", DAY, { maxBatches: 1 });
    expect(first).toMatchObject({ complete: false, deleted: 4, remaining: 6 });
    expect(await cleanupDate(ctx, "w:1:b", DAY)).toMatchObject({
      complete: true,
      deleted: 6,
      deletedTotal: 10,
    });
    expect(count(db)).toBe(0);
  });

  it("deletes every archived row in batches, counts them exactly, and leaves the other date", async () => {
    const { ctx, db } = await d1(1000);
    await archiveDate(ctx, "w:1:a", DAY);
    const out = await cleanupDate(ctx, "w:1:b", DAY, { batchSize: 64 });
    expect(out).toMatchObject({ complete: true, deleted: 1000, deletedTotal: 1000 });
    expect(count(db)).toBe(0);
    expect(count(db, "2025-10-14")).toBe(1);
    expect(await ctx.ledger.get("ev", DAY)).toMatchObject({
      state: "cleaned",
      cleaned: true,
      cleanedCount: 1000,
    });
    // Every line a row cleanup deleted: each stands for its row in a query over both tiers.
    expect((await ctx.ledger.parts("ev", DAY))[0]).toMatchObject({
      passedKey: 1000,
      skipsKnown: true,
    });
  });

  it("with rollups off, deletes the same and counts nothing", async () => {
    const { ctx, db } = await d1(300, false);
    await archiveDate(ctx, "w:1:a", DAY);
    const out = await cleanupDate(ctx, "w:1:b", DAY, { batchSize: 64 });
    expect(out).toMatchObject({ complete: true, deleted: 300 });
    expect(count(db)).toBe(0);
    expect(deletedPaths(db)).toEqual([]);
    expect((await ctx.ledger.parts("ev", DAY))[0]).toMatchObject({
      cleanedCount: 300,
      deletedRollupRows: 0,
    });
  });

  it("leaves a row written into a key gap and an updated row, names the changed key, archives both next", async () => {
    const { ctx, db } = await d1(200);
    db.prepare("DELETE FROM ev WHERE id = 50").run();
    await archiveDate(ctx, "w:1:a", DAY);
    db.prepare("INSERT INTO ev VALUES (50, ?, '/late', 0)").run(DAY);
    db.prepare("UPDATE ev SET path = '/changed' WHERE id = 120").run();
    const err = await cleanupDate(ctx, "w:1:b", DAY, { batchSize: 30 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RowsChangedError);
    expect(err).toMatchObject({ changed: 1, keys: ["120"], deleted: 198 });
    // Counted as deleted: exactly the rows the DELETE removed (not the late 50, not 120).
    expect(deletedPaths(db)).toEqual(paths(range(200), [50, 120]));
    expect(db.prepare("SELECT id, path FROM ev WHERE event_date = ? ORDER BY id").all(DAY)).toEqual(
      [
        { id: 50, path: "/late" },
        { id: 120, path: "/changed" },
      ],
    );
    expect((await partitionStatus(ctx, DAY)).lateRows).toBe(2);
    // Which lines D1's batches left (50 gone before, 120 changed), nothing recorded: said so.
    expect((await ctx.ledger.parts("ev", DAY))[0]).toMatchObject({
      passedKey: 200,
      skipsKnown: false,
    });
    await archiveDate(ctx, "w:1:c", DAY);
    expect(await cleanupDate(ctx, "w:1:d", DAY)).toMatchObject({ complete: true, deleted: 2 });
    expect(count(db)).toBe(0);
    // The updated row counts once, as it was when deleted.
    expect(deletedPaths(db)).toEqual(
      [...paths(range(200), [50, 120]), "/changed 1", "/late 1"].sort(),
    );
  });

  it("a row SQLite keeps (a trigger) fails the cleanup with it counted; a rerun finishes", async () => {
    const { ctx, db } = await d1(300);
    await archiveDate(ctx, "w:1:a", DAY);
    db.exec(
      "CREATE TRIGGER keep BEFORE DELETE ON ev WHEN old.id IN (7, 250) BEGIN SELECT RAISE(IGNORE); END",
    );
    const err = await cleanupDate(ctx, "w:1:b", DAY, { batchSize: 40 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CleanupIncompleteError);
    expect(err).toMatchObject({ deleted: 298, remaining: 2 });
    expect((await ctx.ledger.parts("ev", DAY))[0]).toMatchObject({
      cleanedCount: 298,
      cleanupCursor: null,
      cleanedAt: null,
      deletedRollupRows: 298,
    });
    // The rows the trigger kept were matched by the DELETE but are not counted as deleted.
    expect(deletedPaths(db)).toEqual(paths(range(300), [7, 250]));
    db.exec("DROP TRIGGER keep");
    expect(await cleanupDate(ctx, "w:1:c", DAY, { batchSize: 40 })).toMatchObject({
      complete: true,
      deleted: 2,
      deletedTotal: 300,
    });
    expect(deletedPaths(db)).toEqual(paths(range(300)));
  });

  it("stops at its batch limit with progress saved, and resumes where it stopped", async () => {
    const { ctx, db } = await d1(500);
    await archiveDate(ctx, "w:1:a", DAY);
    const first = await cleanupDate(ctx, "w:1:b", DAY, { batchSize: 100, maxBatches: 2 });
    expect(first).toMatchObject({ complete: false, deleted: 200, remaining: 300 });
    expect((await ctx.ledger.parts("ev", DAY))[0]).toMatchObject({ cleanupCursor: 200 });
    expect(count(db)).toBe(300);
    const second = await cleanupDate(ctx, "w:1:c", DAY, { batchSize: 100 });
    expect(second).toMatchObject({ complete: true, deleted: 300, deletedTotal: 500 });
  });
  it("deletes rows holding BLOBs only where the bytes are the archived ones, leaving a changed blob", async () => {
    const { ctx, db } = await d1(0);
    db.exec("ALTER TABLE ev ADD COLUMN bytes BLOB");
    const insert = db.prepare(
      "INSERT INTO ev (id, event_date, path, n, bytes) VALUES (?, ?, ?, 0, ?)",
    );
    for (let id = 2; id <= 41; id++) {
      insert.run(id, DAY, `/b${id}`, id % 5 ? Buffer.from([id, 0, 255]) : `\\x${id}`);
    }
    await archiveDate(ctx, "w:1:a", DAY);
    db.prepare("UPDATE ev SET bytes = ? WHERE id = 12").run(Buffer.from([12, 0, 254]));
    // The same digits as an archived text, but a blob now: not the archived value.
    db.prepare("UPDATE ev SET bytes = ? WHERE id = 15").run(Buffer.from("\\x15"));
    const err = await cleanupDate(ctx, "w:1:b", DAY, { batchSize: 16 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RowsChangedError);
    expect(err).toMatchObject({ changed: 2, keys: ["12", "15"], deleted: 38 });
    expect(db.prepare("SELECT id FROM ev WHERE event_date = ? ORDER BY id").all(DAY)).toEqual([
      { id: 12 },
      { id: 15 },
    ]);
  });

  it("a rollup of more than D1's 2 MB a value goes in several statements, every path counted once", async () => {
    const { ctx, db } = await d1(8_000);
    // 8,000 paths of ~310 characters: ~2.5 MB of counts as one JSON text.
    db.exec(`UPDATE ev SET path = '/p' || id || '${"x".repeat(300)}' WHERE event_date = '${DAY}'`);
    await archiveDate(ctx, "w:1:a", DAY);
    const rollup = db
      .prepare("SELECT COUNT(*) AS paths, SUM(views) AS views FROM archive_rollups")
      .get() as { paths: number; views: number };
    expect(rollup).toEqual({ paths: 8_000, views: 8_000 });
    expect((await cleanupDate(ctx, "w:1:b", DAY)).complete).toBe(true);
    const deleted = db
      .prepare("SELECT COUNT(*) AS paths, SUM(views) AS views FROM archive_deleted_rollups")
      .get() as { paths: number; views: number };
    expect(deleted).toEqual({ paths: 8_000, views: 8_000 });
  });

  it("restore into the archived table is refused on D1 (its counts would commit apart from its rows); --into a staging table works", async () => {
    const { ctx, db } = await d1(10);
    await archiveDate(ctx, "w:1:a", DAY);
    expect((await cleanupDate(ctx, "w:1:b", DAY)).complete).toBe(true);
    const counts = deletedPaths(db);
    await expect(restoreDate(ctx, "w:1:c", DAY)).rejects.toThrow(
      /separate commits \(no interactive transaction\): restore --into a staging table/,
    );
    expect(count(db)).toBe(0);
    expect(deletedPaths(db)).toEqual(counts);
    db.exec("CREATE TABLE ev_stage AS SELECT * FROM ev WHERE 0");
    expect(await restoreDate(ctx, "w:1:d", DAY, { into: "ev_stage" })).toMatchObject({
      inserted: 10,
    });
    expect(deletedPaths(db)).toEqual(counts);
  });

  it("records each migration's version in the same batch as its data; a second start changes nothing", async () => {
    const { ctx, db } = await d1(1);
    const versions = () =>
      (
        db.prepare("SELECT version FROM sluice_migrations ORDER BY version").all() as {
          version: number;
        }[]
      ).map((r) => r.version);
    const first = versions();
    expect(first.at(-1)).toBeGreaterThanOrEqual(6);
    expect(first).toEqual(Array.from({ length: first.length }, (_, i) => i + 1));
    await ctx.ledger.migrate();
    expect(versions()).toEqual(first);
  });
});

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { archiveDate, cleanupDate, restoreDate } from "../src/core/archive/jobs.js";
import { loadConfig } from "../src/node/config.js";
import { type NodeContext, openContext } from "../src/node/context.js";
import { openSource } from "../src/node/open.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";
import { pathStats } from "./helpers.js";
import { type TestDb, mariaDb, postgresDb, sqliteDb } from "./servers.js";

/**
 * `restore` puts a date's verified archive back, every row as it was archived, compared by the
 * database itself (EXCEPT both ways against a copy taken before the archive). A second run adds
 * nothing; restored rows are ordinary rows that the next archive takes as late ones.
 */
const DAY = "2025-10-13";
const dir = mkdtempSync(join(tmpdir(), "sluice-restore-"));
const dbs = [sqliteDb(dir), await postgresDb(), await mariaDb()];
afterAll(async () => {
  for (const db of dbs) await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(db: TestDb, table: string): Promise<NodeContext> {
  return openContext(
    loadConfig({
      SLUICE_DB: db.url,
      SLUICE_STORE: `file:${join(dir, db.name, table)}`,
      SLUICE_TABLE: table,
    }),
  );
}

/** Rows of `a` not in `b` plus rows of `b` not in `a`, as the database counts them. */
async function differ(db: TestDb, a: string, b: string): Promise<number> {
  const [row] = await db.query(
    `SELECT (SELECT COUNT(*) FROM (SELECT * FROM ${a} EXCEPT SELECT * FROM ${b}) x)
          + (SELECT COUNT(*) FROM (SELECT * FROM ${b} EXCEPT SELECT * FROM ${a}) y) AS n`,
  );
  return Number(row?.n);
}

/** `CREATE TABLE copy` with `table`'s columns, empty (or with its rows). */
async function copyOf(db: TestDb, table: string, copy: string, rows: boolean) {
  if (db.name === "SQLite") {
    await db.run(`CREATE TABLE ${copy} AS SELECT * FROM ${table}${rows ? "" : " WHERE 0"}`);
  } else if (db.name === "PostgreSQL") {
    await db.run(`CREATE TABLE ${copy} (LIKE ${table})`);
    if (rows) await db.run(`INSERT INTO ${copy} SELECT * FROM ${table}`);
  } else {
    await db.run(`CREATE TABLE ${copy} LIKE ${table}`);
    if (rows) await db.run(`INSERT INTO ${copy} SELECT * FROM ${table}`);
  }
}

for (const maybe of dbs) {
  describe.runIf(maybe !== null)(`restore on ${maybe?.name ?? "a missing server"}`, () => {
    const db = maybe as TestDb;

    it("brings back every cleaned row exactly; a second run adds none; the next archive takes them as late rows", async () => {
      const source = await openSource(db.url, { create: true });
      await prepareTrafficData(source, { table: "rs", date: DAY, count: 5_000 });
      await prepareTrafficData(source, { table: "rs", date: "2025-10-14", count: 10 });
      await source.close();
      await copyOf(db, "rs", "rs_before", true);
      const c = await open(db, "rs");
      // The stats of the day: each row counted once, hot or deleted, restored or not.
      const stats = pathStats(c);
      const views = async () => (await stats.topPaths(DAY, DAY, 1)).paths[0]?.views;
      const total = async () =>
        (await stats.topPaths(DAY, DAY, 10_000)).paths.reduce((n, p) => n + p.views, 0);
      try {
        await archiveDate(c.ctx, c.owner, DAY);
        // One row deleted by hand between archive and cleanup: gone from the stats, as from
        // the table, until the restore brings it back with the others.
        const [low] = await db.query(`SELECT MIN(id) AS id FROM rs WHERE event_date = '${DAY}'`);
        await db.run(`DELETE FROM rs WHERE id = ${Number(low?.id)}`);
        expect((await cleanupDate(c.ctx, c.owner, DAY)).complete).toBe(true);
        expect(await db.count("rs", DAY)).toBe(0);
        expect(await total()).toBe(4_999);

        const seen: number[] = [];
        c.ctx.onProgress = (p) => {
          if (p.phase === "restore") seen.push(p.done);
        };
        const out = await restoreDate(c.ctx, c.owner, DAY, { batchBytes: 64 * 1024 });
        expect(out).toMatchObject({ into: "rs", read: 5_000, inserted: 5_000, skipped: 0 });
        expect(seen.length).toBeGreaterThan(1);
        expect(seen.at(-1)).toBe(5_000);
        expect(await differ(db, "rs", "rs_before")).toBe(0);
        expect(await c.ctx.ledger.get("rs", DAY)).toMatchObject({
          state: "cleaned",
          restoredRows: 5_000,
          restoredInto: "rs",
        });

        expect(await total(), "restored rows count once").toBe(5_000);
        const top = await views();
        expect((await c.ctx.ledger.parts("rs", DAY))[0]).toMatchObject({
          cleanedCount: 0,
          deletedRollupRows: 0,
        });

        const again = await restoreDate(c.ctx, c.owner, DAY);
        expect(again).toMatchObject({ read: 5_000, inserted: 0, skipped: 5_000 });
        expect(await differ(db, "rs", "rs_before")).toBe(0);
        expect(await total()).toBe(5_000);

        // Ordinary rows again: archived as a new part, then cleaned like any late rows.
        const next = await archiveDate(c.ctx, c.owner, DAY);
        expect(next.written).toMatchObject({ part: 1, eventCount: 5_000 });
        expect((await cleanupDate(c.ctx, c.owner, DAY)).complete).toBe(true);
        expect(await db.count("rs", DAY)).toBe(0);
        expect(await db.count("rs", "2025-10-14")).toBe(10);
        expect(await total(), "archived and cleaned again").toBe(5_000);
        expect(await views()).toBe(top);
      } finally {
        await c.close();
      }
    });

    it("restores into a staging table of the same columns, the newest version of a row archived twice", async () => {
      const source = await openSource(db.url, { create: true });
      await prepareTrafficData(source, { table: "rt", date: DAY, count: 100 });
      await source.close();
      const c = await open(db, "rt");
      try {
        await archiveDate(c.ctx, c.owner, DAY);
        const [first] = await db.rows("rt", DAY);
        const key = Number(first?.id);
        // Changed after its archive: cleanup leaves it; the next archive holds its new content.
        await db.run(`UPDATE rt SET path = '/changed' WHERE id = ${key}`);
        await cleanupDate(c.ctx, c.owner, DAY).catch(() => undefined);
        await archiveDate(c.ctx, c.owner, DAY);
        expect((await cleanupDate(c.ctx, c.owner, DAY)).complete).toBe(true);

        await copyOf(db, "rt", "rt_stage", false);
        const out = await restoreDate(c.ctx, c.owner, DAY, { into: "rt_stage" });
        expect(out).toMatchObject({ into: "rt_stage", parts: 2, read: 101, inserted: 100 });
        expect(out.skipped).toBe(1);
        expect(await db.count("rt", DAY)).toBe(0);
        expect(await db.count("rt_stage", DAY)).toBe(100);
        const [back] = await db.query(`SELECT path FROM rt_stage WHERE id = ${key}`);
        expect(back?.path).toBe("/changed");
      } finally {
        await c.close();
      }
    });

    it("refuses a missing target, an unverified part and a date mid-cleanup, restoring nothing", async () => {
      const source = await openSource(db.url, { create: true });
      await prepareTrafficData(source, { table: "ru", date: DAY, count: 50 });
      await source.close();
      const c = await open(db, "ru");
      try {
        await expect(restoreDate(c.ctx, c.owner, DAY)).rejects.toThrow(/no archive of ru/);
        await archiveDate(c.ctx, c.owner, DAY);
        await expect(restoreDate(c.ctx, c.owner, DAY, { into: "nope" })).rejects.toThrow(
          /no table 'nope': create it/,
        );
        await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 10, maxBatches: 1 });
        await expect(restoreDate(c.ctx, c.owner, DAY)).rejects.toThrow(/cleanup is in progress/);
        expect(await db.count("ru", DAY)).toBe(40);
        await db.run("UPDATE archive_parts SET verified_at = NULL WHERE source_table = 'ru'");
        await copyOf(db, "ru", "ru_stage", false);
        await expect(restoreDate(c.ctx, c.owner, DAY, { into: "ru_stage" })).rejects.toThrow(
          /part\(s\) 0 not verified/,
        );
        expect(await db.count("ru_stage", DAY)).toBe(0);
      } finally {
        await c.close();
      }
    });
  });
}

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { archiveDate, cleanupDate, restoreDate } from "../src/core/archive/jobs.js";
import { Ledger } from "../src/core/archive/ledger/ledger.js";
import type { SqlExecutor, SqlSource } from "../src/core/sql/source.js";
import { loadConfig } from "../src/node/config.js";
import { type NodeContext, openContext } from "../src/node/context.js";
import { openSource } from "../src/node/open.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";
import { trafficSchema } from "../src/workloads/traffic/schema.js";
import { pathStats, tableContext } from "./helpers.js";
import { type TestDb, mariaDb, postgresDb, sqliteDb } from "./servers.js";

/**
 * The deleted rows' counts (archive_deleted_rollups) written a few values per statement, as on
 * a database that takes few parameters, with null and long values; and migration 6, whose
 * data goes in with its version row or not at all.
 */
const DAY = "2025-10-13";
const dir = mkdtempSync(join(tmpdir(), "sluice-deleted-counts-"));
const dbs = [sqliteDb(dir), await postgresDb(), await mariaDb()];
afterAll(async () => {
  for (const db of dbs) await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

type Answer = Map<string, number>;

for (const maybe of dbs) {
  describe.runIf(maybe !== null)(
    `deleted rows' counts on ${maybe?.name ?? "a missing server"}`,
    () => {
      const db = maybe as TestDb;

      const open = (table: string) => tableContext(db.url, join(dir, db.name, table), table);

      /** The day's views per path as the stats answer them (null as "null"). */
      async function answer(c: NodeContext): Promise<Answer> {
        const top = await pathStats(c).topPaths(DAY, DAY, 10_000);
        return new Map(top.paths.map((p) => [String(p.path), p.views]));
      }

      /** The table's own GROUP BY of the day, by its client. */
      async function groupBy(table: string): Promise<Answer> {
        const rows = await db.query(
          `SELECT path, COUNT(*) AS n FROM ${table} WHERE event_date = '${DAY}' GROUP BY path`,
        );
        return new Map(rows.map((r) => [String(r.path), Number(r.n)]));
      }

      it("a database that takes 25 parameters a statement: counts added and taken off a few values at a time, null and long values among them", async () => {
        const table = "dc_chunks";
        await nullablePathsDay(db.url, table, 125);
        const [lo] = await db.query(`SELECT MIN(id) AS id FROM ${table}`);
        const low = Number(lo?.id);
        // 30 distinct values: 27 short, null, two past the 200 characters kept as a key.
        await db.run(`UPDATE ${table} SET path = NULL WHERE MOD(id - ${low}, 30) = 27`);
        for (const [i, p] of [`/${"x".repeat(300)}`, `/${"ü".repeat(300)}`].entries()) {
          await db.run(`UPDATE ${table} SET path = '${p}' WHERE MOD(id - ${low}, 30) = ${28 + i}`);
        }
        for (let i = 0; i < 27; i++) {
          await db.run(`UPDATE ${table} SET path = '/p${i}' WHERE MOD(id - ${low}, 30) = ${i}`);
        }
        const kept = await groupBy(table);
        expect(kept.size).toBe(30);

        const c = await open(table);
        const small = fewParams(c.ctx.source, 25);
        const ctx = { ...c.ctx, source: small, ledger: new Ledger(small) };
        try {
          await archiveDate(ctx, c.owner, DAY);
          // One row of each of two values deleted by hand: their counts are one short, and the
          // restore that brings them back must not take them below zero.
          await db.run(`DELETE FROM ${table} WHERE id IN (${low}, ${low + 27})`);
          expect(await cleanupDate(ctx, c.owner, DAY, { batchSize: 20 })).toMatchObject({
            complete: true,
          });
          const gone = new Map(kept);
          gone.set("/p0", (kept.get("/p0") as number) - 1);
          gone.set("null", (kept.get("null") as number) - 1);
          expect(await answer(c)).toEqual(gone);
          const rows = await db.query(
            `SELECT path, COUNT(*) AS n FROM archive_deleted_rollups WHERE source_table = '${table}' GROUP BY path`,
          );
          expect(rows.length, "one row per value, null too").toBe(30);
          expect(rows.every((r) => Number(r.n) === 1)).toBe(true);

          // A row of its own under an archived key: the restore skips that key, so the
          // archived row stays counted as deleted, and its value keeps one count.
          const id = db.name === "PostgreSQL" ? " OVERRIDING SYSTEM VALUE" : "";
          await db.run(
            `INSERT INTO ${table} (id, event_date, ts, path, status, duration_ms)${id} VALUES (${low + 1}, '${DAY}', 1, '/by-hand', 200, 1)`,
          );
          // 125 keys in one batch: five reads of 25 parameters each, and not a sixth of none.
          expect(await restoreDate(ctx, c.owner, DAY)).toMatchObject({
            read: 125,
            inserted: 124,
            skipped: 1,
          });
          expect(await answer(c), "every archived row once, and the new one").toEqual(
            new Map(kept).set("/by-hand", 1),
          );
          const left = await db.query(
            `SELECT path, views FROM archive_deleted_rollups WHERE source_table = '${table}'`,
          );
          expect(left.map((r) => [r.path, Number(r.views)])).toEqual([["/p1", 1]]);
          expect((await ctx.ledger.parts(table, DAY))[0]).toMatchObject({
            cleanedCount: 1,
            deletedRollupRows: 1,
          });
        } finally {
          await c.close();
        }
      });

      it("a day whose stats value is null in every row: counted, and taken off by a restore", async () => {
        const table = "dc_nulls";
        await nullablePathsDay(db.url, table, 12);
        await db.run(`UPDATE ${table} SET path = NULL`);
        const c = await open(table);
        try {
          await archiveDate(c.ctx, c.owner, DAY);
          expect((await cleanupDate(c.ctx, c.owner, DAY)).complete).toBe(true);
          expect(await answer(c)).toEqual(new Map([["null", 12]]));
          expect(await restoreDate(c.ctx, c.owner, DAY)).toMatchObject({ inserted: 12 });
          expect(await answer(c)).toEqual(new Map([["null", 12]]));
          const [left] = await db.query(
            `SELECT COUNT(*) AS n FROM archive_deleted_rollups WHERE source_table = '${table}'`,
          );
          expect(Number(left?.n)).toBe(0);
        } finally {
          await c.close();
        }
      });

      it("a migration whose data fails writes no version row, so the next start migrates again", async () => {
        const table = "dc_migrate";
        const source = await openSource(db.url, { create: true });
        await prepareTrafficData(source, { table, date: DAY, count: 200 });
        await source.close();
        const kept = await groupBy(table);
        const c = await open(table);
        try {
          await archiveDate(c.ctx, c.owner, DAY);
          await cleanupDate(c.ctx, c.owner, DAY);
          // The ledger as version 5 left it, and a row in the way of the data's INSERT.
          await db.run("DELETE FROM archive_deleted_rollups");
          await db.run("UPDATE archive_parts SET deleted_rollup_rows = 0");
          await db.run("DELETE FROM sluice_migrations WHERE version = 6");
          await db.run(
            `INSERT INTO archive_deleted_rollups (source_table, date, part, path, path_key, views) VALUES ('${table}', '${DAY}', 0, '/', 's:/', 7)`,
          );
          const migrate = async () => {
            const s = await openSource(db.url);
            try {
              await new Ledger(s).migrate();
            } finally {
              await s.close();
            }
          };
          await expect(migrate()).rejects.toThrow();
          expect(await db.query("SELECT 1 FROM sluice_migrations WHERE version = 6")).toEqual([]);
          expect((await c.ctx.ledger.parts(table, DAY))[0]?.deletedRollupRows).toBe(0);

          await db.run("DELETE FROM archive_deleted_rollups");
          await migrate();
          expect(
            await db.query("SELECT version FROM sluice_migrations WHERE version = 6"),
          ).toHaveLength(1);
          expect(await answer(c)).toEqual(kept);
        } finally {
          await c.close();
        }
      });
    },
  );
}

/** `source` as a database that takes at most `max` parameters in a statement, and refuses more. */
function fewParams(source: SqlSource, max: number): SqlSource {
  const dialect = { ...source.dialect, maxParams: max };
  const bounded = <T extends SqlExecutor>(db: T, extra: Record<string, unknown>): T =>
    new Proxy(db, {
      get(target, prop) {
        if (prop === "dialect") return dialect;
        if (prop in extra) return extra[prop as string];
        const value = Reflect.get(target, prop, target);
        if (prop === "query" || prop === "execute" || prop === "stream") {
          return (sql: string, params: readonly unknown[] = [], ...rest: unknown[]) => {
            if (params.length > max) throw new Error(`${params.length} parameters, over ${max}`);
            return (value as (...a: unknown[]) => unknown).call(target, sql, params, ...rest);
          };
        }
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  return bounded(source, {
    transaction: <T>(work: (tx: SqlExecutor) => Promise<T>) =>
      source.transaction((tx) => work(bounded(tx, {}))),
  });
}

/** The traffic table with a path that may be null, and `count` generated rows of DAY in it. */
async function nullablePathsDay(url: string, table: string, count: number): Promise<void> {
  const source = await openSource(url, { create: true });
  try {
    for (const sql of trafficSchema(source.dialect, table)) {
      await source.execute(sql.replace("path VARCHAR(512) NOT NULL", "path VARCHAR(512)"));
    }
    await prepareTrafficData(source, { table, date: DAY, count });
  } finally {
    await source.close();
  }
}

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { archiveDate, cleanupDate, restoreDate } from "../src/core/archive/jobs.js";
import { CleanupIncompleteError } from "../src/core/errors.js";
import { loadConfig } from "../src/node/config.js";
import { type NodeContext, openContext } from "../src/node/context.js";
import { openSource } from "../src/node/open.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";
import { preparedTable, queryRows, tableContext } from "./helpers.js";
import { type TestDb, mariaDb, postgresDb, sqliteDb } from "./servers.js";

/**
 * `sluice query --hot` counts each row of both tiers once, whatever cleanup, the database
 * and restore did to it: the archived lines it reads are exactly the rows cleanup deleted
 * (a part's lines at or under its passed key, less its skipped keys), beside every hot row.
 */
const DAY = "2025-10-13";
const dir = mkdtempSync(join(tmpdir(), "sluice-both-tiers-"));
const dbs = [sqliteDb(dir), await postgresDb(), await mariaDb()];
afterAll(async () => {
  for (const db of dbs) await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Totals {
  n: number;
  ids: number;
  ms: number;
}

/** The day's rows as the query answers them over `c`'s table. */
async function queried(c: NodeContext, hot: boolean, warnings: string[] = []): Promise<Totals> {
  const [row] = await queryRows(
    c,
    `SELECT COUNT(*)::BIGINT AS n, COALESCE(SUM(id), 0)::BIGINT AS ids, COALESCE(SUM(duration_ms), 0)::BIGINT AS ms FROM ${c.ctx.spec.table} WHERE date = '${DAY}'`,
    { hot, cacheDir: join(dir, "cache"), onWarning: (m) => warnings.push(m) },
  );
  return { n: Number(row?.n), ids: Number(row?.ids), ms: Number(row?.ms) };
}

for (const maybe of dbs) {
  describe.runIf(maybe !== null)(
    `each row once across tiers on ${maybe?.name ?? "a missing server"}`,
    () => {
      const db = maybe as TestDb;

      /** `count` generated rows of `table` on DAY, and a context on them. */
      const prepared = (table: string, count: number) =>
        preparedTable(db.url, join(dir, db.name, table), table, DAY, count);

      /** The day as the table holds it now. */
      async function table(name: string): Promise<Totals> {
        const rows = await db.rows(name, DAY);
        return {
          n: rows.length,
          ids: rows.reduce((s, r) => s + Number(r.id), 0),
          ms: rows.reduce((s, r) => s + Number(r.duration_ms), 0),
        };
      }

      it.runIf(db.name !== "MariaDB")(
        "a row the database kept, then a rerun once it lets go: the rows the first pass deleted still count",
        async () => {
          const c = await prepared("bt_kept", 300);
          try {
            const truth = await table("bt_kept");
            await archiveDate(c.ctx, c.owner, DAY);
            const [part] = await c.ctx.ledger.parts("bt_kept", DAY);
            const kept = (part?.minId as number) + 150;
            expect(await db.blockDelete("bt_kept", kept)).toBe("silent");
            await expect(cleanupDate(c.ctx, c.owner, DAY)).rejects.toBeInstanceOf(
              CleanupIncompleteError,
            );
            expect(await db.count("bt_kept", DAY)).toBe(1);
            expect(await queried(c, true)).toEqual(truth);
            await db.unblock("bt_kept");
            // The rerun reads every line again: 299 rows it deleted before, now gone.
            expect((await cleanupDate(c.ctx, c.owner, DAY)).complete).toBe(true);
            expect(await db.count("bt_kept", DAY)).toBe(0);
            expect(await queried(c, true)).toEqual(truth);
            expect(await queried(c, false)).toEqual(truth);
          } finally {
            await c.close();
          }
        },
      );

      it.runIf(db.name === "PostgreSQL")(
        "a day partition dropped whole after rows were deleted by hand: those rows count nowhere",
        async () => {
          const c = await partitioned("bt_drop", 3000);
          try {
            await archiveDate(c.ctx, c.owner, DAY);
            // More than one write of skipped keys (1,000 a write), in the drop's transaction.
            await db.run("DELETE FROM bt_drop WHERE id % 2 = 0");
            const truth = await table("bt_drop");
            expect(truth.n).toBe(1500);
            expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({
              method: "drop-partition",
              deleted: 1500,
            });
            expect(await queried(c, true)).toEqual(truth);
            expect(await queried(c, false)).toEqual(truth);
          } finally {
            await c.close();
          }
        },
      );

      /** A day partition of `name` (traffic columns) on PostgreSQL, with `count` rows. */
      async function partitioned(name: string, count: number): Promise<NodeContext> {
        await db.run(`CREATE TABLE ${name} (
        id BIGINT GENERATED ALWAYS AS IDENTITY, event_date VARCHAR(10) NOT NULL,
        ts BIGINT NOT NULL, path VARCHAR(512) NOT NULL, referrer VARCHAR(512),
        country VARCHAR(2), user_agent VARCHAR(512), status INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL, PRIMARY KEY (event_date, id)) PARTITION BY LIST (event_date)`);
        await db.run(`CREATE TABLE ${name}_a PARTITION OF ${name} FOR VALUES IN ('${DAY}')`);
        return prepared(name, count);
      }

      it.runIf(db.name === "PostgreSQL")(
        "a partition whose first rows an earlier pass deleted is dropped: those rows count, one deleted by hand since does not",
        async () => {
          const c = await partitioned("bt_drop_later", 500);
          try {
            const truth = await table("bt_drop_later");
            await archiveDate(c.ctx, c.owner, DAY);
            const first = await cleanupDate(c.ctx, c.owner, DAY, {
              dropPartitions: false,
              batchSize: 100,
              maxBatches: 1,
            });
            expect(first).toMatchObject({ deleted: 100, complete: false });
            // Above the keys the pass went past, deleted by hand: its line is no deleted row.
            const [part] = await c.ctx.ledger.parts("bt_drop_later", DAY);
            const [gone] = await db.query(
              `SELECT id, duration_ms FROM bt_drop_later WHERE id = ${(part?.minId as number) + 300}`,
            );
            await db.run(`DELETE FROM bt_drop_later WHERE id = ${Number(gone?.id)}`);
            truth.n -= 1;
            truth.ids -= Number(gone?.id);
            truth.ms -= Number(gone?.duration_ms);
            expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({
              method: "drop-partition",
              deleted: 399,
            });
            expect(await queried(c, true)).toEqual(truth);
          } finally {
            await c.close();
          }
        },
      );

      it.runIf(db.name === "PostgreSQL")(
        "a row restored before its partition is cleaned goes by row deletes, counted once",
        async () => {
          const c = await partitioned("bt_drop_back", 200);
          try {
            const truth = await table("bt_drop_back");
            await archiveDate(c.ctx, c.owner, DAY);
            const [part] = await c.ctx.ledger.parts("bt_drop_back", DAY);
            await db.run(`DELETE FROM bt_drop_back WHERE id = ${(part?.minId as number) + 3}`);
            expect(await restoreDate(c.ctx, c.owner, DAY)).toMatchObject({ inserted: 1 });
            expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({
              method: "delete",
              deleted: 200,
            });
            expect(await queried(c, true)).toEqual(truth);
          } finally {
            await c.close();
          }
        },
      );

      it("a pass resumed after its batch limit meets a row changed since: counted once", async () => {
        const c = await prepared("bt_resume", 300);
        try {
          await archiveDate(c.ctx, c.owner, DAY);
          const [part] = await c.ctx.ledger.parts("bt_resume", DAY);
          const first = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 100, maxBatches: 1 });
          expect(first).toMatchObject({ deleted: 100, complete: false });
          await db.run(
            `UPDATE bt_resume SET duration_ms = duration_ms + 1 WHERE id = ${(part?.minId as number) + 200}`,
          );
          const hot = await table("bt_resume");
          await expect(cleanupDate(c.ctx, c.owner, DAY, { batchSize: 100 })).rejects.toThrow(
            /changed since it was archived/,
          );
          expect(await db.count("bt_resume", DAY)).toBe(1);
          // The 100 rows the first pass deleted, as archived, beside the 200 the table had then.
          const deleted = await queried(c, true);
          expect(deleted.n).toBe(300);
          expect(deleted.n - hot.n).toBe(100);
          const [left] = await db.rows("bt_resume", DAY);
          expect(Number(left?.id)).toBe((part?.minId as number) + 200);
          const again = await queried(c, true);
          expect(again).toEqual(deleted);
          // The changed row counts as the table has it (its archived line is skipped).
          const lines = await queried(c, false);
          expect(lines.n).toBe(299);
          expect(deleted.ms - lines.ms).toBe(Number(left?.duration_ms));
        } finally {
          await c.close();
        }
      });

      it("rows under keys at and below zero, changed before cleanup: each counted once", async () => {
        const name = "bt_signed";
        await db.run(
          `CREATE TABLE ${name} (id BIGINT PRIMARY KEY, event_date VARCHAR(10) NOT NULL, path VARCHAR(100) NOT NULL, duration_ms INTEGER NOT NULL)`,
        );
        for (let id = -5; id <= 5; id++) {
          await db.run(`INSERT INTO ${name} VALUES (${id}, '${DAY}', '/k${id}', ${id + 100})`);
        }
        const c = await tableContext(db.url, join(dir, db.name, name), name);
        try {
          await archiveDate(c.ctx, c.owner, DAY);
          await db.run(`UPDATE ${name} SET duration_ms = 1000 WHERE id IN (-5, 0)`);
          const truth = await table(name);
          await expect(cleanupDate(c.ctx, c.owner, DAY)).rejects.toThrow(
            /changed since it was archived/,
          );
          expect(await db.count(name, DAY)).toBe(2);
          expect(await queried(c, true)).toEqual(truth);
        } finally {
          await c.close();
        }
      });

      it("restored rows count from the table, and once more from the next part when cleaned again", async () => {
        const c = await prepared("bt_restore", 200);
        try {
          const truth = await table("bt_restore");
          await archiveDate(c.ctx, c.owner, DAY);
          expect((await cleanupDate(c.ctx, c.owner, DAY)).complete).toBe(true);
          expect(await queried(c, true)).toEqual(truth);
          expect(await restoreDate(c.ctx, c.owner, DAY)).toMatchObject({ inserted: 200 });
          expect(await queried(c, true)).toEqual(truth);
          await archiveDate(c.ctx, c.owner, DAY);
          expect((await c.ctx.ledger.parts("bt_restore", DAY)).length).toBe(2);
          expect((await cleanupDate(c.ctx, c.owner, DAY)).complete).toBe(true);
          expect(await db.count("bt_restore", DAY)).toBe(0);
          expect(await queried(c, true)).toEqual(truth);
          expect(await queried(c, false)).toEqual(truth);
        } finally {
          await c.close();
        }
      });

      it("a row deleted by hand and restored before cleanup, then cleaned: counted once", async () => {
        const c = await prepared("bt_back", 100);
        try {
          const truth = await table("bt_back");
          await archiveDate(c.ctx, c.owner, DAY);
          const [part] = await c.ctx.ledger.parts("bt_back", DAY);
          await db.run(`DELETE FROM bt_back WHERE id = ${(part?.minId as number) + 10}`);
          expect(await restoreDate(c.ctx, c.owner, DAY)).toMatchObject({ inserted: 1 });
          expect(await queried(c, true)).toEqual(truth);
          // Cleanup deletes the restored row with the others: its key is no longer skipped.
          expect((await cleanupDate(c.ctx, c.owner, DAY)).complete).toBe(true);
          expect(await db.count("bt_back", DAY)).toBe(0);
          expect(await queried(c, true)).toEqual(truth);
        } finally {
          await c.close();
        }
      });
    },
  );
}

describe("a ledger cleaned before it recorded skipped keys (version 7)", () => {
  const db = dbs[0] as TestDb;

  it("gets each part's passed key; a part that left rows is flagged, and the query warns", async () => {
    const source = await openSource(db.url, { create: true });
    for (const table of ["bt_old_whole", "bt_old_left"]) {
      await prepareTrafficData(source, { table, date: DAY, count: 50 });
    }
    await source.close();
    const open = (table: string) =>
      openContext(
        loadConfig({
          SLUICE_DB: db.url,
          SLUICE_STORE: `file:${join(dir, "old", table)}`,
          SLUICE_TABLE: table,
        }),
      );
    for (const table of ["bt_old_whole", "bt_old_left"]) {
      const c = await open(table);
      await archiveDate(c.ctx, c.owner, DAY);
      if (table === "bt_old_left") await db.run(`UPDATE ${table} SET path = '/x' WHERE id = 7`);
      await cleanupDate(c.ctx, c.owner, DAY).catch(() => undefined);
      await c.close();
    }
    // The ledger as version 6 left it.
    await db.run("UPDATE archive_parts SET passed_key = NULL, skips_known = 1");
    await db.run("DELETE FROM archive_cleanup_skipped");
    await db.run("DELETE FROM sluice_migrations WHERE version = 7");
    const whole = await open("bt_old_whole");
    const left = await open("bt_old_left");
    try {
      expect(await whole.ctx.ledger.parts("bt_old_whole", DAY)).toMatchObject([
        { passedKey: 50, skipsKnown: true },
      ]);
      const [part] = await left.ctx.ledger.parts("bt_old_left", DAY);
      expect(part).toMatchObject({ passedKey: part?.maxId, skipsKnown: false, cleanedCount: 49 });
      const warnings: string[] = [];
      await queried(whole, true, warnings);
      expect(warnings).toEqual([]);
      // The changed row counts twice (its line, and the table's row): the query says so.
      expect((await queried(left, true, warnings)).n).toBe(51);
      expect(warnings).toEqual([
        `bt_old_left ${DAY} part 0 was cleaned, leaving 1 of its rows, before the ledger recorded which: those rows may count twice (changed and kept) or once too often (deleted by hand)`,
      ]);
    } finally {
      await whole.close();
      await left.close();
    }
  });
});

describe("a query while cleanup commits", () => {
  const db = dbs[0] as TestDb;

  it("the ledger changed between its reads: the hot rows are read again, each row once", async () => {
    const source = await openSource(db.url, { create: true });
    await prepareTrafficData(source, { table: "bt_race", date: DAY, count: 500 });
    await source.close();
    const config = loadConfig({
      SLUICE_DB: db.url,
      SLUICE_STORE: `file:${join(dir, "race")}`,
      SLUICE_TABLE: "bt_race",
    });
    const c = await openContext(config);
    const other = await openContext(config);
    try {
      const truth = { n: 500, ...(await sums("bt_race")) };
      await archiveDate(c.ctx, c.owner, DAY);
      // The first page of hot rows is read only after another job cleaned the day.
      // Pages are read as objects or, where the source has it (SQLite), as value rows.
      const pages = c.ctx.source.pages;
      let reads = 0;
      const read = pages.read.bind(pages);
      pages.read = async (sql, params) => {
        if (++reads === 1) await cleanupDate(other.ctx, other.owner, DAY);
        return read(sql, params);
      };
      const values = pages.readValues?.bind(pages);
      if (values) {
        pages.readValues = async (sql, params) => {
          if (++reads === 1) await cleanupDate(other.ctx, other.owner, DAY);
          return values(sql, params);
        };
      }
      // Read as before the cleanup, the day would be missing: its part had no passed key
      // then, and its rows were gone from the table when read.
      expect(await queried(c, true)).toEqual(truth);
      expect(reads).toBe(1);
    } finally {
      await c.close();
      await other.close();
    }
  });

  async function sums(name: string) {
    const rows = await db.rows(name, DAY);
    return {
      ids: rows.reduce((s, r) => s + Number(r.id), 0),
      ms: rows.reduce((s, r) => s + Number(r.duration_ms), 0),
    };
  }
});

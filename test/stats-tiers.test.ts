import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { archiveDate, cleanupDate, rollupDate } from "../src/core/archive/jobs.js";
import { Ledger } from "../src/core/archive/ledger/ledger.js";
import { RollupMismatchError } from "../src/core/archive/rollup.js";
import { type StatsReader, statsReader } from "../src/core/stats/queries.js";
import { loadConfig } from "../src/node/config.js";
import { type NodeContext, openContext } from "../src/node/context.js";
import { openSource } from "../src/node/open.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";
import { type TestDb, mariaDb, postgresDb, sqliteDb } from "./servers.js";

/**
 * The stats routes answer across both tiers: whatever archive and cleanup have done to a range
 * of days, top-paths and path-daily give the answer the table gave before anything was
 * archived (plus rows that came since), with each day's tier said.
 */
const DAYS = ["2025-10-09", "2025-10-10", "2025-10-11", "2025-10-12", "2025-10-13"];
const [FIRST, D1, D2, D3, LAST] = DAYS as [string, string, string, string, string];
const PER_DAY = 2000;

const dir = mkdtempSync(join(tmpdir(), "sluice-stats-tiers-"));
const dbs = [sqliteDb(dir), await postgresDb(), await mariaDb()];
afterAll(async () => {
  for (const db of dbs) await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

type Answer = Map<string, number>;

for (const server of dbs) {
  describe.runIf(server !== null)(
    `stats across tiers on ${server?.name ?? "a missing server"}`,
    () => {
      const db = server as TestDb;
      const table = "te_tiers";

      async function open(name = table): Promise<{ c: NodeContext; stats: StatsReader }> {
        const c = await openContext(
          loadConfig({
            SLUICE_DB: db.url,
            SLUICE_STORE: `file:${join(dir, db.name)}`,
            SLUICE_TABLE: name,
          }),
        );
        const { source, spec, ledger } = c.ctx;
        const query = (sql: string, params: readonly unknown[]) => source.query(sql, [...params]);
        return {
          c,
          stats: statsReader(query, source.dialect, spec, "path", {
            ...ledger.tables,
            counted: true,
          }),
        };
      }

      /** A table of its own: `days` days of `count` generated page views up to `date`. */
      async function prepared(name: string, count: number, date: string, days: number) {
        const source = await openSource(db.url, { create: true });
        await prepareTrafficData(source, { count, date, days, table: name });
        await source.close();
      }

      /** What the table says per (date, path), by its own client: the answer to keep. */
      async function groupBy(name = table): Promise<Map<string, Answer>> {
        const rows = await db.query(
          `SELECT event_date AS d, path, COUNT(*) AS n FROM ${name} GROUP BY event_date, path`,
        );
        const out = new Map<string, Answer>();
        for (const r of rows) {
          const d = r.d instanceof Date ? r.d.toISOString().slice(0, 10) : String(r.d);
          const day = out.get(d) ?? new Map<string, number>();
          day.set(String(r.path), Number(r.n));
          out.set(d, day);
        }
        return out;
      }

      function total(kept: Map<string, Answer>, from: string, to: string): Answer {
        const sum: Answer = new Map();
        for (const [d, day] of kept) {
          if (d < from || d > to) continue;
          for (const [p, n] of day) sum.set(p, (sum.get(p) ?? 0) + n);
        }
        return sum;
      }

      /** The views of the last day, every path. */
      async function dayTotal(stats: StatsReader): Promise<number> {
        const top = await stats.topPaths(LAST, LAST, 10_000);
        return top.paths.reduce((n, p) => n + p.views, 0);
      }

      /** Both routes' answers over the whole range equal `kept`'s. */
      async function expectAnswer(stats: StatsReader, kept: Map<string, Answer>, step: string) {
        const top = await stats.topPaths(FIRST, LAST, 1000);
        const got = new Map(top.paths.map((p) => [String(p.path), p.views]));
        expect(got, step).toEqual(total(kept, FIRST, LAST));
        const views = top.paths.map((p) => p.views);
        expect(views, `${step}: most viewed first`).toEqual([...views].sort((a, b) => b - a));
        const popular = String(top.paths[0]?.path);
        const rare = String(top.paths.at(-1)?.path);
        for (const path of [popular, rare]) {
          const daily = await stats.pathDaily(path, FIRST, LAST);
          const expected = DAYS.flatMap((d) => {
            const n = kept.get(d)?.get(path);
            return n ? [{ date: d, views: n }] : [];
          });
          expect(
            daily.map(({ date, views }) => ({ date, views })),
            `${step}: ${path} per day`,
          ).toEqual(expected);
        }
        return top.coverage;
      }

      it("every step from hot to cleaned and back gives the answer kept aside, each day's tier said", async () => {
        await prepared(table, PER_DAY, LAST, 5);
        const kept = await groupBy();
        const { c, stats } = await open();
        try {
          const { ctx, owner } = c;
          let cov = await expectAnswer(stats, kept, "before archive");
          expect(cov).toEqual({ hot: DAYS, archive: [], both: [], unanswered: [], missing: [] });

          for (const d of [FIRST, D1, D2]) await archiveDate(ctx, owner, d);
          cov = await expectAnswer(stats, kept, "archived and verified");
          // Nothing deleted yet: every row is answered from the hot table.
          expect(cov).toEqual({ hot: DAYS, archive: [], both: [], unanswered: [], missing: [] });
          const parts = await ctx.ledger.parts(table, D1);
          expect(parts.map((p) => p.rollupRows)).toEqual([PER_DAY]);

          // Half-way: one batch of 500 deleted, the rest of the day still hot.
          const half = await cleanupDate(ctx, owner, FIRST, { batchSize: 500, maxBatches: 1 });
          expect(half).toMatchObject({ complete: false, deleted: 500 });
          cov = await expectAnswer(stats, kept, "cleanup stopped half-way");
          expect(cov.both).toEqual([FIRST]);

          for (const d of [FIRST, D1, D2]) await cleanupDate(ctx, owner, d);
          expect(await db.count(table, D1)).toBe(0);
          cov = await expectAnswer(stats, kept, "cleaned");
          expect(cov).toEqual({
            hot: [D3, LAST],
            archive: [FIRST, D1, D2],
            both: [],
            unanswered: [],
            missing: [],
          });
          // Counts of another column than the one asked for answer nothing: the days whose rows
          // were deleted say so.
          const other = statsReader(
            (sql, params) => ctx.source.query(sql, [...params]),
            ctx.source.dialect,
            ctx.spec,
            "country",
            { ...ctx.ledger.tables, counted: false },
          );
          expect((await other.topPaths(FIRST, LAST, 5)).coverage).toMatchObject({
            hot: [D3, LAST],
            unanswered: [FIRST, D1, D2],
          });
          // A day with no rows anywhere is named, not left out.
          const wider = await stats.topPaths("2025-10-08", LAST, 5);
          expect(wider.coverage.missing).toEqual(["2025-10-08"]);
          expect(wider.coverage.archive).toEqual([FIRST, D1, D2]);
          const daily = await stats.pathDaily(
            String([...(kept.get(D1) ?? [])][0]?.[0]),
            FIRST,
            LAST,
          );
          expect(daily.map((d) => d.tier)).toEqual(["archive", "archive", "archive", "hot", "hot"]);

          // Late rows of a cleaned day, under new keys.
          await db.run(
            `INSERT INTO ${table} (event_date, ts, path, referrer, country, user_agent, status, duration_ms) VALUES (?, 1, '/late', NULL, 'DE', 'x', 200, 5), (?, 2, '/late', NULL, 'DE', 'x', 200, 5), (?, 3, '/', NULL, 'FR', 'y', 200, 7)`.replace(
              /\?/g,
              `'${D1}'`,
            ),
          );
          const withLate = await groupBy();
          for (const d of [FIRST, D2, D3, LAST]) withLate.set(d, kept.get(d) as Answer);
          const lateDay = new Map(kept.get(D1));
          lateDay.set("/late", 2);
          lateDay.set("/", (lateDay.get("/") ?? 0) + 1);
          withLate.set(D1, lateDay);
          cov = await expectAnswer(stats, withLate, "late rows after cleanup");
          expect(cov.both).toEqual([D1]);

          const late = await archiveDate(ctx, owner, D1);
          expect(late.written?.part).toBe(1);
          await expectAnswer(stats, withLate, "late part archived");
          await cleanupDate(ctx, owner, D1);
          cov = await expectAnswer(stats, withLate, "late part cleaned");
          expect(cov.archive).toEqual([FIRST, D1, D2]);
          expect((await ctx.ledger.parts(table, D1)).map((p) => p.rollupRows)).toEqual([
            PER_DAY,
            3,
          ]);
        } finally {
          await c.close();
        }
      });

      it("a rollup altered by hand makes cleanup refuse and delete nothing; sluice rollup rebuilds it", async () => {
        const { c } = await open();
        try {
          const { ctx, owner } = c;
          await archiveDate(ctx, owner, D3);
          await db.run(
            `UPDATE archive_rollups SET views = views + 1 WHERE source_table = '${table}' AND ${db.name === "MariaDB" ? "`date`" : '"date"'} = '${D3}' AND path = '/'`,
          );
          const err = await cleanupDate(ctx, owner, D3).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(RollupMismatchError);
          expect(err).toMatchObject({ part: 0, rows: PER_DAY, counted: PER_DAY + 1 });
          expect(await db.count(table, D3)).toBe(PER_DAY);
          expect(await ctx.ledger.get(table, D3)).toMatchObject({
            state: "failed",
            lastError: expect.stringMatching(/rollup counts 2001.*sluice rollup --date/),
          });
          // A rollup missing altogether is refused too.
          await db.run(`DELETE FROM archive_rollups WHERE source_table = '${table}'`);
          const missing = await cleanupDate(ctx, owner, D3).catch((e: unknown) => e);
          expect(missing).toMatchObject({ part: 0, counted: null });
          expect(await db.count(table, D3)).toBe(PER_DAY);

          // The part's recorded total off by one, its counts right: refused too.
          await rollupDate(ctx, owner, D3);
          await db.run(
            `UPDATE archive_parts SET rollup_rows = rollup_rows - 1 WHERE source_table = '${table}'`,
          );
          const total = await cleanupDate(ctx, owner, D3).catch((e: unknown) => e);
          expect(total).toMatchObject({ part: 0, rows: PER_DAY, counted: PER_DAY - 1 });
          expect(await db.count(table, D3)).toBe(PER_DAY);

          const rebuilt = await rollupDate(ctx, owner, D3);
          expect(rebuilt.map((p) => p.rollupRows)).toEqual([PER_DAY]);
          await cleanupDate(ctx, owner, D3);
          expect(await db.count(table, D3)).toBe(0);
        } finally {
          await c.close();
        }
      });

      it("an archived row updated before cleanup counts once until it is archived again", async () => {
        const { c, stats } = await open();
        try {
          const { ctx, owner } = c;
          await archiveDate(ctx, owner, LAST);
          const keys = await db.query(
            `SELECT MIN(id) AS lo FROM ${table} WHERE event_date = '${LAST}'`,
          );
          await db.run(
            `UPDATE ${table} SET path = '/updated' WHERE id = ${Number(keys[0]?.lo) + 7}`,
          );
          expect(await dayTotal(stats), "updated, not yet cleaned").toBe(PER_DAY);
          const changed = await cleanupDate(ctx, owner, LAST).catch((e: unknown) => e);
          expect(changed).toMatchObject({ name: "RowsChangedError" });
          expect(await db.count(table, LAST), "the updated row is kept").toBe(1);
          expect(await dayTotal(stats), "cleaned but for the updated row").toBe(PER_DAY);
          // The next part takes the updated row as it is now.
          const late = await archiveDate(ctx, owner, LAST);
          expect(late.written).toMatchObject({ part: 1, eventCount: 1 });
        } finally {
          await c.close();
        }
      });

      it("that row, archived again and cleaned, counts once, as it is now", async () => {
        const { c, stats } = await open();
        try {
          const { ctx, owner } = c;
          expect(await dayTotal(stats), "archived again").toBe(PER_DAY);
          await cleanupDate(ctx, owner, LAST);
          expect(await db.count(table, LAST)).toBe(0);
          expect(await dayTotal(stats), "cleaned").toBe(PER_DAY);
          const daily = await stats.pathDaily("/updated", LAST, LAST);
          expect(daily).toEqual([{ date: LAST, views: 1, tier: "archive" }]);
        } finally {
          await c.close();
        }
      });

      it("a row the database keeps is not counted as deleted; a key cleanup deleted, used again, counts as a new row", async () => {
        const other = "te_tiers_keep";
        await prepared(other, 600, LAST, 1);
        const kept = (await groupBy(other)).get(LAST) as Answer;
        const { c, stats } = await open(other);
        const answer = async () =>
          new Map(
            (await stats.topPaths(LAST, LAST, 1000)).paths.map((p) => [String(p.path), p.views]),
          );
        try {
          const { ctx, owner } = c;
          await archiveDate(ctx, owner, LAST);
          const [lo] = await db.query(`SELECT MIN(id) AS lo FROM ${other}`);
          const low = Number(lo?.lo);
          await db.blockDelete(other, low + 3);
          const stopped = await cleanupDate(ctx, owner, LAST, { batchSize: 100 }).catch(
            (e: unknown) => e,
          );
          expect(stopped).toBeInstanceOf(Error);
          expect(await db.count(other, LAST)).toBeGreaterThan(0);
          expect(await answer(), "one row kept by the database").toEqual(kept);
          await db.unblock(other);
          expect(await cleanupDate(ctx, owner, LAST)).toMatchObject({ complete: true });
          expect(await db.count(other, LAST)).toBe(0);
          expect(await answer(), "cleaned").toEqual(kept);
          const [part] = await ctx.ledger.parts(other, LAST);
          expect(part).toMatchObject({ cleanedCount: 600, deletedRollupRows: 600 });

          // The lowest key, deleted by cleanup, written again by hand: a row of its own.
          const id = db.name === "PostgreSQL" ? "OVERRIDING SYSTEM VALUE " : "";
          await db.run(
            `INSERT INTO ${other} (id, event_date, ts, path, referrer, country, user_agent, status, duration_ms) ${id}VALUES (${low}, '${LAST}', 1, '/again', NULL, 'DE', 'x', 200, 5)`,
          );
          const withNew = new Map(kept).set("/again", 1);
          expect(await answer(), "a deleted key used again").toEqual(withNew);
          const top = await stats.topPaths(LAST, LAST, 1);
          expect(top.coverage.both).toEqual([LAST]);
        } finally {
          await c.close();
        }
      });

      it("a ledger from before deleted rows were counted: a part cleaned whole is answered, one cleaned in part says unanswered; two processes migrate it once", async () => {
        const legacy = "te_tiers_legacy";
        const [whole, half] = [D1, D2];
        await prepared(legacy, 400, half, 2);
        const kept = await groupBy(legacy);
        const { c, stats } = await open(legacy);
        try {
          const { ctx, owner } = c;
          for (const d of [whole, half]) await archiveDate(ctx, owner, d);
          await cleanupDate(ctx, owner, whole);
          await cleanupDate(ctx, owner, half, { batchSize: 100, maxBatches: 1 });
          // The ledger as version 5 left it (no deleted rows counted anywhere), migrated by two
          // processes at once, a few times over so that their steps interleave.
          for (let round = 0; round < 3; round++) {
            await db.run("DELETE FROM archive_deleted_rollups");
            await db.run("UPDATE archive_parts SET deleted_rollup_rows = 0");
            await db.run("DELETE FROM sluice_migrations WHERE version = 6");
            const sources = [await openSource(db.url), await openSource(db.url)];
            try {
              const ledgers = sources.map((s) => new Ledger(s));
              // SQLite: two connections of one process would wait on each other's file lock
              // without yielding; processes take turns on it, which one after the other is.
              if (db.name === "SQLite") for (const l of ledgers) await l.migrate();
              else await Promise.all(ledgers.map((l) => l.migrate()));
            } finally {
              for (const s of sources) await s.close();
            }
          }
          const top = await stats.topPaths(whole, half, 1000);
          expect(top.coverage).toMatchObject({ archive: [whole], unanswered: [half] });
          const daily = new Map(
            (await stats.topPaths(whole, whole, 1000)).paths.map((p) => [String(p.path), p.views]),
          );
          expect(daily, "the part cleaned whole, counted once").toEqual(kept.get(whole));
          // Its cleanup goes on, counting what it deletes; the 100 deleted before stay uncounted.
          await cleanupDate(ctx, owner, half);
          const [part] = await ctx.ledger.parts(legacy, half);
          expect(part).toMatchObject({ cleanedCount: 400, deletedRollupRows: 300 });
          expect((await stats.topPaths(half, half, 1)).coverage.unanswered).toEqual([half]);
        } finally {
          await c.close();
        }
      });

      it("paths of any length are counted once per part, one row each, across many batches", async () => {
        const long = "te_tiers_long";
        await prepared(long, 300, LAST, 1);
        const [lo] = await db.query(`SELECT MIN(id) AS id FROM ${long}`);
        const low = Number(lo?.id);
        // 200 characters is the longest kept as its own key; longer ones are hashed.
        const paths = [`/${"a".repeat(199)}`, `/${"b".repeat(200)}`, `/${"é".repeat(400)}`];
        for (const [i, p] of paths.entries()) {
          await db.run(`UPDATE ${long} SET path = '${p}' WHERE MOD(id - ${low}, 4) = ${i}`);
        }
        const kept = (await groupBy(long)).get(LAST) as Answer;
        const { c, stats } = await open(long);
        try {
          const { ctx, owner } = c;
          await archiveDate(ctx, owner, LAST);
          expect(await cleanupDate(ctx, owner, LAST, { batchSize: 40 })).toMatchObject({
            complete: true,
          });
          const got = new Map(
            (await stats.topPaths(LAST, LAST, 1000)).paths.map((p) => [String(p.path), p.views]),
          );
          expect(got).toEqual(kept);
          const rows = await db.query(
            `SELECT path, COUNT(*) AS n FROM archive_deleted_rollups WHERE source_table = '${long}' GROUP BY path`,
          );
          expect(rows.map((r) => Number(r.n))).toEqual(rows.map(() => 1));
          expect(rows.length).toBe(kept.size);
        } finally {
          await c.close();
        }
      });
    },
  );
}

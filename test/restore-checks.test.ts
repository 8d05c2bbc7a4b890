import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { archiveDate, cleanupDate, restoreDate } from "../src/core/archive/jobs.js";
import type { SqlExecutor, SqlSource } from "../src/core/sql/source.js";
import { loadConfig } from "../src/node/config.js";
import { type NodeContext, openContext } from "../src/node/context.js";
import { openSource } from "../src/node/open.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";
import { pathStats, preparedTable } from "./helpers.js";
import { type TestDb, mariaDb, postgresDb, sqliteDb } from "./servers.js";

/**
 * What restore checks before a row goes back: bytes no digest has proven, a target without the
 * key, the size of each INSERT, and a table that changed under a batch (the stats would count a
 * row twice).
 */
const DAY = "2025-10-13";
const dir = mkdtempSync(join(tmpdir(), "sluice-restore-checks-"));
const dbs = [sqliteDb(dir), await postgresDb(), await mariaDb()];
afterAll(async () => {
  for (const db of dbs) await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

for (const maybe of dbs) {
  describe.runIf(maybe !== null)(`restore's checks on ${maybe?.name ?? "a missing server"}`, () => {
    const db = maybe as TestDb;
    const storeOf = (table: string) => join(dir, db.name, table);

    /** `count` generated rows of `table` on DAY, and a context on it. */
    const prepared = (table: string, count: number) =>
      preparedTable(db.url, storeOf(table), table, DAY, count);

    /** `count` rows of `table` on DAY, archived and cleaned; the context to restore them with. */
    async function cleaned(table: string, count: number): Promise<NodeContext> {
      const c = await prepared(table, count);
      await archiveDate(c.ctx, c.owner, DAY);
      expect((await cleanupDate(c.ctx, c.owner, DAY)).complete).toBe(true);
      return c;
    }

    /** The day's views over every path: hot rows plus the deleted rows' counts. */
    async function views(c: NodeContext): Promise<number> {
      return (await pathStats(c).topPaths(DAY, DAY, 10_000)).paths.reduce((n, p) => n + p.views, 0);
    }

    it("a part without chunk digests is read whole and checked before any row goes back", async () => {
      const c = await cleaned("rc_digest", 300);
      try {
        const [part] = await c.ctx.ledger.parts("rc_digest", DAY);
        const file = join(storeOf("rc_digest"), part?.objectKey as string);
        // The last line altered, the gzip still whole: only the part's sha256 tells.
        const lines = gunzipSync(readFileSync(file)).toString().split("\n");
        const last = lines.length - 2;
        lines[last] = (lines[last] as string).replace(/"path":"[^"]*"/, '"path":"/forged"');
        writeFileSync(file, gzipSync(lines.join("\n")));
        await db.run(
          "UPDATE archive_parts SET chunk_bytes = NULL, chunk_sha256 = NULL WHERE source_table = 'rc_digest'",
        );
        await expect(restoreDate(c.ctx, c.owner, DAY, { batchBytes: 1024 })).rejects.toThrow(
          /sha256/,
        );
        expect(await db.count("rc_digest", DAY)).toBe(0);
      } finally {
        await c.close();
      }
    });

    it("each INSERT holds lines up to its byte bound: one line each at a bound of one byte", async () => {
      const c = await cleaned("rc_batch", 40);
      try {
        const done: number[] = [];
        const totals = new Set<number | null | undefined>();
        c.ctx.onProgress = (p) => {
          if (p.phase !== "restore") return;
          done.push(p.done);
          totals.add(p.total);
        };
        const out = await restoreDate(c.ctx, c.owner, DAY, { batchBytes: 1 });
        expect(out).toMatchObject({ read: 40, inserted: 40 });
        expect(done).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
        expect([...totals]).toEqual([40]);
        expect(await views(c)).toBe(40);
        // The default bound (512 KB) holds these 40 lines in one INSERT.
        done.length = 0;
        expect(await restoreDate(c.ctx, c.owner, DAY)).toMatchObject({ read: 40, skipped: 40 });
        expect(done).toEqual([40]);
      } finally {
        await c.close();
      }
    });

    it("a target without the key column is refused when the manifest names no columns", async () => {
      const c = await cleaned("rc_key", 20);
      try {
        const [part] = await c.ctx.ledger.parts("rc_key", DAY);
        unlinkSync(join(storeOf("rc_key"), part?.manifestKey as string));
        await db.run("CREATE TABLE rc_key_stage (event_date VARCHAR(10), path VARCHAR(512))");
        await expect(restoreDate(c.ctx, c.owner, DAY, { into: "rc_key_stage" })).rejects.toThrow(
          "'rc_key_stage' has no column 'id' (the key)",
        );
        const [n] = await db.query("SELECT COUNT(*) AS n FROM rc_key_stage");
        expect(Number(n?.n)).toBe(0);
      } finally {
        await c.close();
      }
    });

    it("a byte changed in a part with chunk digests: refused before any of its rows goes back", async () => {
      const c = await cleaned("rc_flip", 300);
      try {
        const [part] = await c.ctx.ledger.parts("rc_flip", DAY);
        const file = join(storeOf("rc_flip"), part?.objectKey as string);
        const bytes = readFileSync(file);
        const at = bytes.length >> 1;
        bytes[at] = (bytes[at] as number) ^ 0x55;
        writeFileSync(file, bytes);
        await expect(restoreDate(c.ctx, c.owner, DAY, { batchBytes: 1024 })).rejects.toThrow();
        expect(await db.count("rc_flip", DAY)).toBe(0);
      } finally {
        await c.close();
      }
    });

    it("a day archived and not yet cleaned restores into its table as rows already there; mid-cleanup, --into a staging table works", async () => {
      const c = await prepared("rc_mid", 50);
      try {
        await archiveDate(c.ctx, c.owner, DAY);
        expect(await restoreDate(c.ctx, c.owner, DAY)).toMatchObject({ inserted: 0, skipped: 50 });
        await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 10, maxBatches: 1 });
        await stage(db, "rc_mid", "rc_mid_stage");
        expect(await restoreDate(c.ctx, c.owner, DAY, { into: "rc_mid_stage" })).toMatchObject({
          inserted: 50,
        });
        expect(await db.count("rc_mid_stage", DAY)).toBe(50);
      } finally {
        await c.close();
      }
    });

    it("without a manifest's column list, every column of the target is filled; a target missing an archived column is refused by name", async () => {
      const c = await cleaned("rc_cols", 30);
      try {
        await stage(db, "rc_cols", "rc_cols_narrow");
        await db.run("ALTER TABLE rc_cols_narrow DROP COLUMN referrer");
        await expect(restoreDate(c.ctx, c.owner, DAY, { into: "rc_cols_narrow" })).rejects.toThrow(
          "'rc_cols_narrow' has no column 'referrer' that the archive holds",
        );
        expect(await db.count("rc_cols_narrow", DAY)).toBe(0);

        const [part] = await c.ctx.ledger.parts("rc_cols", DAY);
        unlinkSync(join(storeOf("rc_cols"), part?.manifestKey as string));
        await stage(db, "rc_cols", "rc_cols_stage");
        expect(await restoreDate(c.ctx, c.owner, DAY, { into: "rc_cols_stage" })).toMatchObject({
          inserted: 30,
        });
        const [row] = await db.query(
          "SELECT COUNT(*) AS n FROM rc_cols_stage WHERE path IS NOT NULL AND status IS NOT NULL AND country IS NOT NULL",
        );
        expect(Number(row?.n)).toBe(30);
      } finally {
        await c.close();
      }
    });

    // SQLite has one writer: no other session can change the table inside a restore's batch.
    it.runIf(db.name !== "SQLite")(
      "a row deleted by another session inside a batch rolls the batch back; a rerun counts every row once",
      async () => {
        const c = await cleaned("rc_race", 200);
        try {
          await copyBack(db, "rc_race");
          const [low] = await db.query("SELECT MIN(id) AS id FROM rc_race");
          const key = Number(low?.id);
          expect(await views(c), "the row put back by hand is counted hot and deleted").toBe(201);
          let raced = false;
          const racing = withTransaction(c.ctx.source, (tx) =>
            intercept(tx, async (sql) => {
              if (raced || !sql.startsWith("INSERT INTO")) return;
              raced = true;
              await db.run(`DELETE FROM rc_race WHERE id = ${key}`);
            }),
          );
          const before = await c.ctx.ledger.parts("rc_race", DAY);
          await expect(
            restoreDate({ ...c.ctx, source: racing }, c.owner, DAY, { batchBytes: 1 << 20 }),
          ).rejects.toThrow(/added or deleted rows meanwhile; nothing of this batch kept/);
          expect(raced).toBe(true);
          expect(await db.count("rc_race", DAY)).toBe(0);
          expect(await c.ctx.ledger.parts("rc_race", DAY)).toEqual(before);
          expect(await views(c)).toBe(200);

          const out = await restoreDate(c.ctx, c.owner, DAY);
          expect(out).toMatchObject({ read: 200, inserted: 200, skipped: 0 });
          expect(await views(c), "each row once").toBe(200);
        } finally {
          await c.close();
        }
      },
    );
  });
}

/** The day's lowest row put back by hand (from a copy kept before cleanup) after cleanup. */
async function copyBack(db: TestDb, table: string): Promise<void> {
  const [part] = await db.query(
    `SELECT min_id FROM archive_parts WHERE source_table = '${table}' ORDER BY part LIMIT 1`,
  );
  await db.run(
    `INSERT INTO ${table} (id, event_date, ts, path, status, duration_ms)${db.name === "PostgreSQL" ? " OVERRIDING SYSTEM VALUE" : ""} VALUES (${Number(part?.min_id)}, '${DAY}', 0, '/by-hand', 200, 1)`,
  );
}

/** `source` whose transactions hand `wrap(tx)` to the work instead of `tx`. */
function withTransaction(source: SqlSource, wrap: (tx: SqlExecutor) => SqlExecutor): SqlSource {
  return new Proxy(source, {
    get(target, prop) {
      if (prop === "transaction") {
        return <T>(work: (tx: SqlExecutor) => Promise<T>) =>
          target.transaction((tx) => work(wrap(tx)));
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** `tx` that runs `before(sql)` ahead of each statement it executes. */
function intercept(tx: SqlExecutor, before: (sql: string) => Promise<void>): SqlExecutor {
  return new Proxy(tx, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "execute") {
        return async (sql: string, params?: unknown[]) => {
          await before(sql);
          return target.execute(sql, params);
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** An empty table with `table`'s columns. */
async function stage(db: TestDb, table: string, copy: string): Promise<void> {
  if (db.name === "PostgreSQL") await db.run(`CREATE TABLE ${copy} (LIKE ${table})`);
  else if (db.name === "MariaDB") await db.run(`CREATE TABLE ${copy} LIKE ${table}`);
  else await db.run(`CREATE TABLE ${copy} AS SELECT * FROM ${table} WHERE 0`);
}

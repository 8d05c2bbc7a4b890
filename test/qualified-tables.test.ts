import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { archiveDate, cleanupDate, restoreDate } from "../src/core/archive/jobs.js";
import { loadConfig } from "../src/node/config.js";
import { openContext } from "../src/node/context.js";
import { openSource } from "../src/node/open.js";
import { type TestDb, mariaDb, postgresDb } from "./servers.js";

/**
 * A table in another schema (PostgreSQL) or database (MariaDB) than the connection's default,
 * named `schema.table`: archived, cleaned and restored as any other, its ledger key the
 * qualified name.
 */
const DAY = "2025-10-13";
const dir = mkdtempSync(join(tmpdir(), "sluice-qualified-"));
const dbs = [await postgresDb(), await mariaDb()];
const other = `sluice_q_${process.pid}_${Date.now().toString(36)}`;
afterAll(async () => {
  for (const db of dbs) {
    await db?.run(
      db.name === "PostgreSQL" ? `DROP SCHEMA ${other} CASCADE` : `DROP DATABASE ${other}`,
    );
    await db?.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

for (const maybe of dbs) {
  describe.runIf(maybe !== null)(`schema.table on ${maybe?.name ?? "a missing server"}`, () => {
    const db = maybe as TestDb;
    it("archives, cleans and restores a table outside the default schema, by its qualified name", async () => {
      const pg = db.name === "PostgreSQL";
      await db.run(pg ? `CREATE SCHEMA ${other}` : `CREATE DATABASE ${other}`);
      await db.run(
        `CREATE TABLE ${other}.pv (id BIGINT PRIMARY KEY, created_at ${pg ? "TIMESTAMPTZ" : "DATETIME(3)"} NOT NULL, path VARCHAR(100) NOT NULL)`,
      );
      // A table of the same name in the default schema, which must not be touched.
      await db.run("CREATE TABLE pv (id BIGINT PRIMARY KEY, created_at DATE, path VARCHAR(100))");
      await db.run(`INSERT INTO pv VALUES (1, '${DAY}', '/default')`);
      for (let id = 1; id <= 300; id++) {
        const at = `${DAY} ${String(Math.floor(id / 13)).padStart(2, "0")}:00:00.${String(id % 1000).padStart(3, "0")}`;
        await db.run(`INSERT INTO ${other}.pv VALUES (${id}, '${at}', '/p${id}')`);
      }
      await db.run(`INSERT INTO ${other}.pv VALUES (301, '2025-10-14 00:00:00', '/next')`);
      const c = await openContext(
        loadConfig({
          SLUICE_DB: db.url,
          SLUICE_STORE: `file:${join(dir, db.name)}`,
          SLUICE_TABLE: `${other}.pv`,
          SLUICE_PARTITION_COLUMN: "created_at",
        }),
      );
      try {
        const out = await archiveDate(c.ctx, c.owner, DAY);
        expect(out.written).toMatchObject({ sourceTable: `${other}.pv`, eventCount: 300 });
        expect(out.written?.objectKey).toMatch(new RegExp(`^${other}\\.pv/date=${DAY}/part-0000`));
        expect((await cleanupDate(c.ctx, c.owner, DAY)).complete).toBe(true);
        const left = await db.query(`SELECT COUNT(*) AS n FROM ${other}.pv`);
        expect(Number(left[0]?.n)).toBe(1);
        expect(Number((await db.query("SELECT COUNT(*) AS n FROM pv"))[0]?.n)).toBe(1);

        await db.run(
          pg
            ? `CREATE TABLE ${other}.pv_stage (LIKE ${other}.pv)`
            : `CREATE TABLE ${other}.pv_stage LIKE ${other}.pv`,
        );
        const back = await restoreDate(c.ctx, c.owner, DAY, { into: `${other}.pv_stage` });
        expect(back).toMatchObject({ inserted: 300, into: `${other}.pv_stage` });
        const [stage] = await db.query(`SELECT COUNT(*) AS n FROM ${other}.pv_stage`);
        expect(Number(stage?.n)).toBe(300);
        expect(await c.ctx.ledger.get(`${other}.pv`, DAY)).toMatchObject({
          state: "cleaned",
          restoredRows: 300,
        });
      } finally {
        await c.close();
      }
    });

    it("keeps the ledger in SLUICE_LEDGER_SCHEMA: its tables there, none in the default schema", async () => {
      const pg = db.name === "PostgreSQL";
      const ledger = `${other}_ledger`;
      await db.run("CREATE TABLE ls (id BIGINT PRIMARY KEY, event_date DATE NOT NULL)");
      await db.run(`INSERT INTO ls VALUES (1, '${DAY}'), (2, '${DAY}')`);
      const tablesIn = async (schema: string | null) =>
        (
          await db.query(
            `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ${schema === null ? (pg ? "current_schema()" : "DATABASE()") : `'${schema}'`} AND table_name IN ('archive_metadata', 'archive_parts', 'sluice_migrations') ORDER BY 1`,
          )
        ).map((r) => String(r.t ?? r.TABLE_NAME));
      const before = await tablesIn(null);
      const c = await openContext(
        loadConfig({
          SLUICE_DB: db.url,
          SLUICE_STORE: `file:${join(dir, `${db.name}-ls`)}`,
          SLUICE_TABLE: "ls",
          SLUICE_LEDGER_SCHEMA: ledger,
        }),
      );
      try {
        await archiveDate(c.ctx, c.owner, DAY);
        expect((await cleanupDate(c.ctx, c.owner, DAY)).complete).toBe(true);
        expect(await tablesIn(ledger)).toEqual([
          "archive_metadata",
          "archive_parts",
          "sluice_migrations",
        ]);
        expect(await tablesIn(null)).toEqual(before);
        const [rec] = await db.query(
          `SELECT state FROM ${ledger}.archive_metadata WHERE source_table = 'ls'`,
        );
        expect(rec?.state).toBe("cleaned");
      } finally {
        await c.close();
        await db.run(pg ? `DROP SCHEMA ${ledger} CASCADE` : `DROP DATABASE ${ledger}`);
      }
    });
  });
}

it("refuses SLUICE_LEDGER_SCHEMA on SQLite, and one that is not an identifier", async () => {
  const sqlite = await openSource(`sqlite:${join(dir, "l.db")}`, { create: true });
  await sqlite.execute("CREATE TABLE traffic_events (id INTEGER PRIMARY KEY, event_date TEXT)");
  await sqlite.close();
  await expect(
    openContext(
      loadConfig({
        SLUICE_DB: `sqlite:${join(dir, "l.db")}`,
        SLUICE_STORE: `file:${join(dir, "l")}`,
        SLUICE_LEDGER_SCHEMA: "ledger",
      }),
    ),
  ).rejects.toThrow(/SLUICE_LEDGER_SCHEMA is for PostgreSQL and MySQL/);
  expect(() => loadConfig({ SLUICE_LEDGER_SCHEMA: "a; DROP" })).toThrow(
    /SLUICE_LEDGER_SCHEMA.*not a plain identifier/,
  );
});

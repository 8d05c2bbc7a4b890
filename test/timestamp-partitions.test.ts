import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { archiveDate, cleanupDate } from "../src/core/archive/jobs.js";
import { datesNeedingWork } from "../src/core/archive/partition-status.js";
import { BadInputError } from "../src/core/errors.js";
import { loadConfig } from "../src/node/config.js";
import { type NodeContext, openContext } from "../src/node/context.js";
import { type TestDb, mariaDb, postgresDb, sqliteDb } from "./servers.js";

/**
 * Tables partitioned by a timestamp, as most tables are (`created_at timestamptz`): a day is
 * [00:00, 24:00) in the configured zone, across Berlin's DST change of 2025-10-26 (25 hours).
 * Every row must land in exactly one day, the day the zone puts it in, and cleanup must delete
 * exactly the archived rows. The expected days are written out by hand from the offsets
 * (+02:00 until 2025-10-26 01:00Z, +01:00 after), not computed by the code under test.
 */
const BERLIN_ROWS: [id: number, utc: string, day: string][] = [
  [1, "2025-10-24 21:59:59.999999", "2025-10-24"],
  [2, "2025-10-24 22:00:00", "2025-10-25"],
  [3, "2025-10-25 10:00:00", "2025-10-25"],
  [4, "2025-10-25 21:59:59.999999", "2025-10-25"],
  [5, "2025-10-25 22:00:00", "2025-10-26"],
  [6, "2025-10-26 00:30:00", "2025-10-26"], // 02:30 summer time
  [7, "2025-10-26 01:30:00", "2025-10-26"], // 02:30 again, winter time
  [8, "2025-10-26 22:59:59.999999", "2025-10-26"],
  [9, "2025-10-26 23:00:00", "2025-10-27"],
  [10, "2025-10-27 12:00:00", "2025-10-27"],
  // An explicit low key written after higher ones: keys need only rise within a day.
  [0, "2025-10-26 12:00:00", "2025-10-26"],
];
/** Wall-clock times (timestamp without time zone, DATETIME): the date part is the day. */
const WALL_ROWS: [id: number, wall: string, day: string][] = [
  [1, "2025-10-13 00:00:00", "2025-10-13"],
  [2, "2025-10-13 23:59:59.999999", "2025-10-13"],
  [3, "2025-10-14 00:00:00", "2025-10-14"],
];

const dir = mkdtempSync(join(tmpdir(), "sluice-ts-"));
const [pg, maria] = [await postgresDb(), await mariaDb()];
afterAll(async () => {
  await pg?.close();
  await maria?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(db: TestDb, table: string, column: string, zone?: string) {
  return openContext(
    loadConfig({
      SLUICE_DB: db.url,
      SLUICE_STORE: `file:${join(dir, db.name, table)}`,
      SLUICE_TABLE: table,
      SLUICE_PARTITION_COLUMN: column,
      ...(zone ? { SLUICE_PARTITION_TIME_ZONE: zone } : {}),
    }),
  );
}

/** The archived lines of a date, every part, as the store holds them. */
async function archivedLines(c: NodeContext, table: string, date: string): Promise<string[]> {
  const out: string[] = [];
  for (const part of await c.ctx.ledger.parts(table, date)) {
    const body = await c.ctx.store.get(part.objectKey);
    if (!body) throw new Error(`no object ${part.objectKey}`);
    const bytes = new Uint8Array(await new Response(body).arrayBuffer());
    out.push(...gunzipSync(bytes).toString("utf8").split("\n").filter(Boolean));
  }
  return out;
}

/**
 * Archive and clean every day the table has: the days found must be the expected ones, each
 * row archived once in its own day, and the table empty afterwards.
 */
async function archiveEveryDay(
  db: TestDb,
  c: NodeContext,
  table: string,
  rows: [number, string, string][],
) {
  const expected = new Map(rows.map(([id, , day]) => [id, day]));
  const dates = await datesNeedingWork(c.ctx, "2025-12-01");
  expect(dates).toEqual([...new Set(expected.values())].sort());
  const archivedIn = new Map<number, string>();
  for (const date of dates) {
    await archiveDate(c.ctx, c.owner, date);
    for (const line of await archivedLines(c, table, date)) {
      const id = Number((JSON.parse(line) as { id: unknown }).id);
      expect(archivedIn.get(id), `row ${id} archived twice`).toBeUndefined();
      archivedIn.set(id, date);
    }
    await cleanupDate(c.ctx, c.owner, date);
  }
  expect(new Map([...archivedIn].sort(([a], [b]) => a - b))).toEqual(
    new Map([...expected].sort(([a], [b]) => a - b)),
  );
  expect(await db.query(`SELECT COUNT(*) AS n FROM ${table}`)).toEqual([
    { n: db.name === "PostgreSQL" ? "0" : 0 },
  ]);
}

describe.runIf(pg !== null)("PostgreSQL: partitions by timestamp", () => {
  const db = () => pg as TestDb;

  it("timestamptz in Europe/Berlin: each row in the day the zone gives it, across the DST change", async () => {
    await db().run(
      "CREATE TABLE pv (id BIGINT PRIMARY KEY, created_at TIMESTAMPTZ(6) NOT NULL, path TEXT)",
    );
    await db().run("CREATE INDEX pv_day ON pv (created_at, id)");
    for (const [id, utc] of BERLIN_ROWS) {
      await db().run("INSERT INTO pv VALUES ($1, $2::timestamp AT TIME ZONE 'UTC', $3)", [
        id,
        utc,
        `/p${id}`,
      ]);
    }
    // PostgreSQL's own view of each row's Berlin day agrees with the hand-written one.
    const own = await db().query(
      "SELECT id::int AS id, (created_at AT TIME ZONE 'Europe/Berlin')::date::text AS day FROM pv ORDER BY id",
    );
    expect(own).toEqual(
      BERLIN_ROWS.map(([id, , day]) => ({ id, day })).sort((a, b) => a.id - b.id),
    );
    const c = await open(db(), "pv", "created_at", "Europe/Berlin");
    try {
      expect(c.ctx.spec.day).toEqual({
        kind: "timestamp",
        aware: true,
        timeZone: "Europe/Berlin",
      });
      await archiveEveryDay(db(), c, "pv", BERLIN_ROWS);
    } finally {
      await c.close();
    }
  });

  it("a row committed late with a low key into an archived day stays, and is archived next", async () => {
    await db().run("CREATE TABLE pl (id BIGINT PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL)");
    await db().run(
      "INSERT INTO pl VALUES (10, '2025-10-13 08:00+02'), (11, '2025-10-13 23:59:59.999+02')",
    );
    const c = await open(db(), "pl", "created_at", "Europe/Berlin");
    try {
      await archiveDate(c.ctx, c.owner, "2025-10-13");
      await db().run("INSERT INTO pl VALUES (5, '2025-10-13 00:00+02')");
      await cleanupDate(c.ctx, c.owner, "2025-10-13");
      expect(await db().query("SELECT id::int AS id FROM pl")).toEqual([{ id: 5 }]);
      await archiveDate(c.ctx, c.owner, "2025-10-13");
      await cleanupDate(c.ctx, c.owner, "2025-10-13");
      const ids = (await archivedLines(c, "pl", "2025-10-13")).map((l) => JSON.parse(l).id);
      expect(ids.sort()).toEqual([10, 11, 5].sort());
      expect(await db().query("SELECT id FROM pl")).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it("timestamp without time zone: its date part, whatever the zone", async () => {
    await db().run("CREATE TABLE pw (id BIGINT PRIMARY KEY, at TIMESTAMP(6) NOT NULL)");
    for (const [id, wall] of WALL_ROWS)
      await db().run("INSERT INTO pw VALUES ($1, $2)", [id, wall]);
    const c = await open(db(), "pw", "at", "Europe/Berlin");
    try {
      await archiveEveryDay(db(), c, "pw", WALL_ROWS);
    } finally {
      await c.close();
    }
  });

  it("DATE: the days are found and read as dates", async () => {
    await db().run("CREATE TABLE pd (id BIGINT PRIMARY KEY, d DATE NOT NULL)");
    await db().run("INSERT INTO pd VALUES (1, '2025-10-13'), (2, '2025-10-13'), (3, '2025-10-14')");
    const c = await open(db(), "pd", "d");
    try {
      await archiveEveryDay(db(), c, "pd", [
        [1, "", "2025-10-13"],
        [2, "", "2025-10-13"],
        [3, "", "2025-10-14"],
      ]);
    } finally {
      await c.close();
    }
  });
});

describe.runIf(maria !== null)("MariaDB: partitions by timestamp", () => {
  const db = () => maria as TestDb;

  it("TIMESTAMP in Europe/Berlin: each row in the day the zone gives it, across the DST change", async () => {
    await db().run("SET time_zone = '+00:00'");
    await db().run(
      "CREATE TABLE mv (id BIGINT PRIMARY KEY, created_at TIMESTAMP(6) NULL DEFAULT NULL, path TEXT, INDEX mv_day (created_at, id))",
    );
    for (const [id, utc] of BERLIN_ROWS) {
      await db().run("INSERT INTO mv VALUES (?, ?, ?)", [id, utc, `/p${id}`]);
    }
    const c = await open(db(), "mv", "created_at", "Europe/Berlin");
    try {
      expect(c.ctx.spec.day).toMatchObject({ kind: "timestamp", aware: true });
      await archiveEveryDay(db(), c, "mv", BERLIN_ROWS);
    } finally {
      await c.close();
    }
  });

  it("DATETIME: its date part, whatever the zone", async () => {
    await db().run(
      "CREATE TABLE mw (id BIGINT PRIMARY KEY, at DATETIME(6) NOT NULL, INDEX mw_day (at, id))",
    );
    for (const [id, wall] of WALL_ROWS) await db().run("INSERT INTO mw VALUES (?, ?)", [id, wall]);
    const c = await open(db(), "mw", "at", "Europe/Berlin");
    try {
      expect(c.ctx.spec.day).toMatchObject({ kind: "timestamp", aware: false });
      await archiveEveryDay(db(), c, "mw", WALL_ROWS);
    } finally {
      await c.close();
    }
  });
});

describe("SQLite: partitions by timestamp text", () => {
  const db = sqliteDb(mkdtempSync(join(dir, "sqlite-")));
  afterAll(() => db.close());

  it("UTC text with either separator, with or without Z: its date part", async () => {
    await db.run(
      "CREATE TABLE sv (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TIMESTAMP NOT NULL)",
    );
    await db.run("CREATE INDEX sv_day ON sv (created_at, id)");
    const rows: [number, string, string][] = [
      [1, "2025-10-13T00:00:00.000Z", "2025-10-13"],
      [2, "2025-10-13 23:59:59.999", "2025-10-13"],
      [3, "2025-10-14T00:00:00Z", "2025-10-14"],
      [4, "2025-10-14 12:00:00", "2025-10-14"],
    ];
    for (const [id, text] of rows) await db.run("INSERT INTO sv VALUES (?, ?)", [id, text]);
    const c = await open(db, "sv", "created_at");
    try {
      await archiveEveryDay(db, c, "sv", rows);
    } finally {
      await c.close();
    }
  });

  it("refuses a zone other than UTC for text it cannot place in one", async () => {
    await db.run("CREATE TABLE sz (id INTEGER PRIMARY KEY AUTOINCREMENT, at DATETIME NOT NULL)");
    await expect(open(db, "sz", "at", "Europe/Berlin")).rejects.toThrow(BadInputError);
    expect(() =>
      loadConfig({ SLUICE_DB: db.url, SLUICE_PARTITION_TIME_ZONE: "Mars/Olympus" }),
    ).toThrow(/SLUICE_PARTITION_TIME_ZONE/);
  });
});

/**
 * A delete batch binds its keys and the day's condition: two bounds for a timestamp day, one
 * for a date. A batch asked larger than the database's parameter limit must still fit both
 * (SQLite binds at most 32,766; mysql2 writes MariaDB's values into the statement's text).
 */
describe("a delete batch as large as the parameter limit allows, on a timestamp day", () => {
  it("SQLite (a key list where the range holds a row no part holds): 32,770 rows with --batch-size 100000", async () => {
    const db = sqliteDb(mkdtempSync(join(dir, "sqlite-big-")));
    try {
      await db.run("CREATE TABLE sbig (id INTEGER PRIMARY KEY, at TIMESTAMP NOT NULL)");
      await db.run(
        "INSERT INTO sbig WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 32771) SELECT i, '2025-10-13 12:00:00' FROM s WHERE i <> 100",
      );
      const c = await open(db, "sbig", "at");
      try {
        await archiveDate(c.ctx, c.owner, "2025-10-13");
        // A key inside the archived range that no part holds: the delete names its keys.
        await db.run("INSERT INTO sbig VALUES (100, '2025-10-13 13:00:00')");
        const out = await cleanupDate(c.ctx, c.owner, "2025-10-13", { batchSize: 100_000 });
        expect(out).toMatchObject({ complete: true, deleted: 32_770 });
        expect(await db.query("SELECT id FROM sbig")).toEqual([{ id: 100 }]);
      } finally {
        await c.close();
      }
    } finally {
      await db.close();
    }
  });
});

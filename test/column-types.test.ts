import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { archiveDate, cleanupDate, restoreDate } from "../src/core/archive/jobs.js";
import { bytesAsyncBuffer, decodeParquetLines } from "../src/core/archive/parquet/index.js";
import { getText } from "../src/core/store.js";
import { loadConfig } from "../src/node/config.js";
import { type NodeContext, openContext } from "../src/node/context.js";
import { type TestDb, mariaDb, postgresDb } from "./servers.js";

/**
 * Every value archived as the database holds it: dates and times with all their digits and no
 * time zone applied, exact numerics and big integers, intervals, JSON, binary. The process runs
 * in a time zone far from UTC, as a server might; the archive must not care.
 */
const DAY = "2025-10-13";
const dir = mkdtempSync(join(tmpdir(), "sluice-types-"));
const [pg, maria] = [await postgresDb(), await mariaDb()];
afterAll(async () => {
  await pg?.close();
  await maria?.close();
  rmSync(dir, { recursive: true, force: true });
});
const tz = process.env.TZ;
beforeEach(() => {
  process.env.TZ = "America/New_York";
});
afterEach(() => {
  process.env.TZ = tz;
});

type Format = "jsonl" | "parquet";
const FORMATS: Format[] = ["jsonl", "parquet"];

async function open(db: TestDb, table: string, format: Format): Promise<NodeContext> {
  return openContext(
    loadConfig({
      SLUICE_DB: db.url,
      SLUICE_STORE: `file:${join(dir, db.name, format, table)}`,
      SLUICE_TABLE: table,
      SLUICE_FORMAT: format,
    }),
  );
}

/**
 * The archived lines of the date's only part, as text, after checking the part has the format
 * asked for (a Parquet part decodes to the exact lines of its JSONL part).
 */
async function lines(c: NodeContext, table: string, format: Format): Promise<string[]> {
  const [part] = await c.ctx.ledger.parts(table, DAY);
  if (!part) throw new Error("no part");
  expect(part.objectKey.endsWith(format === "parquet" ? ".parquet" : ".jsonl.gz")).toBe(true);
  const body = await c.ctx.store.get(part.objectKey);
  if (!body) throw new Error("no object");
  const bytes = new Uint8Array(await new Response(body).arrayBuffer());
  if (format === "jsonl") return gunzipSync(bytes).toString("utf8").split("\n").filter(Boolean);
  const out: string[] = [];
  for await (const batch of decodeParquetLines(bytesAsyncBuffer(bytes))) out.push(...batch);
  return out;
}

/** The columns the date's only part's manifest lists. */
async function manifestColumns(c: NodeContext, table: string) {
  const [part] = await c.ctx.ledger.parts(table, DAY);
  const text = await getText(c.ctx.store, part?.manifestKey as string);
  return (JSON.parse(text as string) as { columns: { name: string; encoding?: string }[] }).columns;
}

describe.runIf(pg !== null).each(FORMATS)("PostgreSQL column types (%s)", (format) => {
  const db = () => pg as TestDb;
  const t = `ty_${format}`;
  it("archives each type as PostgreSQL's own text; cleanup matches them; restore gives the same rows back", async () => {
    await db().run(`CREATE TABLE ${t} (
      id BIGINT PRIMARY KEY, event_date DATE NOT NULL, ts6 TIMESTAMP(6), tstz TIMESTAMPTZ(6),
      d DATE, t TIME(6), num NUMERIC(38, 10), big BIGINT, iv INTERVAL, js JSON, jb JSONB,
      bin BYTEA, f8 DOUBLE PRECISION, f4 REAL, b BOOLEAN, txt TEXT, nothing TEXT)`);
    await db().run(`INSERT INTO ${t} VALUES
      (1, '${DAY}', '2025-10-13 12:00:00.123456', '2025-10-13 12:00:00.123456+00', '2025-10-13',
       '23:59:59.999999', 12345678901234567890.0123456789, 9007199254740993,
       '1 day 02:03:04.5', '{"a": [1,2], "n": 12345678901234567890}',
       '{"b": 1.50, "a": "x"}', '\\xdeadbeef', 0.1, 0.1, true, 'naïve 😀 "q" \\ end', NULL),
      (2, '${DAY}', '1999-12-31 23:59:59', '1999-12-31 23:59:59-05', '0001-01-01', '00:00:00',
       -0.0000000001, -9223372036854775808, '-3 years', 'null', '[]', '\\x', 1e308, -1.5, false,
       '', NULL)`);
    await db().run(`CREATE TABLE ${t}_before AS SELECT * FROM ${t}`);
    const c = await open(db(), t, format);
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      const [one] = await lines(c, t, format);
      for (const exact of [
        '"event_date":"2025-10-13"',
        '"ts6":"2025-10-13T12:00:00.123456"',
        '"tstz":"2025-10-13T12:00:00.123456+00:00"',
        '"d":"2025-10-13"',
        '"t":"23:59:59.999999"',
        '"num":12345678901234567890.0123456789',
        '"big":9007199254740993',
        '"iv":"1 day 02:03:04.5"',
        '"bin":"\\\\xdeadbeef"',
        '"nothing":null',
      ]) {
        expect(one).toContain(exact);
      }
      // The manifest says how the line holds what is not plain text: bytea as hex.
      const listed = await manifestColumns(c, t);
      expect(listed.filter((x) => x.encoding).map((x) => [x.name, x.encoding])).toEqual([
        ["bin", "hex"],
      ]);
      expect(listed.map((x) => x.name)[0]).toBe("id");
      // JSON as its exact text: a json null stays apart from SQL NULL.
      expect(JSON.parse(one as string)).toMatchObject({
        js: '{"a": [1,2], "n": 12345678901234567890}',
        jb: '{"a": "x", "b": 1.50}',
      });
      // Compared exactly, every row is still as archived: cleanup deletes both.
      expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({ deleted: 2 });
      // Restore: each archived member read back into its column's type, the same rows again,
      // as PostgreSQL compares them (json compared as text: it has no equality).
      expect(await restoreDate(c.ctx, c.owner, DAY)).toMatchObject({ inserted: 2 });
      const [diff] = await db().query(
        `SELECT COUNT(*) AS n FROM (SELECT o::text FROM ${t}_before o EXCEPT SELECT n::text FROM ${t} n) x`,
      );
      expect(Number(diff?.n)).toBe(0);
      expect(await db().count(t, DAY)).toBe(2);
    } finally {
      await c.close();
    }
  });
});

describe.runIf(maria !== null).each(FORMATS)("MariaDB column types (%s)", (format) => {
  const db = () => maria as TestDb;
  const t = `ty_${format}`;
  it("archives each type exactly (temporal and decimal text, binary as base64); cleanup matches them; restore gives them back", async () => {
    await db().run(`CREATE TABLE ${t} (
      id BIGINT PRIMARY KEY, event_date DATE NOT NULL, dt6 DATETIME(6), ts3 TIMESTAMP(3) NULL,
      d DATE, t TIME(6), num DECIMAL(38, 10), big BIGINT, bits BIT(8), vb VARBINARY(8),
      bl BLOB, js JSON, f8 DOUBLE, f4 FLOAT, txt TEXT, nothing TEXT)`);
    await db().run(`INSERT INTO ${t} VALUES
      (1, '${DAY}', '2025-10-13 12:00:00.123456', '2025-10-13 12:00:00.123', '2025-10-13',
       '23:59:59.999999', 12345678901234567890.0123456789, 9007199254740993, b'10101010',
       0xDEADBEEF, 0x00FF, '{"a": [1, 2], "n": 12345678901234567890}', 0.1, 0.1,
       'naïve 😀 "q" \\\\ end', NULL)`);
    await db().run(`CREATE TABLE ${t}_before AS SELECT * FROM ${t}`);
    const c = await open(db(), t, format);
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      const [one] = await lines(c, t, format);
      for (const exact of [
        '"event_date":"2025-10-13"',
        '"dt6":"2025-10-13 12:00:00.123456"',
        '"ts3":"2025-10-13 12:00:00.123"',
        '"t":"23:59:59.999999"',
        '"num":"12345678901234567890.0123456789"',
        '"big":"9007199254740993"',
        '"bits":"qg=="',
        '"vb":"3q2+7w=="',
        '"bl":"AP8="',
        '"f8":0.1',
        '"f4":0.1',
        '"nothing":null',
      ]) {
        expect(one).toContain(exact);
      }
      expect(JSON.parse(one as string).js).toBe('{"a": [1, 2], "n": 12345678901234567890}');
      const listed = await manifestColumns(c, t);
      expect(listed.filter((x) => x.encoding).map((x) => [x.name, x.encoding])).toEqual([
        ["bits", "base64"],
        ["vb", "base64"],
        ["bl", "base64"],
      ]);
      expect(JSON.parse(one as string).txt).toBe('naïve 😀 "q" \\ end');
      expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({ deleted: 1 });
      // Restore: base64 back to bytes, text back to each type; MariaDB compares the rows.
      expect(await restoreDate(c.ctx, c.owner, DAY)).toMatchObject({ inserted: 1 });
      const [diff] = await db().query(
        `SELECT (SELECT COUNT(*) FROM (SELECT * FROM ${t}_before EXCEPT SELECT * FROM ${t}) x)
              + (SELECT COUNT(*) FROM (SELECT * FROM ${t} EXCEPT SELECT * FROM ${t}_before) y) AS n`,
      );
      expect(Number(diff?.n)).toBe(0);
      expect(await db().count(t, DAY)).toBe(1);
    } finally {
      await c.close();
    }
  });
});

describe.each(FORMATS)("SQLite column types (%s)", (format) => {
  it("archives BLOBs as \\x + hex (text starting with \\ escaped by one more), cleanup matches them, restore gives every value back with its type", async () => {
    const file = join(dir, `types-${format}.db`);
    const sqlite = new Database(file);
    try {
      // An undeclared column has BLOB affinity too, and may hold any type in any row.
      sqlite.exec(`CREATE TABLE ty (id INTEGER PRIMARY KEY, event_date TEXT NOT NULL,
        big INTEGER, r REAL, num NUMERIC, txt TEXT, bl BLOB, anything, nul TEXT)`);
      const insert = sqlite.prepare("INSERT INTO ty VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
      const rows: unknown[][] = [
        [
          1,
          DAY,
          9007199254740993n,
          0.1,
          "12.50",
          'naïve 😀 "q" \\ end',
          Buffer.from("deadbeef", "hex"),
          Buffer.from([0]),
          null,
        ],
        [2, DAY, -9223372036854775808n, 1e308, 3, "", Buffer.alloc(0), "\\x00ff", null],
        [3, DAY, 0, -1.5, null, "\\", "\\xdeadbeef", "\\\\two", null],
        [4, DAY, 1, 2.5, 1, "x", 7, 0.5, null],
        [5, DAY, 2, null, null, null, null, null, null],
      ];
      sqlite.defaultSafeIntegers(true);
      for (const r of rows) insert.run(...r);
      sqlite.exec("CREATE TABLE ty_before AS SELECT * FROM ty");
      const c = await openContext(
        loadConfig({
          SLUICE_DB: `sqlite:${file}`,
          SLUICE_STORE: `file:${join(dir, "sqlite", format, "ty")}`,
          SLUICE_TABLE: "ty",
          SLUICE_FORMAT: format,
        }),
      );
      const warnings: string[] = [];
      c.ctx.onWarning = (m) => warnings.push(m);
      try {
        await archiveDate(c.ctx, c.owner, DAY);
        // SQLite writes a REAL as 1.0e+308, which a DOUBLE gives back as 1e+308 (and a column
        // holding a blob in one row and a number in another fits no one type): the part goes
        // as JSONL, and the user is told where.
        expect(warnings).toEqual(
          format === "parquet"
            ? [
                expect.stringMatching(
                  /^ty 2025-10-13 part 0 is written as gzip JSONL: .*\(line 2: ".*\\"r\\":1\.0e\+308,.*" would come back as ".*\\"r\\":1e\+308,.*"\)$/,
                ),
              ]
            : [],
        );
        const byId = new Map(
          (await lines(c, "ty", "jsonl")).map((l) => [JSON.parse(l).id as number, l] as const),
        );
        for (const [id, exact] of [
          [1, '"big":9007199254740993'],
          [1, '"bl":"\\\\xDEADBEEF"'],
          [1, '"anything":"\\\\x00"'],
          [1, '"txt":"naïve 😀 \\"q\\" \\\\ end"'],
          [2, '"bl":"\\\\x"'],
          [2, '"anything":"\\\\\\\\x00ff"'],
          [3, '"bl":"\\\\\\\\xdeadbeef"'],
          [3, '"txt":"\\\\"'],
          [4, '"bl":7'],
          [4, '"anything":0.5'],
          [5, '"bl":null'],
        ] as const) {
          expect(byId.get(id)).toContain(exact);
        }
        const listed = await manifestColumns(c, "ty");
        expect(listed.filter((x) => x.encoding).map((x) => [x.name, x.encoding])).toEqual([
          ["bl", "hex"],
          ["anything", "hex"],
        ]);
        expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({ deleted: 5 });
        expect(await restoreDate(c.ctx, c.owner, DAY)).toMatchObject({ inserted: 5 });
        // SQLite compares the rows, with each value's storage class: a blob is never its text.
        const typed = (t: string) =>
          `SELECT id, event_date, big, typeof(big), r, typeof(r), num, typeof(num), txt, typeof(txt), bl, typeof(bl), anything, typeof(anything), nul FROM ${t}`;
        const diff = sqlite
          .prepare(
            `SELECT (SELECT COUNT(*) FROM (${typed("ty_before")} EXCEPT ${typed("ty")}))
                  + (SELECT COUNT(*) FROM (${typed("ty")} EXCEPT ${typed("ty_before")})) AS n`,
          )
          .get() as { n: bigint };
        expect(Number(diff.n)).toBe(0);
        expect(
          Number((sqlite.prepare("SELECT COUNT(*) AS n FROM ty").get() as { n: bigint }).n),
        ).toBe(5);
      } finally {
        await c.close();
      }
    } finally {
      sqlite.close();
    }
  });
});

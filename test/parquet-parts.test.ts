import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { afterAll, describe, expect, it } from "vitest";
import { archiveDate, cleanupDate, withLease } from "../src/core/archive/jobs.js";
import { verifyPartition } from "../src/core/archive/verify.js";
import { CleanupIncompleteError } from "../src/core/errors.js";
import { getText } from "../src/core/store.js";
import { loadConfig } from "../src/node/config.js";
import { type NodeContext, openContext } from "../src/node/context.js";
import { queryRows } from "./helpers.js";
import { type S3Server, startS3rver } from "./s3rver.js";
import { type TestDb, mariaDb, postgresDb, sqliteDb } from "./servers.js";

/**
 * Parquet parts from each database to a folder and to an S3-protocol server: DuckDB reads
 * every row back with the source's values and types, over several row groups; a damaged part
 * fails verification and empty is deleted on its strength.
 */
const DAY = "2025-10-13";
const ROWS = 3000;
const dir = mkdtempSync(join(tmpdir(), "sluice-parquet-"));
const dbs = [sqliteDb(dir), await postgresDb(), await mariaDb()].filter(
  (d): d is TestDb => d !== null,
);
const s3: S3Server = await startS3rver(["parquet"]);
afterAll(async () => {
  for (const d of dbs) await d.close();
  s3.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Each database's spelling of the test table's types. */
function createTable(db: TestDb, table: string): string {
  const [double, bool, text] =
    db.name === "PostgreSQL"
      ? ["DOUBLE PRECISION", "BOOLEAN", "TEXT"]
      : db.name === "MariaDB"
        ? ["DOUBLE", "BOOLEAN", "TEXT"]
        : ["REAL", "BOOLEAN", "TEXT"];
  return `CREATE TABLE ${table} (id BIGINT PRIMARY KEY, event_date VARCHAR(10) NOT NULL,
    n INTEGER NOT NULL, big BIGINT, f ${double}, b ${bool}, txt ${text}, empty ${text})`;
}

/** `count` rows of varied values (unicode, quotes, nulls, negative and large numbers). */
async function fill(db: TestDb, table: string, count: number, from = 1): Promise<void> {
  for (let start = from; start < from + count; start += 250) {
    const values: unknown[] = [];
    const rows: string[] = [];
    for (let id = start; id < Math.min(start + 250, from + count); id++) {
      rows.push(db.name === "PostgreSQL" ? "($1,$2,$3,$4,$5,$6,$7,$8)" : "(?,?,?,?,?,?,?,?)");
      const bool = id % 3 === 0 ? null : id % 2 === 0;
      values.push(
        id,
        DAY,
        ((id * 7919) % 100_000) - 50_000,
        id % 5 === 0 ? null : BigInt(id) * 1_000_003n,
        // SQLite writes an integral REAL as -99.0 (such a part goes as JSONL): none here.
        id % 7 === 0 ? null : (id % 1000) / 8 - 100.0625,
        db.name === "PostgreSQL" ? bool : bool === null ? null : bool ? 1 : 0,
        id % 11 === 0 ? "" : `naïve 😀 "q" \\ ${id}`,
        null,
      );
    }
    if (db.name === "PostgreSQL") {
      // One statement per row: $n placeholders do not repeat across rows.
      for (let r = 0; r < rows.length; r++) {
        await db.run(`INSERT INTO ${table} VALUES ${rows[0]}`, values.slice(r * 8, r * 8 + 8));
      }
    } else await db.run(`INSERT INTO ${table} VALUES ${rows.join(",")}`, values);
  }
}

async function open(db: TestDb, table: string, store: string, env: Record<string, string> = {}) {
  return openContext(
    loadConfig({
      SLUICE_DB: db.url,
      SLUICE_STORE: store,
      SLUICE_TABLE: table,
      SLUICE_FORMAT: "parquet",
      SLUICE_ROW_GROUP_ROWS: "500",
      ...env,
    }),
  );
}

/** The only part of the day, copied to a local file DuckDB reads. */
async function localCopy(c: NodeContext, table: string): Promise<string> {
  const [part] = await c.ctx.ledger.parts(table, DAY);
  expect(part?.objectKey).toMatch(/\.parquet$/);
  const body = await c.ctx.store.get(part?.objectKey as string);
  const file = join(dir, `${table}-${Date.now()}.parquet`);
  writeFileSync(file, new Uint8Array(await new Response(body).arrayBuffer()));
  return file;
}

/** Each value as text, as the database itself writes it. */
function textOf(db: TestDb, col: string): string {
  if (db.name === "PostgreSQL") return `${col}::text`;
  return `CAST(${col} AS ${db.name === "MariaDB" ? "CHAR" : "TEXT"})`;
}

const COLUMNS = ["id", "event_date", "n", "big", "f", "b", "txt", "empty"];

for (const db of dbs) {
  describe(`${db.name} -> Parquet`, () => {
    for (const [where, store] of [
      ["a folder", (t: string) => `file:${join(dir, "archive", db.name, t)}`],
      ["the S3-protocol server", (t: string) => s3.storeUrl("parquet", `${db.name}/${t}`)],
    ] as const) {
      it(`to ${where}: DuckDB reads every row back, value for value and type for type, over several row groups`, async () => {
        const table = `pq_${where === "a folder" ? "fs" : "s3"}`;
        await db.run(createTable(db, table));
        await fill(db, table, ROWS);
        const before = await db.query(
          `SELECT ${COLUMNS.map((c) => `${textOf(db, c)} AS ${c}`).join(", ")} FROM ${table} ORDER BY id`,
        );
        const c = await open(db, table, store(table));
        try {
          const job = await archiveDate(c.ctx, c.owner, DAY);
          expect(job.written?.eventCount).toBe(ROWS);
          const [part] = await c.ctx.ledger.parts(table, DAY);
          expect(part?.verifiedAt).not.toBeNull();
          const manifest = JSON.parse(
            (await getText(c.ctx.store, part?.manifestKey as string)) as string,
          );
          expect(manifest).toMatchObject({ format: "sluice-parquet/1", rows: ROWS });
          const file = await localCopy(c, table);
          const duck = await (await DuckDBInstance.create(":memory:")).connect();
          const types = (
            await duck.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`)
          ).getRowObjects();
          // Integers stay integers, doubles doubles, text text; PostgreSQL's boolean is one.
          expect(types.map((t) => [t.column_name, t.column_type])).toEqual([
            ["id", "BIGINT"],
            ["event_date", "VARCHAR"],
            ["n", "BIGINT"],
            ["big", "BIGINT"],
            ["f", "DOUBLE"],
            ["b", db.name === "PostgreSQL" ? "BOOLEAN" : "BIGINT"],
            ["txt", "VARCHAR"],
            ["empty", "VARCHAR"],
          ]);
          const groups = await duck.runAndReadAll(
            `SELECT COUNT(DISTINCT row_group_id)::INTEGER AS g FROM parquet_metadata('${file}')`,
          );
          expect(groups.getRowObjects()[0]?.g).toBe(ROWS / 500);
          const read = await duck.runAndReadAll(
            `SELECT ${COLUMNS.map((col) => `CAST(${col} AS VARCHAR) AS ${col}`).join(", ")}
               FROM read_parquet('${file}') ORDER BY id`,
          );
          const after = read.getRowObjects();
          expect(after).toHaveLength(ROWS);
          // Doubles compared as numbers (DuckDB writes -99 as "-99.0"); MariaDB and SQLite
          // hold a boolean as 0/1, and so does the part.
          const asNumber = (r: Record<string, unknown>) => ({
            ...r,
            f: r.f === null ? null : Number(r.f),
          });
          expect(after.map(asNumber)).toEqual(before.map(asNumber));
          expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({ deleted: ROWS });
          expect(await db.count(table, DAY)).toBe(0);
        } finally {
          await c.close();
        }
      });
    }

    it("a flipped byte inside a row group fails verification; nothing is deleted, and the rerun rewrites the part", async () => {
      const table = "pq_bad";
      await db.run(createTable(db, table));
      await fill(db, table, ROWS);
      const root = join(dir, "bad", db.name);
      const c = await open(db, table, `file:${root}`);
      try {
        await archiveDate(c.ctx, c.owner, DAY);
        const [part] = await c.ctx.ledger.parts(table, DAY);
        expect(part?.verifiedAt).not.toBeNull();
        // The stored object rots after it was verified; a re-verification reads it again.
        const path = join(root, part?.objectKey as string);
        const bytes = readFileSync(path);
        bytes[Math.floor(bytes.length / 3)] =
          (bytes[Math.floor(bytes.length / 3)] as number) ^ 0x10;
        writeFileSync(path, bytes);
        await expect(
          withLease(c.ctx, c.owner, DAY, (lease) =>
            verifyPartition(c.ctx, lease, DAY, { all: true }),
          ),
        ).rejects.toThrow(/chunk 0 \(bytes 0\.\.\) differs from its recorded sha256/);
        expect((await c.ctx.ledger.parts(table, DAY))[0]?.verifiedAt).toBeNull();
        await expect(cleanupDate(c.ctx, c.owner, DAY)).rejects.toThrow();
        expect(await db.count(table, DAY)).toBe(ROWS);
        // The part lost its verified mark: the next run writes it again from the source.
        expect((await archiveDate(c.ctx, c.owner, DAY)).written?.eventCount).toBe(ROWS);
        expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({ deleted: ROWS });
      } finally {
        await c.close();
      }
    });
  });
}

it("a line Parquet cannot give back, met after row groups went to the store: the part goes as JSONL, nothing of the Parquet upload left", async () => {
  const db = dbs[0] as TestDb;
  const table = "pq_late_refusal";
  await db.run(`CREATE TABLE ${table} (id INTEGER PRIMARY KEY, event_date TEXT NOT NULL, f REAL)`);
  const rows = 12_000;
  for (let id = 1; id <= rows; id += 500) {
    const values: unknown[] = [];
    // SQLite writes the REAL 2.0 as "2.0"; a DOUBLE gives it back as 2.
    for (let i = id; i < id + 500; i++) values.push(i, DAY, i === 9000 ? 2 : i + 0.5);
    await db.run(
      `INSERT INTO ${table} VALUES ${Array.from({ length: 500 }, () => "(?,?,?)").join(",")}`,
      values,
    );
  }
  const root = join(dir, "late");
  const c = await open(db, table, `file:${root}`, { SLUICE_ROW_GROUP_ROWS: "1000" });
  const warnings: string[] = [];
  c.ctx.onWarning = (m) => warnings.push(m);
  try {
    const { written } = await archiveDate(c.ctx, c.owner, DAY);
    expect(written?.objectKey).toMatch(/\.jsonl\.gz$/);
    expect(written?.eventCount).toBe(rows);
    expect(warnings).toEqual([
      expect.stringMatching(
        /part 0 is written as gzip JSONL: .*\(line 9000: ".*\\"f\\":2\.0}" would come back as ".*\\"f\\":2}"\)$/,
      ),
    ]);
    const folder = join(root, table, `date=${DAY}`);
    expect(
      readdirSync(folder)
        .map((n) => n.replace(/-[0-9a-f]{8}\./, "-*."))
        .sort(),
    ).toEqual(["part-0000-*.jsonl.gz", "part-0000-*.manifest.json"]);
    expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({ deleted: rows });
  } finally {
    await c.close();
  }
});

it("sluice query --hot over a Parquet part a cleanup went part-way through: each row once", async () => {
  const db = dbs[0] as TestDb;
  const table = "pq_hot";
  await db.run(createTable(db, table));
  await fill(db, table, ROWS);
  const c = await open(db, table, `file:${join(dir, "hot-query")}`);
  const sums = `SELECT COUNT(*)::BIGINT AS n, SUM(id)::BIGINT AS ids, SUM(n)::BIGINT AS ns FROM ${table}`;
  const ask = async (hot: boolean) =>
    (await queryRows(c, sums, { hot, cacheDir: join(dir, "cache") }))[0] as Record<string, unknown>;
  const truth = async () => {
    const [r] = await db.query(`SELECT COUNT(*) AS n, SUM(id) AS ids, SUM(n) AS ns FROM ${table}`);
    return { n: String(r?.n), ids: String(r?.ids ?? 0), ns: String(r?.ns ?? 0) };
  };
  const asText = (r: Record<string, unknown>) => ({
    n: String(r.n),
    ids: String(r.ids ?? 0),
    ns: String(r.ns ?? 0),
  });
  try {
    const all = await truth();
    await archiveDate(c.ctx, c.owner, DAY);
    // The database keeps one row, and another is changed after its archive: the part holds
    // lines that are no deleted row, which the query must leave out.
    expect(await db.blockDelete(table, 1234)).toBe("silent");
    await db.run(`UPDATE ${table} SET n = n + 1 WHERE id = 2000`);
    await expect(cleanupDate(c.ctx, c.owner, DAY)).rejects.toBeInstanceOf(CleanupIncompleteError);
    expect(await db.count(table, DAY)).toBe(2);
    expect(asText(await ask(true))).toEqual({
      n: String(ROWS),
      ids: all.ids,
      ns: String(Number(all.ns) + 1),
    });
    await db.unblock(table);
  } finally {
    await c.close();
  }
});

it("a part larger than several multipart parts goes to the S3 server in 5 MiB parts, and reads back whole", async () => {
  const db = dbs[0] as TestDb;
  const table = "pq_big";
  await db.run(
    "CREATE TABLE pq_big (id INTEGER PRIMARY KEY, event_date TEXT NOT NULL, payload TEXT)",
  );
  const rows = 30_000;
  for (let id = 1; id <= rows; id += 500) {
    const values: unknown[] = [];
    for (let i = id; i < id + 500; i++) values.push(i, DAY, randomBytes(300).toString("base64"));
    await db.run(
      `INSERT INTO pq_big VALUES ${Array.from({ length: 500 }, () => "(?,?,?)").join(",")}`,
      values,
    );
  }
  const c = await open(db, table, `${s3.storeUrl("parquet", "big")}&partSizeMiB=5`, {
    SLUICE_ROW_GROUP_ROWS: "2000",
  });
  try {
    expect((await archiveDate(c.ctx, c.owner, DAY)).written?.eventCount).toBe(rows);
    const [part] = await c.ctx.ledger.parts(table, DAY);
    expect(part?.fileSize).toBeGreaterThan(2 * (5 << 20));
    const file = await localCopy(c, table);
    const duck = await (await DuckDBInstance.create(":memory:")).connect();
    const read = await duck.runAndReadAll(
      `SELECT COUNT(*)::INTEGER AS n, SUM(id)::BIGINT AS ids, SUM(length(payload))::BIGINT AS len FROM read_parquet('${file}')`,
    );
    expect(read.getRowObjects()[0]).toEqual({
      n: rows,
      ids: BigInt((rows * (rows + 1)) / 2),
      len: BigInt(rows * 400),
    });
  } finally {
    await c.close();
  }
});

it("tells the runtime's pacer of every row it encodes and then decodes, and when the writer is done", async () => {
  const db = dbs[0] as TestDb;
  const table = "pq_pace";
  await db.run(createTable(db, table));
  await fill(db, table, ROWS);
  const c = await open(db, table, `file:${join(dir, "archive", "pace")}`);
  let counted = 0;
  const ends: number[] = [];
  c.ctx.pacer = {
    count: (n) => {
      counted += n;
    },
    end: () => {
      ends.push(counted);
    },
  };
  try {
    expect((await archiveDate(c.ctx, c.owner, DAY)).written?.eventCount).toBe(ROWS);
    // The writer's end comes before verification reads a row: its footer is garbage by then.
    expect(ends).toEqual([ROWS, 2 * ROWS]);
  } finally {
    await c.close();
  }
});

import { join } from "node:path";
import Database from "better-sqlite3";
import mysql from "mysql2/promise";
import pg from "pg";
import type { Row } from "../src/core/sql/source.js";

/**
 * The databases the tests run against, each behind one small interface: a SQLite file, and
 * the machine's PostgreSQL and MariaDB, each in a schema/database of its own that is dropped
 * at the end. Outside CI a missing server gives null and a loud line; in CI (CI=true) it throws.
 */
export interface TestDb {
  name: "SQLite" | "PostgreSQL" | "MariaDB";
  /** Where sluice connects (SLUICE_DB): the isolated schema/database. */
  url: string;
  /** The rows of one date, in key order, as the database has them. */
  rows(table: string, date: string): Promise<Row[]>;
  count(table: string, date: string): Promise<number>;
  /** The ledger's state of a partition, read directly ("none" before there is one). */
  ledgerState(table: string, date: string): Promise<string>;
  run(sql: string, params?: unknown[]): Promise<void>;
  /** Rows of a query, read by the database's own client (placeholders: `?`, or `$1` on PostgreSQL). */
  query(sql: string, params?: unknown[]): Promise<Row[]>;
  /** Make the database refuse to delete one row; `silent`: it skips it, else it errors. */
  blockDelete(table: string, id: number): Promise<"silent" | "error">;
  unblock(table: string): Promise<void>;
  close(): Promise<void>;
}

const isolated = `sluice_t_${process.pid}_${Date.now().toString(36)}`;

function unavailable(name: string, base: string, env: string, err: unknown): null {
  const why = `${name} at ${base}: ${(err as Error).message}`;
  if (process.env.CI === "true") throw new Error(`${why} (required in CI)`);
  console.warn(`\n*** SKIPPING ${name} tests: no server (${why}); set ${env} ***\n`);
  return null;
}

/** A SQLite file in `dir`. */
export function sqliteDb(dir: string): TestDb {
  const file = join(dir, "hot.db");
  let handle: Database.Database | null = null;
  const db = () => {
    if (!handle) {
      handle = new Database(file);
      handle.pragma("busy_timeout = 10000");
    }
    return handle;
  };
  return {
    name: "SQLite",
    url: `sqlite:${file}`,
    rows: async (t, d) =>
      db().prepare(`SELECT * FROM ${t} WHERE event_date = ? ORDER BY id`).all(d) as Row[],
    count: async (t, d) =>
      (
        db().prepare(`SELECT COUNT(*) AS n FROM ${t} WHERE event_date = ?`).get(d) as {
          n: number;
        }
      ).n,
    ledgerState: async (t, d) => {
      try {
        const r = db()
          .prepare('SELECT state FROM archive_metadata WHERE source_table = ? AND "date" = ?')
          .get(t, d) as { state: string } | undefined;
        return r?.state ?? "none";
      } catch {
        return "none"; // no ledger yet
      }
    },
    run: async (sql, params = []) => {
      db()
        .prepare(sql)
        .run(...params);
    },
    query: async (sql, params = []) =>
      db()
        .prepare(sql)
        .all(...params) as Row[],
    async blockDelete(t, id) {
      db().exec(
        `CREATE TRIGGER keep_one BEFORE DELETE ON ${t} WHEN OLD.id = ${id} BEGIN SELECT RAISE(IGNORE); END`,
      );
      return "silent";
    },
    unblock: async () => {
      db().exec("DROP TRIGGER keep_one");
    },
    close: async () => {
      handle?.close();
    },
  };
}

/** The machine's PostgreSQL (SLUICE_TEST_PG_URL), in a schema of its own. */
export async function postgresDb(): Promise<TestDb | null> {
  const base = process.env.SLUICE_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
  const admin = new pg.Client({ connectionString: base, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${isolated}`);
  } catch (err) {
    await admin.end().catch(() => undefined);
    return unavailable("PostgreSQL", base, "SLUICE_TEST_PG_URL", err);
  }
  await admin.query(`SET search_path = ${isolated}`);
  return {
    name: "PostgreSQL",
    url: `${base}${base.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${isolated}`)}`,
    rows: async (t, d) =>
      (await admin.query(`SELECT * FROM ${t} WHERE event_date = $1 ORDER BY id`, [d])).rows.map(
        (r: Row) => ({ ...r, id: Number(r.id), ts: Number(r.ts) }),
      ),
    count: async (t, d) =>
      Number(
        (await admin.query(`SELECT COUNT(*) AS n FROM ${t} WHERE event_date = $1`, [d])).rows[0].n,
      ),
    ledgerState: async (t, d) => {
      const res = await admin
        .query('SELECT state FROM archive_metadata WHERE source_table = $1 AND "date" = $2', [t, d])
        .catch(() => ({ rows: [] }));
      return res.rows[0]?.state ?? "none";
    },
    run: async (sql, params) => {
      await admin.query(sql, params);
    },
    query: async (sql, params) => (await admin.query(sql, params)).rows as Row[],
    async blockDelete(t, id) {
      await admin.query(`CREATE FUNCTION keep_one() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN IF OLD.id = ${id} THEN RETURN NULL; END IF; RETURN OLD; END $$`);
      await admin.query(
        `CREATE TRIGGER keep_one BEFORE DELETE ON ${t} FOR EACH ROW EXECUTE FUNCTION keep_one()`,
      );
      return "silent";
    },
    unblock: async (t) => {
      await admin.query(`DROP TRIGGER keep_one ON ${t}; DROP FUNCTION keep_one()`);
    },
    async close() {
      await admin.query(`DROP SCHEMA IF EXISTS ${isolated} CASCADE`);
      await admin.end();
    },
  };
}

/** The machine's MariaDB (SLUICE_TEST_MYSQL_URL), in a database of its own. */
export async function mariaDb(): Promise<TestDb | null> {
  const base = process.env.SLUICE_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test";
  let admin: mysql.Connection;
  try {
    admin = await mysql.createConnection({
      uri: base,
      connectTimeout: 3000,
      supportBigNumbers: true,
    });
    await admin.query(`CREATE DATABASE ${isolated}`);
    await admin.query(`USE ${isolated}`);
  } catch (err) {
    return unavailable("MariaDB", base, "SLUICE_TEST_MYSQL_URL", err);
  }
  const u = new URL(base);
  u.pathname = `/${isolated}`;
  return {
    name: "MariaDB",
    url: u.toString(),
    rows: async (t, d) =>
      (await admin.query(`SELECT * FROM ${t} WHERE event_date = ? ORDER BY id`, [d]))[0] as Row[],
    count: async (t, d) =>
      Number(
        (
          (
            await admin.query(`SELECT COUNT(*) AS n FROM ${t} WHERE event_date = ?`, [d])
          )[0] as Row[]
        )[0]?.n,
      ),
    ledgerState: async (t, d) => {
      const [rows] = await admin
        .query("SELECT state FROM archive_metadata WHERE source_table = ? AND `date` = ?", [t, d])
        .catch(() => [[]]);
      return (rows as Row[])[0]?.state?.toString() ?? "none";
    },
    run: async (sql, params) => {
      await admin.query(sql, params);
    },
    query: async (sql, params) => (await admin.query(sql, params))[0] as Row[],
    async blockDelete(t, id) {
      // MariaDB cannot skip a row from a trigger; it can only fail the whole DELETE.
      await admin.query(
        `CREATE TRIGGER keep_one BEFORE DELETE ON ${t} FOR EACH ROW BEGIN IF OLD.id = ${id} THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'row ${id} is kept'; END IF; END`,
      );
      return "error";
    },
    unblock: async () => {
      await admin.query("DROP TRIGGER keep_one");
    },
    async close() {
      await admin.query(`DROP DATABASE IF EXISTS ${isolated}`);
      await admin.end();
    },
  };
}

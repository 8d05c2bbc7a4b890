import type { Connection as CallbackConnection } from "mysql2";
import type mysql from "mysql2/promise";
import { splitTableName } from "../../core/sql/ident.js";
import type {
  Atomicity,
  Column,
  PageReads,
  Row,
  SqlExecutor,
  SqlSource,
  StreamOptions,
} from "../../core/sql/source.js";
import { DEFAULT_FETCH_SIZE } from "../../core/sql/source.js";
import { sameInBinary } from "./binary.js";
import { mysqlDialect } from "./dialect.js";
import { mysqlDriver } from "./driver.js";

type Conn = mysql.Pool | mysql.PoolConnection;

async function query<T>(conn: Conn, sql: string, params: readonly unknown[]): Promise<T[]> {
  const [rows] = await conn.query(sql, params as unknown[]);
  return rows as T[];
}

async function execute(
  conn: Conn,
  sql: string,
  params: readonly unknown[],
): Promise<{ changes: number }> {
  const [res] = await conn.query(sql, params as unknown[]);
  // DDL and SELECT return no header; UPDATE counts rows matched (FOUND_ROWS), as the others do.
  return { changes: (res as mysql.ResultSetHeader).affectedRows ?? 0 };
}

class ConnExecutor implements SqlExecutor {
  readonly dialect = mysqlDialect;
  constructor(private readonly conn: mysql.PoolConnection) {}
  query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return query<T>(this.conn, sql, params);
  }
  execute(sql: string, params: readonly unknown[] = []): Promise<{ changes: number }> {
    return execute(this.conn, sql, params);
  }
}

/** MariaDB or MySQL through a mysql2 pool; large results stream row by row off the socket. */
/** A table's database (null: the connection's) and name, as information_schema is asked. */
function inDatabase(table: string): [string | null, string] {
  const { schema, table: name } = splitTableName(table);
  return [schema, name];
}

export class MysqlSource implements SqlSource {
  readonly dialect = mysqlDialect;
  readonly atomicity: Atomicity = { kind: "transactions" };
  readonly pages: PageReads = {
    analyze: async () => undefined,
    hint: (table, partitionColumn, keyColumn) =>
      this.pageIndexHint(table, partitionColumn, keyColumn),
    read: (sql, params) => this.queryPage(sql, params),
  };
  readonly dayPartitions = null;
  private readonly pool: mysql.Pool;

  constructor(
    private readonly url: string,
    options: { statementTimeoutMs?: number } = {},
  ) {
    this.pool = mysqlDriver().createPool({
      uri: url,
      connectionLimit: 4,
      // BIGINT as numbers while they are exact; larger ones as strings, never rounded.
      supportBigNumbers: true,
      bigNumberStrings: false,
      // An UPDATE that sets a value it already had still "changes" its row, as elsewhere.
      flags: ["FOUND_ROWS"],
      // Dates, times, decimals and JSON as the server's own text: archived exactly, and
      // compared exactly with the archive before a row is deleted.
      dateStrings: true,
      jsonStrings: true,
    });
    // TIMESTAMP values read in the session's time zone: pinned, so that a row reads the same
    // text at archive and at cleanup whatever the server's default.
    this.pool.on("connection", (conn) => {
      (conn as unknown as CallbackConnection).query("SET time_zone = '+00:00'", () => undefined);
    });
    const ms = options.statementTimeoutMs ?? 0;
    if (ms > 0) {
      // MariaDB spells it max_statement_time (seconds, every statement), MySQL
      // max_execution_time (ms, SELECTs only). Each server refuses the other's name; both are
      // queued ahead of the connection's first query, and the refusal is ignored.
      this.pool.on("connection", (conn) => {
        const raw = conn as unknown as CallbackConnection;
        raw.query(`SET SESSION max_statement_time = ${ms / 1000}`, () => undefined);
        raw.query(`SET SESSION max_execution_time = ${Math.round(ms)}`, () => undefined);
      });
    }
  }

  query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return query<T>(this.pool, sql, params);
  }

  execute(sql: string, params: readonly unknown[] = []): Promise<{ changes: number }> {
    return execute(this.pool, sql, params);
  }

  /** Page SQL -> whether its columns read the same through the binary protocol. */
  private readonly binaryPages = new Map<string, boolean>();

  /**
   * The binary protocol (a prepared statement) costs mysql2 less CPU per row than the text
   * one, and its numbers make less garbage. A page whose columns might read differently
   * is read again as text, and so is every later page of that statement. Only pages use it:
   * their few statements stay prepared, one each per pooled connection.
   */
  private async queryPage(sql: string, params: readonly unknown[]): Promise<Row[]> {
    if (this.binaryPages.get(sql) !== false) {
      const [rows, fields] = await this.pool.execute(
        sql,
        params as Parameters<mysql.Pool["execute"]>[1],
      );
      const same = fields.every(sameInBinary);
      this.binaryPages.set(sql, same);
      if (same) return rows as Row[];
    }
    return this.query(sql, params);
  }

  async *stream(
    sql: string,
    params: readonly unknown[] = [],
    options: StreamOptions = {},
  ): AsyncIterable<Row[]> {
    const size = options.batchSize ?? DEFAULT_FETCH_SIZE;
    const signal = options.signal;
    signal?.throwIfAborted();
    const conn = await this.pool.getConnection();
    // The callback API's row stream pauses the socket when we stop reading: backpressure.
    const raw = conn.connection as unknown as CallbackConnection;
    const rows = raw.query(sql, params as unknown[]).stream({ highWaterMark: size });
    // Aborted while rows are awaited: the read fails now, and the connection is closed below
    // (which ends the statement) rather than read to its end.
    const onAbort = () => rows.destroy(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    let failed = false;
    try {
      let batch: Row[] = [];
      for await (const row of rows) {
        batch.push(row as Row);
        if (batch.length >= size) {
          signal?.throwIfAborted();
          yield batch;
          batch = [];
        }
      }
      signal?.throwIfAborted();
      if (batch.length) yield batch;
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      rows.destroy();
      // A connection left mid-result cannot be reused: close it instead of returning it.
      if (failed || !rows.readableEnded) conn.destroy();
      else conn.release();
    }
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const conn = await this.pool.getConnection();
    try {
      await conn.beginTransaction();
      const result = await fn(new ConnExecutor(conn));
      await conn.commit();
      return result;
    } catch (err) {
      await conn.rollback().catch(() => undefined);
      throw err;
    } finally {
      conn.release();
    }
  }

  /**
   * MariaDB (10.11 here) answers `part = ? AND key > ? ORDER BY key LIMIT n` with `ref` access
   * on the (part, key) index: it seeks to the day's first entry and skips key by key up to
   * `last`, so page k reads k pages' worth of index, quadratic in the day (1M rows: 7-8 s of
   * server CPU, against 1.7 s with the hint). Forced, the index is read as a range on both
   * columns. InnoDB appends the primary key to every secondary index, so an index on the
   * partition column alone serves when the key is the whole primary key.
   */
  private async pageIndexHint(
    table: string,
    partitionColumn: string,
    keyColumn: string,
  ): Promise<string> {
    const rows = await this.query<Row>(
      "SELECT * FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX",
      inDatabase(table),
    );
    const indexes = new Map<string, { columns: string[]; usable: boolean }>();
    for (const r of rows) {
      const name = String(r.INDEX_NAME);
      const index = indexes.get(name) ?? { columns: [], usable: true };
      index.columns.push(String(r.COLUMN_NAME));
      // A prefix, hash or fulltext index gives no key order; an ignored (MariaDB) or
      // invisible (MySQL) one cannot be forced at all.
      if (
        r.SUB_PART !== null ||
        r.INDEX_TYPE !== "BTREE" ||
        r.IGNORED === "YES" ||
        r.IS_VISIBLE === "NO"
      ) {
        index.usable = false;
      }
      indexes.set(name, index);
    }
    const primary = indexes.get("PRIMARY")?.columns ?? [];
    const keyIsPrimary = primary.length === 1 && primary[0] === keyColumn;
    for (const [name, { columns, usable }] of indexes) {
      if (!usable || name === "PRIMARY" || columns[0] !== partitionColumn) continue;
      if (columns[1] === keyColumn || (columns.length === 1 && keyIsPrimary)) {
        return `FORCE INDEX (${mysqlDialect.quote(name)})`;
      }
    }
    return "";
  }

  async tableColumns(table: string): Promise<string[] | null> {
    return (await this.columnInfo(table))?.map((c) => c.name) ?? null;
  }

  async columnInfo(table: string): Promise<Column[] | null> {
    const rows = await this.query<Column>(
      "SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
      inDatabase(table),
    );
    return rows.length ? rows.map((r) => ({ name: String(r.name), type: String(r.type) })) : null;
  }

  describe(): string {
    return this.url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

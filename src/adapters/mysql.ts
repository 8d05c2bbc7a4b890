import type { Connection as CallbackConnection } from "mysql2";
import mysql from "mysql2/promise";
import type { Dialect, Row, SqlExecutor, SqlSource, StreamOptions } from "../core/source.js";
import { DEFAULT_FETCH_SIZE } from "../core/source.js";

export const mysqlDialect: Dialect = {
  name: "mysql",
  quote: (ident) => `\`${ident.replaceAll("`", "``")}\``,
  maxParams: 65535,
  insertIgnore: (table, columns) =>
    `INSERT IGNORE INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`,
  // No jsonObject yet: JSON_OBJECT writes `"k": v`, which the archive's key-first line
  // reader does not take on its fast path; rows are stringified in JS instead.
};

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
export class MysqlSource implements SqlSource {
  readonly dialect = mysqlDialect;
  private readonly pool: mysql.Pool;

  constructor(
    private readonly url: string,
    options: { statementTimeoutMs?: number } = {},
  ) {
    this.pool = mysql.createPool({
      uri: url,
      connectionLimit: 4,
      // BIGINT as numbers while they are exact; larger ones as strings, never rounded.
      supportBigNumbers: true,
      bigNumberStrings: false,
      // An UPDATE that sets a value it already had still "changes" its row, as elsewhere.
      flags: ["FOUND_ROWS"],
      dateStrings: true,
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

  async *stream(
    sql: string,
    params: readonly unknown[] = [],
    options: StreamOptions = {},
  ): AsyncIterable<Row[]> {
    const size = options.batchSize ?? DEFAULT_FETCH_SIZE;
    const conn = await this.pool.getConnection();
    // The callback API's row stream pauses the socket when we stop reading: backpressure.
    const raw = conn.connection as unknown as CallbackConnection;
    const rows = raw.query(sql, params as unknown[]).stream({ highWaterMark: size });
    let failed = false;
    try {
      let batch: Row[] = [];
      for await (const row of rows) {
        batch.push(row as Row);
        if (batch.length >= size) {
          options.signal?.throwIfAborted();
          yield batch;
          batch = [];
        }
      }
      if (batch.length) yield batch;
    } catch (err) {
      failed = true;
      throw err;
    } finally {
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

  async tableColumns(table: string): Promise<string[] | null> {
    const rows = await this.query<{ name: string }>(
      "SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
      [table],
    );
    return rows.length ? rows.map((r) => r.name) : null;
  }

  describe(): string {
    return this.url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

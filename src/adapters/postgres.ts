import pg from "pg";
import Cursor from "pg-cursor";
import type { Dialect, Row, SqlExecutor, SqlSource, StreamOptions } from "../core/source.js";
import { DEFAULT_FETCH_SIZE } from "../core/source.js";

export const postgresDialect: Dialect = {
  name: "postgres",
  quote: (ident) => `"${ident.replaceAll('"', '""')}"`,
  maxParams: 65535,
  insertIgnore: (table, columns) =>
    `INSERT INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")}) ON CONFLICT DO NOTHING`,
  // No jsonObject yet: json_build_object writes `"k" : v`, which the archive's key-first
  // line reader does not take on its fast path; rows are stringified in JS instead.
};

/** `?` placeholders (the SqlSource contract) to PostgreSQL's `$1, $2, ...`. */
export function toDollarParams(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

// BIGINT and COUNT(*) come back as strings by default; keys and counts are numbers to us.
// Values beyond 2^53 stay strings rather than lose precision.
const INT8 = 20;
const types = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === INT8 && format !== "binary") {
      return (v: string) => {
        const n = Number(v);
        return Number.isSafeInteger(n) ? n : v;
      };
    }
    return pg.types.getTypeParser(oid, format);
  },
};

class ClientExecutor implements SqlExecutor {
  readonly dialect = postgresDialect;
  constructor(private readonly client: pg.PoolClient) {}

  async query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return (await this.client.query(toDollarParams(sql), params as unknown[])).rows as T[];
  }

  async execute(sql: string, params: readonly unknown[] = []): Promise<{ changes: number }> {
    const res = await this.client.query(toDollarParams(sql), params as unknown[]);
    return { changes: res.rowCount ?? 0 };
  }
}

/** PostgreSQL through a pg pool; large results stream through a server-side cursor. */
export class PostgresSource implements SqlSource {
  readonly dialect = postgresDialect;
  private readonly pool: pg.Pool;

  constructor(
    private readonly url: string,
    options: { statementTimeoutMs?: number; max?: number } = {},
  ) {
    this.pool = new pg.Pool({
      connectionString: url,
      max: options.max ?? 4,
      types,
      statement_timeout: options.statementTimeoutMs,
    });
    // An idle client's error (server restart) must not crash the process.
    this.pool.on("error", () => undefined);
  }

  async query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return (await this.pool.query(toDollarParams(sql), params as unknown[])).rows as T[];
  }

  async execute(sql: string, params: readonly unknown[] = []): Promise<{ changes: number }> {
    const res = await this.pool.query(toDollarParams(sql), params as unknown[]);
    return { changes: res.rowCount ?? 0 };
  }

  async *stream(
    sql: string,
    params: readonly unknown[] = [],
    options: StreamOptions = {},
  ): AsyncIterable<Row[]> {
    const size = options.batchSize ?? DEFAULT_FETCH_SIZE;
    const client = await this.pool.connect();
    const cursor = client.query(new Cursor(toDollarParams(sql), params as unknown[]));
    let failed = false;
    try {
      for (;;) {
        options.signal?.throwIfAborted();
        const rows = (await cursor.read(size)) as Row[];
        if (rows.length === 0) return;
        yield rows;
        if (rows.length < size) return;
      }
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      await cursor.close().catch(() => undefined);
      // A client whose statement was interrupted is not put back for someone else.
      client.release(failed ? true : undefined);
    }
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query("BEGIN");
      const result = await fn(new ClientExecutor(client));
      await client.query("COMMIT");
      return result;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      client.release(broken ? true : undefined);
    }
  }

  async ensureStatistics(table: string): Promise<void> {
    const [stat] = await this.query<{ analyzed: boolean; stale: boolean }>(
      `SELECT (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL) AS analyzed,
              n_mod_since_analyze > GREATEST(n_live_tup, 1000) AS stale
       FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = ?`,
      [table],
    );
    if (stat && (!stat.analyzed || stat.stale)) {
      await this.execute(`ANALYZE ${postgresDialect.quote(table)}`);
    }
  }

  async tableColumns(table: string): Promise<string[] | null> {
    const rows = await this.query<{ column_name: string }>(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
      [table],
    );
    return rows.length ? rows.map((r) => r.column_name) : null;
  }

  describe(): string {
    return this.url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

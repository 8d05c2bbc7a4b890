import pg from "pg";
import Cursor from "pg-cursor";
import { daysBefore } from "../core/dates.js";
import type {
  Column,
  Dialect,
  Row,
  SqlExecutor,
  SqlSource,
  StreamOptions,
} from "../core/source.js";
import { DEFAULT_FETCH_SIZE } from "../core/source.js";

const quote = (ident: string) => `"${ident.replaceAll('"', '""')}"`;

export const postgresDialect: Dialect = {
  name: "postgres",
  quote,
  maxParams: 65535,
  insertIgnore: (table, columns) =>
    `INSERT INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")}) ON CONFLICT DO NOTHING`,
  // row_to_json writes every type as PostgreSQL's own text (exact numerics, dates, times
  // with all their digits), compactly; the derived table puts the key first.
  jsonRow: (_columns, alias) => `row_to_json(${alias})::text`,
  // A json value `null` and SQL NULL both render as null inside row_to_json: as text, a
  // json column keeps the difference (and its exact text).
  columnText: (quoted, type) =>
    type === "json" || type === "jsonb" ? `${quoted}::text` : undefined,
  lockRows: " FOR UPDATE",
  keyIn: (expr, keys) => ({ sql: `${expr} = ANY(?::bigint[])`, params: [keys] }),
  partitions: {
    // LOCK on a partitioned table takes every partition too. Parent first, as inserts do, so
    // the later DETACH needs no upgrade that could deadlock with them. A busy table fails
    // the job after 10 s rather than stalling ingest behind a queued lock.
    lock: (parent) => [
      "SET LOCAL lock_timeout = '10s'",
      `LOCK TABLE ${quote(parent)} IN ACCESS EXCLUSIVE MODE`,
    ],
    detachAndDrop: (parent, child) => [
      `ALTER TABLE ${quote(parent)} DETACH PARTITION ${quote(child)}`,
      `DROP TABLE ${quote(child)}`,
    ],
  },
};

/** `LIST (col)` / `RANGE (col)` with the column as pg_get_partkeydef prints it. */
function partitionKey(def: string): { kind: "LIST" | "RANGE"; column: string } | null {
  const m = /^(LIST|RANGE) \((.+)\)$/.exec(def);
  if (!m) return null;
  const col = m[2] as string;
  return {
    kind: m[1] as "LIST" | "RANGE",
    column: col.startsWith('"') ? col.slice(1, -1).replaceAll('""', '"') : col,
  };
}

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
    // The settings that shape how values read as text (row_to_json, casts to text): pinned,
    // so that a row reads the same at archive and at cleanup whatever the server's defaults.
    this.pool.on("connect", (client) => {
      client
        .query(
          "SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 1; SET bytea_output = 'hex'",
        )
        .catch(() => undefined);
    });
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

  async dayPartition(table: string, column: string, value: string): Promise<string | null> {
    const [parent] = await this.query<{ key: string | null }>(
      "SELECT pg_get_partkeydef(to_regclass(?)) AS key",
      [quote(table)],
    );
    const key = partitionKey(parent?.key ?? "");
    if (!key || key.column !== column) return null;
    const literal = (v: string) => `'${v.replaceAll("'", "''")}'`;
    const wanted =
      key.kind === "LIST"
        ? `FOR VALUES IN (${literal(value)})`
        : `FOR VALUES FROM (${literal(value)}) TO (${literal(daysBefore(new Date(`${value}T00:00:00Z`), -1))})`;
    // Only plain tables: a partition that is itself partitioned is left to row deletes.
    const [child] = await this.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = to_regclass(?) AND c.relkind = 'r'
         AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = to_regclass(?))
         AND pg_get_expr(c.relpartbound, c.oid) = ?`,
      [quote(table), quote(table), wanted],
    );
    return child?.name ?? null;
  }

  async tableColumns(table: string): Promise<string[] | null> {
    return (await this.columnInfo(table))?.map((c) => c.name) ?? null;
  }

  async columnInfo(table: string): Promise<Column[] | null> {
    const rows = await this.query<Column>(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       WHERE c.relname = ? AND c.relnamespace = current_schema()::regnamespace
         AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
      [table],
    );
    return rows.length ? rows : null;
  }

  describe(): string {
    return this.url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

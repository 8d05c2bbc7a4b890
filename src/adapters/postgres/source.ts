import pg from "pg";
import Cursor from "pg-cursor";
import { daysBefore } from "../../core/dates.js";
import { SluiceError, UnavailableError } from "../../core/errors.js";
import type {
  Column,
  Dialect,
  Row,
  SqlExecutor,
  SqlSource,
  StreamOptions,
} from "../../core/sql/source.js";
import { DEFAULT_FETCH_SIZE } from "../../core/sql/source.js";

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

/** What a connection error means to a caller, by SQLSTATE or socket error code. */
const GONE: Record<string, string> = {
  "57P01": "the server terminated the connection",
  "57P02": "the server is shutting down",
  "57P03": "the server is starting up or shutting down",
  "53300": "the server has no connection left",
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EPIPE: "connection closed",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host not found",
};

/**
 * An error that means the connection or the server went away, not that the statement failed,
 * as an UnavailableError (a 503, in words of ours); null for anything else. `lost` is what
 * the client reported while checked out, if anything.
 */
function unavailable(err: unknown, lost: Error | null = null): UnavailableError | null {
  if (err instanceof UnavailableError) return err;
  // Our own errors (a lost lease, say) say more than the connection that went with them.
  if (err instanceof SluiceError) return null;
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === "string" ? e.code : "";
  const known = GONE[code];
  if (known) return new UnavailableError(known);
  if (code.startsWith("08")) return new UnavailableError(`connection failure ${code}`);
  const message = typeof e?.message === "string" ? e.message : "";
  if (lost !== null || message.startsWith("Connection terminated")) {
    return new UnavailableError("its connection was closed");
  }
  return null;
}

/**
 * A checked-out client's 'error' and 'end', for as long as it is checked out. pg emits 'error'
 * on a client whose connection dies (pg_terminate_backend, a restart, a failover); the pool
 * listens only while the client is idle, and an 'error' nobody listens to ends the process.
 */
function watch(client: pg.PoolClient) {
  let lost: Error | null = null;
  let wake: () => void = () => undefined;
  const gone = new Promise<void>((resolve) => {
    wake = resolve;
  });
  const onError = (err: Error) => {
    lost ??= err;
    wake();
  };
  const onEnd = () => onError(new Error("Connection terminated"));
  client.on("error", onError);
  client.on("end", onEnd);
  return {
    lost: () => lost,
    /** Resolves once the connection is gone. */
    gone,
    /** Called right before release(), which puts the pool's own listener back. */
    stop() {
      client.off("error", onError);
      client.off("end", onEnd);
    },
  };
}

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
    try {
      return (await this.pool.query(toDollarParams(sql), params as unknown[])).rows as T[];
    } catch (err) {
      throw unavailable(err) ?? err;
    }
  }

  async execute(sql: string, params: readonly unknown[] = []): Promise<{ changes: number }> {
    try {
      const res = await this.pool.query(toDollarParams(sql), params as unknown[]);
      return { changes: res.rowCount ?? 0 };
    } catch (err) {
      throw unavailable(err) ?? err;
    }
  }

  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (err) {
      throw unavailable(err) ?? err;
    }
  }

  /**
   * Stop what a backend runs, from a connection of its own: the pool may be full of the very
   * statements being stopped. A cancel that arrives after the statement ended does nothing.
   */
  private async cancelBackend(pid: number): Promise<void> {
    const c = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 5000 });
    c.on("error", () => undefined);
    try {
      await c.connect();
      await c.query("SELECT pg_cancel_backend($1)", [pid]);
    } catch {
      // The database is gone too: the statement went with it.
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  async *stream(
    sql: string,
    params: readonly unknown[] = [],
    options: StreamOptions = {},
  ): AsyncIterable<Row[]> {
    const size = options.batchSize ?? DEFAULT_FETCH_SIZE;
    const signal = options.signal;
    const client = await this.connect();
    const health = watch(client);
    const cursor = client.query(new Cursor(toDollarParams(sql), params as unknown[]));
    let reading = false;
    let cancelled: Promise<void> | null = null;
    // Aborted while a fetch runs: the statement is stopped on the server, not just left.
    const onAbort = () => {
      if (reading)
        cancelled ??= this.cancelBackend((client as unknown as { processID: number }).processID);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    let clean = true;
    try {
      for (;;) {
        signal?.throwIfAborted();
        let rows: Row[];
        reading = true;
        try {
          rows = (await cursor.read(size)) as Row[];
        } catch (err) {
          clean = false;
          if (signal?.aborted) throw signal.reason;
          throw unavailable(err, health.lost()) ?? err;
        } finally {
          reading = false;
        }
        if (rows.length === 0) return;
        yield rows;
        if (rows.length < size) return;
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (cancelled) {
        // Not given back before the cancel is through: it must not reach someone else's statement.
        clean = false;
        await cancelled;
      }
      // After a failed fetch the connection may be dead, and closing the portal would wait for
      // an answer that never comes: the client is discarded instead.
      if (clean && health.lost() === null) {
        await Promise.race([cursor.close(), health.gone]).catch(() => {
          clean = false;
        });
      }
      health.stop();
      client.release(clean && health.lost() === null ? undefined : true);
    }
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const client = await this.connect();
    const health = watch(client);
    let broken = false;
    try {
      await client.query("BEGIN");
      const result = await fn(new ClientExecutor(client));
      await client.query("COMMIT");
      return result;
    } catch (err) {
      if (health.lost() === null) {
        await client.query("ROLLBACK").catch(() => {
          broken = true;
        });
      }
      throw unavailable(err, health.lost()) ?? err;
    } finally {
      health.stop();
      client.release(broken || health.lost() !== null ? true : undefined);
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

import type pg from "pg";
import type {
  Atomicity,
  Column,
  DayPartitions,
  PageReads,
  Row,
  SqlExecutor,
  SqlSource,
  StreamOptions,
} from "../../core/sql/source.js";
import { DEFAULT_FETCH_SIZE } from "../../core/sql/source.js";
import { unavailable, watch } from "./connection.js";
import { copyStatement } from "./copy-sql.js";
import { postgresDialect } from "./dialect.js";
import { postgresCopyTo as copyTo, postgresDriver as driver } from "./driver.js";
import { postgresDayPartitions } from "./partitions.js";
import { toDollarParams } from "./placeholders.js";

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
    return driver().pg.types.getTypeParser(oid, format);
  },
};

/**
 * The settings that shape how values read as text (row_to_json, casts to text): pinned, so
 * that a row reads the same at archive and at cleanup whatever the server's defaults.
 */
const SESSION_SETTINGS =
  "SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 1; SET bytea_output = 'hex'";

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
  readonly atomicity: Atomicity = { kind: "transactions" };
  readonly pages: PageReads = {
    analyze: (table) => this.analyze(table),
    hint: async () => "",
    read: (sql, params) => this.query(sql, params),
  };
  readonly dayPartitions: DayPartitions = postgresDayPartitions;
  private readonly pool: pg.Pool;

  constructor(
    private readonly url: string,
    options: { statementTimeoutMs?: number; max?: number } = {},
  ) {
    this.pool = new (driver().pg.Pool)({
      connectionString: url,
      max: options.max ?? 4,
      types,
      statement_timeout: options.statementTimeoutMs,
      // Awaited by the pool before it hands a new client out: nothing is ever queued behind
      // the settings (a statement queued on a client is not one a stream can close).
      onConnect: async (client: pg.ClientBase) => {
        await client.query(SESSION_SETTINGS);
      },
    });
    // An idle client's error (server restart) must not crash the process.
    this.pool.on("error", () => undefined);
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
    const c = new (driver().pg.Client)({
      connectionString: this.url,
      connectionTimeoutMillis: 5000,
    });
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
    const cursor = client.query(new (driver().Cursor)(toDollarParams(sql), params as unknown[]));
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
      // Only a closed portal leaves the client free: anything else (a statement still queued
      // on it, never sent) would run on it later and hold up whoever gets it next.
      if ((cursor as unknown as { state: string }).state !== "done") clean = false;
      health.stop();
      client.release(clean && health.lost() === null ? undefined : true);
    }
  }

  async *copyText(
    sql: string,
    params: readonly unknown[] = [],
    options: { signal?: AbortSignal } = {},
  ): AsyncIterable<Uint8Array> {
    const signal = options.signal;
    signal?.throwIfAborted();
    const statement = copyStatement(sql, params);
    const client = await this.connect();
    const health = watch(client);
    const pid = (client as unknown as { processID: number }).processID;
    const copy = client.query(copyTo()(statement));
    let finished = false;
    let cancelled: Promise<void> | null = null;
    const stop = () => {
      cancelled ??= this.cancelBackend(pid);
      copy.destroy();
    };
    signal?.addEventListener("abort", stop, { once: true });
    try {
      for await (const chunk of copy) yield chunk as Uint8Array;
      // A COPY stopped by the signal may end its stream quietly: it is no whole answer.
      signal?.throwIfAborted();
      finished = true;
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw unavailable(err, health.lost()) ?? err;
    } finally {
      signal?.removeEventListener("abort", stop);
      // A COPY left before its end (a consumer gone, an error) still holds the connection in
      // its copy state: the statement is stopped and the client discarded, never reused.
      if (!finished) stop();
      await cancelled;
      health.stop();
      client.release(finished && health.lost() === null ? undefined : true);
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

  /** ANALYZE a table that has no statistics, or stale ones (see PageReads.analyze). */
  private async analyze(table: string): Promise<void> {
    const [stat] = await this.query<{ analyzed: boolean; stale: boolean }>(
      `SELECT (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL) AS analyzed,
              n_mod_since_analyze > GREATEST(n_live_tup, 1000) AS stale
       FROM pg_stat_user_tables WHERE relid = to_regclass(?)`,
      [postgresDialect.quote(table)],
    );
    if (stat && (!stat.analyzed || stat.stale)) {
      await this.execute(`ANALYZE ${postgresDialect.quote(table)}`);
    }
  }

  async tableColumns(table: string): Promise<string[] | null> {
    return (await this.columnInfo(table))?.map((c) => c.name) ?? null;
  }

  async columnInfo(table: string): Promise<Column[] | null> {
    const rows = await this.query<Column>(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       WHERE c.oid = to_regclass(?) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
      [postgresDialect.quote(table)],
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

import Database from "better-sqlite3";
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
import { DEFAULT_FETCH_SIZE, plainPages } from "../../core/sql/source.js";
import { sqliteDialect } from "./dialect.js";

/** A SQLite file through better-sqlite3. Reads that stream use their own connection. */
export class SqliteSource implements SqlSource {
  readonly dialect = sqliteDialect;
  readonly atomicity: Atomicity = { kind: "transactions" };
  /**
   * Pages of a large read (an archive, a query's hot rows) come through a read-only connection
   * with a small page cache: a pass over the day reads each page once, and the writer's cache
   * (16 MB by default) would otherwise fill with them.
   */
  readonly pages: PageReads = {
    ...plainPages(this),
    read: async (sql, params) => {
      if (this.path === ":memory:") return this.query(sql, params);
      return cached(this.pageStatements, this.pageConnection(), sql).all(...params) as Row[];
    },
    readValues: async (sql, params) => {
      const conn = this.path === ":memory:" ? this.db : this.pageConnection();
      // Statements of their own: raw() stays set on a prepared statement.
      return cached(this.valueStatements, conn, sql)
        .raw(true)
        .all(...params) as unknown[][];
    },
  };
  private pageReader: Database.Database | null = null;
  private readonly pageStatements = new Map<string, Database.Statement>();
  private readonly valueStatements = new Map<string, Database.Statement>();
  readonly dayPartitions = null;
  private readonly db: Database.Database;
  /** Read-only connections for streams, one per open stream, kept for reuse. */
  private readonly idleReaders: Database.Database[] = [];
  private readonly readers = new Set<Database.Database>();
  private readonly statements = new Map<string, Database.Statement>();
  private inTransaction = false;

  constructor(
    readonly path: string,
    options: { create?: boolean } = {},
  ) {
    this.db = new Database(path, { fileMustExist: !options.create });
    // Several sluice processes share one file: wait for a writer instead of failing at once.
    this.db.pragma("busy_timeout = 10000");
    // SQLite keeps up to 16 MB of pages per connection by default: a count over a large day
    // (verify's) fills it once and holds it. Deletes and inserts in key order need few pages.
    this.db.pragma("cache_size = -2000");
  }

  private prepare(sql: string): Database.Statement {
    return cached(this.statements, this.db, sql);
  }

  async query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return this.prepare(sql).all(...params) as T[];
  }

  async execute(sql: string, params: readonly unknown[] = []): Promise<{ changes: number }> {
    const stmt = this.prepare(sql);
    if (stmt.reader) {
      stmt.all(...params);
      return { changes: 0 };
    }
    return { changes: stmt.run(...params).changes };
  }

  /** Run several statements (schema scripts). */
  exec(script: string): void {
    this.db.exec(script);
  }

  async *stream(
    sql: string,
    params: readonly unknown[] = [],
    options: StreamOptions = {},
  ): AsyncIterable<Row[]> {
    const size = options.batchSize ?? DEFAULT_FETCH_SIZE;
    // An open iterator makes its connection busy: each stream reads on a read-only
    // connection of its own, so several can be open at once (trace workers).
    const conn = this.path === ":memory:" ? this.db : this.takeReader();
    const it = conn.prepare(sql).iterate(...params) as IterableIterator<Row>;
    try {
      let batch: Row[] = [];
      for (const row of it) {
        batch.push(row);
        if (batch.length >= size) {
          options.signal?.throwIfAborted();
          yield batch;
          batch = [];
        }
      }
      if (batch.length) yield batch;
    } finally {
      it.return?.();
      if (conn !== this.db) this.giveBack(conn);
    }
  }

  /** The read-only connection that pages are read on. */
  private pageConnection(): Database.Database {
    if (!this.pageReader) {
      this.pageReader = this.openReader();
      this.pageReader.pragma("cache_size = -2000");
    }
    return this.pageReader;
  }

  private takeReader(): Database.Database {
    return this.idleReaders.pop() ?? this.openReader();
  }

  /** A read-only connection, closed with the source. */
  private openReader(): Database.Database {
    const reader = new Database(this.path, { readonly: true, fileMustExist: true });
    reader.pragma("busy_timeout = 10000");
    this.readers.add(reader);
    return reader;
  }

  private giveBack(reader: Database.Database): void {
    if (this.idleReaders.length < 4) {
      this.idleReaders.push(reader);
    } else {
      this.readers.delete(reader);
      reader.close();
    }
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    if (this.inTransaction) throw new Error("sqlite: nested transaction");
    this.inTransaction = true;
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const result = await fn(this);
      this.db.exec("COMMIT");
      return result;
    } catch (err) {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      throw err;
    } finally {
      this.inTransaction = false;
    }
  }

  async tableColumns(table: string): Promise<string[] | null> {
    return (await this.columnInfo(table))?.map((c) => c.name) ?? null;
  }

  async columnInfo(table: string): Promise<Column[] | null> {
    const { schema, table: name } = splitTableName(table);
    const rows = this.db
      .prepare("SELECT name, type FROM pragma_table_info(?, ?)")
      .all(name, schema ?? "main") as Column[];
    return rows.length ? rows : null;
  }

  describe(): string {
    return `sqlite:${this.path}`;
  }

  async close(): Promise<void> {
    for (const reader of this.readers) reader.close();
    this.db.close();
  }
}

/** `sql` prepared on `conn` once, the 100 most recent kept in `cache`. */
function cached(
  cache: Map<string, Database.Statement>,
  conn: Database.Database,
  sql: string,
): Database.Statement {
  let stmt = cache.get(sql);
  if (!stmt) {
    stmt = conn.prepare(sql);
    if (cache.size >= 100) {
      const oldest = cache.keys().next().value;
      if (oldest !== undefined) cache.delete(oldest);
    }
    cache.set(sql, stmt);
  }
  return stmt;
}

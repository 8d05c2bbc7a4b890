/**
 * SqlSource: the one interface every database adapter implements. SQL given to it uses
 * `?` placeholders; an adapter whose driver wants another style rewrites them.
 */
export type Row = Record<string, unknown>;

/** A column and its type as the database declares it (`numeric(38,10)`, `DATETIME(6)`). */
export type Column = { name: string; type: string };

/** The dialect facts the jobs need to write portable SQL. */
export interface Dialect {
  readonly name: "sqlite" | "postgres" | "mysql" | "d1";
  /** Quote an identifier that has already passed checkIdentifier. */
  quote(ident: string): string;
  /** Most bound parameters one statement may carry (D1: 100, SQLite: 32766, ...). */
  readonly maxParams: number;
  /** An INSERT of one row that does nothing when the primary key already exists. */
  insertIgnore(table: string, columns: readonly string[]): string;
  /**
   * An INSERT of `rows` rows whose last column, where the unique key (`keys`) already holds a
   * row, is added to that row's instead (one statement, however many rows exist).
   */
  insertAdding(
    table: string,
    columns: readonly string[],
    keys: readonly string[],
    rows: number,
  ): string;
  /**
   * An SQL expression over the derived table `alias` rendering its row as one JSON object
   * text, its columns in the order given, in the database's own text for every type (exact
   * numbers, dates and times as stored). Undefined where rows are rendered in JS instead.
   * Archive lines and the rows cleanup compares them with both come from it. With `types`
   * (the columns' declared types), `alias` is the table itself and each column is read as
   * {@link columnText} would select it.
   */
  jsonRow?(
    columns: readonly string[],
    alias: string,
    types?: readonly string[],
  ): string | undefined;
  /**
   * True where one writer at a time holds the whole database (SQLite, D1): a cleanup batch
   * that compared every row of a key range inside its transaction may delete the range in one
   * statement instead of by an IN-list of keys.
   */
  readonly deletesByRange?: boolean;
  /**
   * What to select for a column of `type` where its value must be read as text to stay exact
   * (PostgreSQL's json, whose null would read as SQL NULL); undefined: the column itself.
   */
  columnText?(quoted: string, type: string): string | undefined;
  /**
   * How a column of `type` is written in an archive line when that is not its plain text or
   * JSON value (binary as `base64`, PostgreSQL's bytea as `hex`); undefined otherwise.
   */
  columnEncoding?(type: string): string | undefined;
  /**
   * How a column of `type` reads in {@link SqlSource.copyText}, where its COPY text is exactly
   * the JSON of the value the driver gives: an integer's digits ("number"), or text written as a
   * JSON string ("string"); undefined for every other type.
   */
  copyKind?(type: string): "string" | "number" | undefined;
  /** `expr` read as the database's own text (a date or timestamp not made a JS Date). */
  asText?(expr: string): string;
  /**
   * An INSERT into `table` (quoted) of the rows in its one parameter, a JSON array of archive
   * lines: each member turned back into its column's value (`columns`: the target's names and
   * types), rows whose `key` the table already holds skipped. Undefined: no restore here.
   */
  restoreRows?(table: string, columns: readonly Column[], key: string): string;
  /** Appended to a SELECT to lock the rows it reads until the transaction ends, or "". */
  readonly lockRows: string;
  /** `expr` is one of `keys`: an IN-list by default; one array parameter where there is one. */
  keyIn?(expr: string, keys: readonly number[]): { sql: string; params: unknown[] };
}

export interface SqlExecutor {
  readonly dialect: Dialect;
  /** A query whose result is small enough to hold (counts, ledger rows, one page). */
  query<T extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** A statement that changes rows; reports how many it changed. */
  execute(sql: string, params?: readonly unknown[]): Promise<{ changes: number }>;
}

export interface StreamOptions {
  /** Rows per batch (DB_SLOW_FETCHMANY_SIZE), default 5000. */
  batchSize?: number;
  /** Abort the running statement (client gone, job cancelled). */
  signal?: AbortSignal;
}

/** One statement of an atomic batch. */
export interface BatchStatement {
  sql: string;
  params?: readonly unknown[];
}

/** A statement with its parameters, always there (a fence, a SET list and its values). */
export interface BoundStatement extends BatchStatement {
  params: readonly unknown[];
}

/**
 * How writes that must commit together are made. Interactive transactions (SQLite,
 * PostgreSQL, MySQL): `transaction(fn)`. D1 cannot hold a transaction open across awaits: its
 * `transaction` only runs `fn`, and writes that must commit together go as one atomic batch.
 */
export type Atomicity =
  | { readonly kind: "transactions" }
  | {
      readonly kind: "batches";
      /** Run write statements in one transaction: all commit, or none. */
      batch(statements: readonly BatchStatement[]): Promise<{ changes: number }[]>;
    };

/** Reading a table page by page in key order, as cheaply as the database allows. */
export interface PageReads {
  /**
   * Make sure the planner knows the table's size before a job works through it by key. A
   * freshly loaded PostgreSQL table has no statistics, and its key-paginated pages then cost a
   * sort of the whole rest of the day each: quadratic. A no-op where nothing is needed.
   */
  analyze(table: string): Promise<void>;
  /**
   * An index hint to write after the table name of a page query, where the planner would
   * otherwise pick a plan whose every page rescans the day from its first row (MariaDB); "".
   */
  hint(table: string, partitionColumn: string, keyColumn: string): Promise<string>;
  /** One page's rows, where the driver has a cheaper way to read many that yields the same. */
  read(sql: string, params: readonly unknown[]): Promise<Row[]>;
  /**
   * The same page as arrays of each row's values in select-list order, where the driver makes
   * those for less than objects (better-sqlite3's raw rows); absent elsewhere.
   */
  readValues?(sql: string, params: readonly unknown[]): Promise<unknown[][]>;
}

/** Day partitions of a table that a cleanup may drop whole (PostgreSQL's declarative ones). */
export interface DayPartitions {
  /**
   * The partition of `table` that holds the rows whose `column` is `value` and no others (a
   * LIST partition of that one value, or a RANGE of that one day), or null; read through `db`
   * (a transaction that holds the table's lock reads what it has locked).
   */
  find(db: SqlExecutor, table: string, column: string, value: string): Promise<string | null>;
  /**
   * Statements that lock the table and all its partitions against every reader and writer
   * until the transaction ends, so that no row can arrive between the comparison and the drop.
   */
  lock(parent: string): string[];
  /** Statements that take `child` out of `parent` and drop it. */
  detachAndDrop(parent: string, child: string): string[];
}

export interface SqlSource extends SqlExecutor {
  /** Read a result of any size as batches; holds at most one batch (plus driver buffers). */
  stream(sql: string, params?: readonly unknown[], options?: StreamOptions): AsyncIterable<Row[]>;
  /**
   * A SELECT's rows in PostgreSQL's COPY text format (a tab between fields, a newline after
   * each row, `\N` for NULL, backslash escapes), as the bytes arrive, with backpressure: for a
   * reader that writes rows out without making a value of each field. Where the database has
   * it (PostgreSQL); absent elsewhere.
   */
  copyText?(
    sql: string,
    params?: readonly unknown[],
    options?: { signal?: AbortSignal },
  ): AsyncIterable<Uint8Array>;
  /** Run `fn` in one transaction: all of it commits, or none of it (see {@link atomicity}). */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  readonly atomicity: Atomicity;
  readonly pages: PageReads;
  /** Null where the database has none to drop. */
  readonly dayPartitions: DayPartitions | null;
  /** The columns of a table, or null when there is no such table. */
  tableColumns(table: string): Promise<string[] | null>;
  /** The columns of a table with their declared types, in table order; null: no such table. */
  columnInfo(table: string): Promise<Column[] | null>;
  /** Where this source points, safe to print (no password). */
  describe(): string;
  close(): Promise<void>;
}

/** Page reads with nothing to prepare, each page an ordinary query. */
export function plainPages(source: SqlExecutor): PageReads {
  return {
    analyze: async () => undefined,
    hint: async () => "",
    read: (sql, params) => source.query(sql, params),
  };
}

/** The atomic batch of a source that has no interactive transactions, or null. */
export function batchesOf(
  source: SqlSource,
): ((statements: readonly BatchStatement[]) => Promise<{ changes: number }[]>) | null {
  return source.atomicity.kind === "batches" ? source.atomicity.batch : null;
}

export const DEFAULT_FETCH_SIZE = 5000;

/** Read a COUNT(*)-style single number from a result whose drivers disagree on its type. */
export function toCount(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "string" && value !== "") return Number(value);
  return 0;
}

/**
 * Run write statements so that all of them commit or none: as one batch where the database
 * has no interactive transactions (D1), else in one transaction.
 */
export async function runAtomically(
  source: SqlSource,
  statements: readonly BatchStatement[],
): Promise<{ changes: number }[]> {
  const batch = batchesOf(source);
  if (batch) return batch(statements);
  return source.transaction(async (tx) => {
    const out: { changes: number }[] = [];
    for (const s of statements) out.push(await tx.execute(s.sql, s.params ?? []));
    return out;
  });
}

/** `expr IN (keys)` as the dialect writes it best; `keys` must not be empty. */
export function keyIn(
  dialect: Dialect,
  expr: string,
  keys: readonly number[],
): { sql: string; params: unknown[] } {
  return (
    dialect.keyIn?.(expr, keys) ?? {
      sql: `${expr} IN (${keys.map(() => "?").join(", ")})`,
      params: [...keys],
    }
  );
}

/**
 * SqlSource: the one interface every database adapter implements. SQL given to it uses
 * `?` placeholders; an adapter whose driver wants another style rewrites them.
 */
export type Row = Record<string, unknown>;

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
   * An SQL expression rendering the named columns of a row as one JSON object text, in
   * that order, when the database can (several times faster than building row objects).
   */
  jsonObject?(columns: readonly string[]): string | undefined;
  /**
   * True where keys become visible in the order they were assigned (SQLite and D1: one
   * writer at a time, so an AUTOINCREMENT key is committed before the next is handed out).
   * Then no row can appear later inside an archived key range, and cleanup may delete by key
   * range instead of by IN-lists (D1: a few statements per thousand rows instead of ten).
   * Not PostgreSQL or MySQL: a transaction holding a lower key can commit after a higher one.
   */
  readonly keysCommitInOrder?: boolean;
  /** Where a whole partition of a table can be dropped instead of its rows deleted. */
  readonly partitions?: PartitionDdl;
}

/** The statements that drop one partition of a partitioned table, in a transaction. */
export interface PartitionDdl {
  /**
   * Statements that lock the table and all its partitions against every reader and writer
   * until the transaction ends, so that no row can arrive between the count and the drop.
   */
  lock(parent: string): string[];
  /** Statements that take `child` out of `parent` and drop it. */
  detachAndDrop(parent: string, child: string): string[];
}

export interface SqlExecutor {
  readonly dialect: Dialect;
  /** A query whose result is small enough to hold (counts, ledger rows, one page). */
  query<T extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** A statement that changes rows; reports how many it changed. */
  execute(sql: string, params?: readonly unknown[]): Promise<{ changes: number }>;
}

export interface StreamOptions {
  /** Rows per batch: the seed's DB_SLOW_FETCHMANY_SIZE, default 5000. */
  batchSize?: number;
  /** Abort the running statement (client gone, job cancelled). */
  signal?: AbortSignal;
}

/** One statement of an atomic batch. */
export interface BatchStatement {
  sql: string;
  params?: readonly unknown[];
}

export interface SqlSource extends SqlExecutor {
  /** Read a result of any size as batches; holds at most one batch (plus driver buffers). */
  stream(sql: string, params?: readonly unknown[], options?: StreamOptions): AsyncIterable<Row[]>;
  /** Run `fn` in one transaction: all of it commits, or none of it. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /**
   * Where the database has no interactive transactions (D1), `transaction` cannot make `fn`
   * atomic; this runs a list of write statements in one transaction instead: all commit, or
   * none. Writes that must commit together use it when it is there.
   */
  batch?(statements: readonly BatchStatement[]): Promise<{ changes: number }[]>;
  /**
   * Make sure the planner knows the table's size before a job pages through it by key. A
   * freshly loaded PostgreSQL table has no statistics, and its key-paginated pages then cost
   * a sort of the whole rest of the day each: quadratic. Databases that need nothing omit it.
   */
  ensureStatistics?(table: string): Promise<void>;
  /**
   * An index hint to write after the table name of a key-paginated page query, where the
   * planner would otherwise pick a plan whose every page rescans the day from its first row
   * (quadratic in the day's size). Databases whose planner needs no help omit it.
   */
  pageIndexHint?(table: string, partitionColumn: string, keyColumn: string): Promise<string>;
  /**
   * query() for the pages of a key-paginated read, where the driver has a cheaper way to
   * read many rows that yields the same values. Databases without one omit it.
   */
  queryPage?(sql: string, params: readonly unknown[]): Promise<Row[]>;
  /**
   * The partition of `table` that holds the rows whose `column` is `value` and no others
   * (a LIST partition of that one value, or a RANGE of that one day), or null when the table
   * is not partitioned that way. Only where `dialect.partitions` is set.
   */
  dayPartition?(table: string, column: string, value: string): Promise<string | null>;
  /** The columns of a table, or null when there is no such table. */
  tableColumns(table: string): Promise<string[] | null>;
  /** Where this source points, safe to print (no password). */
  describe(): string;
  close(): Promise<void>;
}

export const DEFAULT_FETCH_SIZE = 5000;

/** Read a COUNT(*)-style single number from a result whose drivers disagree on its type. */
export function toCount(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "string" && value !== "") return Number(value);
  return 0;
}

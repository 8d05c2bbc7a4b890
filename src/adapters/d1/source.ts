import { SluiceError } from "../../core/errors.js";
import { splitTableName } from "../../core/sql/ident.js";
import {
  type Atomicity,
  type BatchStatement,
  type Column,
  type Dialect,
  type Row,
  type SqlExecutor,
  type SqlSource,
  plainPages,
} from "../../core/sql/source.js";
import { sqliteDialect } from "../sqlite/dialect.js";

/**
 * The parts of Cloudflare's D1 binding this adapter uses (structural, so that the Node build
 * needs no Workers type globals).
 */
export interface D1Meta {
  changes?: number;
  rows_read?: number;
  rows_written?: number;
}
export interface D1ResultLike<T = Row> {
  results?: T[];
  meta: D1Meta;
}
export interface D1StatementLike {
  bind(...values: unknown[]): D1StatementLike;
  all<T = Row>(): Promise<D1ResultLike<T>>;
  run(): Promise<D1ResultLike>;
}
export interface D1DatabaseLike {
  prepare(sql: string): D1StatementLike;
  batch(statements: D1StatementLike[]): Promise<D1ResultLike[]>;
}

/** D1 speaks SQLite, with at most 100 bound parameters per statement. */
export const d1Dialect: Dialect = {
  ...sqliteDialect,
  name: "d1",
  maxParams: 100,
};

/** D1 refuses `undefined` and booleans in some versions: bind what SQLite would store. */
function bindable(v: unknown): unknown {
  if (v === undefined) return null;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "bigint") return Number(v);
  return v;
}

/**
 * SqlSource over a D1 binding. D1 has neither cursors nor interactive transactions: reads
 * are pages the caller bounds (key pagination), and atomic writes go through `batch`.
 */
export class D1Source implements SqlSource {
  readonly dialect = d1Dialect;
  readonly atomicity: Atomicity = {
    kind: "batches",
    batch: (statements) => this.batch(statements),
  };
  readonly pages = plainPages(this);
  readonly dayPartitions = null;

  constructor(
    private readonly db: D1DatabaseLike,
    private readonly name = "DB",
  ) {}

  private statement(sql: string, params: readonly unknown[]): D1StatementLike {
    const stmt = this.db.prepare(sql);
    return params.length ? stmt.bind(...params.map(bindable)) : stmt;
  }

  async query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return (await this.statement(sql, params).all<T>()).results ?? [];
  }

  async execute(sql: string, params: readonly unknown[] = []): Promise<{ changes: number }> {
    const res = await this.statement(sql, params).run();
    return { changes: res.meta.changes ?? 0 };
  }

  /** Run write statements in one D1 transaction and one round trip: all commit, or none. */
  private async batch(statements: readonly BatchStatement[]): Promise<{ changes: number }[]> {
    if (statements.length === 0) return [];
    const results = await this.db.batch(
      statements.map((s) => this.statement(s.sql, s.params ?? [])),
    );
    return results.map((r) => ({ changes: r.meta.changes ?? 0 }));
  }

  // D1 returns a whole result per statement; there is no cursor to read one in batches.
  // Large reads in sluice are key-paginated pages (archive, verify), which never come here.
  // biome-ignore lint/correctness/useYield: refuses before reading anything
  async *stream(): AsyncIterable<Row[]> {
    throw new SluiceError(
      "failed",
      "D1 has no cursor: a result of unbounded size cannot be streamed from it; read it in key pages",
    );
  }

  /**
   * D1 cannot hold a transaction open across awaits, so `fn`'s statements each commit on their
   * own. Callers whose statements must commit together use `batch`; the ledger's own
   * sequences are written so that a rerun repairs an interrupted one.
   */
  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return fn(this);
  }

  async tableColumns(table: string): Promise<string[] | null> {
    return (await this.columnInfo(table))?.map((c) => c.name) ?? null;
  }

  async columnInfo(table: string): Promise<Column[] | null> {
    const { schema, table: name } = splitTableName(table);
    const rows = await this.query<Column>("SELECT name, type FROM pragma_table_info(?, ?)", [
      name,
      schema ?? "main",
    ]);
    return rows.length ? rows : null;
  }

  describe(): string {
    return `d1:${this.name}`;
  }

  async close(): Promise<void> {}
}

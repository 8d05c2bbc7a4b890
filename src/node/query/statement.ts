import type { DuckDBConnection, DuckDBPreparedStatement } from "@duckdb/node-api";
import { BadInputError } from "../../core/errors.js";

/** The query a person gave, checked: its text and its statement, prepared. */
export interface CheckedSelect {
  /** The text without a trailing semicolon (for COPY ... TO). */
  sql: string;
  /** Bound once, here: running it binds no view again (a Parquet view's bind reads footers). */
  prepared: DuckDBPreparedStatement;
  /** The most rows it can give: its top-level LIMIT when that is a constant; else null. */
  rowsAtMost: number | null;
}

const SELECT = 1; // DuckDB's StatementType.SELECT

/** `sql` if it is exactly one SELECT; else bad input, with DuckDB's own words for bad SQL. */
export async function checkedSelect(conn: DuckDBConnection, sql: string): Promise<CheckedSelect> {
  let statements: import("@duckdb/node-api").DuckDBExtractedStatements;
  try {
    statements = await conn.extractStatements(sql);
  } catch (err) {
    throw new BadInputError((err as Error).message);
  }
  if (statements.count !== 1) {
    throw new BadInputError(`give exactly one SELECT statement (found ${statements.count})`);
  }
  let prepared: DuckDBPreparedStatement;
  try {
    prepared = await statements.prepare(0);
  } catch (err) {
    throw new BadInputError((err as Error).message);
  }
  if (prepared.statementType !== SELECT) {
    throw new BadInputError("sluice query runs only a SELECT: the archive is read-only");
  }
  const text = sql.trim().replace(/;\s*$/, "");
  return { sql: text, prepared, rowsAtMost: await limitOf(conn, text) };
}

/**
 * The constant integer LIMIT of the statement's top level, read from DuckDB's own parse of it
 * (json_serialize_sql); null when it has none (or ALL, a percentage, an expression, a
 * parameter). Of several, the least: each is applied to what the one before left.
 */
export async function limitOf(conn: DuckDBConnection, sql: string): Promise<number | null> {
  let tree: {
    statements?: { node?: { modifiers?: { type: string; limit?: Constant | null }[] } }[];
  };
  try {
    const read = await conn.runAndReadAll("SELECT json_serialize_sql($1::VARCHAR)", [sql]);
    tree = JSON.parse(String(read.getRowsJson()[0]?.[0]));
  } catch {
    return null; // no bound known: the result streams
  }
  let least: number | null = null;
  for (const m of tree.statements?.[0]?.node?.modifiers ?? []) {
    const value = m.type === "LIMIT_MODIFIER" && m.limit?.class === "CONSTANT" && m.limit.value;
    // LIMIT ALL and LIMIT NULL are null constants: no bound. Only integers count.
    if (!value || value.is_null !== false || !INTEGER.test(value.type?.id ?? "")) continue;
    const n = Number(value.value);
    if (Number.isSafeInteger(n) && n >= 0 && (least === null || n < least)) least = n;
  }
  return least;
}

const INTEGER = /^U?(TINYINT|SMALLINT|INTEGER|BIGINT)$/;

interface Constant {
  class: string;
  value?: { type?: { id?: string }; is_null?: boolean; value?: unknown };
}

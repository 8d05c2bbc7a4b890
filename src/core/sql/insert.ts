import {
  type BatchStatement,
  type Dialect,
  type Row,
  type SqlExecutor,
  type SqlSource,
  batchesOf,
} from "./source.js";

/** Multi-row INSERTs for `rows`, each sized to the dialect's bound-parameter limit. */
function* insertStatements(
  db: SqlExecutor,
  table: string,
  columns: readonly string[],
  rows: readonly Row[],
): Generator<BatchStatement> {
  const q = db.dialect.quote;
  const perStatement = rowsPerStatement(db.dialect, columns.length, 500);
  const head = `INSERT INTO ${q(table)} (${columns.map(q).join(", ")}) VALUES `;
  for (let i = 0; i < rows.length; i += perStatement) {
    const chunk = rows.slice(i, i + perStatement);
    const params: unknown[] = [];
    for (const row of chunk) for (const c of columns) params.push(row[c] ?? null);
    yield { sql: head + valueRows(columns.length, chunk.length), params };
  }
}

/** Insert rows with multi-row INSERTs sized to the dialect's bound-parameter limit. */
export async function insertRows(
  db: SqlExecutor,
  table: string,
  columns: readonly string[],
  rows: readonly Row[],
): Promise<number> {
  let inserted = 0;
  for (const s of insertStatements(db, table, columns, rows)) {
    inserted += (await db.execute(s.sql, s.params)).changes;
  }
  return inserted;
}

/** Insert rows so that all of them commit or none do, on any source (D1 included). */
export async function insertAtomically(
  source: SqlSource,
  table: string,
  columns: readonly string[],
  rows: readonly Row[],
): Promise<number> {
  const batch = batchesOf(source);
  if (!batch) {
    return source.transaction((tx) => insertRows(tx, table, columns, rows));
  }
  const results = await batch([...insertStatements(source, table, columns, rows)]);
  return results.reduce((n, r) => n + r.changes, 0);
}

/** How many rows of `columns` values one statement takes (at least one, at most `cap`). */
export function rowsPerStatement(
  dialect: Dialect,
  columns: number,
  cap = Number.POSITIVE_INFINITY,
): number {
  return Math.max(1, Math.min(cap, Math.floor(dialect.maxParams / columns)));
}

/** `(?, ?), (?, ?)`: `rows` tuples of `columns` placeholders. */
export function valueRows(columns: number, rows: number): string {
  const tuple = `(${Array(columns).fill("?").join(", ")})`;
  return Array(rows).fill(tuple).join(", ");
}

/** Insert-or-add with `ON CONFLICT ... DO UPDATE` (PostgreSQL, SQLite): see Dialect.insertAdding. */
export function upsertAdding(
  table: string,
  columns: readonly string[],
  keys: readonly string[],
  rows: number,
): string {
  const add = columns.at(-1);
  return `INSERT INTO ${table} (${columns.join(", ")}) VALUES ${valueRows(columns.length, rows)} ON CONFLICT (${keys.join(", ")}) DO UPDATE SET ${add} = ${table}.${add} + excluded.${add}`;
}

import type { Row, SqlExecutor } from "./source.js";

/** Insert rows with multi-row INSERTs sized to the dialect's bound-parameter limit. */
export async function insertRows(
  db: SqlExecutor,
  table: string,
  columns: readonly string[],
  rows: readonly Row[],
): Promise<number> {
  const q = db.dialect.quote;
  const perStatement = Math.max(
    1,
    Math.min(500, Math.floor(db.dialect.maxParams / columns.length)),
  );
  const tuple = `(${columns.map(() => "?").join(", ")})`;
  const head = `INSERT INTO ${q(table)} (${columns.map(q).join(", ")}) VALUES `;
  let inserted = 0;
  for (let i = 0; i < rows.length; i += perStatement) {
    const chunk = rows.slice(i, i + perStatement);
    const params: unknown[] = [];
    for (const row of chunk) for (const c of columns) params.push(row[c] ?? null);
    const res = await db.execute(head + Array(chunk.length).fill(tuple).join(", "), params);
    inserted += res.changes;
  }
  return inserted;
}

import type { Dialect } from "../../core/sql/source.js";

export const quote = (ident: string) => `"${ident.replaceAll('"', '""')}"`;

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
  asText: (expr) => `(${expr})::text`,
  lockRows: " FOR UPDATE",
  keyIn: (expr, keys) => ({ sql: `${expr} = ANY(?::bigint[])`, params: [keys] }),
};

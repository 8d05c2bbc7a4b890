import { upsertAdding } from "../../core/sql/insert.js";
import type { Column, Dialect } from "../../core/sql/source.js";

// Names are checked plain identifiers, so a dot can only be schema.table's.
export const quote = (ident: string) =>
  ident
    .split(".")
    .map((part) => `"${part.replaceAll('"', '""')}"`)
    .join(".");
/** An SQL string literal. */
export const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;

export const postgresDialect: Dialect = {
  name: "postgres",
  quote,
  maxParams: 65535,
  insertIgnore: (table, columns) =>
    `INSERT INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")}) ON CONFLICT DO NOTHING`,
  insertAdding: (table, columns, keys, rows) => upsertAdding(table, columns, keys, rows),
  // row_to_json writes every type as PostgreSQL's own text (exact numerics, dates, times
  // with all their digits), compactly; the derived table puts the key first.
  jsonRow: (_columns, alias) => `row_to_json(${alias})::text`,
  // A json value `null` and SQL NULL both render as null inside row_to_json: as text, a
  // json column keeps the difference (and its exact text).
  columnText: (quoted, type) =>
    type === "json" || type === "jsonb" ? `${quoted}::text` : undefined,
  asText: (expr) => `(${expr})::text`,
  // int2 and int4 are JS numbers (pg parses them), written as COPY writes them; text types
  // are strings, char(n) with its padding both ways. int8 may be a string: not here.
  copyKind: (type) =>
    type === "integer" || type === "smallint"
      ? "number"
      : type === "text" || /^character( varying)?(\(\d+\))?$/.test(type)
        ? "string"
        : undefined,
  // bytea as PostgreSQL prints it (bytea_output = 'hex'): `\\x` and two hex digits a byte.
  columnEncoding: (type) => (type === "bytea" ? "hex" : undefined),
  // Each member as text (`->>`), cast to the column's declared type: the text row_to_json
  // wrote is PostgreSQL's own, which its input functions read back exactly.
  restoreRows: (table, columns, key) => {
    const member = (name: string) => `j.v->>${literal(name)}`;
    const value = (c: Column) => `(${member(c.name)})::${c.type}`;
    const k = columns.find((c) => c.name === key) as Column;
    // The archived keys, even into a GENERATED ALWAYS identity column.
    return `INSERT INTO ${table} (${columns.map((c) => quote(c.name)).join(", ")}) OVERRIDING SYSTEM VALUE
      SELECT ${columns.map(value).join(", ")} FROM json_array_elements(?::json) AS j(v)
      WHERE NOT EXISTS (SELECT 1 FROM ${table} x WHERE x.${quote(key)} = ${value(k)})`;
  },
  lockRows: " FOR UPDATE",
  keyIn: (expr, keys) => ({ sql: `${expr} = ANY(?::bigint[])`, params: [keys] }),
};

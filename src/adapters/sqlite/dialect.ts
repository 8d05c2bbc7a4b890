import type { Dialect } from "../../core/sql/source.js";

/** SQLite's SQL, shared by better-sqlite3 files and D1 (which must not load the native driver). */
export const sqliteDialect: Dialect = {
  name: "sqlite",
  // Names are checked plain identifiers, so a dot can only be schema.table's (main.t).
  quote: (ident) =>
    ident
      .split(".")
      .map((part) => `"${part.replaceAll('"', '""')}"`)
      .join("."),
  // json_object takes at most 127 arguments by default; wider tables use the portable path.
  jsonRow: (columns, alias) =>
    columns.length > 63
      ? undefined
      : `json_object(${columns.map((c) => `'${c.replaceAll("'", "''")}', ${alias}."${c.replaceAll('"', '""')}"`).join(", ")})`,
  maxParams: 32766,
  // json_extract gives back what json_object wrote: integers exact, text, reals, NULL.
  restoreRows: (table, columns, key) => {
    const q = sqliteDialect.quote;
    const member = (name: string) =>
      `json_extract(j.value, '$."${name.replaceAll("'", "''").replaceAll('"', '\\"')}"')`;
    return `INSERT INTO ${table} (${columns.map((c) => q(c.name)).join(", ")})
      SELECT ${columns.map((c) => member(c.name)).join(", ")} FROM json_each(?) AS j
      WHERE NOT EXISTS (SELECT 1 FROM ${table} x WHERE x.${q(key)} = ${member(key)})`;
  },
  // BEGIN IMMEDIATE already holds the only write lock.
  lockRows: "",
  deletesByRange: true,
  insertIgnore: (table, columns) =>
    `INSERT INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")}) ON CONFLICT DO NOTHING`,
};

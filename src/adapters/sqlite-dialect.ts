import type { Dialect } from "../core/source.js";

/** SQLite's SQL, shared by better-sqlite3 files and D1 (which must not load the native driver). */
export const sqliteDialect: Dialect = {
  name: "sqlite",
  quote: (ident) => `"${ident.replaceAll('"', '""')}"`,
  // json_object takes at most 127 arguments by default; wider tables use the portable path.
  jsonObject: (columns) =>
    columns.length > 63
      ? undefined
      : `json_object(${columns.map((c) => `'${c.replaceAll("'", "''")}', "${c.replaceAll('"', '""')}"`).join(", ")})`,
  maxParams: 32766,
  keysCommitInOrder: true,
  insertIgnore: (table, columns) =>
    `INSERT INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")}) ON CONFLICT DO NOTHING`,
};

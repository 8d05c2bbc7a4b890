import { upsertAdding } from "../../core/sql/insert.js";
import type { Column, Dialect } from "../../core/sql/source.js";

/**
 * A column whose declared type gives it BLOB affinity (a type naming BLOB, or none): the
 * columns where an application keeps bytes. json_object refuses a BLOB value, so there a value
 * is read as text: a BLOB as `\x` and its hex digits (as PostgreSQL prints bytea), a text that
 * starts with `\` with one more `\` before it, anything else as itself.
 */
const holdsBlobs = (type: string) => type === "" || /BLOB/i.test(type);

const blobAsText = (v: string) =>
  `CASE typeof(${v}) WHEN 'blob' THEN '\\x' || hex(${v}) WHEN 'text' THEN CASE WHEN substr(${v}, 1, 1) = '\\' THEN '\\' || ${v} ELSE ${v} END ELSE ${v} END`;

/** The inverse of {@link blobAsText}: numbers and NULL pass through as json_extract read them. */
const textAsBlob = (v: string) =>
  `CASE WHEN typeof(${v}) <> 'text' THEN ${v} WHEN substr(${v}, 1, 2) = '\\x' THEN unhex(substr(${v}, 3)) WHEN substr(${v}, 1, 1) = '\\' THEN substr(${v}, 2) ELSE ${v} END`;

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
  jsonRow: (columns, alias, types) =>
    columns.length > 63
      ? undefined
      : `json_object(${columns
          .map((c, i) => {
            const ref = `${alias}."${c.replaceAll('"', '""')}"`;
            const type = types?.[i];
            return `'${c.replaceAll("'", "''")}', ${type !== undefined && holdsBlobs(type) ? blobAsText(ref) : ref}`;
          })
          .join(", ")})`,
  columnText: (quoted, type) => (holdsBlobs(type) ? blobAsText(quoted) : undefined),
  columnEncoding: (type) => (holdsBlobs(type) ? "hex" : undefined),
  maxParams: 32766,
  // json_extract gives back what json_object wrote: integers exact, text, reals, NULL.
  restoreRows: (table, columns, key) => {
    const q = sqliteDialect.quote;
    const member = (name: string) =>
      `json_extract(j.value, '$."${name.replaceAll("'", "''").replaceAll('"', '\\"')}"')`;
    const value = (c: Column) => (holdsBlobs(c.type) ? textAsBlob(member(c.name)) : member(c.name));
    return `INSERT INTO ${table} (${columns.map((c) => q(c.name)).join(", ")})
      SELECT ${columns.map(value).join(", ")} FROM json_each(?) AS j
      WHERE NOT EXISTS (SELECT 1 FROM ${table} x WHERE x.${q(key)} = ${member(key)})`;
  },
  // BEGIN IMMEDIATE already holds the only write lock.
  lockRows: "",
  deletesByRange: true,
  insertIgnore: (table, columns) =>
    `INSERT INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")}) ON CONFLICT DO NOTHING`,
  insertAdding: (table, columns, keys, rows) => upsertAdding(table, columns, keys, rows),
};

import { valueRows } from "../../core/sql/insert.js";
import type { Column, Dialect } from "../../core/sql/source.js";

/** Column types mysql2 reads as bytes: archived as base64 text. */
export const isBinaryType = (type: string) =>
  /^(binary|varbinary|tinyblob|blob|mediumblob|longblob|bit)\b/i.test(type);

export const mysqlDialect: Dialect = {
  name: "mysql",
  // Names are checked plain identifiers, so a dot can only be database.table's.
  quote: (ident) =>
    ident
      .split(".")
      .map((part) => `\`${part.replaceAll("`", "``")}\``)
      .join("."),
  maxParams: 65535,
  insertIgnore: (table, columns) =>
    `INSERT IGNORE INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`,
  insertAdding: (table, columns, _keys, rows) => {
    const add = columns.at(-1);
    return `INSERT INTO ${table} (${columns.join(", ")}) VALUES ${valueRows(columns.length, rows)} ON DUPLICATE KEY UPDATE ${add} = ${add} + VALUES(${add})`;
  },
  // No jsonRow: JSON_OBJECT reorders keys (MySQL) and spaces them; rows are rendered in JS
  // from values the driver returns as the server's own text (dates, decimals, JSON).
  columnEncoding: (type) => (isBinaryType(type) ? "base64" : undefined),
  lockRows: " FOR UPDATE",
  // JSON_TABLE reads each member as text (a string unquoted, a number as written, null as
  // NULL); the INSERT converts it to the column's type, and base64 back to bytes.
  restoreRows: (table, columns, key) => {
    const q = mysqlDialect.quote;
    const path = (name: string) =>
      `'$."${name.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("'", "''")}"'`;
    const value = (c: Column, i: number) =>
      isBinaryType(c.type) ? `FROM_BASE64(j.c${i})` : `j.c${i}`;
    const k = columns.findIndex((c) => c.name === key);
    return `INSERT INTO ${table} (${columns.map((c) => q(c.name)).join(", ")})
      SELECT ${columns.map(value).join(", ")} FROM JSON_TABLE(?, '$[*]' COLUMNS (${columns
        .map((c, i) => `c${i} LONGTEXT PATH ${path(c.name)}`)
        .join(", ")})) AS j
      WHERE NOT EXISTS (SELECT 1 FROM ${table} x WHERE x.${q(key)} = ${value(columns[k] as Column, k)})`;
  },
};

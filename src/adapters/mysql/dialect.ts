import type { Dialect } from "../../core/sql/source.js";

export const mysqlDialect: Dialect = {
  name: "mysql",
  quote: (ident) => `\`${ident.replaceAll("`", "``")}\``,
  maxParams: 65535,
  insertIgnore: (table, columns) =>
    `INSERT IGNORE INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`,
  // No jsonRow: JSON_OBJECT reorders keys (MySQL) and spaces them; rows are rendered in JS
  // from values the driver returns as the server's own text (dates, decimals, JSON).
  lockRows: " FOR UPDATE",
};

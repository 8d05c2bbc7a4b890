import { checkIdentifier } from "../../core/sql/ident.js";
import type { Dialect } from "../../core/sql/source.js";

/**
 * Keys the database hands out in order. A reused key would not lose a row (cleanup deletes
 * only rows equal to their archived line) but would come back as a late row; AUTOINCREMENT
 * keeps SQLite from reusing the keys of deleted rows. The table name comes from --table or
 * SLUICE_TABLE: checked and quoted like every identifier, since PostgreSQL would run a
 * `;`-separated statement smuggled into it.
 */
export function trafficSchema(dialect: Dialect, table = "traffic_events"): string[] {
  checkIdentifier("table", table);
  const q = dialect.quote;
  const id =
    dialect.name === "postgres"
      ? "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
      : dialect.name === "mysql"
        ? "id BIGINT AUTO_INCREMENT PRIMARY KEY"
        : "id INTEGER PRIMARY KEY AUTOINCREMENT";
  return [
    `CREATE TABLE IF NOT EXISTS ${q(table)} (
      ${id},
      event_date VARCHAR(10) NOT NULL,
      ts BIGINT NOT NULL,
      path VARCHAR(512) NOT NULL,
      referrer VARCHAR(512),
      country VARCHAR(2),
      user_agent VARCHAR(512),
      status INTEGER NOT NULL,
      duration_ms INTEGER NOT NULL
    )`,
    `CREATE INDEX ${dialect.name === "mysql" ? "" : "IF NOT EXISTS "}${q(`${table}_date_id`)} ON ${q(table)} (event_date, id)`,
  ];
}

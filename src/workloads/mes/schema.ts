import type { Dialect } from "../../core/sql/source.js";

import { MES_COLUMNS, MES_KEY, MES_TABLES, type MesTable } from "../../core/trace/tables.js";

/** The MES trace tables as each dialect creates them (the columns: core/trace/tables.ts). */
const TYPES: Record<string, string> = {
  CONTAINERID: "VARCHAR(16) NOT NULL",
  LOTID: "VARCHAR(16) NOT NULL",
  PARENT_CONTAINERID: "VARCHAR(16) NOT NULL",
  CHILD_CONTAINERID: "VARCHAR(16) NOT NULL",
  RELATION: "VARCHAR(8) NOT NULL",
  WORKCENTER: "VARCHAR(32) NOT NULL",
  EQUIPMENT: "VARCHAR(32) NOT NULL",
  SPEC: "VARCHAR(64) NOT NULL",
  REASON_CODE: "VARCHAR(32) NOT NULL",
  OPERATOR: "VARCHAR(16)",
  TRACKIN_TS: "VARCHAR(20) NOT NULL",
  TRACKOUT_TS: "VARCHAR(20) NOT NULL",
  TS: "VARCHAR(20) NOT NULL",
  QTY: "INTEGER NOT NULL",
  DEFECT_QTY: "INTEGER NOT NULL",
};

/** The indexes the trace stages read by: seed-resolve, lineage both ways, events by id. */
export const MES_INDEXES: readonly { name: string; table: MesTable; columns: readonly string[] }[] =
  [
    { name: "lot_moves_lotid", table: "lot_moves", columns: ["LOTID"] },
    { name: "lot_moves_wc_trackout", table: "lot_moves", columns: ["WORKCENTER", "TRACKOUT_TS"] },
    { name: "lot_moves_containerid", table: "lot_moves", columns: ["CONTAINERID"] },
    {
      name: "container_lineage_parent",
      table: "container_lineage",
      columns: ["PARENT_CONTAINERID"],
    },
    { name: "container_lineage_child", table: "container_lineage", columns: ["CHILD_CONTAINERID"] },
    { name: "upstream_history_containerid", table: "upstream_history", columns: ["CONTAINERID"] },
    { name: "defect_records_containerid", table: "defect_records", columns: ["CONTAINERID"] },
  ];

/**
 * CREATE TABLE / CREATE INDEX statements (IF NOT EXISTS) for the four MES tables, as `dialect`
 * spells them. MySQL has no CREATE INDEX IF NOT EXISTS: its caller ignores "Duplicate key name".
 */
export function mesSchema(dialect: Dialect): string[] {
  const q = dialect.quote;
  const id =
    dialect.name === "postgres"
      ? `${q(MES_KEY)} BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY`
      : dialect.name === "mysql"
        ? `${q(MES_KEY)} BIGINT AUTO_INCREMENT PRIMARY KEY`
        : `${q(MES_KEY)} INTEGER PRIMARY KEY AUTOINCREMENT`;
  const tables = MES_TABLES.map(
    (t) =>
      `CREATE TABLE IF NOT EXISTS ${q(t)} (\n      ${[id, ...MES_COLUMNS[t].map((c) => `${q(c)} ${TYPES[c]}`)].join(",\n      ")}\n    )`,
  );
  const ifNotExists = dialect.name === "mysql" ? "" : "IF NOT EXISTS ";
  const indexes = MES_INDEXES.map(
    (ix) =>
      `CREATE INDEX ${ifNotExists}${q(ix.name)} ON ${q(ix.table)} (${ix.columns.map(q).join(", ")})`,
  );
  return [...tables, ...indexes];
}

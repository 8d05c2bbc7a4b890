import type { Dialect } from "../source.js";

/**
 * The MES trace tables (DOMAINS.md, "2. MES trace"). Column names are upper case, as at the
 * seed's site, and always quoted: PostgreSQL would fold unquoted names to lower case. Table
 * names are lower case, quoted too. Ids are strings (`C00012345`, `L0001234`), timestamps
 * ISO-8601 text `YYYY-MM-DDTHH:MM:SSZ` (portable, and sortable as text), quantities integers.
 * Every table also has an integer surrogate key `ID` (not listed below: the database assigns
 * it), so that rows have a stable order.
 */
export const MES_TABLES = [
  "lot_moves",
  "container_lineage",
  "upstream_history",
  "defect_records",
] as const;
export type MesTable = (typeof MES_TABLES)[number];

/** The surrogate key column of every MES table. */
export const MES_KEY = "ID";

/** Genealogy edges: RELATION is 'SPLIT' (parent -> new child) or 'MERGE' (merged -> kept). */
export const CONTAINER_LINEAGE_COLUMNS = [
  "PARENT_CONTAINERID",
  "CHILD_CONTAINERID",
  "RELATION",
  "TS",
] as const;

/** The process history of a container: one row per step (SPEC) at each station it passed. */
export const UPSTREAM_HISTORY_COLUMNS = [
  "CONTAINERID",
  "WORKCENTER",
  "EQUIPMENT",
  "SPEC",
  "TRACKIN_TS",
  "TRACKOUT_TS",
  "QTY",
  "OPERATOR",
] as const;

/** Every track-out of a container at a station: its history's columns, with its LOTID. */
export const LOT_MOVES_COLUMNS = [
  "CONTAINERID",
  "LOTID",
  ...UPSTREAM_HISTORY_COLUMNS.slice(1),
] as const;

/** Defects recorded on a container at a station (most at TMTT, the late test station). */
export const DEFECT_RECORDS_COLUMNS = [
  "CONTAINERID",
  "WORKCENTER",
  "EQUIPMENT",
  "REASON_CODE",
  "DEFECT_QTY",
  "TS",
] as const;

/** The columns each MES table is written with (without the surrogate key `ID`). */
export const MES_COLUMNS: { readonly [T in MesTable]: readonly string[] } = {
  lot_moves: LOT_MOVES_COLUMNS,
  container_lineage: CONTAINER_LINEAGE_COLUMNS,
  upstream_history: UPSTREAM_HISTORY_COLUMNS,
  defect_records: DEFECT_RECORDS_COLUMNS,
};

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

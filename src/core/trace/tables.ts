/**
 * The MES tables the trace reads (README, "The MES tables the trace routes read"). Column names are upper case, as
 * at the factory's site, and always quoted: PostgreSQL would fold unquoted names to lower case.
 * Table names are lower case, quoted too. Ids are strings (`C00012345`, `L0001234`),
 * timestamps ISO-8601 text `YYYY-MM-DDTHH:MM:SSZ` (portable, and sortable as text), quantities
 * integers. Every table also has an integer surrogate key `ID` (not listed below: the database
 * assigns it), so that rows have a stable order.
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

import type { DuckDBConnection } from "@duckdb/node-api";
import type { TableReads } from "./table-reads.js";

type Files = TableReads["files"];

/**
 * The statements that make table `i`'s view over its files (`schema.table` gets its schema):
 * whole files read as they are; of the others, each line counted when its key is at most the
 * file's `passed` (null: any) and it is not one of the skipped lines. Reads the files'
 * columns first (jsonColumns, parquetGroups), so that no later bind of the view reads them.
 */
export async function viewStatements(
  conn: DuckDBConnection,
  i: number,
  table: string,
  keyColumn: string,
  reads: TableReads,
): Promise<string[]> {
  const { files, skipped } = reads;
  const columns = await jsonColumns(conn, files);
  const groups = await parquetGroups(conn, files);
  const ident = (p: string) => `"${p.replaceAll('"', '""')}"`;
  const name = table.split(".").map(ident).join(".");
  const schema = table.includes(".") ? [`CREATE SCHEMA IF NOT EXISTS ${name.split(".")[0]}`] : [];
  // JSONL and Parquet parts (and the hot rows' JSONL) side by side, their columns matched by name.
  const read = (some: Files, extra = "") => {
    const json = some.filter((f) => !isParquet(f));
    const reads = [];
    if (json.length) {
      reads.push(
        `SELECT * FROM read_json(${fileList(json)}, format = 'newline_delimited', hive_partitioning = true, ${columns ? `columns = ${columns}` : "union_by_name = true"}${extra})`,
      );
    }
    for (const group of groupsOf(some, groups)) {
      reads.push(
        `SELECT * FROM read_parquet(${fileList(group)}, hive_partitioning = true${extra})`,
      );
    }
    return `(${reads.join(" UNION ALL BY NAME ")})`;
  };
  const whole = files.filter((f) => f.whole);
  const cut = files.filter((f) => !f.whole);
  const selects = whole.length ? [`SELECT * FROM ${read(whole)}`] : [];
  const setup: string[] = [];
  if (cut.length) {
    const passed = cut
      .map((f) => `('${sqlText(f.path)}', ${f.passed === null ? "NULL" : f.passed})`)
      .join(", ");
    const key = `TRY_CAST(l.${ident(keyColumn)} AS BIGINT)`;
    setup.push(
      "CREATE SCHEMA IF NOT EXISTS sluice_reads",
      `CREATE TABLE sluice_reads.files_${i} (file VARCHAR, passed BIGINT)`,
      `INSERT INTO sluice_reads.files_${i} VALUES ${passed}`,
      `CREATE TABLE sluice_reads.skipped_${i} AS SELECT * FROM read_json('${sqlText(skipped)}', format = 'newline_delimited', columns = {file: 'VARCHAR', k: 'BIGINT'})`,
    );
    selects.push(`SELECT l.* EXCLUDE (sluice_file) FROM ${read(cut, ", filename = 'sluice_file'")} l
     JOIN sluice_reads.files_${i} f ON f.file = l.sluice_file
     WHERE (f.passed IS NULL OR ${key} <= f.passed)
       AND NOT EXISTS (SELECT 1 FROM sluice_reads.skipped_${i} s WHERE s.file = l.sluice_file AND s.k = ${key})`);
  }
  return [...schema, ...setup, `CREATE VIEW ${name} AS ${selects.join(" UNION ALL BY NAME ")}`];
}

/**
 * The columns DuckDB detects in a table's JSONL files, read once (all files, by name) as a
 * `columns = {...}` struct; "" when there are none to read. Without it read_json samples
 * every file again at each bind: the view's, the statement check's and the query's.
 */
async function jsonColumns(conn: DuckDBConnection, files: Files): Promise<string> {
  const json = files.filter((f) => !isParquet(f));
  if (json.length === 0) return "";
  const described = await conn.runAndReadAll(
    `DESCRIBE SELECT * FROM read_json(${fileList(json)}, format = 'newline_delimited', union_by_name = true)`,
  );
  const columns = described
    .getRowObjectsJson()
    .map((r) => `'${sqlText(String(r.column_name))}': '${sqlText(String(r.column_type))}'`);
  return columns.length ? `{${columns.join(", ")}}` : "";
}

/**
 * Each Parquet file's schema as text (every field of parquet_schema that says how a column is
 * read), from one read of all the footers, which the metadata cache keeps for the binds after.
 * Files of one schema are read by one read_parquet without union_by_name: with it, every bind
 * opens every file's footer again (~38 ms for 30 days of 1M rows, cached or not); without it,
 * a file whose columns differ from the first file's loses its own or fails, so each schema
 * gets its own read.
 */
async function parquetGroups(conn: DuckDBConnection, files: Files): Promise<Map<string, string>> {
  const parquet = files.filter(isParquet);
  if (parquet.length === 0) return new Map();
  const read = await conn.runAndReadAll(
    `SELECT file_name, CAST(list(struct_pack(name, type, type_length, repetition_type, num_children, converted_type, scale, precision, field_id, logical_type, duckdb_type) ORDER BY column_id) AS VARCHAR) FROM parquet_schema(${fileList(parquet)}) GROUP BY file_name`,
  );
  return new Map(read.getRowsJson().map(([file, schema]) => [String(file), String(schema)]));
}

/** `files`' Parquet files, those of one schema together (a file without one: alone). */
function groupsOf(files: Files, schemas: ReadonlyMap<string, string>): Files[] {
  const groups = new Map<string, Files>();
  for (const f of files.filter(isParquet)) {
    const key = schemas.get(f.path) ?? `?${f.path}`;
    const group = groups.get(key);
    if (group) group.push(f);
    else groups.set(key, [f]);
  }
  return [...groups.values()];
}

const isParquet = (f: Files[number]) => f.path.endsWith(".parquet");

/** The files as a DuckDB list of paths. */
const fileList = (some: Files) => `[${some.map((f) => `'${sqlText(f.path)}'`).join(", ")}]`;

/** Text inside single quotes in DuckDB's SQL. */
export const sqlText = (s: string) => s.replaceAll("'", "''");

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Writable } from "node:stream";
import type { NodeContext } from "../context.js";
import { loadDuckDb } from "./duckdb.js";
import { PartCache } from "./part-cache.js";
import { type RowWriter, rowWriter } from "./row-writers.js";
import { checkedSelect } from "./statement.js";
import { type TableReads, tableReads, write } from "./table-reads.js";

export interface ArchiveQueryOptions {
  sql: string;
  /** The hot rows too, with the archived rows cleanup deleted: each row of both tiers once. */
  hot?: boolean;
  /** Only the days `from..to` (inclusive) are read and, from S3/R2, fetched. */
  from?: string;
  to?: string;
  format: "table" | "ndjson" | "csv";
  /** Write the result to this Parquet file instead of `out`. */
  parquet?: string;
  cacheDir: string;
  cacheBytes: number;
  /** What a reader must know of the answer (parts whose skipped lines nobody recorded). */
  onWarning?: (message: string) => void;
  /** Progress of a long scan, a line at a time (stderr on a terminal). */
  onProgress?: (percent: number) => void;
  signal?: AbortSignal;
}

/** Results of at most this many rows (one DuckDB chunk) are read whole, not streamed. */
export const WHOLE_ROWS = 2048;

/**
 * Run one SELECT with DuckDB over the archive: each table a view over exactly the parts the
 * ledger lists as verified (Hive `date=` folders, so a filter on `date` reads only those
 * days), less the lines that are no row (tableReads); with `hot`, the hot rows and the
 * archived rows cleanup deleted, each row once. DuckDB may read only the archive, the cache
 * and this query's own files. Returns the rows written.
 */
export async function archiveQuery(
  contexts: readonly NodeContext[],
  o: ArchiveQueryOptions,
  out: Writable,
): Promise<number> {
  const duckdb = loadDuckDb();
  const scratch = await mkdtemp(join(tmpdir(), "sluice-query-"));
  const cache = new PartCache(resolve(o.cacheDir), o.cacheBytes);
  const readable = new Set<string>([scratch, cache.dir]);
  const tables: { i: number; table: string; keyColumn: string; reads: TableReads }[] = [];
  try {
    const used = new Set<string>();
    for (const [i, c] of contexts.entries()) {
      const { table, keyColumn } = c.ctx.spec;
      const reads = await tableReads(c, o, cache, readable, join(scratch, `t${i}`));
      for (const f of reads.files) used.add(f.path);
      for (const p of reads.unknown) {
        o.onWarning?.(
          `${table} ${p.date} part ${p.part} was cleaned, leaving ${p.eventCount - p.cleanedCount} of its rows, before the ledger recorded which: those rows may count twice (changed and kept) or once too often (deleted by hand)`,
        );
      }
      if (reads.files.length > 0) tables.push({ i, table, keyColumn, reads });
    }
    await cache.evict(used);

    const db = await duckdb.DuckDBInstance.create(":memory:");
    const conn = await db.connect();
    try {
      // A Parquet footer is read at each bind of a view (its creation, the statement check,
      // the query) unless kept: 30 days of 1M rows, 0.77 -> 0.64 s.
      await conn.run("SET parquet_metadata_cache = true");
      for (const t of tables) {
        const columns = await jsonColumns(conn, t.reads.files);
        for (const v of viewSql(
          t.i,
          t.table,
          t.keyColumn,
          t.reads.files,
          t.reads.skipped,
          columns,
        )) {
          await conn.run(v);
        }
      }
      const dirs = [...readable].map((d) => `'${sqlText(d.endsWith("/") ? d : `${d}/`)}'`);
      const paths = o.parquet ? [`'${sqlText(resolve(o.parquet))}'`] : [];
      // From here on DuckDB reads nothing but the archive, the cache and its scratch files.
      await conn.run(`SET allowed_directories = [${dirs.join(", ")}]`);
      if (paths.length) await conn.run(`SET allowed_paths = [${paths.join(", ")}]`);
      await conn.run("SET enable_external_access = false");
      await conn.run("SET autoinstall_known_extensions = false");
      await conn.run("SET autoload_known_extensions = false");
      await conn.run("SET lock_configuration = true");

      const query = await checkedSelect(conn, o.sql);
      const progress = o.onProgress
        ? setInterval(() => {
            const p = conn.progress.percentage;
            if (p >= 0) o.onProgress?.(p);
          }, 1000)
        : null;
      const abort = () => conn.interrupt();
      o.signal?.addEventListener("abort", abort, { once: true });
      try {
        if (o.parquet) {
          const done = await conn.run(
            `COPY (${query.sql}) TO '${sqlText(resolve(o.parquet))}' (FORMAT parquet, COMPRESSION zstd)`,
          );
          return Number(done.rowsChanged);
        }
        // A streamed result is read as DuckDB makes it, a chunk at a time, in bounded memory,
        // but is made slower than one made whole (30 days of JSONL, top 10: 8.1 against 6.6 s
        // on a loaded machine); so only a result its LIMIT proves small is made whole.
        const small = query.rowsAtMost !== null && query.rowsAtMost <= WHOLE_ROWS;
        const result = small ? await query.prepared.run() : await query.prepared.stream();
        const writer = rowWriter(o.format, result.columnNames(), result.columnTypes());
        let rows = 0;
        for await (const batch of result.yieldRowsJson()) {
          rows += batch.length;
          await write(out, writer.rows(batch));
        }
        await write(out, writer.end());
        return rows;
      } finally {
        if (progress) clearInterval(progress);
        o.signal?.removeEventListener("abort", abort);
      }
    } finally {
      conn.closeSync();
      db.closeSync();
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * The columns DuckDB detects in a table's JSONL files, read once (all files, by name) as a
 * `columns = {...}` struct; "" when there are none to read. Without it read_json samples
 * every file again at each bind: the view's, the statement check's and the query's.
 */
async function jsonColumns(
  conn: import("@duckdb/node-api").DuckDBConnection,
  files: TableReads["files"],
): Promise<string> {
  const json = files.filter((f) => !f.path.endsWith(".parquet"));
  if (json.length === 0) return "";
  const list = json.map((f) => `'${sqlText(f.path)}'`).join(", ");
  const described = await conn.runAndReadAll(
    `DESCRIBE SELECT * FROM read_json([${list}], format = 'newline_delimited', union_by_name = true)`,
  );
  const columns = described
    .getRowObjectsJson()
    .map((r) => `'${sqlText(String(r.column_name))}': '${sqlText(String(r.column_type))}'`);
  return columns.length ? `{${columns.join(", ")}}` : "";
}

/**
 * The statements that make one table's view over its files (`schema.table` gets its schema):
 * whole files read as they are; of the others, each line counted when its key is at most the
 * file's `passed` (null: any) and it is not one of the skipped lines. `columns`: the JSONL
 * files' columns as jsonColumns gives them ("": detected by read_json).
 */
function viewSql(
  i: number,
  table: string,
  keyColumn: string,
  files: TableReads["files"],
  skipped: string,
  columns: string,
): string[] {
  const ident = (p: string) => `"${p.replaceAll('"', '""')}"`;
  const name = table.split(".").map(ident).join(".");
  const schema = table.includes(".") ? [`CREATE SCHEMA IF NOT EXISTS ${name.split(".")[0]}`] : [];
  const list = (some: TableReads["files"]) =>
    `[${some.map((f) => `'${sqlText(f.path)}'`).join(", ")}]`;
  // JSONL and Parquet parts (and the hot rows' JSONL) side by side, their columns matched by name.
  const read = (some: TableReads["files"], extra = "") => {
    const parquet = some.filter((f) => f.path.endsWith(".parquet"));
    const json = some.filter((f) => !f.path.endsWith(".parquet"));
    const reads = [];
    if (json.length) {
      reads.push(
        `SELECT * FROM read_json(${list(json)}, format = 'newline_delimited', hive_partitioning = true, ${columns ? `columns = ${columns}` : "union_by_name = true"}${extra})`,
      );
    }
    if (parquet.length) {
      reads.push(
        `SELECT * FROM read_parquet(${list(parquet)}, hive_partitioning = true, union_by_name = true${extra})`,
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

const sqlText = (s: string) => s.replaceAll("'", "''");

export type { RowWriter };

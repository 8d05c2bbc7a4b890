import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { Writable } from "node:stream";
import { FsStore } from "../../adapters/fs/store.js";
import { hotDays } from "../../core/archive/hot-days.js";
import type { PartRecord } from "../../core/archive/ledger/records.js";
import { unheldLines } from "../../core/archive/unheld.js";
import { BadInputError } from "../../core/errors.js";
import type { NodeContext } from "../context.js";
import { PartCache } from "./part-cache.js";
import { type RowWriter, rowWriter } from "./row-writers.js";

export interface ArchiveQueryOptions {
  sql: string;
  /** Add the hot rows no verified part holds, so that the query spans both tiers. */
  hot?: boolean;
  /** Only the days `from..to` (inclusive) are read and, from S3/R2, fetched. */
  from?: string;
  to?: string;
  format: "table" | "ndjson" | "csv";
  /** Write the result to this Parquet file instead of `out`. */
  parquet?: string;
  cacheDir: string;
  cacheBytes: number;
  /** Progress of a long scan, a line at a time (stderr on a terminal). */
  onProgress?: (percent: number) => void;
  signal?: AbortSignal;
}

const SELECT = 1; // DuckDB's StatementType.SELECT

/**
 * Run one SELECT with DuckDB over the archive: each table a view over exactly the parts the
 * ledger lists as verified (Hive `date=` folders, so a filter on `date` reads only those
 * days), with `hot` the hot rows no verified part holds as well. DuckDB may read only the
 * archive, the cache and this query's own files. Returns the rows written.
 */
export async function archiveQuery(
  contexts: readonly NodeContext[],
  o: ArchiveQueryOptions,
  out: Writable,
): Promise<number> {
  const duckdb = await import("@duckdb/node-api").catch(() => {
    throw new BadInputError(
      "sluice query needs DuckDB (@duckdb/node-api, an optional dependency): npm install @duckdb/node-api",
    );
  });
  const scratch = await mkdtemp(join(tmpdir(), "sluice-query-"));
  const cache = new PartCache(resolve(o.cacheDir), o.cacheBytes);
  const readable = new Set<string>([scratch, cache.dir]);
  const views: string[] = [];
  try {
    const used = new Set<string>();
    for (const c of contexts) {
      const files = await verifiedFiles(c, o, cache, readable);
      for (const f of files) used.add(f);
      if (o.hot) files.push(...(await hotFiles(c, o, scratch)));
      if (files.length === 0) continue;
      views.push(viewSql(c.ctx.spec.table, files));
    }
    await cache.evict(used);

    const db = await duckdb.DuckDBInstance.create(":memory:");
    const conn = await db.connect();
    try {
      for (const v of views) await conn.run(v);
      const dirs = [...readable].map((d) => `'${sqlText(d.endsWith("/") ? d : `${d}/`)}'`);
      const paths = o.parquet ? [`'${sqlText(resolve(o.parquet))}'`] : [];
      // From here on DuckDB reads nothing but the archive, the cache and its scratch files.
      await conn.run(`SET allowed_directories = [${dirs.join(", ")}]`);
      if (paths.length) await conn.run(`SET allowed_paths = [${paths.join(", ")}]`);
      await conn.run("SET enable_external_access = false");
      await conn.run("SET autoinstall_known_extensions = false");
      await conn.run("SET autoload_known_extensions = false");
      await conn.run("SET lock_configuration = true");

      const sql = await onlyOneSelect(conn, o.sql);
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
            `COPY (${sql}) TO '${sqlText(resolve(o.parquet))}' (FORMAT parquet, COMPRESSION zstd)`,
          );
          return Number(done.rowsChanged);
        }
        const result = await conn.stream(sql);
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

/** The local paths of the verified parts of `c`'s table in range: in place, or fetched. */
async function verifiedFiles(
  c: NodeContext,
  o: ArchiveQueryOptions,
  cache: PartCache,
  readable: Set<string>,
): Promise<string[]> {
  const { ledger, spec, store } = c.ctx;
  const parts: PartRecord[] = [];
  for (const rec of await ledger.list(spec.table)) {
    if ((o.from && rec.date < o.from) || (o.to && rec.date > o.to)) continue;
    for (const p of await ledger.parts(spec.table, rec.date)) if (p.verifiedAt) parts.push(p);
  }
  if (store instanceof FsStore) {
    readable.add(store.root);
    return parts.map((p) => join(store.root, ...p.objectKey.split("/")));
  }
  const files: string[] = [];
  for (const p of parts) files.push(await cache.local(store, p));
  return files;
}

/** The hot rows no verified part holds, one JSONL file per day under `date=` folders. */
async function hotFiles(c: NodeContext, o: ArchiveQueryOptions, scratch: string) {
  const { ctx } = c;
  const { spec, source, ledger } = ctx;
  // The ledger first: a part verified after this read has its rows read from the table.
  const verified: PartRecord[] = [];
  for (const rec of await ledger.list(spec.table)) {
    for (const p of await ledger.parts(spec.table, rec.date)) if (p.verifiedAt) verified.push(p);
  }
  const query = (sql: string, params: readonly unknown[]) => source.query(sql, [...params]);
  const files: string[] = [];
  for (const date of await hotDays(query, source.dialect, spec, "9999-12-31")) {
    if ((o.from && date < o.from) || (o.to && date > o.to)) continue;
    const path = join(scratch, spec.table, `date=${date}`, "hot.jsonl");
    await mkdir(dirname(path), { recursive: true });
    const file = createWriteStream(path);
    let any = false;
    for await (const lines of unheldLines(ctx, date, verified)) {
      any = true;
      await write(file, `${lines.join("\n")}\n`);
    }
    file.end();
    await once(file, "finish");
    if (any) files.push(path);
  }
  return files;
}

/** The view of one table over its files; `schema.table` gets its schema. */
function viewSql(table: string, files: readonly string[]): string {
  const name = table
    .split(".")
    .map((p) => `"${p.replaceAll('"', '""')}"`)
    .join(".");
  const schema = table.includes(".") ? `CREATE SCHEMA IF NOT EXISTS ${name.split(".")[0]}; ` : "";
  const list = files.map((f) => `'${sqlText(f)}'`).join(", ");
  return `${schema}CREATE VIEW ${name} AS SELECT * FROM read_json([${list}], format = 'newline_delimited', hive_partitioning = true, union_by_name = true)`;
}

/** `sql` if it is exactly one SELECT; else bad input, with DuckDB's own words for bad SQL. */
async function onlyOneSelect(
  conn: import("@duckdb/node-api").DuckDBConnection,
  sql: string,
): Promise<string> {
  let statements: import("@duckdb/node-api").DuckDBExtractedStatements;
  try {
    statements = await conn.extractStatements(sql);
  } catch (err) {
    throw new BadInputError((err as Error).message);
  }
  if (statements.count !== 1) {
    throw new BadInputError(`give exactly one SELECT statement (found ${statements.count})`);
  }
  let type: number;
  try {
    type = (await statements.prepare(0)).statementType;
  } catch (err) {
    throw new BadInputError((err as Error).message);
  }
  if (type !== SELECT) {
    throw new BadInputError("sluice query runs only a SELECT: the archive is read-only");
  }
  return sql.trim().replace(/;\s*$/, "");
}

const sqlText = (s: string) => s.replaceAll("'", "''");

async function write(out: Writable, text: string): Promise<void> {
  if (!text) return;
  if (!out.write(text)) await once(out, "drain");
}

export type { RowWriter };

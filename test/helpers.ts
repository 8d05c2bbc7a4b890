import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import Database from "better-sqlite3";
import { type StatsReader, statsReader } from "../src/core/stats/queries.js";
import { loadConfig } from "../src/node/config.js";
import { type NodeContext, openContext } from "../src/node/context.js";
import { openSource } from "../src/node/open.js";
import { type ArchiveQueryOptions, archiveQuery } from "../src/node/query/archive-query.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";

export interface Workspace {
  dir: string;
  db: string;
  store: string;
  open(env?: Record<string, string>): Promise<NodeContext>;
  /** A direct connection for checks and tampering, outside sluice. */
  sql(): Database.Database;
  remove(): void;
}

/** A temp folder with a real SQLite file holding `count` generated rows per day. */
export async function workspace(
  days: { date: string; count: number }[],
  env: Record<string, string> = {},
): Promise<Workspace> {
  const dir = mkdtempSync(join(tmpdir(), "sluice-test-"));
  const db = join(dir, "hot.db");
  const store = join(dir, "archive");
  const source = await openSource(`sqlite:${db}`, { create: true });
  for (const d of days) await prepareTrafficData(source, { count: d.count, date: d.date });
  await source.close();
  const handles: Database.Database[] = [];
  return {
    dir,
    db,
    store,
    open: (extra = {}) =>
      openContext(
        loadConfig({ SLUICE_DB: `sqlite:${db}`, SLUICE_STORE: `file:${store}`, ...env, ...extra }),
      ),
    sql() {
      const h = new Database(db);
      h.pragma("busy_timeout = 10000");
      handles.push(h);
      return h;
    },
    remove() {
      for (const h of handles) h.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export type EventRow = Record<string, unknown> & { id: number };

/** The rows of a date as the hot store has them, in key order. */
export function rowsOf(sql: Database.Database, date: string): EventRow[] {
  return sql
    .prepare("SELECT * FROM traffic_events WHERE event_date = ? ORDER BY id")
    .all(date) as EventRow[];
}

export function countOf(sql: Database.Database, date: string): number {
  return (
    sql.prepare("SELECT COUNT(*) AS n FROM traffic_events WHERE event_date = ?").get(date) as {
      n: number;
    }
  ).n;
}

/** A date's folder in a folder store. */
export function dateFolder(store: string, date: string, table = "traffic_events"): string {
  return join(store, table, `date=${date}`);
}

/**
 * The names in a date's folder, sorted, each upload's attempt id shown as `*`
 * (`part-0000-*.jsonl.gz`): what a layout assertion compares, one entry per stored object.
 */
export function partNames(folder: string): string[] {
  return readdirSync(folder)
    .map((n) => n.replace(/^(part-\d{4})-[0-9a-f]{8}\./, "$1-*."))
    .sort();
}

/** The one stored object of `part` in a date's folder (`part-0000-<attempt>.jsonl.gz`). */
export function partPath(folder: string, part = 0, ext = "jsonl.gz"): string {
  const prefix = `part-${String(part).padStart(4, "0")}-`;
  const found = readdirSync(folder).filter((n) => n.startsWith(prefix) && n.endsWith(`.${ext}`));
  if (found.length !== 1) throw new Error(`${folder}: ${found.length} objects of part ${part}`);
  return join(folder, found[0] as string);
}

/** The stats by path of a context's table, as the routes answer them: hot rows plus the counts. */
export function pathStats(c: NodeContext): StatsReader {
  const src = c.ctx.source;
  return statsReader((sql, p) => src.query(sql, [...p]), src.dialect, c.ctx.spec, "path", {
    ...c.ctx.ledger.tables,
    counted: true,
  });
}

/** A context on `table` of the database at `url`, archiving into the folder `store`. */
export function tableContext(url: string, store: string, table: string): Promise<NodeContext> {
  return openContext(
    loadConfig({ SLUICE_DB: url, SLUICE_STORE: `file:${store}`, SLUICE_TABLE: table }),
  );
}

/** `count` generated rows of `table` on `date`, and a context on them (see tableContext). */
export async function preparedTable(
  url: string,
  store: string,
  table: string,
  date: string,
  count: number,
): Promise<NodeContext> {
  const source = await openSource(url, { create: true });
  await prepareTrafficData(source, { table, date, count });
  await source.close();
  return tableContext(url, store, table);
}

/** One SELECT through archiveQuery in this process, its NDJSON rows parsed. */
export async function queryRows(
  c: NodeContext,
  sql: string,
  options: Omit<ArchiveQueryOptions, "sql" | "format" | "cacheBytes">,
): Promise<Record<string, unknown>[]> {
  let text = "";
  const out = new Writable({
    write(chunk, _enc, done) {
      text += String(chunk);
      done();
    },
  });
  await archiveQuery([c], { sql, format: "ndjson", cacheBytes: 1 << 30, ...options }, out);
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

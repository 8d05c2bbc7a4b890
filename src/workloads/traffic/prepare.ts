import { daysBefore } from "../../core/dates.js";
import { TRAFFIC_COLUMNS } from "../../core/ingest/event.js";
import { insertRows } from "../../core/sql/insert.js";
import type { SqlSource } from "../../core/sql/source.js";
import { generateTrafficDay } from "./generate.js";
import { trafficSchema } from "./schema.js";

export interface PrepareOptions {
  /** Rows per day. */
  count: number;
  /** The last day generated (YYYY-MM-DD). */
  date: string;
  /** How many consecutive days, ending at `date`. */
  days?: number;
  table?: string;
  onProgress?: (inserted: number, total: number) => void;
}

/** Create the traffic table and its index if they are missing (WAL on SQLite). */
export async function ensureTrafficTable(
  source: SqlSource,
  table = "traffic_events",
): Promise<void> {
  if (source.dialect.name === "sqlite") await source.execute("PRAGMA journal_mode = WAL");
  for (const stmt of trafficSchema(source.dialect, table)) {
    try {
      await source.execute(stmt);
    } catch (err) {
      // MySQL has no CREATE INDEX IF NOT EXISTS; an existing index is what we wanted.
      if (!/Duplicate key name/i.test((err as Error).message)) throw err;
    }
  }
}

/** Create the traffic table if needed and fill it with generated page views. */
export async function prepareTrafficData(source: SqlSource, o: PrepareOptions): Promise<number> {
  const table = o.table ?? "traffic_events";
  await ensureTrafficTable(source, table);
  const days = o.days ?? 1;
  const last = new Date(`${o.date}T00:00:00Z`);
  const total = o.count * days;
  let inserted = 0;
  for (let d = days - 1; d >= 0; d--) {
    for (const batch of generateTrafficDay(daysBefore(last, d), o.count)) {
      inserted += await source.transaction((tx) => insertRows(tx, table, TRAFFIC_COLUMNS, batch));
      o.onProgress?.(inserted, total);
    }
  }
  return inserted;
}

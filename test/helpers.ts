import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { prepareTrafficData } from "../src/core/traffic/prepare.js";
import { loadConfig } from "../src/node/config.js";
import { type NodeContext, openContext } from "../src/node/context.js";
import { openSource } from "../src/node/open.js";

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
  const source = openSource(`sqlite:${db}`, { create: true });
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

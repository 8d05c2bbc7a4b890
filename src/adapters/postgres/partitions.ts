import { nextDay } from "../../core/dates.js";
import type { DayPartitions, SqlExecutor } from "../../core/sql/source.js";
import { literal, quote } from "./dialect.js";

/** `LIST (col)` / `RANGE (col)` with the column as pg_get_partkeydef prints it. */
function partitionKey(def: string): { kind: "LIST" | "RANGE"; column: string } | null {
  const m = /^(LIST|RANGE) \((.+)\)$/.exec(def);
  if (!m) return null;
  const col = m[2] as string;
  return {
    kind: m[1] as "LIST" | "RANGE",
    column: col.startsWith('"') ? col.slice(1, -1).replaceAll('""', '"') : col,
  };
}

/** PostgreSQL's declarative partitions of a table by day, as a cleanup may drop them. */
export const postgresDayPartitions: DayPartitions = {
  async find(db: SqlExecutor, table, column, value) {
    const [parent] = await db.query<{ key: string | null }>(
      "SELECT pg_get_partkeydef(to_regclass(?)) AS key",
      [quote(table)],
    );
    const key = partitionKey(parent?.key ?? "");
    if (!key || key.column !== column) return null;
    const wanted =
      key.kind === "LIST"
        ? `FOR VALUES IN (${literal(value)})`
        : `FOR VALUES FROM (${literal(value)}) TO (${literal(nextDay(value))})`;
    // Only plain tables: a partition that is itself partitioned is left to row deletes. Named
    // with its schema (quote reads the dot as the separator), so one with a dot in a name is
    // left to row deletes too.
    const [child] = await db.query<{ name: string }>(
      `SELECT n.nspname || '.' || c.relname AS name
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE i.inhparent = to_regclass(?) AND c.relkind = 'r'
           AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = to_regclass(?))
           AND pg_get_expr(c.relpartbound, c.oid) = ?
           AND position('.' in c.relname) = 0 AND position('.' in n.nspname) = 0`,
      [quote(table), quote(table), wanted],
    );
    return child?.name ?? null;
  },
  // LOCK on a partitioned table takes every partition too. Parent first, as inserts do, so
  // the later DETACH needs no upgrade that could deadlock with them. A busy table fails
  // the job after 10 s rather than stalling ingest behind a queued lock.
  lock: (parent) => [
    "SET LOCAL lock_timeout = '10s'",
    `LOCK TABLE ${quote(parent)} IN ACCESS EXCLUSIVE MODE`,
  ],
  detachAndDrop: (parent, child) => [
    `ALTER TABLE ${quote(parent)} DETACH PARTITION ${quote(child)}`,
    `DROP TABLE ${quote(child)}`,
  ],
};

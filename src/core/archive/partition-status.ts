import { toCount } from "../sql/source.js";
import type { JobContext } from "./context.js";
import { dayCondition } from "./days.js";
import { type Query, hotDays } from "./hot-days.js";
import type { PartRecord, PartitionRecord } from "./ledger/records.js";
import { dayColumn } from "./partition.js";

/**
 * Dates before `cutoff` that still need work: those with rows in the hot store, and those
 * the ledger has not seen to `cleaned`.
 */
export async function datesNeedingWork(
  ctx: JobContext,
  cutoff: string,
  options: { ledger?: boolean } = {},
): Promise<string[]> {
  const query: Query = (sql, params) => ctx.source.query(sql, params);
  const dates = new Set(await hotDays(query, ctx.source.dialect, ctx.spec, cutoff));
  const { table } = ctx.spec;
  const list = options.ledger === false ? [] : await ctx.ledger.list(table);
  for (const rec of list) {
    if (rec.date < cutoff && rec.state !== "cleaned" && rec.partCount > 0) dates.add(rec.date);
  }
  return [...dates].sort();
}

export interface PartitionStatus {
  table: string;
  date: string;
  record: PartitionRecord | null;
  parts: PartRecord[];
  /** Rows of the date in the hot store now. */
  hotRows: number;
  /**
   * Rows of the date in the hot store that no archive part holds: they arrived after it (under
   * any key), or changed after it. The next archive writes them as a new part.
   */
  lateRows: number;
}

/**
 * What the ledger says of a date, beside what the hot store holds now. `ledger: false`: there
 * is no ledger to ask (a read-only look at a database sluice has not worked on).
 */
export async function partitionStatus(
  ctx: JobContext,
  date: string,
  options: { ledger?: boolean } = {},
): Promise<PartitionStatus> {
  const q = ctx.source.dialect.quote;
  const { table, partitionColumn } = ctx.spec;
  const withLedger = options.ledger !== false;
  const record = withLedger ? await ctx.ledger.get(table, date) : null;
  const parts = withLedger ? await ctx.ledger.parts(table, date) : [];
  const day = dayCondition(q(partitionColumn), dayColumn(ctx.spec), date);
  const count = async (extra: string, params: unknown[]) =>
    toCount(
      (
        await ctx.source.query(`SELECT COUNT(*) AS n FROM ${q(table)} WHERE ${day.sql}${extra}`, [
          ...day.params,
          ...params,
        ])
      )[0]?.n,
    );
  const hotRows = await count("", []);
  // Rows no part holds: what the hot store has beyond the archived rows not yet deleted.
  const held = parts
    .filter((p) => p.cleanedAt === null)
    .reduce((n, p) => n + p.eventCount - p.cleanedCount, 0);
  const lateRows = parts.length === 0 ? 0 : Math.max(0, hotRows - held);
  return { table, date, record, parts, hotRows, lateRows };
}

import { type SqlSource, toCount } from "../sql/source.js";
import { dayCondition } from "./days.js";
import type { PartRecord } from "./ledger/records.js";
import { type PartitionSpec, dayColumn } from "./partition.js";

/** Where the next part starts, and whether it replaces an unverified one. */
export interface PartPlan {
  part: number;
  /**
   * Archive rows with key > after; null: every row of the date still in the hot store, which
   * is right once every earlier part is cleaned, since then no part holds any of them as it
   * is now (rows that came late under low keys, rows changed after they were archived).
   */
  after: number | null;
  /** The unverified part this one replaces, if any. */
  replaces: PartRecord | null;
}

/**
 * Plan the next part of a partition: a new part, or a rewrite of a last part that was never
 * verified (nothing of it can have been deleted). While an earlier part still has rows in the
 * hot store, a new part takes only keys above every part's; once all are cleaned, it takes
 * every row of the date left.
 */
export function planNextPart(parts: readonly PartRecord[]): PartPlan {
  const last = parts.at(-1);
  const rewrite = last !== undefined && last.verifiedAt === null && last.cleanedCount === 0;
  const before = rewrite ? parts.slice(0, -1) : parts;
  const after = before.every((p) => p.cleanedAt !== null)
    ? null
    : Math.max(...before.map((p) => p.maxId));
  return {
    part: rewrite ? (last as PartRecord).part : (last?.part ?? -1) + 1,
    after,
    replaces: rewrite ? (last as PartRecord) : null,
  };
}

/** Count the rows of a date after a key: what the next part would hold. */
export async function countRowsAfter(
  source: SqlSource,
  spec: PartitionSpec,
  date: string,
  after: number | null,
): Promise<number> {
  const q = source.dialect.quote;
  const day = dayCondition(q(spec.partitionColumn), dayColumn(spec), date);
  const rows = await source.query(
    `SELECT COUNT(*) AS n FROM ${q(spec.table)} WHERE ${day.sql}${after === null ? "" : ` AND ${q(spec.keyColumn)} > ?`}`,
    after === null ? day.params : [...day.params, after],
  );
  return toCount(rows[0]?.n);
}

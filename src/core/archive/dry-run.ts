import { type Row, toCount } from "../sql/source.js";
import type { JobContext } from "./context.js";
import { dayCondition } from "./days.js";
import type { PartRecord, PartitionRecord } from "./ledger/records.js";
import { cleanupBlock } from "./ledger/states.js";
import { dayColumn } from "./partition.js";
import { planNextPart } from "./plan.js";

/**
 * What `archive --dry-run` would do for a date: the part it would write (the rows of the date
 * after `after`, their key range), the parts it would verify first, or why it would do nothing.
 */
export interface ArchivePlan {
  date: string;
  state: string;
  /** The part number it would write, and the unverified part it would replace, if any. */
  part: number;
  replaces: number | null;
  /** Keys above this one (null: every row of the date in the hot store). */
  after: number | null;
  rows: number;
  minKey: number | null;
  maxKey: number | null;
  /** Parts written but not verified that it would verify. */
  verify: number[];
  /** Why it would write nothing, when it would not. */
  note?: string;
}

/** What `cleanup --dry-run` would do: the parts it would clean and the rows it would compare. */
export interface CleanupPlan {
  date: string;
  state: string;
  parts: number[];
  /** Rows of the date in the hot store inside those parts' key ranges (compared, then deleted). */
  rows: number;
  /** Archived rows of those parts already deleted by an earlier run. */
  deletedBefore: number;
  /** Why it would delete nothing, when it would not. */
  refused?: string;
}

/** The date's ledger, or nothing where there is no ledger to read (`ledger: false`). */
async function ledgerOf(ctx: JobContext, date: string, ledger: boolean) {
  if (!ledger) return { rec: null, parts: [] as PartRecord[] };
  const { table } = ctx.spec;
  return { rec: await ctx.ledger.get(table, date), parts: await ctx.ledger.parts(table, date) };
}

/** Count, lowest and highest key of the date's rows matching `extra`, read only. */
async function rowsOf(ctx: JobContext, date: string, extra: string, params: unknown[]) {
  const q = ctx.source.dialect.quote;
  const { table, partitionColumn, keyColumn } = ctx.spec;
  const day = dayCondition(q(partitionColumn), dayColumn(ctx.spec), date);
  const key = q(keyColumn);
  const [r] = await ctx.source.query<Row>(
    `SELECT COUNT(*) AS n, MIN(${key}) AS lo, MAX(${key}) AS hi FROM ${q(table)} WHERE ${day.sql}${extra}`,
    [...day.params, ...params],
  );
  const key2 = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return { rows: toCount(r?.n), minKey: key2(r?.lo), maxKey: key2(r?.hi) };
}

/** What archive would write for `date`; reads the ledger and the table, changes nothing. */
export async function planArchive(
  ctx: JobContext,
  date: string,
  options: { ledger?: boolean } = {},
): Promise<ArchivePlan> {
  const { rec, parts } = await ledgerOf(ctx, date, options.ledger !== false);
  const plan = planNextPart(parts);
  const q = ctx.source.dialect.quote;
  const found =
    plan.after === null
      ? await rowsOf(ctx, date, "", [])
      : await rowsOf(ctx, date, ` AND ${q(ctx.spec.keyColumn)} > ?`, [plan.after]);
  const out: ArchivePlan = {
    date,
    state: stateOf(rec),
    part: plan.part,
    replaces: plan.replaces?.part ?? null,
    after: plan.after,
    ...found,
    verify: parts.filter((p) => p.verifiedAt === null).map((p) => p.part),
  };
  if (rec?.state === "cleaning") out.note = "cleanup is in progress: archive would write nothing";
  else if (found.rows === 0) out.note = "no rows to archive";
  return out;
}

/** What cleanup would delete for `date`; reads the ledger and the table, changes nothing. */
export async function planCleanup(
  ctx: JobContext,
  date: string,
  options: { ledger?: boolean } = {},
): Promise<CleanupPlan> {
  const { rec, parts } = await ledgerOf(ctx, date, options.ledger !== false);
  const pending = parts.filter((p) => p.cleanedAt === null);
  const out: CleanupPlan = {
    date,
    state: stateOf(rec),
    parts: pending.map((p) => p.part),
    rows: 0,
    deletedBefore: pending.reduce((n, p) => n + p.cleanedCount, 0),
  };
  const block = cleanupBlock(rec, parts);
  if (!rec || block?.noArchive) {
    out.refused = "no archive: run archive first";
    return out;
  }
  if (block) {
    out.refused = `'${rec.state}', not verified: cleanup would delete nothing`;
    return out;
  }
  const key = ctx.source.dialect.quote(ctx.spec.keyColumn);
  for (const p of pending) {
    out.rows += (await rowsOf(ctx, date, ` AND ${key} BETWEEN ? AND ?`, [p.minId, p.maxId])).rows;
  }
  return out;
}

const stateOf = (rec: PartitionRecord | null) => rec?.state ?? "not archived";

import {
  BadInputError,
  InterruptedError,
  LeaseLostError,
  NotFoundError,
  NotVerifiedError,
  SluiceError,
  describeError,
} from "../errors.js";
import { archivePartition } from "./archive.js";
import { type CleanupOptions, type CleanupOutcome, cleanupPartition } from "./cleanup.js";
import type { JobContext } from "./context.js";
import { type ConvertResult, convertPartition } from "./convert.js";
import type { Lease } from "./ledger/lease.js";
import type { PartRecord } from "./ledger/records.js";
import type { PartFormat } from "./partition.js";
import { type RestoreOptions, type RestoreOutcome, restorePartition } from "./restore.js";
import { RollupMismatchError } from "./rollup.js";
import { verifyPartition } from "./verify.js";

/**
 * The jobs as the CLI, the service and the Worker run them: each takes the partition's lease,
 * records a failure in the ledger (state `failed`, `last_error`) and always lets go.
 */
export interface ArchiveOutcome {
  /** The part this run wrote, or null when there was nothing new. */
  written: PartRecord | null;
  parts: PartRecord[];
  /** Why nothing was archived, when that was on purpose. */
  note?: string;
}

/** Errors that mean "the job broke" (as opposed to "you asked for something wrong"). */
function isFailure(err: unknown): boolean {
  if (err instanceof LeaseLostError || err instanceof NotVerifiedError) return false;
  if (err instanceof SluiceError) return err.kind === "failed" || err.kind === "unavailable";
  return !(err instanceof Error && err.name === "AbortError");
}

/** Run `fn` under the partition's lease, recording a failure in the ledger. */
export async function withLease<T>(
  ctx: JobContext,
  owner: string,
  date: string,
  fn: (lease: Lease) => Promise<T>,
): Promise<T> {
  return runLeased(ctx, await ctx.ledger.acquire(ctx.spec.table, date, owner), fn);
}

/**
 * Run `fn` under a lease already taken (the service takes it before answering 202, so that a
 * held partition is a 409), recording a failure in the ledger and always letting go.
 */
export async function runLeased<T>(
  ctx: JobContext,
  lease: Lease,
  fn: (lease: Lease) => Promise<T>,
): Promise<T> {
  try {
    return await fn(lease);
  } catch (err) {
    // The signal's reason, whatever a driver made of the abort on its way up.
    if (err instanceof InterruptedError || ctx.signal?.reason instanceof InterruptedError) {
      // Left in the state it reached, as a killed job would be, but marked: not an alert.
      await ctx.ledger.noteError(lease, InterruptedError.MESSAGE).catch(() => undefined);
    } else if (isFailure(err)) {
      await ctx.ledger
        .move(lease, "failed", { lastError: describeError(err).slice(0, 2000) })
        .catch(() => undefined);
    }
    throw err;
  } finally {
    await lease.release().catch(() => undefined);
  }
}

/** Archive what of `date` is not archived yet, then verify it; the caller holds the lease. */
export async function archiveUnderLease(
  ctx: JobContext,
  lease: Lease,
  date: string,
): Promise<ArchiveOutcome> {
  const rec = await ctx.ledger.get(ctx.spec.table, date);
  if (rec?.state === "cleaning") {
    return {
      written: null,
      parts: await ctx.ledger.parts(ctx.spec.table, date),
      note: "cleanup is in progress: run cleanup to finish it; late rows are archived after",
    };
  }
  const written = await archivePartition(ctx, lease, date);
  const existing = await ctx.ledger.parts(ctx.spec.table, date);
  if (existing.length === 0) {
    throw new NotFoundError(`no rows of ${ctx.spec.table} for ${date}: nothing to archive`);
  }
  // A failed partition proves every part again: one damaged after rows were deleted on its
  // strength fails here, loudly, instead of being reported as archived; one that failed for
  // another reason (a cleanup that stopped) is verified again and may be cleaned.
  const parts = await verifyPartition(ctx, lease, date, { all: rec?.state === "failed" });
  return { written, parts };
}

/** Archive what of `date` is not archived yet, then verify it. */
export function archiveDate(ctx: JobContext, owner: string, date: string): Promise<ArchiveOutcome> {
  return withLease(ctx, owner, date, (lease) => archiveUnderLease(ctx, lease, date));
}

/** Re-read every stored part of `date` and prove it matches its manifest and ledger row. */
export function verifyDate(ctx: JobContext, owner: string, date: string): Promise<PartRecord[]> {
  return withLease(ctx, owner, date, async (lease) => {
    const parts = await ctx.ledger.parts(ctx.spec.table, date);
    if (parts.length === 0) throw new NotFoundError(`no archive of ${ctx.spec.table} for ${date}`);
    return verifyPartition(ctx, lease, date, { all: true });
  });
}

/**
 * Rebuild `date`'s rollups from its stored archive: every part read back and verified again
 * (so the counts describe the verified archive), each rollup's total checked against its part.
 */
export async function rollupDate(
  ctx: JobContext,
  owner: string,
  date: string,
): Promise<PartRecord[]> {
  if (!ctx.spec.rollupColumn) {
    throw new BadInputError(
      `${ctx.spec.table} keeps no rollups: it needs a date partition column and the stats column (SLUICE_PATH_COLUMN), and rollups on (SLUICE_ROLLUPS)`,
    );
  }
  const parts = await verifyDate(ctx, owner, date);
  const counted = await ctx.ledger.rollupTotals(ctx.spec.table, date);
  for (const p of parts) {
    const n = counted.get(p.part) ?? null;
    if (p.rollupRows !== p.eventCount || n !== p.eventCount) {
      throw new RollupMismatchError(p.sourceTable, date, p.part, p.eventCount, n);
    }
  }
  return parts;
}

/** Put `date`'s verified archive back into the table, or into `options.into`. */
export function restoreDate(
  ctx: JobContext,
  owner: string,
  date: string,
  options: RestoreOptions = {},
): Promise<RestoreOutcome> {
  return withLease(ctx, owner, date, (lease) => restorePartition(ctx, lease, date, options));
}

/** Rewrite a date's parts in `format`, under its lease (see convertPartition). */
export function convertDate(
  ctx: JobContext,
  owner: string,
  date: string,
  format: PartFormat,
): Promise<ConvertResult> {
  return withLease(ctx, owner, date, (lease) => convertPartition(ctx, lease, date, format));
}

/** One partition's outcome in {@link verifyAll}. */
export interface VerifyResult {
  date: string;
  ok: boolean;
  parts: number;
  rows: number;
  /** Why it failed; the ledger has it too (`last_error`, state `failed`). */
  error?: string;
}

/**
 * Re-read every stored part of every partition that has parts. A partition that fails (or
 * whose lease another job holds) is reported and, by verifyDate, recorded in the ledger; the
 * others go on. An unreachable database stops it all.
 */
export function verifyAll(
  ctx: JobContext,
  owner: string,
  signal?: AbortSignal,
): Promise<VerifyResult[]> {
  return eachArchivedDate(ctx, signal, (date) => verifyDate(ctx, owner, date));
}

/**
 * Rebuild the rollups of every partition with a part that has none (archived before rollups
 * were kept), each as rollupDate does; failures are reported and the others go on.
 */
export function rollupAll(
  ctx: JobContext,
  owner: string,
  signal?: AbortSignal,
): Promise<VerifyResult[]> {
  return eachArchivedDate(
    ctx,
    signal,
    (date) => rollupDate(ctx, owner, date),
    async (date) =>
      (await ctx.ledger.parts(ctx.spec.table, date)).some((p) => p.rollupRows === null),
  );
}

/** `job` for each partition with parts (that `wanted` picks), each outcome reported. */
async function eachArchivedDate(
  ctx: JobContext,
  signal: AbortSignal | undefined,
  job: (date: string) => Promise<PartRecord[]>,
  wanted: (date: string) => Promise<boolean> = async () => true,
): Promise<VerifyResult[]> {
  const results: VerifyResult[] = [];
  for (const rec of await ctx.ledger.list(ctx.spec.table)) {
    if (rec.partCount === 0 || !(await wanted(rec.date))) continue;
    signal?.throwIfAborted();
    try {
      const parts = await job(rec.date);
      const rows = parts.reduce((n, p) => n + p.eventCount, 0);
      results.push({ date: rec.date, ok: true, parts: parts.length, rows });
    } catch (err) {
      if (!(err instanceof SluiceError) || err.kind === "unavailable" || signal?.aborted) throw err;
      results.push({
        date: rec.date,
        ok: false,
        parts: rec.partCount,
        rows: rec.eventCount,
        error: describeError(err),
      });
    }
  }
  return results;
}

/** Delete the verified archive's rows of `date` from the hot store. */
export function cleanupDate(
  ctx: JobContext,
  owner: string,
  date: string,
  options: CleanupOptions = {},
): Promise<CleanupOutcome> {
  return withLease(ctx, owner, date, (lease) => cleanupPartition(ctx, lease, date, options));
}

export interface DateOutcome {
  date: string;
  archive: ArchiveOutcome;
  cleanup: CleanupOutcome;
}

/** Archive, verify and clean one date under one lease: the daily job for one partition. */
export function archiveAndCleanDate(
  ctx: JobContext,
  owner: string,
  date: string,
  options: CleanupOptions = {},
): Promise<DateOutcome> {
  return withLease(ctx, owner, date, async (lease) => {
    const archive = await archiveUnderLease(ctx, lease, date);
    const cleanup = await cleanupPartition(ctx, lease, date, options);
    return { date, archive, cleanup };
  });
}

import {
  CleanupIncompleteError,
  NotFoundError,
  NotVerifiedError,
  RowsChangedError,
  VerificationError,
} from "../errors.js";
import { CHUNK_BYTES } from "./chunks.js";
import { type Archived, d1Batch, txBatch } from "./cleanup-batch.js";
import type { JobContext } from "./context.js";
import { dayCondition } from "./days.js";
import { dropArchivedPartition } from "./drop-partition.js";
import type { Lease } from "./ledger/lease.js";
import type { PartRecord } from "./ledger/records.js";
import { cleanupBlock } from "./ledger/states.js";
import { tableLines } from "./pages.js";
import { dayColumn } from "./partition.js";
import { checkRollups } from "./rollup.js";
import { countInRange, scanPart } from "./verify.js";

export interface CleanupOptions {
  /** Rows per DELETE (default 1000). Capped by the dialect's bound-parameter limit. */
  batchSize?: number;
  /** Stop after this many ms with progress saved (state stays `cleaning`); 0: no budget. */
  budgetMs?: number;
  /**
   * Stop after this many DELETE batches, likewise: where the platform counts statements per
   * invocation (D1: 1000 on Workers Paid). 0: no limit.
   */
  maxBatches?: number;
  /**
   * Where the database allows it (PostgreSQL declarative partitions), drop the date's table
   * partition instead of deleting its rows, when it holds exactly the archived rows. Default true.
   */
  dropPartitions?: boolean;
}

export interface CleanupOutcome {
  /** Rows deleted by this run. */
  deleted: number;
  /** Rows deleted over every run of this partition. */
  deletedTotal: number;
  /** False when the run stopped at its budget; the next run resumes. */
  complete: boolean;
  /** Archived rows still in the hot store (0 when complete). */
  remaining: number;
  /** How this run removed rows: DELETE batches, or dropping the date's table partition. */
  method: "delete" | "drop-partition";
}

export const DEFAULT_DELETE_BATCH = 1000;
/** Most archived line text one D1 DELETE carries as its parameter (D1: 2 MB per value). */
const D1_BATCH_BYTES = 1 << 20;
/** Changed keys kept for the error that reports them. */
const CHANGED_KEYS_SHOWN = 20;

/**
 * Parts archived before chunk digests were kept get them now, from one read whose whole
 * sha256 matches the ledger's; the deleting read is then checked chunk by chunk against them.
 */
async function withDigests(ctx: JobContext, lease: Lease, part: PartRecord): Promise<PartRecord> {
  // Stryker disable next-line ConditionalExpression: equivalent; digests derived again are the same ones, only slower
  if (part.chunkSha256 !== null) return part;
  const problems: string[] = [];
  const scan = await scanPart(ctx, part, problems);
  // Other bytes have another sha256, whatever their size (the message gives both).
  if (!problems.length && scan.sha256 !== part.sha256) {
    problems.push(
      `changed since it was verified (sha256 ${scan.sha256}, ${scan.bytes} bytes; verified ${part.sha256}, ${part.fileSize} bytes)`,
    );
  }
  if (problems.length) throw new VerificationError(part.objectKey, problems);
  await ctx.ledger.recordChunkDigests(lease, part.part, CHUNK_BYTES, scan.chunkSha256);
  return { ...part, chunkBytes: CHUNK_BYTES, chunkSha256: scan.chunkSha256 };
}

/**
 * Delete from the hot store exactly the rows the verified archive holds, as it holds them: in
 * batches of the archive's own lines, each compared with the row in the hot store inside the
 * delete's transaction. A row that is not there is skipped, a row whose content changed is
 * left (and reported), a row that arrived after the archive is never touched. Marks the
 * partition cleaned only when every archived row is gone. The caller holds the lease.
 */
export async function cleanupPartition(
  ctx: JobContext,
  lease: Lease,
  date: string,
  options: CleanupOptions = {},
): Promise<CleanupOutcome> {
  const { ledger, spec, source } = ctx;
  const started = Date.now();
  const budget = options.budgetMs ?? 0;
  const maxBatches = options.maxBatches ?? 0;
  let batches = 0;
  const rec = await ledger.get(spec.table, date);
  const parts = await ledger.parts(spec.table, date);
  const block = cleanupBlock(rec, parts);
  if (!rec || block?.noArchive) {
    throw new NotFoundError(`no archive of ${spec.table} for ${date}: run archive first`);
  }
  if (block) throw new NotVerifiedError(spec.table, date, block.state);
  await checkRollups(ctx, date, parts);

  await source.pages.analyze(spec.table);
  const lines = await tableLines(ctx);
  const d1 = source.atomicity.kind === "batches";
  const deleteBatch = d1 ? d1Batch(ctx, lines, date) : txBatch(ctx, lines, date);
  // Keys bound per statement: an IN-list of them besides the day's bounds, where one is used.
  // Stryker disable next-line StringLiteral: equivalent; only the number of parameters is read
  const dayParams = dayCondition("", dayColumn(spec), date).params.length;
  const batchSize = Math.max(
    1,
    d1 || source.dialect.keyIn
      ? (options.batchSize ?? DEFAULT_DELETE_BATCH)
      : Math.min(options.batchSize ?? DEFAULT_DELETE_BATCH, source.dialect.maxParams - dayParams),
  );
  const total = parts.reduce((n, p) => n + p.eventCount, 0);
  let deleted = 0;
  let deletedTotal = rec.cleanedCount;

  const pending = parts.filter((p) => p.cleanedAt === null);
  if (options.dropPartitions !== false && source.dayPartitions && pending.length) {
    await ledger.move(lease, "cleaning");
    const checked: PartRecord[] = [];
    for (const p of pending) checked.push(await withDigests(ctx, lease, p));
    const dropped = await dropArchivedPartition(ctx, lease, date, checked, lines);
    if (dropped !== null) {
      deletedTotal += dropped;
      ctx.onProgress?.({ phase: "cleanup", table: spec.table, date, done: deletedTotal, total });
      await ledger.move(lease, "cleaned", { cleaned: true, lastError: null });
      return {
        deleted: dropped,
        deletedTotal,
        complete: true,
        remaining: 0,
        method: "drop-partition",
      };
    }
  }

  // Stryker disable next-line StringLiteral: equivalent; told apart by identity
  const stop = new Error("budget");
  for (const stale of pending) {
    await ledger.move(lease, "cleaning");
    const part = await withDigests(ctx, lease, stale);
    const shown = part.changedKeys ? part.changedKeys.split(",") : [];
    let cursor = part.cleanupCursor;
    // Once the database keeps a row, the cursor stays before it, so that a resumed pass
    // reads it again and the count of rows kept covers the whole pass.
    let refused = 0;
    let batch: Archived[] = [];
    let batchBytes = 0;
    let overBudget = false;
    const flush = async () => {
      if (batch.length === 0) return;
      const rows = batch;
      batch = [];
      batchBytes = 0;
      const last = (rows.at(-1) as Archived).key;
      const prior = cursor;
      const out = await deleteBatch(lease, part, rows, (r) => {
        for (const k of r.changed) if (shown.length < CHANGED_KEYS_SHOWN) shown.push(String(k));
        return {
          cursor: r.refused === 0 && refused === 0 ? last : prior,
          changedKeys: shown.length ? shown.join(",") : null,
        };
      });
      if (out.refused === 0 && refused === 0) cursor = last;
      refused += out.refused;
      batches++;
      deleted += out.deleted;
      deletedTotal += out.deleted;
      ctx.onProgress?.({ phase: "cleanup", table: spec.table, date, done: deletedTotal, total });
      await lease.keepAlive();
      // Stryker disable next-line EqualityOperator: equivalent; a millisecond's boundary of the clock
      if (budget > 0 && Date.now() - started >= budget) overBudget = true;
      if (maxBatches > 0 && batches >= maxBatches) overBudget = true;
    };
    const problems: string[] = [];
    try {
      await scanPart(ctx, part, problems, async (keys, text) => {
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i] as number;
          // Stryker disable next-line EqualityOperator: equivalent; the cursor's own row was deleted, so compared again it is skipped as gone
          if (part.cleanupCursor !== null && key <= part.cleanupCursor) continue;
          // Stopped only where a row is left to do, so a run never ends 'cleaning' with none.
          if (overBudget) throw stop;
          const line = text[i] as string;
          batch.push({ key, line });
          batchBytes += line.length;
          // Stryker disable next-line EqualityOperator: equivalent; one byte's boundary of a 1 MiB bound
          if (batch.length >= batchSize || (d1 && batchBytes >= D1_BATCH_BYTES)) {
            ctx.signal?.throwIfAborted();
            await flush();
          }
        }
      });
      if (problems.length) throw new VerificationError(part.objectKey, problems);
      await flush();
    } catch (err) {
      if (err !== stop) throw err;
      const left = pending.filter((p) => p.part >= part.part);
      const remaining = (await Promise.all(left.map((p) => countInRange(ctx, p)))).reduce(
        (a, b) => a + b,
        0,
      );
      return { deleted, deletedTotal, complete: false, remaining, method: "delete" };
    }

    if (refused > 0) {
      // The cursor only resumes an interrupted pass. A finished pass that left rows behind
      // must start over next time, or the rows it skipped past would never be retried.
      await ledger.resetCleanupCursor(lease, part.part);
      throw new CleanupIncompleteError(spec.table, date, deletedTotal, refused);
    }
    await ledger.markPartCleaned(lease, part.part);
  }
  // Rows changed after they were archived stay in the hot store: loud, not cleaned.
  const done = (await ledger.parts(spec.table, date)).filter((p) =>
    pending.some((q) => q.part === p.part),
  );
  const changed = done.reduce((n, p) => n + p.changedCount, 0);
  if (changed > 0) {
    const keys = done.flatMap((p) => (p.changedKeys ? p.changedKeys.split(",") : []));
    throw new RowsChangedError(
      spec.table,
      date,
      changed,
      keys.slice(0, CHANGED_KEYS_SHOWN),
      deletedTotal,
    );
  }
  if (rec.state !== "cleaned") {
    await ledger.move(lease, "cleaning");
    await ledger.move(lease, "cleaned", { cleaned: true, lastError: null });
  }
  return { deleted, deletedTotal, complete: true, remaining: 0, method: "delete" };
}

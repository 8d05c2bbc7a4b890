import type { JobContext } from "./archive.js";
import { dropArchivedPartition } from "./drop-partition.js";
import {
  CleanupIncompleteError,
  NotFoundError,
  NotVerifiedError,
  VerificationError,
} from "./errors.js";
import { portableSha256 } from "./hash.js";
import { LEASE_GUARD_PARAMS, type Lease, type PartRecord } from "./ledger.js";
import { tap } from "./lines.js";
import { countInRange, scanPart } from "./verify.js";

export interface CleanupOptions {
  /** Rows per DELETE: the seed's 1000. Capped by the dialect's bound-parameter limit. */
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

/** Stream the object once to check its bytes still hash to what was verified. */
async function checkUnchanged(ctx: JobContext, part: PartRecord): Promise<void> {
  const body = await ctx.store.get(part.objectKey);
  if (!body) throw new VerificationError(part.objectKey, ["object is missing"]);
  const hash = (ctx.sha256 ?? portableSha256)();
  let bytes = 0;
  const reader = body
    .pipeThrough(
      tap((c) => {
        hash.update(c);
        bytes += c.byteLength;
      }),
    )
    .getReader();
  while (!(await reader.read()).done) {}
  const sha = hash.hex();
  if (sha !== part.sha256 || bytes !== part.fileSize) {
    throw new VerificationError(part.objectKey, [
      `changed since it was verified (sha256 ${sha}, ${bytes} bytes; verified ${part.sha256}, ${part.fileSize} bytes)`,
    ]);
  }
}

/**
 * Delete from the hot store exactly the rows the verified archive holds, in batches keyed by
 * the archive's own keys, until none is left; then count, and mark the partition cleaned
 * only at zero. Rows that arrived after the archive are never touched. The caller holds the lease.
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
  // By key range where keys commit in order (every key of the date inside an archived range
  // is an archived key); otherwise by the archive's keys, as many as one statement may bind
  // besides the date and, in an atomic batch, the lease guard.
  const byRange = source.dialect.keysCommitInOrder === true;
  const reserved = 1 + (source.batch ? LEASE_GUARD_PARAMS : 0);
  const batchSize = Math.max(
    1,
    byRange
      ? (options.batchSize ?? DEFAULT_DELETE_BATCH)
      : Math.min(options.batchSize ?? DEFAULT_DELETE_BATCH, source.dialect.maxParams - reserved),
  );
  const rec = await ledger.get(spec.table, date);
  const parts = await ledger.parts(spec.table, date);
  if (!rec || parts.length === 0) {
    throw new NotFoundError(`no archive of ${spec.table} for ${date}: run archive first`);
  }
  const unverified = parts.find((p) => p.verifiedAt === null);
  if (unverified || !["verified", "cleaning", "failed", "cleaned"].includes(rec.state)) {
    throw new NotVerifiedError(spec.table, date, unverified ? "not verified" : rec.state);
  }

  await source.ensureStatistics?.(spec.table);
  const q = source.dialect.quote;
  const placeholders = (n: number) => Array.from({ length: n }, () => "?").join(", ");
  const deleteWhere = `DELETE FROM ${q(spec.table)} WHERE ${q(spec.partitionColumn)} = ? AND ${q(spec.keyColumn)}`;
  const deleteOf = (keys: number[]) =>
    byRange
      ? { sql: `${deleteWhere} BETWEEN ? AND ?`, params: [date, keys[0], keys[keys.length - 1]] }
      : { sql: `${deleteWhere} IN (${placeholders(keys.length)})`, params: [date, ...keys] };
  const total = parts.reduce((n, p) => n + p.eventCount, 0);
  let deleted = 0;
  let deletedTotal = rec.cleanedCount;

  const checked = new Set<number>();
  const pending = parts.filter((p) => p.cleanedAt === null);
  if (options.dropPartitions !== false && source.dialect.partitions && pending.length) {
    await ledger.move(lease, "cleaning");
    for (const p of pending) {
      await checkUnchanged(ctx, p);
      checked.add(p.part);
    }
    const dropped = await dropArchivedPartition(ctx, lease, date, pending);
    if (dropped !== null) {
      deletedTotal += dropped;
      ctx.onProgress?.({ phase: "cleanup", table: spec.table, date, done: deletedTotal, total });
      await ledger.move(lease, "cleaned", { d1_cleaned: 1, last_error: null });
      return {
        deleted: dropped,
        deletedTotal,
        complete: true,
        remaining: 0,
        method: "drop-partition",
      };
    }
  }

  for (const part of parts) {
    if (part.cleanedAt !== null) continue;
    await ledger.move(lease, "cleaning");
    if (!checked.has(part.part)) await checkUnchanged(ctx, part);

    // Deletes happen while the archive is read, one batch of its keys at a time. The delete
    // and the saved cursor share a transaction, so a kill never loses count of what went.
    let keys: number[] = [];
    const flush = async () => {
      if (keys.length === 0) return;
      const batch = keys;
      keys = [];
      const cursor = batch[batch.length - 1] as number;
      const del = deleteOf(batch);
      const n = source.batch
        ? await ledger.deleteAndRecord(source, lease, part.part, cursor, del)
        : await source.transaction(async (tx) => {
            const res = await tx.execute(del.sql, del.params);
            await ledger.addCleaned(lease, part.part, res.changes, cursor, tx);
            return res.changes;
          });
      batches++;
      deleted += n;
      deletedTotal += n;
      ctx.onProgress?.({ phase: "cleanup", table: spec.table, date, done: deletedTotal, total });
      await lease.keepAlive();
    };
    const problems: string[] = [];
    const stop = new Error("budget");
    try {
      await scanPart(ctx, part, problems, async (archived) => {
        for (const key of archived) {
          if (part.cleanupCursor !== null && key <= part.cleanupCursor) continue;
          keys.push(key);
          if (keys.length >= batchSize) {
            ctx.signal?.throwIfAborted();
            await flush();
            if (budget > 0 && Date.now() - started >= budget) throw stop;
            if (maxBatches > 0 && batches >= maxBatches) throw stop;
          }
        }
      });
      if (problems.length) throw new VerificationError(part.objectKey, problems);
      await flush();
    } catch (err) {
      if (err !== stop) throw err;
      const remaining = (
        await Promise.all(
          parts.filter((p) => p.cleanedAt === null).map((p) => countInRange(ctx, p)),
        )
      ).reduce((a, b) => a + b, 0);
      if (remaining > 0) {
        return { deleted, deletedTotal, complete: false, remaining, method: "delete" };
      }
      // The budget ran out on the last batch: finish now, rather than leave the date
      // 'cleaning' with nothing left for the next run to find.
    }

    const remaining = await countInRange(ctx, part);
    if (remaining > 0) {
      // The cursor only resumes an interrupted pass. A finished pass that left rows behind
      // must start over next time, or the rows it skipped past would never be retried.
      await ledger.resetCleanupCursor(lease, part.part);
      throw new CleanupIncompleteError(spec.table, date, deletedTotal, remaining);
    }
    await ledger.markPartCleaned(lease, part.part);
  }
  if (rec.state !== "cleaned") {
    await ledger.move(lease, "cleaned", { d1_cleaned: 1, last_error: null });
  }
  return { deleted, deletedTotal, complete: true, remaining: 0, method: "delete" };
}

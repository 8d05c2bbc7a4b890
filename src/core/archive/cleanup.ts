import {
  CleanupIncompleteError,
  NotFoundError,
  NotVerifiedError,
  RowsChangedError,
  SluiceError,
  VerificationError,
} from "../errors.js";
import { keyIn } from "../sql/source.js";
import { type JobContext, tableLines } from "./archive.js";
import { CHUNK_BYTES } from "./chunks.js";
import { dropArchivedPartition } from "./drop-partition.js";
import type { Lease } from "./ledger/lease.js";
import type { PartRecord } from "./ledger/records.js";
import type { RowLines } from "./rows.js";
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
/** Most archived line text one D1 DELETE carries as its parameter (D1: 2 MB per value). */
const D1_BATCH_BYTES = 1 << 20;
/** Changed keys kept for the error that reports them. */
const CHANGED_KEYS_SHOWN = 20;

/** One archived row: its key and its line, as the verified bytes hold them. */
interface Archived {
  key: number;
  line: string;
}

/** What one batch did. */
interface BatchResult {
  deleted: number;
  /** Archived rows still there as archived: the database kept them (a trigger, a policy). */
  refused: number;
  /** Keys whose row is there with other content than archived. */
  changed: number[];
}

/**
 * Parts archived before chunk digests were kept get them now, from one read whose whole
 * sha256 matches the ledger's; the deleting read is then checked chunk by chunk against them.
 */
async function withDigests(ctx: JobContext, lease: Lease, part: PartRecord): Promise<PartRecord> {
  if (part.chunkSha256 !== null) return part;
  const problems: string[] = [];
  const scan = await scanPart(ctx, part, problems);
  if (!problems.length && (scan.sha256 !== part.sha256 || scan.bytes !== part.fileSize)) {
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
  if (!rec || parts.length === 0) {
    throw new NotFoundError(`no archive of ${spec.table} for ${date}: run archive first`);
  }
  const unverified = parts.find((p) => p.verifiedAt === null);
  if (unverified || !["verified", "cleaning", "failed", "cleaned"].includes(rec.state)) {
    throw new NotVerifiedError(spec.table, date, unverified ? "not verified" : rec.state);
  }

  await source.ensureStatistics?.(spec.table);
  const lines = await tableLines(ctx);
  const deleteBatch = source.batch ? d1Batch(ctx, lines, date) : txBatch(ctx, lines, date);
  // Keys bound per statement: an IN-list of them besides the date, where one is used.
  const batchSize = Math.max(
    1,
    source.batch || source.dialect.keyIn
      ? (options.batchSize ?? DEFAULT_DELETE_BATCH)
      : Math.min(options.batchSize ?? DEFAULT_DELETE_BATCH, source.dialect.maxParams - 1),
  );
  const total = parts.reduce((n, p) => n + p.eventCount, 0);
  let deleted = 0;
  let deletedTotal = rec.cleanedCount;

  const pending = parts.filter((p) => p.cleanedAt === null);
  if (options.dropPartitions !== false && source.dialect.partitions && pending.length) {
    await ledger.move(lease, "cleaning");
    const checked: PartRecord[] = [];
    for (const p of pending) checked.push(await withDigests(ctx, lease, p));
    const dropped = await dropArchivedPartition(ctx, lease, date, checked, lines);
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
      if (budget > 0 && Date.now() - started >= budget) overBudget = true;
      if (maxBatches > 0 && batches >= maxBatches) overBudget = true;
    };
    const problems: string[] = [];
    try {
      await scanPart(ctx, part, problems, async (keys, text) => {
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i] as number;
          if (part.cleanupCursor !== null && key <= part.cleanupCursor) continue;
          // Stopped only where a row is left to do, so a run never ends 'cleaning' with none.
          if (overBudget) throw stop;
          const line = text[i] as string;
          batch.push({ key, line });
          batchBytes += line.length;
          if (batch.length >= batchSize || (source.batch && batchBytes >= D1_BATCH_BYTES)) {
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
    await ledger.move(lease, "cleaned", { d1_cleaned: 1, last_error: null });
  }
  return { deleted, deletedTotal, complete: true, remaining: 0, method: "delete" };
}

/** Where the batch's progress goes, given what it found: the cursor and the keys to show. */
type Progress = (r: BatchResult) => { cursor: number | null; changedKeys: string | null };

type DeleteBatch = (
  lease: Lease,
  part: PartRecord,
  rows: readonly Archived[],
  progress: Progress,
) => Promise<BatchResult>;

/**
 * A batch inside one transaction: read the hot rows of the batch's keys (locked where the
 * database locks rows), render them as the archive did, delete exactly those equal to their
 * archived line, and record the progress; any surprise rolls all of it back.
 */
function txBatch(ctx: JobContext, lines: RowLines, date: string): DeleteBatch {
  const { source, spec, ledger } = ctx;
  const d = source.dialect;
  const q = d.quote;
  const table = q(spec.table);
  const day = `${q(spec.partitionColumn)} = ?`;
  const key = q(spec.keyColumn);
  const columns = lines.selectList;
  return (lease, part, rows, progress) =>
    source.transaction(async (tx) => {
      const first = (rows[0] as Archived).key;
      const last = (rows.at(-1) as Archived).key;
      // By range where one writer holds the whole database: the range's late rows show too.
      const where = d.deletesByRange
        ? { sql: `${key} BETWEEN ? AND ?`, params: [first, last] }
        : keyIn(
            d,
            key,
            rows.map((r) => r.key),
          );
      const hot = new Map<unknown, string>();
      for (const row of await tx.query(
        lines.select(
          `SELECT ${columns} FROM ${table} WHERE ${day} AND ${where.sql}${d.lockRows}`,
          false,
        ),
        [date, ...where.params],
      )) {
        hot.set(lines.key(row), lines.line(row));
      }
      const same: number[] = [];
      const changed: number[] = [];
      for (const r of rows) {
        const now = hot.get(r.key);
        if (now === r.line) same.push(r.key);
        else if (now !== undefined) changed.push(r.key);
      }
      let deleted = 0;
      if (same.length) {
        const which =
          d.deletesByRange && same.length === hot.size
            ? { sql: `${key} BETWEEN ? AND ?`, params: [first, last] }
            : keyIn(d, key, same);
        deleted = (
          await tx.execute(`DELETE FROM ${table} WHERE ${day} AND ${which.sql}`, [
            date,
            ...which.params,
          ])
        ).changes;
        if (deleted > same.length) {
          throw new SluiceError(
            "failed",
            `cleanup of ${spec.table} ${date}: a delete of ${same.length} archived rows removed ${deleted}; rolled back (is '${spec.keyColumn}' unique?)`,
          );
        }
      }
      const result = { deleted, refused: same.length - deleted, changed };
      const { cursor, changedKeys } = progress(result);
      await ledger.addCleaned(
        lease,
        part.part,
        { deleted, cursor, changed: changed.length, changedKeys },
        tx,
      );
      return result;
    });
}

/**
 * A batch on D1, which has no interactive transaction: one DELETE that removes only rows equal
 * to an archived line (SQLite renders them as the archive did, and compares them with the
 * batch's lines passed as one JSON array), in one atomic batch with the ledger's record of it.
 * Rows it left are looked at afterwards, only to report them.
 */
function d1Batch(ctx: JobContext, lines: RowLines, date: string): DeleteBatch {
  const { source, spec, ledger } = ctx;
  const q = source.dialect.quote;
  const table = q(spec.table);
  const json = source.dialect.jsonRow?.(
    lines.columns.map((c) => c.name),
    table,
  );
  const where = `${q(spec.partitionColumn)} = ? AND ${q(spec.keyColumn)} BETWEEN ? AND ?`;
  const columns = lines.selectList;
  return async (lease, part, rows, progress) => {
    if (!json) {
      throw new SluiceError(
        "failed",
        `${spec.table} has too many columns for a content-checked delete on ${source.describe()}`,
      );
    }
    const first = (rows[0] as Archived).key;
    const last = (rows.at(-1) as Archived).key;
    // Recorded as if every row went; corrected below when some did not.
    const before = progress({ deleted: 0, refused: 0, changed: [] });
    const deleted = await ledger.deleteAndRecord(lease, part.part, before.cursor, {
      sql: `DELETE FROM ${table} WHERE ${where} AND ${json} IN (SELECT value FROM json_each(?))`,
      params: [date, first, last, JSON.stringify(rows.map((r) => r.line))],
    });
    if (deleted === rows.length) return { deleted, refused: 0, changed: [] };
    const hot = new Map<unknown, string>();
    for (const row of await source.query(
      lines.select(`SELECT ${columns} FROM ${table} WHERE ${where}`, false),
      [date, first, last],
    )) {
      hot.set(lines.key(row), lines.line(row));
    }
    const changed: number[] = [];
    let refused = 0;
    for (const r of rows) {
      const now = hot.get(r.key);
      if (now === r.line) refused++;
      else if (now !== undefined) changed.push(r.key);
    }
    const result = { deleted, refused, changed };
    if (refused || changed.length) {
      const after = progress(result);
      await ledger.addChanged(lease, part.part, changed.length, after.changedKeys, after.cursor);
    }
    return result;
  };
}

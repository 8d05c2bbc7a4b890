import { webCodec } from "../bytes/codec.js";
import { LeaseLostError } from "../errors.js";
import { putBytes } from "../store.js";
import type { JobContext } from "./context.js";
import type { Lease } from "./ledger/lease.js";
import type { PartRecord } from "./ledger/records.js";
import { manifestText } from "./manifest.js";
import { pagesByKey, tableLines } from "./pages.js";
// Not the index: the Parquet libraries load only when a part is written as Parquet.
import { PlanError, type PlannedColumn, planColumns } from "./parquet/schema.js";
import { NotExactError, whereNotExact } from "./parquet/values.js";
import { type PartPlan, countRowsAfter, planNextPart } from "./plan.js";
import type { RowLines } from "./rows.js";
import {
  type StoredFacts,
  removeUnrecordedUpload,
  startUpload,
  writeJsonlPart,
  writeParquetPart,
} from "./write-part.js";

/**
 * The error to report for a failed upload: that the lease was lost, when it was (another
 * holder may have removed this upload's files as a dead writer's), else the error itself.
 */
async function unlessLeaseLost(lease: Lease, err: unknown): Promise<unknown> {
  if (err instanceof LeaseLostError) return err;
  try {
    await lease.check();
  } catch (lost) {
    if (lost instanceof LeaseLostError) return lost;
  }
  return err;
}

/**
 * Archive the rows of `date` not yet in a verified part as one new part: key-paginated reads
 * -> JSONL lines -> gzip (or Parquet row groups, with `spec.format`) -> the store, streamed,
 * with a manifest beside it and a ledger row. The caller holds the lease. Returns null when
 * there is nothing new to archive.
 */
export async function archivePartition(
  ctx: JobContext,
  lease: Lease,
  date: string,
): Promise<PartRecord | null> {
  const { spec, ledger, store, source } = ctx;
  const parts = await ledger.parts(spec.table, date);
  const next = planNextPart(parts);
  await source.pages.analyze(spec.table);
  const total = await countRowsAfter(source, spec, date, next.after);
  if (total === 0) {
    if (next.replaces) {
      // The unverified part's rows left the source (nothing was deleted on its strength):
      // there is nothing to rewrite it from, so it goes, or cleanup would wait for it forever.
      await ledger.removeUnverifiedPart(lease, next.replaces.part);
      await store.delete(next.replaces.objectKey).catch(() => undefined);
      await store.delete(next.replaces.manifestKey).catch(() => undefined);
    }
    return null;
  }

  await ledger.move(lease, "archiving");
  await removeUnrecordedUpload(ctx, date, parts);
  const lines = await tableLines(ctx);
  let plan: PlannedColumn[] | null = null;
  if (spec.format === "parquet") {
    try {
      plan = planColumns(lines.columns, source.dialect.name);
    } catch (err) {
      if (!(err instanceof PlanError)) throw err;
      ctx.onWarning?.(asJsonl(spec.table, date, next.part, err));
    }
  }
  let written = await writePart(ctx, lease, date, next, total, lines, plan);
  if (written instanceof NotExactError) {
    // Nothing of the Parquet bytes is kept: the rows are read again, as JSONL.
    ctx.onWarning?.(asJsonl(spec.table, date, next.part, written));
    written = await writePart(ctx, lease, date, next, total, lines, null);
  }
  if (written instanceof NotExactError) throw written; // JSONL holds every line
  if (written === null) return null;
  const { objectKey, manifestKey } = written;
  const part: PartRecord = {
    sourceTable: spec.table,
    date,
    part: next.part,
    objectKey,
    manifestKey,
    eventCount: written.rows,
    rawSize: written.rawBytes,
    fileSize: written.bytes,
    sha256: written.sha256,
    minId: written.minKey,
    maxId: written.maxKey,
    archivedAt: new Date().toISOString(),
    verifiedAt: null,
    cleanedCount: 0,
    cleanupCursor: null,
    cleanedAt: null,
    chunkBytes: written.chunkBytes,
    chunkSha256: written.chunkSha256,
    changedCount: 0,
    changedKeys: null,
    rollupRows: null,
    deletedRollupRows: 0,
    passedKey: null,
    skipsKnown: true,
  };
  const manifest = manifestText(part, spec, lines.columns, (t) =>
    source.dialect.columnEncoding?.(t),
  );
  await putBytes(store, manifestKey, new TextEncoder().encode(manifest));

  try {
    await ledger.recordPart(lease, part);
  } catch (err) {
    // Certainly not recorded (the lease went): take our upload back. Any other failure may
    // have committed, so the object stays; the next holder removes it if it was not recorded.
    if (err instanceof LeaseLostError) {
      await store.delete(objectKey).catch(() => undefined);
      await store.delete(manifestKey).catch(() => undefined);
    }
    throw err;
  }
  if (next.replaces && next.replaces.objectKey !== objectKey) {
    // The unverified part this one replaced: no row was deleted on its strength.
    await store.delete(next.replaces.objectKey).catch(() => undefined);
    await store.delete(next.replaces.manifestKey).catch(() => undefined);
  }
  return part;
}

function asJsonl(table: string, date: string, part: number, err: Error): string {
  const why = err instanceof NotExactError ? whereNotExact(err) : err.message;
  return `${table} ${date} part ${part} is written as gzip JSONL: Parquet would not give its lines back exactly (${why})`;
}

/** What one upload of a part wrote, once the store has it all. */
interface Written extends StoredFacts {
  objectKey: string;
  manifestKey: string;
  rows: number;
  rawBytes: number;
  minKey: number;
  maxKey: number;
}

/**
 * Upload the rows after `next.after` as one object under a fresh attempt key: Parquet with a
 * `plan`, else gzip JSONL. Null when the rows vanished under us; the encoder's NotExactError is
 * returned once the object is deleted again.
 */
async function writePart(
  ctx: JobContext,
  lease: Lease,
  date: string,
  next: PartPlan,
  total: number,
  lines: RowLines,
  plan: PlannedColumn[] | null,
): Promise<Written | NotExactError | null> {
  const { spec, ledger, store } = ctx;
  const { objectKey, manifestKey, put, facts } = await startUpload(
    ctx,
    lease,
    date,
    next.part,
    plan ? "parquet" : "jsonl",
  );
  let rows = 0;
  let minKey: number | null = null;
  let maxKey: number | null = null;
  const pages = (async function* () {
    for await (const page of pagesByKey(ctx, lines, date, next.after, lease)) {
      minKey ??= page.firstKey;
      maxKey = page.lastKey;
      rows += page.lines.length;
      yield page;
      ctx.onProgress?.({ phase: "archive", table: spec.table, date, done: rows, total });
    }
  })();
  let rawBytes: number;
  try {
    rawBytes = plan
      ? await writeParquetPart(pages, plan, spec.rowGroupRows, put, ctx.pacer)
      : await writeJsonlPart(ctx.codec ?? webCodec, pages, put);
  } catch (err) {
    if (err instanceof NotExactError) {
      await store.delete(objectKey);
      return err;
    }
    throw await unlessLeaseLost(lease, err);
  }
  // The Parquet writer and its footer are garbage now: collected before verify reads the part.
  ctx.pacer?.end();
  if (minKey === null || maxKey === null) {
    // The rows vanished under us: nothing written is used.
    await store.delete(objectKey);
    return null;
  }
  return { objectKey, manifestKey, rows, rawBytes, minKey, maxKey, ...facts() };
}

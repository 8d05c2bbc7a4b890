import { webCodec } from "../bytes/codec.js";
import { portableSha256 } from "../bytes/hash.js";
import { tap } from "../bytes/lines.js";
import { LeaseLostError } from "../errors.js";
import { putBytes } from "../store.js";
import { ChunkDigester } from "./chunks.js";
import type { JobContext } from "./context.js";
import type { Lease } from "./ledger/lease.js";
import type { PartRecord } from "./ledger/records.js";
import { manifestText } from "./manifest.js";
import { PageEncoder, pagesByKey, tableLines } from "./pages.js";
import { manifestKeyOf, newAttempt, partManifestKey, partObjectKey } from "./partition.js";
import { countRowsAfter, planNextPart } from "./plan.js";

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
 * -> JSONL -> gzip -> the store, streamed, with a manifest beside it and a ledger row. The
 * caller holds the lease. Returns null when there is nothing new to archive.
 */
export async function archivePartition(
  ctx: JobContext,
  lease: Lease,
  date: string,
): Promise<PartRecord | null> {
  const { spec, ledger, store, source } = ctx;
  const parts = await ledger.parts(spec.table, date);
  const plan = planNextPart(parts);
  await source.pages.analyze(spec.table);
  const total = await countRowsAfter(source, spec, date, plan.after);
  if (total === 0) {
    if (plan.replaces) {
      // The unverified part's rows left the source (nothing was deleted on its strength):
      // there is nothing to rewrite it from, so it goes, or cleanup would wait for it forever.
      await ledger.removeUnverifiedPart(lease, plan.replaces.part);
      await store.delete(plan.replaces.objectKey).catch(() => undefined);
      await store.delete(plan.replaces.manifestKey).catch(() => undefined);
    }
    return null;
  }

  await ledger.move(lease, "archiving");
  // An upload a dead holder began and never recorded: nothing refers to it.
  const pending = (await ledger.get(spec.table, date))?.pendingObject;
  if (pending && !parts.some((p) => p.objectKey === pending)) {
    await store.delete(pending);
    await store.delete(manifestKeyOf(pending));
  }
  const attempt = newAttempt();
  const objectKey = partObjectKey(spec, date, plan.part, attempt);
  const manifestKey = partManifestKey(spec, date, plan.part, attempt);
  await ledger.setPendingObject(lease, objectKey);
  const lines = await tableLines(ctx);
  const sha256 = ctx.sha256 ?? portableSha256;
  const hash = sha256();
  const chunks = new ChunkDigester(sha256);
  let rows = 0;
  let rawBytes = 0;
  let bytes = 0;
  let minKey: number | null = null;
  let maxKey: number | null = null;

  const gzip = (ctx.codec ?? webCodec).gzip();
  const stored = store.put(
    objectKey,
    gzip.readable.pipeThrough(
      tap((chunk) => {
        hash.update(chunk);
        chunks.update(chunk);
        bytes += chunk.byteLength;
      }),
    ),
  );
  stored.catch(() => undefined); // awaited below; a failure also surfaces through the writer
  const writer = gzip.writable.getWriter();
  // Two buffers take turns: page k is compressed (on zlib's thread) while page k+1 is read.
  // A write resolves once the compressor has consumed its bytes, so a buffer is reused only
  // after the write of the page before it has resolved.
  const encoders = [new PageEncoder(), new PageEncoder()];
  let inFlight: Promise<void> | null = null;
  let pageNo = 0;
  try {
    for await (const page of pagesByKey(ctx, lines, date, plan.after, lease)) {
      const chunk = (encoders[pageNo++ % 2] as PageEncoder).encode(page.lines);
      if (inFlight) await inFlight;
      inFlight = writer.write(chunk);
      inFlight.catch(() => undefined);
      minKey ??= page.firstKey;
      maxKey = page.lastKey;
      rows += page.lines.length;
      rawBytes += chunk.byteLength;
      ctx.onProgress?.({ phase: "archive", table: spec.table, date, done: rows, total });
    }
    if (inFlight) await inFlight;
    await writer.close();
  } catch (err) {
    await writer.abort(err).catch(() => undefined);
    await stored.catch(() => undefined);
    throw await unlessLeaseLost(lease, err);
  }
  try {
    await stored;
  } catch (err) {
    throw await unlessLeaseLost(lease, err);
  }
  if (minKey === null || maxKey === null) {
    // The rows vanished under us: nothing written is used.
    await store.delete(objectKey);
    return null;
  }

  const part: PartRecord = {
    sourceTable: spec.table,
    date,
    part: plan.part,
    objectKey,
    manifestKey,
    eventCount: rows,
    rawSize: rawBytes,
    fileSize: bytes,
    sha256: hash.hex(),
    minId: minKey,
    maxId: maxKey,
    archivedAt: new Date().toISOString(),
    verifiedAt: null,
    cleanedCount: 0,
    cleanupCursor: null,
    cleanedAt: null,
    chunkBytes: chunks.chunkBytes,
    chunkSha256: chunks.finish(),
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
  if (plan.replaces && plan.replaces.objectKey !== objectKey) {
    // The unverified part this one replaced: no row was deleted on its strength.
    await store.delete(plan.replaces.objectKey).catch(() => undefined);
    await store.delete(plan.replaces.manifestKey).catch(() => undefined);
  }
  return part;
}

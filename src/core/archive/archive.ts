import { type Codec, webCodec } from "../bytes/codec.js";
import { type Sha256Factory, portableSha256 } from "../bytes/hash.js";
import { tap } from "../bytes/lines.js";
import { BadInputError, LeaseLostError } from "../errors.js";
import type { ProgressListener } from "../progress.js";
import { DEFAULT_FETCH_SIZE, type Row, type SqlSource, toCount } from "../sql/source.js";
import { type ObjectStore, putBytes } from "../store.js";
import { ChunkDigester } from "./chunks.js";
import type { Lease } from "./ledger/lease.js";
import type { Ledger } from "./ledger/ledger.js";
import type { PartRecord } from "./ledger/records.js";
import {
  type PartitionSpec,
  manifestKeyOf,
  newAttempt,
  partManifestKey,
  partObjectKey,
} from "./partition.js";
import { type RowLines, rowLines } from "./rows.js";

export interface JobContext {
  source: SqlSource;
  store: ObjectStore;
  ledger: Ledger;
  spec: PartitionSpec;
  /** Rows per page read from the source: the seed's DB_SLOW_FETCHMANY_SIZE. */
  fetchSize?: number;
  sha256?: Sha256Factory;
  codec?: Codec;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

/** Written beside every part; verification checks the object against it and the ledger. */
export interface Manifest {
  format: "sluice-jsonl-gzip/1";
  table: string;
  partitionColumn: string;
  keyColumn: string;
  /** The lines' members in order (the key first) with their database types. */
  columns: { name: string; type: string }[];
  date: string;
  part: number;
  objectKey: string;
  rows: number;
  rawBytes: number;
  bytes: number;
  sha256: string;
  /** sha256 of every `chunkBytes` of the object, in order (the last chunk may be short). */
  chunkBytes: number;
  chunkSha256: string[];
  minKey: number;
  maxKey: number;
  writtenAt: string;
}

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
  const rows = await source.query(
    `SELECT COUNT(*) AS n FROM ${q(spec.table)} WHERE ${q(spec.partitionColumn)} = ?${after === null ? "" : ` AND ${q(spec.keyColumn)} > ?`}`,
    after === null ? [date] : [date, after],
  );
  return toCount(rows[0]?.n);
}

/** One page of rows, each already JSON text (no newline). */
interface Page {
  lines: string[];
  firstKey: number;
  lastKey: number;
}

/**
 * Encodes a page of lines into a buffer it reuses, so that archiving a day allocates no
 * page-sized garbage (which V8 would keep until a major GC, growing RSS with the day).
 */
class PageEncoder {
  private buf = new Uint8Array(1 << 21);
  private readonly encoder = new TextEncoder();

  /** The page as JSONL bytes: a view valid until the next call. */
  encode(lines: readonly string[]): Uint8Array {
    let used = 0;
    for (const line of lines) {
      const worst = used + line.length * 3 + 1;
      if (worst > this.buf.length) {
        const bigger = new Uint8Array(Math.max(worst, this.buf.length * 2));
        bigger.set(this.buf.subarray(0, used));
        this.buf = bigger;
      }
      used += this.encoder.encodeInto(line, this.buf.subarray(used)).written;
      this.buf[used++] = 10;
    }
    return this.buf.subarray(0, used);
  }
}

/**
 * Pages of a date's rows in key order, `key > last` each time: never OFFSET. Rows are
 * rendered as JSON lines with the key first, by the database where it can.
 */
async function* pagesByKey(
  ctx: JobContext,
  lines: RowLines,
  date: string,
  after: number | null,
  lease: Lease,
): AsyncGenerator<Page> {
  const q = ctx.source.dialect.quote;
  const { table, partitionColumn, keyColumn } = ctx.spec;
  const size = ctx.fetchSize ?? DEFAULT_FETCH_SIZE;
  const hint = (await ctx.source.pageIndexHint?.(table, partitionColumn, keyColumn)) ?? "";
  const from = `SELECT ${lines.selectList} FROM ${q(table)}${hint && ` ${hint}`} WHERE ${q(partitionColumn)} = ?`;
  const page = (more: string) =>
    lines.select(`${from}${more} ORDER BY ${q(keyColumn)} LIMIT ?`, true);
  const first = page("");
  const next = page(` AND ${q(keyColumn)} > ?`);
  const keyOf = (row: Row | undefined) => {
    const key = row && lines.key(row);
    if (typeof key !== "number" || !Number.isSafeInteger(key)) {
      throw new BadInputError(
        `key column '${keyColumn}' of '${table}' must hold integers; found ${JSON.stringify(key)}`,
      );
    }
    return key;
  };
  const read = (sql: string, params: unknown[]) =>
    ctx.source.queryPage ? ctx.source.queryPage(sql, params) : ctx.source.query(sql, params);
  let last = after;
  for (;;) {
    ctx.signal?.throwIfAborted();
    const rows =
      last === null ? await read(first, [date, size]) : await read(next, [date, last, size]);
    if (rows.length === 0) return;
    const out = {
      lines: rows.map(lines.line),
      firstKey: keyOf(rows[0]),
      lastKey: keyOf(rows.at(-1)),
    };
    last = out.lastKey;
    yield out;
    await lease.keepAlive();
    if (rows.length < size) return;
  }
}

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

/** The renderer of the spec's table: its columns, the key first. */
export async function tableLines(ctx: JobContext): Promise<RowLines> {
  const columns = await ctx.source.columnInfo(ctx.spec.table);
  if (!columns) throw new BadInputError(`table '${ctx.spec.table}' does not exist`);
  return rowLines(ctx.source.dialect, columns, ctx.spec.keyColumn);
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
  await source.ensureStatistics?.(spec.table);
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
  const encoder = new TextEncoder();

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

  const chunkSha256 = chunks.finish();
  const manifest: Manifest = {
    format: "sluice-jsonl-gzip/1",
    table: spec.table,
    partitionColumn: spec.partitionColumn,
    keyColumn: spec.keyColumn,
    columns: lines.columns.map((c) => ({ name: c.name, type: c.type })),
    date,
    part: plan.part,
    objectKey,
    rows,
    rawBytes,
    bytes,
    sha256: hash.hex(),
    chunkBytes: chunks.chunkBytes,
    chunkSha256: chunkSha256.match(/.{64}/g) ?? [],
    minKey,
    maxKey,
    writtenAt: new Date().toISOString(),
  };
  await putBytes(store, manifestKey, encoder.encode(`${JSON.stringify(manifest, null, 2)}\n`));

  const part: PartRecord = {
    sourceTable: spec.table,
    date,
    part: plan.part,
    objectKey,
    manifestKey,
    eventCount: rows,
    rawSize: rawBytes,
    fileSize: bytes,
    sha256: manifest.sha256,
    minId: minKey,
    maxId: maxKey,
    archivedAt: manifest.writtenAt,
    verifiedAt: null,
    cleanedCount: 0,
    cleanupCursor: null,
    cleanedAt: null,
    chunkBytes: chunks.chunkBytes,
    chunkSha256,
    changedCount: 0,
    changedKeys: null,
  };
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

import { type Codec, webCodec } from "./codec.js";
import { BadInputError } from "./errors.js";
import { type Sha256Factory, portableSha256 } from "./hash.js";
import type { Lease, Ledger, PartRecord } from "./ledger.js";
import { tap } from "./lines.js";
import { type PartitionSpec, partManifestKey, partObjectKey } from "./partition.js";
import type { ProgressListener } from "./progress.js";
import { DEFAULT_FETCH_SIZE, type Row, type SqlSource, toCount } from "./source.js";
import { type ObjectStore, putBytes } from "./store.js";

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
  date: string;
  part: number;
  objectKey: string;
  rows: number;
  rawBytes: number;
  bytes: number;
  sha256: string;
  minKey: number;
  maxKey: number;
  writtenAt: string;
}

/** Where the next part starts, and whether it replaces an unverified one. */
export interface PartPlan {
  part: number;
  /** Archive rows with key > after (null: from the first row of the date). */
  after: number | null;
}

/**
 * Plan the next part of a partition: a new part after the last verified one, or a rewrite of
 * a last part that was never verified (nothing of it can have been deleted). Null when the
 * last part was verified and has been cleaned from, i.e. cannot be rewritten.
 */
export function planNextPart(parts: readonly PartRecord[]): PartPlan {
  const last = parts.at(-1);
  if (!last) return { part: 0, after: null };
  const rewrite = last.verifiedAt === null && last.cleanedCount === 0;
  if (rewrite) {
    const prev = parts.at(-2);
    return { part: last.part, after: prev ? prev.maxId : null };
  }
  return { part: last.part + 1, after: last.maxId };
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
 * rendered as JSON with the key first, by the database where it can.
 */
async function* pagesByKey(
  ctx: JobContext,
  date: string,
  after: number | null,
  lease: Lease,
): AsyncGenerator<Page> {
  const { quote: q, jsonObject } = ctx.source.dialect;
  const { table, partitionColumn, keyColumn } = ctx.spec;
  const size = ctx.fetchSize ?? DEFAULT_FETCH_SIZE;
  const columns = (await ctx.source.tableColumns(table)) ?? [];
  const ordered = [keyColumn, ...columns.filter((c) => c !== keyColumn)];
  const json = jsonObject?.(ordered);
  const select = json
    ? `SELECT ${q(keyColumn)} AS sluice_key, ${json} AS sluice_json`
    : `SELECT ${ordered.map(q).join(", ")}`;
  const hint = (await ctx.source.pageIndexHint?.(table, partitionColumn, keyColumn)) ?? "";
  const base = `${select} FROM ${q(table)}${hint && ` ${hint}`} WHERE ${q(partitionColumn)} = ?`;
  const keyOf = (row: Row | undefined) => {
    const key = json ? row?.sluice_key : row?.[keyColumn];
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
      last === null
        ? await read(`${base} ORDER BY ${q(keyColumn)} LIMIT ?`, [date, size])
        : await read(`${base} AND ${q(keyColumn)} > ? ORDER BY ${q(keyColumn)} LIMIT ?`, [
            date,
            last,
            size,
          ]);
    if (rows.length === 0) return;
    const lines = json
      ? rows.map((row) => row.sluice_json as string)
      : rows.map((row) => JSON.stringify(row));
    const page = { lines, firstKey: keyOf(rows[0]), lastKey: keyOf(rows.at(-1)) };
    last = page.lastKey;
    yield page;
    await lease.keepAlive();
    if (rows.length < size) return;
  }
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
  if (total === 0) return null;

  await ledger.move(lease, "archiving");
  const objectKey = partObjectKey(spec, date, plan.part);
  const hash = (ctx.sha256 ?? portableSha256)();
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
    for await (const page of pagesByKey(ctx, date, plan.after, lease)) {
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
    throw err;
  }
  await stored;
  if (minKey === null || maxKey === null) return null; // rows vanished under us: nothing written is used

  const manifest: Manifest = {
    format: "sluice-jsonl-gzip/1",
    table: spec.table,
    partitionColumn: spec.partitionColumn,
    keyColumn: spec.keyColumn,
    date,
    part: plan.part,
    objectKey,
    rows,
    rawBytes,
    bytes,
    sha256: hash.hex(),
    minKey,
    maxKey,
    writtenAt: new Date().toISOString(),
  };
  const manifestKey = partManifestKey(spec, date, plan.part);
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
  };
  await source.transaction((tx) => ledger.recordPart(lease, part, tx));
  return part;
}

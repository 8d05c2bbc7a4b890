import { webCodec } from "../bytes/codec.js";
import { type Sha256Factory, portableSha256 } from "../bytes/hash.js";
import { BadInputError, VerificationError } from "../errors.js";
import { getText, putBytes } from "../store.js";
import type { JobContext } from "./context.js";
import type { Lease } from "./ledger/lease.js";
import type { PartRecord } from "./ledger/records.js";
import { type ManifestFile, manifestText } from "./manifest.js";
import { PlanError, type PlannedColumn, planColumns } from "./parquet/schema.js";
import { NotExactError, whereNotExact } from "./parquet/values.js";
import { type PartFormat, partFormat } from "./partition.js";
import { scanPart, verifyPart } from "./verify.js";
import {
  removeUnrecordedUpload,
  startUpload,
  writeJsonlPart,
  writeParquetPart,
} from "./write-part.js";

/** What a conversion of one date did. */
export interface ConvertResult {
  date: string;
  format: PartFormat;
  /** Parts rewritten in the format, and their bytes before and after. */
  converted: number;
  bytesBefore: number;
  bytesAfter: number;
  /** Parts already in the format. */
  already: number;
  /** Parts the format cannot hold exactly: they stay as they are (each one warned of). */
  kept: number;
}

/**
 * Rewrite each part of `date` in `format`. A new object is written from the old one's lines
 * (each from bytes checked against the part's digests), then verified like any part, its lines
 * hashed equal to the old ones'; only then does the ledger point the part at it, in one fenced
 * write, and only after that is the old object deleted. The caller holds the lease.
 */
export async function convertPartition(
  ctx: JobContext,
  lease: Lease,
  date: string,
  format: PartFormat,
): Promise<ConvertResult> {
  const { ledger, spec, store } = ctx;
  const out: ConvertResult = {
    date,
    format,
    converted: 0,
    bytesBefore: 0,
    bytesAfter: 0,
    already: 0,
    kept: 0,
  };
  const parts = await ledger.parts(spec.table, date);
  if (parts.length === 0) throw new BadInputError(`${spec.table} ${date} has no archived part`);
  const unverified = parts.find((p) => p.verifiedAt === null);
  if (unverified) {
    throw new BadInputError(
      `${spec.table} ${date} part ${unverified.part} is not verified: run archive (it verifies) first`,
    );
  }
  // A conversion killed mid-upload left an object nothing refers to.
  await removeUnrecordedUpload(ctx, date, parts);
  for (const part of parts) {
    if (partFormat(part.objectKey) === format) {
      out.already++;
      continue;
    }
    const next = await rewrite(ctx, lease, part, format);
    if (next instanceof NotExactError || next instanceof PlanError) {
      ctx.onWarning?.(
        `${spec.table} ${date} part ${part.part} stays ${partFormat(part.objectKey)}: ${format} would not give its lines back exactly (${next instanceof NotExactError ? whereNotExact(next) : next.message})`,
      );
      out.kept++;
      continue;
    }
    await ledger.swapPartObject(lease, part.part, part.objectKey, next);
    // Stryker disable next-line all: cleanup of what nothing refers to any more
    await store.delete(part.objectKey).catch(() => undefined);
    // Stryker disable next-line all: as above
    await store.delete(part.manifestKey).catch(() => undefined);
    out.converted++;
    out.bytesBefore += part.fileSize;
    out.bytesAfter += next.fileSize;
    await lease.keepAlive();
  }
  return out;
}

/**
 * Part `part` written again in `format` and verified: the new record, or the format's refusal
 * (the new object then deleted). Throws what makes either read or the write fail.
 */
async function rewrite(
  ctx: JobContext,
  lease: Lease,
  part: PartRecord,
  format: PartFormat,
): Promise<PartRecord | NotExactError | PlanError> {
  const { spec, store, source } = ctx;
  const oldText = await getText(store, part.manifestKey);
  if (oldText === null) {
    throw new VerificationError(part.objectKey, [`manifest ${part.manifestKey} is missing`]);
  }
  const old = JSON.parse(oldText) as ManifestFile;
  let plan: PlannedColumn[] = [];
  // Stryker disable next-line ConditionalExpression: equivalent; a plan made for JSONL goes unused (planColumns refuses only a name listed twice, which a manifest written by archive never has)
  if (format === "parquet") {
    try {
      plan = planColumns(old.columns ?? [], source.dialect.name);
    } catch (err) {
      if (err instanceof PlanError) return err;
      throw err;
    }
  }
  const { objectKey, manifestKey, put, facts } = await startUpload(
    ctx,
    lease,
    part.date,
    part.part,
    format,
  );
  const sha256 = ctx.sha256 ?? portableSha256;
  // The old part's lines, read as verify reads them, handed to the writer one batch at a time.
  const handoff = new TransformStream<string[], { lines: string[] }>({
    transform: (lines, c) => c.enqueue({ lines }),
  });
  const writer = handoff.writable.getWriter();
  const oldLines = new LineDigest(sha256);
  const reading = (async () => {
    const problems: string[] = [];
    let done = 0;
    await scanPart(ctx, part, problems, async (_keys, lines) => {
      for (const line of lines) oldLines.add(line);
      await writer.write(lines);
      done += lines.length;
      ctx.onProgress?.({
        phase: "convert",
        table: spec.table,
        date: part.date,
        done,
        total: part.eventCount,
      });
    });
    if (problems.length) throw new VerificationError(part.objectKey, problems);
    await writer.close();
  })();
  reading.catch((err) => writer.abort(err).catch(() => undefined));
  const pages = handoff.readable;
  const writing =
    format === "parquet"
      ? writeParquetPart(pages, plan, spec.rowGroupRows, put, ctx.pacer)
      : writeJsonlPart(ctx.codec ?? webCodec, pages, put);
  // Each side's failure breaks the other's stream: report the one that caused it.
  const [read, wrote] = await Promise.allSettled([reading, writing]);
  ctx.pacer?.end();
  // Stryker disable next-line ConditionalExpression: equivalent; a failed read aborts the write, which fails too
  if (read.status === "rejected" || wrote.status === "rejected") {
    await store.delete(objectKey).catch(() => undefined);
    const writeErr = wrote.status === "rejected" ? wrote.reason : undefined;
    const readErr = read.status === "rejected" ? read.reason : undefined;
    if (writeErr instanceof NotExactError) return writeErr;
    // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent with these writers: a failed read aborts the write with its own error, which the write then throws
    if (readErr instanceof VerificationError || writeErr === undefined) throw readErr;
    throw writeErr;
  }

  const stored = facts();
  const next: PartRecord = {
    ...part,
    objectKey,
    manifestKey,
    fileSize: stored.bytes,
    sha256: stored.sha256,
    chunkBytes: stored.chunkBytes,
    chunkSha256: stored.chunkSha256,
  };
  // Stryker disable next-line OptionalChaining,ArrayDeclaration: equivalent; a manifest without its columns (before they were kept) is JSONL, and no plan to Parquet gets this far without them
  const encodings = new Map(old.columns?.map((c) => [c.type, c.encoding]) ?? []);
  // Stryker disable next-line ArrayDeclaration: as above
  const manifest = manifestText(next, spec, old.columns ?? [], (t) => encodings.get(t));
  await putBytes(store, manifestKey, new TextEncoder().encode(manifest));
  // Verified like any part, and every line the same text as the old part's, in order.
  const newLines = new LineDigest(sha256);
  try {
    await verifyPart(ctx, next, (line) => newLines.add(line));
    // Defense in depth against a codec bug; no input reaches it (the encoder refuses a line
    // that would not render back to itself).
    // Stryker disable all
    if (newLines.hex() !== oldLines.hex()) {
      throw new VerificationError(objectKey, [
        `its lines differ from those of ${part.objectKey} (the sha256 of their text)`,
      ]);
    }
    // Stryker restore all
  } catch (err) {
    await store.delete(objectKey).catch(() => undefined);
    await store.delete(manifestKey).catch(() => undefined);
    throw err;
  }
  return next;
}

/** The sha256 of lines as JSONL text (each line and a newline). */
class LineDigest {
  private readonly hash;

  private readonly encoder = new TextEncoder();

  constructor(sha256: Sha256Factory) {
    this.hash = sha256();
  }

  // Stryker disable next-line BlockStatement: as the comparison of the digests, which alone reads them
  add(line: string): void {
    // Stryker disable next-line StringLiteral: as above
    this.hash.update(this.encoder.encode(`${line}\n`));
  }

  hex(): string {
    return this.hash.hex();
  }
}

import { BadInputError, NotFoundError, VerificationError } from "../errors.js";
import { checkTableName } from "../sql/ident.js";
import type { Column } from "../sql/source.js";
import { getText } from "../store.js";
import type { JobContext } from "./context.js";
import type { Lease } from "./ledger/lease.js";
import type { PartRecord } from "./ledger/records.js";
import { manifestColumns } from "./manifest.js";
import { scanPart, verifyPart } from "./verify.js";

/** What a restore did: lines read from the archive, rows inserted, rows whose key was there. */
export interface RestoreOutcome {
  date: string;
  into: string;
  parts: number;
  read: number;
  inserted: number;
  /** Lines whose key the table already held (restored before, or a newer part's version). */
  skipped: number;
}

export interface RestoreOptions {
  /** A table of the same columns to restore into instead of the archived table. */
  into?: string;
  /** Most bytes of lines per INSERT (D1 takes statements of ~1 MB at most). */
  batchBytes?: number;
}

/**
 * Put a date's verified archive back into the table (or into `into`), every row exactly as
 * archived, in batches of one INSERT each. Rows whose key is present are skipped, so a rerun
 * after a crash adds only what is missing. Parts go newest first: a row archived twice (changed
 * after its first part) comes back as its newest version. Restored rows are ordinary rows of
 * their date: an archive run takes them as late rows, never as already archived.
 */
export async function restorePartition(
  ctx: JobContext,
  lease: Lease,
  date: string,
  options: RestoreOptions = {},
): Promise<RestoreOutcome> {
  const { source, spec, ledger } = ctx;
  const into = checkTableName("--into", options.into ?? spec.table);
  const restoreRows = source.dialect.restoreRows;
  if (!restoreRows) throw new BadInputError(`restore is not available on ${source.describe()}`);
  const parts = await ledger.parts(spec.table, date);
  if (parts.length === 0) throw new NotFoundError(`no archive of ${spec.table} for ${date}`);
  const unverified = parts.filter((p) => p.verifiedAt === null).map((p) => p.part);
  if (unverified.length) {
    throw new BadInputError(
      `${spec.table} ${date}: part(s) ${unverified.join(", ")} not verified: run verify (or archive) first; nothing restored`,
    );
  }
  if (into === spec.table) {
    const cleaning = parts.filter((p) => p.cleanedCount > 0 && p.cleanedAt === null);
    if (cleaning.length) {
      throw new BadInputError(
        `${spec.table} ${date}: cleanup is in progress (part ${cleaning[0]?.part}): finish it with cleanup, or restore --into a staging table`,
      );
    }
  }
  const target = await source.columnInfo(into);
  if (!target) {
    throw new BadInputError(
      `no table '${into}': create it with the archived table's columns first (PostgreSQL: CREATE TABLE ${into} (LIKE ${spec.table}); MySQL: CREATE TABLE ${into} LIKE ${spec.table})`,
    );
  }
  const out: RestoreOutcome = { date, into, parts: parts.length, read: 0, inserted: 0, skipped: 0 };
  const total = parts.reduce((n, p) => n + p.eventCount, 0);
  const limit = options.batchBytes ?? 512 * 1024;
  for (const part of [...parts].reverse()) {
    const columns = columnsFor(target, await archivedColumns(ctx, part), into);
    if (!columns.some((c) => c.name === spec.keyColumn)) {
      throw new BadInputError(`'${into}' has no column '${spec.keyColumn}' (the key)`);
    }
    const sql = restoreRows(source.dialect.quote(into), columns, spec.keyColumn);
    // Bytes read before they are checked (a part without chunk digests) are proven first.
    if (part.chunkSha256 === null) await verifyPart(ctx, part);
    let batch: string[] = [];
    let bytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const { changes } = await source.execute(sql, [`[${batch.join(",")}]`]);
      out.inserted += changes;
      out.skipped += batch.length - changes;
      out.read += batch.length;
      batch = [];
      bytes = 0;
      ctx.onProgress?.({ phase: "restore", table: spec.table, date, done: out.read, total });
      await lease.keepAlive();
      ctx.signal?.throwIfAborted();
    };
    const problems: string[] = [];
    await scanPart(ctx, part, problems, async (_keys, lines) => {
      for (const line of lines) {
        batch.push(line);
        bytes += line.length;
        if (bytes >= limit) await flush();
      }
    });
    if (problems.length) throw new VerificationError(part.objectKey, problems);
    await flush();
  }
  await ledger.recordRestore(lease, out.inserted, into);
  return out;
}

/** The columns a part's lines hold, from its manifest (null: a manifest without them). */
async function archivedColumns(ctx: JobContext, part: PartRecord): Promise<string[] | null> {
  const text = await getText(ctx.store, part.manifestKey);
  return text === null ? null : manifestColumns(text);
}

/** The target's columns (with its types) that the lines hold; every archived one must exist. */
function columnsFor(target: readonly Column[], archived: string[] | null, into: string): Column[] {
  if (archived === null) return [...target];
  const byName = new Map(target.map((c) => [c.name, c]));
  const missing = archived.filter((n) => !byName.has(n));
  if (missing.length) {
    throw new BadInputError(
      `'${into}' has no column ${missing.map((n) => `'${n}'`).join(", ")} that the archive holds`,
    );
  }
  return archived.map((n) => byName.get(n) as Column);
}

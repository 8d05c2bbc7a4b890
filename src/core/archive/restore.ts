import { BadInputError, NotFoundError, SluiceError, VerificationError } from "../errors.js";
import { checkTableName } from "../sql/ident.js";
import { type Column, type SqlExecutor, keyIn } from "../sql/source.js";
import { getText } from "../store.js";
import type { JobContext } from "./context.js";
import type { Lease } from "./ledger/lease.js";
import type { PartRecord } from "./ledger/records.js";
import { manifestColumns } from "./manifest.js";
import { RollupCounter } from "./rollup.js";
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
  // Stryker disable next-line StringLiteral: the error's words
  const into = checkTableName("--into", options.into ?? spec.table);
  const restoreRows = source.dialect.restoreRows;
  // Stryker disable next-line StringLiteral: the error's words; every dialect has restoreRows
  if (!restoreRows) throw new BadInputError(`restore is not available on ${source.describe()}`);
  const parts = await ledger.parts(spec.table, date);
  if (parts.length === 0) throw new NotFoundError(`no archive of ${spec.table} for ${date}`);
  const unverified = parts.filter((p) => p.verifiedAt === null).map((p) => p.part);
  if (unverified.length) {
    throw new BadInputError(
      // Stryker disable next-line StringLiteral: the error's words
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
  // Rows put back where they were archived from are hot again: the stats and queries count
  // them there, not in the archive.
  const uncount = into === spec.table ? restoreUncounted(ctx, lease, date) : null;
  if (uncount && source.atomicity.kind !== "transactions") {
    throw new BadInputError(
      `restore into ${spec.table} on ${source.describe()} would put rows back and take them out of the archive's counts in separate commits (no interactive transaction): restore --into a staging table`,
    );
  }
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
    let keys: number[] = [];
    let bytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const rows = `[${batch.join(",")}]`;
      const changes = uncount
        ? await source.transaction((tx) => uncount(tx, part, sql, rows, batch, keys))
        : (await source.execute(sql, [rows])).changes;
      out.inserted += changes;
      out.skipped += batch.length - changes;
      out.read += batch.length;
      batch = [];
      keys = [];
      bytes = 0;
      ctx.onProgress?.({ phase: "restore", table: spec.table, date, done: out.read, total });
      await lease.keepAlive();
      ctx.signal?.throwIfAborted();
    };
    const problems: string[] = [];
    await scanPart(ctx, part, problems, async (lineKeys, lines) => {
      for (const [i, line] of lines.entries()) {
        batch.push(line);
        keys.push(lineKeys[i] as number);
        bytes += line.length;
        // Stryker disable next-line EqualityOperator: equivalent; a bound one byte larger
        if (bytes >= limit) await flush();
      }
    });
    if (problems.length) throw new VerificationError(part.objectKey, problems);
    await flush();
  }
  await ledger.recordRestore(lease, out.inserted, into);
  return out;
}

/**
 * One restore batch in a transaction with the ledger: the keys already there are read, the
 * INSERT adds the others, and those rows leave the archive's counts (the part's deleted-row
 * counts, and its lines that stand for deleted rows: their keys become skipped). A row added
 * or deleted by another session between the read and the INSERT rolls it all back: the
 * ledger would no longer match the rows inserted.
 */
function restoreUncounted(ctx: JobContext, lease: Lease, date: string) {
  const { source, spec, ledger } = ctx;
  const d = source.dialect;
  const key = d.quote(spec.keyColumn);
  return async (
    tx: SqlExecutor,
    part: PartRecord,
    sql: string,
    rows: string,
    lines: readonly string[],
    keys: readonly number[],
  ): Promise<number> => {
    // A batch's keys may outnumber the parameters a statement takes (narrow rows on SQLite).
    const present = new Set<number>();
    for (let i = 0; i < keys.length; i += d.maxParams) {
      const where = keyIn(d, key, keys.slice(i, i + d.maxParams));
      const rows = await tx.query(
        `SELECT ${key} AS k FROM ${d.quote(spec.table)} WHERE ${where.sql}`,
        where.params,
      );
      for (const r of rows) present.add(Number(r.k));
    }
    const { changes } = await tx.execute(sql, [rows]);
    const column = spec.rollupColumn;
    const counter = column ? new RollupCounter(column, { table: spec.table, date }) : null;
    const inserted: number[] = [];
    for (const [i, line] of lines.entries()) {
      const k = keys[i] as number;
      if (present.has(k)) continue;
      inserted.push(k);
      counter?.add(line);
    }
    if (inserted.length !== changes) {
      throw new SluiceError(
        "failed",
        `restore of ${spec.table} ${date}: ${changes} rows inserted where ${inserted.length} keys were free: another session added or deleted rows meanwhile; nothing of this batch kept, run restore again`,
      );
    }
    if (counter) await ledger.subtractDeletedCounts(lease, part.part, counter.rollup(), tx);
    await ledger.skipRestored(lease, part.part, inserted, tx);
    return changes;
  };
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
      // Stryker disable next-line StringLiteral: the error's words
      `'${into}' has no column ${missing.map((n) => `'${n}'`).join(", ")} that the archive holds`,
    );
  }
  return archived.map((n) => byName.get(n) as Column);
}

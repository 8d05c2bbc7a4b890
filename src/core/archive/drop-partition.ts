import type { Row } from "../sql/source.js";
import type { JobContext } from "./context.js";
import type { Lease } from "./ledger/lease.js";
import type { PartRecord, PartRollup } from "./ledger/records.js";
import { dayColumn } from "./partition.js";
import { RollupCounter } from "./rollup.js";
import type { RowLines } from "./rows.js";
import { scanPart } from "./verify.js";

/** Rows read per page of the table partition while it is compared with the archive. */
const PAGE = 5000;
/** Keys of lines with no row (deleted by hand) written at a time, so that memory stays flat. */
const SKIPPED_WRITE = 1000;

class Mismatch extends Error {}

/**
 * Clean a date by dropping its table partition instead of deleting its rows, when the
 * database can and the partition holds archived rows only, each exactly as archived: O(1)
 * writes instead of O(rows). Under a lock that keeps every writer out, the partition is read
 * in key order beside the archive's lines (checked chunk by chunk against their digests), and
 * one row that is not an archived line ends the attempt. Returns the rows dropped, or null
 * when this date must be cleaned row by row (no such partition, or a row no part holds as it
 * is); then nothing has changed.
 */
export async function dropArchivedPartition(
  ctx: JobContext,
  lease: Lease,
  date: string,
  pending: readonly PartRecord[],
  lines: RowLines,
): Promise<number | null> {
  const { source, spec, ledger } = ctx;
  const ddl = source.dayPartitions;
  // Partitions by a timestamp column have bounds in instants: their rows go by row deletes.
  // Stryker disable next-line ConditionalExpression: defense in depth; ddl.find matches date bounds only, so finds no timestamp partition
  if (!ddl || dayColumn(spec).kind !== "date") return null;
  // Looked up first so that a table with no such partition is never locked; looked up again
  // under the lock, where no other job can drop or swap it before the comparison.
  // Restored rows (skipped keys) stop being skipped as they are deleted: row deletes do that.
  for (const p of pending) if (await ledger.hasSkipped(spec.table, date, p.part)) return null;
  const child = await ddl.find(source, spec.table, spec.partitionColumn, date);
  if (child === null) return null;
  const q = source.dialect.quote;
  const key = q(spec.keyColumn);
  // The date's condition too, though the partition holds only that date: it lets the pages
  // use the (date, key) index instead of sorting the partition for every page.
  const from = `SELECT ${lines.selectList} FROM ${q(child)} WHERE ${q(spec.partitionColumn)} = ?`;
  // The outer ORDER BY only guarantees the order the inner, limited SELECT already reads in.
  // Were a page out of order, a row would never meet its line and the drop would be refused.
  // Stryker disable next-line BooleanLiteral: equivalent (above); refused, never dropped
  const first = lines.select(`${from} ORDER BY ${key} LIMIT ?`, true);
  // Stryker disable next-line BooleanLiteral: equivalent, as for the first page
  const next = lines.select(`${from} AND ${key} > ? ORDER BY ${key} LIMIT ?`, true);
  try {
    return await source.transaction(async (tx) => {
      for (const sql of ddl.lock(spec.table)) await tx.execute(sql);
      if ((await ddl.find(tx, spec.table, spec.partitionColumn, date)) !== child) {
        throw new Mismatch();
      }
      // The partition's rows in key order, a page at a time, beside the parts' lines (whose
      // keys rise from part to part: a part is written above every key still in the table).
      let page: Row[] = [];
      let at = 0;
      let done = false;
      const peek = async (): Promise<Row | undefined> => {
        if (at < page.length || done) return page[at];
        const last = page.length ? lines.key(page[page.length - 1] as Row) : null;
        page = await tx.query(
          last === null ? first : next,
          last === null ? [date, PAGE] : [date, last, PAGE],
        );
        at = 0;
        done = page.length < PAGE;
        return page[0];
      };
      let missing: number[] = [];
      const skip = async (part: PartRecord) => {
        await ledger.writeSkipped(lease, part.part, { add: missing, remove: [] }, tx);
        missing = [];
      };
      const held = new Map<number, number>();
      const counted = new Map<number, PartRollup>();
      for (const part of pending) {
        let n = 0;
        // The rows dropped, counted by the stats column as cleanup's row deletes count them.
        const counter = spec.rollupColumn
          ? new RollupCounter(spec.rollupColumn, { table: spec.table, date })
          : null;
        const problems: string[] = [];
        await scanPart(ctx, part, problems, async (keys, text) => {
          for (let i = 0; i < keys.length; i++) {
            const line = keys[i] as number;
            const row = await peek();
            const k = row === undefined ? null : (lines.key(row) as number);
            if (k === null || k > line) {
              // Deleted by an earlier batch; or, above what any batch went past, by hand:
              // then the line is no row this drop deletes (a skipped key).
              if (part.passedKey === null || line > part.passedKey) {
                missing.push(line);
                // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent; when the keys are written (every 1,000, or at the part's end), not which
                if (missing.length >= SKIPPED_WRITE) await skip(part);
              }
              continue;
            }
            // Stryker disable next-line ConditionalExpression: equivalent; the key is in the line, so the lines below differ too
            if (k < line) throw new Mismatch(); // a row no part holds
            if (lines.line(row as Row) !== text[i]) throw new Mismatch(); // changed since archived
            counter?.add(text[i] as string);
            n++;
            at++;
          }
        });
        // Stryker disable next-line ConditionalExpression: defense in depth; lines of bytes that fail their digest never arrive, their rows stay unmatched, and the last peek refuses
        if (problems.length) throw new Mismatch();
        await skip(part);
        held.set(part.part, n);
        if (counter) counted.set(part.part, counter.rollup());
      }
      if ((await peek()) !== undefined) throw new Mismatch(); // rows above every archived key
      let all = 0;
      for (const p of pending) {
        const n = held.get(p.part) ?? 0;
        const rollup = counted.get(p.part);
        all += n;
        await ledger.addCleaned(
          lease,
          p.part,
          {
            deleted: n,
            cursor: p.maxId,
            changed: 0,
            changedKeys: p.changedKeys,
            ...(rollup ? { counted: rollup } : {}),
            passed: p.maxId,
          },
          tx,
        );
        await ledger.markPartCleaned(lease, p.part, tx);
      }
      for (const sql of ddl.detachAndDrop(spec.table, child)) await tx.execute(sql);
      return all;
    });
  } catch (err) {
    // Stryker disable next-line ConditionalExpression: not unsafe; row deletes, each fenced and compared, meet any other error again
    if (err instanceof Mismatch) return null;
    throw err;
  }
}

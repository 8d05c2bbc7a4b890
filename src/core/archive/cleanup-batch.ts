import { SluiceError } from "../errors.js";
import { keyIn } from "../sql/source.js";
import type { JobContext } from "./context.js";
import { dayCondition } from "./days.js";
import type { Lease } from "./ledger/lease.js";
import type { PartRecord, PartRollup } from "./ledger/records.js";
import { dayColumn } from "./partition.js";
import { RollupCounter } from "./rollup.js";
import type { RowLines } from "./rows.js";

/** One archived row: its key and its line, as the verified bytes hold them. */
export interface Archived {
  key: number;
  line: string;
}

/** What one batch did. */
export interface BatchResult {
  deleted: number;
  /** Archived rows still there as archived: the database kept them (a trigger, a policy). */
  refused: number;
  /** Keys whose row is there with other content than archived. */
  changed: number[];
}

/** Where the batch's progress goes, given what it found: the cursor and the keys to show. */
export type Progress = (r: BatchResult) => { cursor: number | null; changedKeys: string | null };

export type DeleteBatch = (
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
export function txBatch(ctx: JobContext, lines: RowLines, date: string): DeleteBatch {
  const { source, spec, ledger } = ctx;
  const d = source.dialect;
  const q = d.quote;
  const table = q(spec.table);
  const day = dayCondition(q(spec.partitionColumn), dayColumn(spec), date);
  const key = q(spec.keyColumn);
  const columns = lines.selectList;
  const batch: DeleteBatch = (lease, part, rows, progress) =>
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
          `SELECT ${columns} FROM ${table} WHERE ${day.sql} AND ${where.sql}${d.lockRows}`,
          // Stryker disable next-line BooleanLiteral: equivalent; the rows go into a Map by key, in any order
          false,
        ),
        [...day.params, ...where.params],
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
          // Stryker disable next-line ConditionalExpression: equivalent; the same rows by their keys instead of their range
          d.deletesByRange && same.length === hot.size
            ? { sql: `${key} BETWEEN ? AND ?`, params: [first, last] }
            : keyIn(d, key, same);
        deleted = (
          await tx.execute(`DELETE FROM ${table} WHERE ${day.sql} AND ${which.sql}`, [
            ...day.params,
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
      // The rows this transaction deleted: `same`, less any the database kept (a trigger).
      let gone = same;
      if (deleted < same.length) {
        const where = keyIn(d, key, same);
        const kept = new Set(
          (
            await tx.query(`SELECT ${key} AS k FROM ${table} WHERE ${where.sql}`, [...where.params])
          ).map((r) => Number(r.k)),
        );
        gone = same.filter((k) => !kept.has(k));
      }
      let counted: PartRollup | undefined;
      if (spec.rollupColumn) {
        const counter = new RollupCounter(spec.rollupColumn, { table: spec.table, date });
        for (const k of gone) counter.add(hot.get(k) as string);
        counted = counter.rollup();
      }
      await ledger.addCleaned(
        lease,
        part.part,
        {
          deleted,
          cursor,
          changed: changed.length,
          changedKeys,
          ...(counted ? { counted } : {}),
          passed: last,
          skip: await skipChange(part, rows, gone),
        },
        tx,
      );
      return result;
    });

  /**
   * Which of the batch's keys stop standing for deleted rows: those it did not delete above
   * the part's `passedKey` (keys at or under it were classified by an earlier batch: a line
   * not skipped there is a row cleanup deleted, whatever holds its key now); and which stop
   * being skipped: the keys it deleted, where the part has skipped keys (restored rows).
   */
  const hadSkips = new Map<number, boolean>();
  const skipChange = async (part: PartRecord, rows: readonly Archived[], gone: number[]) => {
    let had = hadSkips.get(part.part);
    // Stryker disable next-line ConditionalExpression: equivalent; asked again each batch, the answer is the same (only restore adds skipped keys, and not while cleanup holds the lease)
    if (had === undefined) {
      had = await ledger.hasSkipped(spec.table, date, part.part);
      hadSkips.set(part.part, had);
    }
    const remove = had ? gone : [];
    // Every row of the batch deleted, as nearly always: no key to add.
    // Stryker disable next-line ConditionalExpression: equivalent; the filter below finds no key to add either, only slower
    if (gone.length === rows.length) return { add: [], remove };
    const deleted = new Set(gone);
    const above = part.passedKey;
    return {
      add: rows.map((r) => r.key).filter((k) => !deleted.has(k) && (above === null || k > above)),
      remove,
    };
  };
  return batch;
}

/**
 * A batch on D1, which has no interactive transaction: one DELETE that removes only rows equal
 * to an archived line (SQLite renders them as the archive did, and compares them with the
 * batch's lines passed as one JSON array), in one atomic batch with the ledger's record of it.
 * Rows it left are looked at afterwards, only to report them.
 */
export function d1Batch(ctx: JobContext, lines: RowLines, date: string): DeleteBatch {
  const { source, spec, ledger } = ctx;
  const q = source.dialect.quote;
  const table = q(spec.table);
  const json = source.dialect.jsonRow?.(
    lines.columns.map((c) => c.name),
    table,
    lines.columns.map((c) => c.type),
  );
  const day = dayCondition(q(spec.partitionColumn), dayColumn(spec), date);
  const where = `${day.sql} AND ${q(spec.keyColumn)} BETWEEN ? AND ?`;
  const columns = lines.selectList;
  // The stats column's value as the deleted rows' counts keep it (rollups on).
  const counted = spec.rollupColumn
    ? (source.dialect.asText?.(q(spec.rollupColumn)) ?? q(spec.rollupColumn))
    : null;
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
    const archived = `${where} AND ${json} IN (SELECT value FROM json_each(?))`;
    const params = [...day.params, first, last, JSON.stringify(rows.map((r) => r.line))];
    const deleted = await ledger.deleteAndRecord(
      lease,
      part.part,
      before.cursor,
      last,
      { sql: `DELETE FROM ${table} WHERE ${archived}`, params },
      counted === null
        ? undefined
        : {
            sql: `SELECT ${counted} AS p, COUNT(*) AS n FROM ${table} WHERE ${archived} GROUP BY ${counted}`,
            params,
          },
    );
    // Stryker disable next-line ConditionalExpression: equivalent; the read after it finds every row gone and reports none
    if (deleted === rows.length) return { deleted, refused: 0, changed: [] };
    const hot = new Map<unknown, string>();
    for (const row of await source.query(
      // Stryker disable next-line BooleanLiteral: equivalent; the rows go into a Map by key, in any order
      lines.select(`SELECT ${columns} FROM ${table} WHERE ${where}`, false),
      [...day.params, first, last],
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
    const after = progress(result);
    await ledger.addChanged(lease, part.part, changed.length, after.changedKeys, after.cursor);
    return result;
  };
}

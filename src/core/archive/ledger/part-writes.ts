import { LeaseLostError, SluiceError } from "../../errors.js";
import { rowsPerStatement, valueRows } from "../../sql/insert.js";
import {
  type BatchStatement,
  type BoundStatement,
  type SqlExecutor,
  batchesOf,
} from "../../sql/source.js";
import type { Lease } from "./lease.js";
import { type PartRollup, num } from "./records.js";
import { type SkipChange, SkippedKeys } from "./skipped-keys.js";
import { statesBefore } from "./states.js";

/** The writes to one part's row: verification, chunk digests, and cleanup's progress. */
export class PartWrites extends SkippedKeys {
  /**
   * @internal Mark one part verified; the partition is verified when all its parts are. With
   * `rollup`, the part's counts replace any it had, in the same transaction as the mark.
   */
  async markPartVerified(lease: Lease, part: number, rollup?: PartRollup): Promise<void> {
    if (!rollup) {
      await this.updatePart(lease, part, "verified_at = ?", [this.iso()]);
      return;
    }
    await this.writeRollup(lease, part, rollup, "verified_at = ?, ", [this.iso()]);
  }

  /** @internal Replace a verified part's rollup (rebuilt from its stored archive). */
  async recordRollup(lease: Lease, part: number, rollup: PartRollup): Promise<void> {
    await this.writeRollup(lease, part, rollup, "", []);
  }

  /**
   * The part's row gets `rollup_rows` (and `sets`), its old counts go and the new ones are
   * inserted, all or nothing, and only while the lease is ours.
   */
  private async writeRollup(
    lease: Lease,
    part: number,
    rollup: PartRollup,
    sets: string,
    params: readonly unknown[],
  ): Promise<void> {
    const fence = this.ours(lease);
    const fp = fence.params;
    const where = `source_table = ? AND ${this.date} = ? AND part = ?`;
    const key = [lease.table, lease.date, part];
    const mark: BoundStatement = {
      sql: `UPDATE ${this.t.parts} SET ${sets}rollup_rows = ? WHERE ${where} AND ${fence.sql}`,
      params: [...params, rollup.total, ...key, ...fp],
    };
    const clear: BoundStatement = {
      sql: `DELETE FROM ${this.t.rollups} WHERE ${where} AND ${fence.sql}`,
      params: [...key, ...fp],
    };
    const entries = [...rollup.counts];
    // Stryker disable next-line StringLiteral: equivalent; the table's own column order is this one
    const columns = `(source_table, ${this.date}, part, path, views)`;
    const batch = batchesOf(this.db);
    if (batch) {
      // No interactive transaction (D1): one atomic batch, every statement fenced; the counts
      // go as JSON text, a few statements however many values there are.
      const inserts: BatchStatement[] = [];
      for (const chunk of jsonChunks(entries)) {
        inserts.push({
          sql: `INSERT INTO ${this.t.rollups} ${columns}
                SELECT ?, ?, ?, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]')
                FROM json_each(?) j WHERE ${fence.sql}`,
          params: [...key, chunk, ...fp],
        });
      }
      const [marked] = await batch([mark, clear, ...inserts]);
      // Stryker disable next-line StringLiteral: the error's words
      if (marked?.changes !== 1) throw await this.whyNot(lease, `record part ${part}'s rollup`);
      return;
    }
    const rowsPer = rowsPerStatement(this.d, 5);
    await this.db.transaction(async (tx) => {
      // Locks the partition's row until commit: a takeover waits for this transaction.
      const held = await tx.execute(
        `UPDATE ${this.t.meta} SET updated_at = ? WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
        [this.iso(), lease.table, lease.date, lease.owner],
      );
      // Stryker disable next-line ConditionalExpression: equivalent; the fenced mark below refuses a stale holder too (each guard survives the other's removal)
      if (held.changes !== 1) throw new LeaseLostError(lease.table, lease.date);
      const marked = await tx.execute(mark.sql, mark.params);
      // Stryker disable next-line ConditionalExpression,StringLiteral: equivalent; the lease check above refuses a stale holder too, and the part's row exists under the lease
      if (marked.changes !== 1) throw await this.whyNot(lease, `record part ${part}'s rollup`);
      await tx.execute(clear.sql, clear.params);
      for (let i = 0; i < entries.length; i += rowsPer) {
        const rows = entries.slice(i, i + rowsPer);
        await tx.execute(
          `INSERT INTO ${this.t.rollups} ${columns} VALUES ${valueRows(5, rows.length)}`,
          rows.flatMap(([path, views]) => [...key, path, views]),
        );
      }
    });
  }

  /**
   * @internal A part that failed verification before any delete: the next archive rewrites it.
   * A part cleaned (rows deleted on its strength, or marked cleaned with its rows gone), or
   * one a cleanup batch went through, keeps its mark whatever the caller asks: it may be the
   * only copy of those rows, and its skipped keys describe its lines.
   */
  async markPartUnverified(lease: Lease, part: number): Promise<void> {
    const fence = this.ours(lease);
    await this.db.execute(
      `UPDATE ${this.t.parts} SET verified_at = NULL WHERE source_table = ? AND ${this.date} = ? AND part = ? AND cleaned_count = 0 AND cleaned_at IS NULL AND passed_key IS NULL AND ${fence.sql}`,
      [lease.table, lease.date, part, ...fence.params],
    );
  }

  /**
   * @internal Record chunk digests computed by a read whose whole-object sha256 matched the
   * part's: for parts archived before digests were kept.
   */
  async recordChunkDigests(
    lease: Lease,
    part: number,
    chunkBytes: number,
    digests: string,
  ): Promise<void> {
    await this.updatePart(lease, part, "chunk_bytes = ?, chunk_sha256 = ?", [chunkBytes, digests]);
  }

  /**
   * @internal Save cleanup progress for a part. Called inside the delete's transaction, so
   * the counts and the cursor are exactly what committed; fails (rolling the delete back)
   * when the lease is no longer ours.
   */
  async addCleaned(
    lease: Lease,
    part: number,
    progress: CleanupProgress,
    db: SqlExecutor,
  ): Promise<void> {
    const counted = progress.counted;
    // Stryker disable next-line BlockStatement: a guard against a counting bug; no input reaches it (the batch counts exactly the keys its delete removed)
    if (counted && counted.total !== progress.deleted) {
      throw new SluiceError(
        "failed",
        // Stryker disable next-line StringLiteral: the error's words
        `${lease.table} ${lease.date} part ${part}: ${counted.total} deleted rows counted for ${progress.deleted}; rolled back`,
      );
    }
    await this.updatePart(
      lease,
      part,
      `cleaned_count = cleaned_count + ?, cleanup_cursor = ?, changed_count = changed_count + ?, changed_keys = ?, deleted_rollup_rows = deleted_rollup_rows + ?, ${PASSED}`,
      [
        progress.deleted,
        progress.cursor,
        progress.changed,
        progress.changedKeys,
        counted?.total ?? 0,
        progress.passed,
        progress.passed,
      ],
      db,
    );
    if (counted) await this.addDeletedCounts(lease, part, counted.counts, db);
    const skip = progress.skip;
    // Stryker disable next-line ConditionalExpression: equivalent; a change of no key writes nothing
    if (skip && (skip.add.length || skip.remove.length)) {
      await this.writeSkipped(lease, part, skip, db);
    }
    const [sum] = await db.query(
      `SELECT COALESCE(SUM(cleaned_count), 0) AS n FROM ${this.t.parts} WHERE source_table = ? AND ${this.date} = ?`,
      [lease.table, lease.date],
    );
    await this.move(lease, "cleaning", { cleanedCount: num(sum?.n) }, db);
  }

  /**
   * @internal One cleanup batch where the database has no interactive transactions (D1): the
   * delete and the record of it go as one atomic batch. Each statement runs only while the
   * lease is ours, and SQLite's changes() carries the delete's count into the part's row.
   * With `count` (`SELECT p, n`: the stats column's value and its rows, over exactly the rows
   * the delete matches), the part's deleted-row counts gain what the delete removed: the
   * matched rows counted before it, less those still matched after it (a trigger kept them).
   * `passed` is the batch's last key; which of its rows were skipped, D1 does not record.
   */
  async deleteAndRecord(
    lease: Lease,
    part: number,
    cursor: number | null,
    passed: number,
    del: BoundStatement,
    count?: BoundStatement,
  ): Promise<number> {
    const batch = batchesOf(this.db);
    // Stryker disable next-line StringLiteral: the error's words (only D1 calls this)
    if (!batch) throw new Error("deleteAndRecord needs a source whose writes go as batches");
    const q = this.date;
    const fence = this.ours(lease);
    const fp = fence.params;
    const from = statesBefore("cleaning");
    const key = [lease.table, lease.date, part];
    const mine = `source_table = ? AND ${q} = ? AND part = ?`;
    const { before, after } = count
      ? this.deletedCountStatements(lease, part, count)
      : { before: [], after: [] };
    const results = await batch([
      ...before,
      { sql: `${del.sql} AND ${fence.sql}`, params: [...del.params, ...fp] },
      {
        sql: `UPDATE ${this.t.parts} SET cleaned_count = cleaned_count + changes(), cleanup_cursor = ?, ${PASSED}${count ? ", deleted_rollup_rows = deleted_rollup_rows + changes()" : ""}
              WHERE ${mine} AND ${fence.sql}`,
        params: [cursor, passed, passed, ...key, ...fp],
      },
      {
        sql: `UPDATE ${this.t.meta} SET state = 'cleaning', updated_at = ?,
                cleaned_count = (SELECT SUM(p.cleaned_count) FROM ${this.t.parts} p WHERE p.source_table = ? AND p.${q} = ?)
              WHERE source_table = ? AND ${q} = ? AND lease_owner = ? AND state IN (${from.map(() => "?").join(", ")})`,
        params: [this.iso(), lease.table, lease.date, ...fp, ...from],
      },
      ...after,
    ]);
    const deleted = results[before.length];
    const moved = results[before.length + 2];
    if (moved?.changes !== 1) throw new LeaseLostError(lease.table, lease.date);
    return deleted?.changes ?? 0;
  }

  /**
   * @internal What a batch recorded by deleteAndRecord left behind, found after it (D1):
   * rows changed in the hot store, and the cursor to resume from when rows were kept. Which
   * of the batch's lines are not deleted rows is not recorded: the part's skips are unknown.
   */
  async addChanged(
    lease: Lease,
    part: number,
    changed: number,
    keys: string | null,
    cursor: number | null,
  ): Promise<void> {
    await this.updatePart(
      lease,
      part,
      "changed_count = changed_count + ?, changed_keys = ?, cleanup_cursor = ?, skips_known = 0",
      [changed, keys, cursor],
    );
  }

  /** @internal The next cleanup of this part reads every archived key again. */
  async resetCleanupCursor(lease: Lease, part: number): Promise<void> {
    await this.updatePart(lease, part, "cleanup_cursor = NULL", []);
  }

  /** @internal Every archived row of the part is gone from the hot store, or was changed there. */
  async markPartCleaned(lease: Lease, part: number, db: SqlExecutor = this.db): Promise<void> {
    await this.updatePart(lease, part, "cleaned_at = ?", [this.iso()], db);
  }
}

/** Rollup entries as JSON arrays of `[value, count]`, each text under 512 KB (D1: 2 MB a value). */
function* jsonChunks(entries: readonly [string | null, number][]): Generator<string> {
  let chunk: string[] = [];
  let size = 0;
  for (const e of entries) {
    const text = JSON.stringify(e);
    // Stryker disable next-line ArithmeticOperator,ConditionalExpression,EqualityOperator,LogicalOperator: equivalent; smaller chunks, or ones larger by one entry, write the same rows (D1's 2 MB a value is tested)
    if (size + text.length > 512 * 1024 && chunk.length) {
      yield `[${chunk.join(",")}]`;
      chunk = [];
      size = 0;
    }
    chunk.push(text);
    // Stryker disable next-line ArithmeticOperator: equivalent; a bound off by a byte per entry
    size += text.length + 1;
  }
  // Stryker disable next-line ConditionalExpression: equivalent; an empty array inserts nothing
  if (chunk.length) yield `[${chunk.join(",")}]`;
}

export interface CleanupProgress {
  deleted: number;
  /** Where a resumed pass starts: the highest archived key done (null: from the start). */
  cursor: number | null;
  /** Archived rows found changed in the hot store (left there). */
  changed: number;
  /** The part's first few changed keys so far, or null. */
  changedKeys: string | null;
  /** The deleted rows counted by the stats column (rollups on): `total` must be `deleted`. */
  counted?: PartRollup;
  /** The highest key this write classified: the part's `passed_key` rises to it. */
  passed: number;
  /** The batch's keys whose line is no deleted row, and deleted keys that were skipped. */
  skip?: SkipChange;
}

/** `passed_key` raised to a parameter (given twice), never lowered. */
const PASSED =
  "passed_key = CASE WHEN passed_key IS NULL OR passed_key < ? THEN ? ELSE passed_key END";

/** Parameters deleteAndRecord adds to a DELETE to run it only while the lease is ours. */
export const LEASE_GUARD_PARAMS = 3;

import { rowsPerStatement, valueRows } from "../../sql/insert.js";
import { type SqlExecutor, keyIn } from "../../sql/source.js";
import { DeletedCounts } from "./deleted-counts.js";
import type { Lease } from "./lease.js";
import { num } from "./records.js";

/** Keys a cleanup batch (or a restore) makes skipped, and keys it deleted that may have been. */
export interface SkipChange {
  add: readonly number[];
  remove: readonly number[];
}

/** One part's skipped key, as a query over both tiers reads them. */
export interface SkippedKey {
  date: string;
  part: number;
  key: number;
}

/**
 * The keys of a part's lines, at or under its `passed_key`, that are not rows cleanup deleted
 * (archive_cleanup_skipped): with `passed_key`, which archived lines a query over both tiers
 * reads. Each write goes in the transaction of the delete or the restore it describes.
 */
export class SkippedKeys extends DeletedCounts {
  /**
   * @internal Apply `change` to the part's skipped keys on `db`, the caller's transaction,
   * whose fenced write (or lease check) rolls these back with it when the lease is gone.
   */
  async writeSkipped(
    lease: Lease,
    part: number,
    change: SkipChange,
    db: SqlExecutor,
  ): Promise<void> {
    const key = [lease.table, lease.date, part];
    const where = `source_table = ? AND ${this.date} = ? AND part = ?`;
    // Every key written is deleted first, so that no insert meets a row already there.
    const gone = [...change.remove, ...change.add];
    const per = Math.max(1, this.d.maxParams - key.length);
    for (let i = 0; i < gone.length; i += per) {
      const which = keyIn(this.d, "row_key", gone.slice(i, i + per));
      await db.execute(`DELETE FROM ${this.t.skipped} WHERE ${where} AND ${which.sql}`, [
        ...key,
        ...which.params,
      ]);
    }
    const rowsPer = rowsPerStatement(this.d, 4);
    for (let i = 0; i < change.add.length; i += rowsPer) {
      const keys = change.add.slice(i, i + rowsPer);
      await db.execute(
        `INSERT INTO ${this.t.skipped} (source_table, ${this.date}, part, row_key) VALUES ${valueRows(4, keys.length)}`,
        keys.flatMap((k) => [...key, k]),
      );
    }
  }

  /**
   * @internal Rows restored into the table they were archived from are hot again: their
   * keys become skipped, on `db` (the restore's transaction), only while the lease is ours.
   */
  async skipRestored(
    lease: Lease,
    part: number,
    keys: readonly number[],
    db: SqlExecutor,
  ): Promise<void> {
    await this.mustHold(lease, db);
    await this.writeSkipped(lease, part, { add: keys, remove: [] }, db);
  }

  /** Whether any key of the part is skipped. */
  async hasSkipped(table: string, date: string, part: number): Promise<boolean> {
    const rows = await this.db.query(
      `SELECT 1 AS one FROM ${this.t.skipped} WHERE source_table = ? AND ${this.date} = ? AND part = ? LIMIT 1`,
      [table, date, part],
    );
    return rows.length > 0;
  }

  /** How many keys of `table`'s parts are skipped (a query compares it before and after). */
  async skippedCount(table: string): Promise<number> {
    const [row] = await this.db.query(
      `SELECT COUNT(*) AS n FROM ${this.t.skipped} WHERE source_table = ?`,
      [table],
    );
    return num(row?.n);
  }

  /** The skipped keys of one part, a page at a time in key order. */
  async *skippedKeys(
    table: string,
    date: string,
    part: number,
    pageSize = 10_000,
  ): AsyncGenerator<SkippedKey[]> {
    const where = `source_table = ? AND ${this.date} = ? AND part = ?`;
    let last: number | null = null;
    for (;;) {
      const rows: { row_key: unknown }[] = await this.db.query(
        `SELECT row_key FROM ${this.t.skipped} WHERE ${where}${last === null ? "" : " AND row_key > ?"} ORDER BY row_key LIMIT ?`,
        [table, date, part, ...(last === null ? [] : [last]), pageSize],
      );
      if (rows.length === 0) return;
      const page = rows.map((r) => ({ date, part, key: num(r.row_key) }));
      yield page;
      last = (page.at(-1) as SkippedKey).key;
      // Stryker disable next-line ConditionalExpression: equivalent; a short page read on is followed by an empty one
      if (rows.length < pageSize) return;
    }
  }
}

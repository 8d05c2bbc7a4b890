import { rowsPerStatement, valueRows } from "../../sql/insert.js";
import type { BatchStatement, BoundStatement, SqlExecutor } from "../../sql/source.js";
import { LedgerBase } from "./base.js";
import type { Lease } from "./lease.js";
import { pathKey, pathKeySql } from "./path-key.js";
import { type PartRollup, num } from "./records.js";

/**
 * The counts of the rows cleanup deleted, per part and stats value (archive_deleted_rollups):
 * what the stats read for rows no longer hot. Each write goes with the delete (or the
 * restore) it describes, in its transaction or atomic batch.
 */
export class DeletedCounts extends LedgerBase {
  /**
   * @internal Rows restored into the table they were archived from: they are hot again, so
   * the part's deleted-row counts lose them, on `db` (the restore's transaction), only while
   * the lease is ours. A value the part never counted as deleted (a row deleted by hand before
   * cleanup, brought back by the restore) loses nothing: the counts never go below zero.
   */
  async subtractDeletedCounts(
    lease: Lease,
    part: number,
    restored: PartRollup,
    db: SqlExecutor,
  ): Promise<void> {
    // The lease first, so that a holder whose lease was taken writes nothing at all.
    await this.mustHold(lease, db);
    const key = [lease.table, lease.date, part];
    const where = `source_table = ? AND ${this.date} = ? AND part = ?`;
    let taken = 0;
    const values = [...restored.counts.keys()];
    // Stryker disable next-line MethodExpression: equivalent; one value per statement is slower, not wrong
    const per = Math.max(1, this.d.maxParams - key.length);
    for (let i = 0; i < values.length; i += per) {
      const chunk = values.slice(i, i + per);
      const named = chunk.filter((v): v is string => v !== null);
      const which = [
        ...(named.length ? [`path IN (${named.map(() => "?").join(", ")})`] : []),
        ...(named.length < chunk.length ? ["path IS NULL"] : []),
      ].join(" OR ");
      // A value may have more than one row (a long one, keyed null by SQL): all are summed.
      const had = new Map<string | null, number>();
      for (const r of await db.query(
        `SELECT path, views FROM ${this.t.deleted} WHERE ${where} AND (${which})`,
        [...key, ...named],
      )) {
        const v = r.path === null ? null : String(r.path);
        had.set(v, (had.get(v) ?? 0) + num(r.views));
      }
      const left = new Map<string | null, number>();
      for (const v of chunk) {
        const before = had.get(v) ?? 0;
        const after = Math.max(0, before - (restored.counts.get(v) ?? 0));
        taken += before - after;
        if (after > 0) left.set(v, after);
      }
      await db.execute(`DELETE FROM ${this.t.deleted} WHERE ${where} AND (${which})`, [
        ...key,
        ...named,
      ]);
      // Stryker disable next-line BooleanLiteral: equivalent; their rows were deleted just before, so adding is inserting
      await this.insertCounts(key, [...left], db, false);
    }
    await this.updatePart(
      lease,
      part,
      "cleaned_count = cleaned_count - ?, deleted_rollup_rows = deleted_rollup_rows - ?",
      [taken, taken],
      db,
    );
  }

  /**
   * Add `counts` to the part's deleted-row counts, on `db` (the delete's transaction, whose
   * fenced writes roll these back with it): one statement per chunk adds each value to its
   * row, or writes the row.
   */
  protected async addDeletedCounts(
    lease: Lease,
    part: number,
    counts: ReadonlyMap<string | null, number>,
    db: SqlExecutor,
  ): Promise<void> {
    await this.insertCounts([lease.table, lease.date, part], [...counts], db, true);
  }

  /** Rows of counts for one part, each added to its value's row when `adding`, in chunks. */
  private async insertCounts(
    key: readonly unknown[],
    entries: readonly [string | null, number][],
    db: SqlExecutor,
    adding: boolean,
  ): Promise<void> {
    const columns = ["source_table", this.date, "part", "path", "path_key", "views"];
    const per = rowsPerStatement(this.d, columns.length);
    for (let i = 0; i < entries.length; i += per) {
      const some = entries.slice(i, i + per);
      const sql = adding
        ? this.d.insertAdding(
            this.t.deleted,
            columns,
            ["source_table", this.date, "part", "path_key"],
            some.length,
          )
        : `INSERT INTO ${this.t.deleted} (${columns.join(", ")}) VALUES ${valueRows(columns.length, some.length)}`;
      await db.execute(
        sql,
        some.flatMap(([path, views]) => [...key, path, pathKey(path), views]),
      );
    }
  }

  /**
   * For D1's atomic cleanup batch: the statements around its DELETE that count what it
   * removes. `count` (`SELECT p, n`: the stats value and its rows, over exactly the rows the
   * DELETE matches) is added before it and taken off after it (the rows a trigger kept),
   * every statement fenced by the lease.
   */
  protected deletedCountStatements(
    lease: Lease,
    part: number,
    count: BoundStatement,
  ): { before: BatchStatement[]; after: BatchStatement[] } {
    const q = this.date;
    const d = this.t.deleted;
    const fence = this.ours(lease);
    const fp = fence.params;
    const key = [lease.table, lease.date, part];
    const cp = count.params;
    // SQLite's `IS` matches NULL to NULL: a value's one row, whatever its value.
    const adjust = (sign: "+" | "-"): BatchStatement => ({
      sql: `UPDATE ${d} SET views = views ${sign} c.n FROM (${count.sql}) c
            WHERE ${d}.source_table = ? AND ${d}.${q} = ? AND ${d}.part = ? AND ${d}.path IS c.p AND ${fence.sql}`,
      params: [...cp, ...key, ...fp],
    });
    return {
      before: [
        adjust("+"),
        {
          sql: `INSERT INTO ${d} (source_table, ${q}, part, path, path_key, views)
                SELECT ?, ?, ?, c.p, ${pathKeySql(this.d, "c.p")}, c.n FROM (${count.sql}) c
                WHERE NOT EXISTS (SELECT 1 FROM ${d} x WHERE x.source_table = ? AND x.${q} = ? AND x.part = ? AND x.path IS c.p) AND ${fence.sql}`,
          params: [...key, ...cp, ...key, ...fp],
        },
      ],
      after: [
        adjust("-"),
        {
          sql: `DELETE FROM ${d} WHERE source_table = ? AND ${q} = ? AND part = ? AND views = 0 AND ${fence.sql}`,
          params: [...key, ...fp],
        },
      ],
    };
  }
}

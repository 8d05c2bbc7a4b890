import { portableSha256 } from "../../bytes/hash.js";
import { LeaseLostError, SluiceError } from "../../errors.js";
import { valueRows } from "../../sql/insert.js";
import { type BatchStatement, type SqlExecutor, batchesOf } from "../../sql/source.js";
import { LedgerBase } from "./base.js";
import type { Lease } from "./lease.js";
import { PATH_KEY_TEXT, pathKeySql } from "./migrations.js";
import { type PartRollup, num } from "./records.js";
import { statesBefore } from "./states.js";

/** The writes to one part's row: verification, chunk digests, and cleanup's progress. */
export class PartWrites extends LedgerBase {
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
    const fp = fence.params ?? [];
    const where = `source_table = ? AND ${this.date} = ? AND part = ?`;
    const key = [lease.table, lease.date, part];
    const mark: BatchStatement = {
      sql: `UPDATE ${this.t.parts} SET ${sets}rollup_rows = ? WHERE ${where} AND ${fence.sql}`,
      params: [...params, rollup.total, ...key, ...fp],
    };
    const clear: BatchStatement = {
      sql: `DELETE FROM ${this.t.rollups} WHERE ${where} AND ${fence.sql}`,
      params: [...key, ...fp],
    };
    const entries = [...rollup.counts];
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
      if (marked?.changes !== 1) throw await this.whyNot(lease, `record part ${part}'s rollup`);
      return;
    }
    const rowsPer = Math.max(1, Math.floor(this.d.maxParams / 5));
    await this.db.transaction(async (tx) => {
      // Locks the partition's row until commit: a takeover waits for this transaction.
      const held = await tx.execute(
        `UPDATE ${this.t.meta} SET updated_at = ? WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
        [this.iso(), lease.table, lease.date, lease.owner],
      );
      if (held.changes !== 1) throw new LeaseLostError(lease.table, lease.date);
      const marked = await tx.execute(mark.sql, [...(mark.params ?? [])]);
      if (marked.changes !== 1) throw await this.whyNot(lease, `record part ${part}'s rollup`);
      await tx.execute(clear.sql, [...(clear.params ?? [])]);
      for (let i = 0; i < entries.length; i += rowsPer) {
        const rows = entries.slice(i, i + rowsPer);
        await tx.execute(
          `INSERT INTO ${this.t.rollups} ${columns} VALUES ${rows.map(() => "(?, ?, ?, ?, ?)").join(", ")}`,
          rows.flatMap(([path, views]) => [...key, path, views]),
        );
      }
    });
  }

  /**
   * @internal A part that failed verification before any delete: the next archive rewrites it.
   * A part cleaned (rows deleted on its strength, or marked cleaned with its rows gone) keeps
   * its mark whatever the caller asks: it may be the only copy of those rows.
   */
  async markPartUnverified(lease: Lease, part: number): Promise<void> {
    const fence = this.ours(lease);
    await this.db.execute(
      `UPDATE ${this.t.parts} SET verified_at = NULL WHERE source_table = ? AND ${this.date} = ? AND part = ? AND cleaned_count = 0 AND cleaned_at IS NULL AND ${fence.sql}`,
      [lease.table, lease.date, part, ...(fence.params ?? [])],
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
    if (counted && counted.total !== progress.deleted) {
      throw new SluiceError(
        "failed",
        `${lease.table} ${lease.date} part ${part}: ${counted.total} deleted rows counted for ${progress.deleted}; rolled back`,
      );
    }
    await this.updatePart(
      lease,
      part,
      "cleaned_count = cleaned_count + ?, cleanup_cursor = ?, changed_count = changed_count + ?, changed_keys = ?, deleted_rollup_rows = deleted_rollup_rows + ?",
      [
        progress.deleted,
        progress.cursor,
        progress.changed,
        progress.changedKeys,
        counted?.total ?? 0,
      ],
      db,
    );
    if (counted) await this.changeDeletedCounts(lease, part, counted.counts, 1, db);
    const [sum] = await db.query(
      `SELECT COALESCE(SUM(cleaned_count), 0) AS n FROM ${this.t.parts} WHERE source_table = ? AND ${this.date} = ?`,
      [lease.table, lease.date],
    );
    await this.move(lease, "cleaning", { cleanedCount: num(sum?.n) }, db);
  }

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
    const [held] = await db.query(
      `SELECT 1 AS held FROM ${this.t.meta} WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
      [lease.table, lease.date, lease.owner],
    );
    if (!held) throw new LeaseLostError(lease.table, lease.date);
    const taken = await this.changeDeletedCounts(lease, part, restored.counts, -1, db);
    await this.updatePart(
      lease,
      part,
      "cleaned_count = cleaned_count - ?, deleted_rollup_rows = deleted_rollup_rows - ?",
      [taken, taken],
      db,
    );
  }

  /**
   * The part's deleted-row counts plus (`sign` 1) or less (-1, never below zero) `counts`, on
   * `db` (a transaction whose fenced writes roll these back with it): each value's row read,
   * removed and written again, so that a value has one row however many batches counted it.
   * Returns how many rows the counts gained or lost.
   */
  private async changeDeletedCounts(
    lease: Lease,
    part: number,
    counts: ReadonlyMap<string | null, number>,
    sign: 1 | -1,
    db: SqlExecutor,
  ): Promise<number> {
    const where = `source_table = ? AND ${this.date} = ? AND part = ?`;
    const key = [lease.table, lease.date, part];
    const columns = ["source_table", this.date, "part", "path", "path_key", "views"];
    if (sign === 1) {
      // One statement adds a chunk's counts, each to its value's row or as a new one.
      const entries = [...counts];
      const per = Math.max(1, Math.floor(this.d.maxParams / columns.length));
      let added = 0;
      for (let i = 0; i < entries.length; i += per) {
        const some = entries.slice(i, i + per);
        await db.execute(
          this.d.insertAdding(
            this.t.deleted,
            columns,
            ["source_table", this.date, "part", "path_key"],
            some.length,
          ),
          some.flatMap(([path, views]) => [...key, path, pathKey(path), views]),
        );
        for (const [, views] of some) added += views;
      }
      return added;
    }
    let changed = 0;
    const values = [...counts.keys()];
    const per = Math.max(1, this.d.maxParams - key.length - 1);
    for (let i = 0; i < values.length; i += per) {
      const chunk = values.slice(i, i + per);
      const named = chunk.filter((v): v is string => v !== null);
      const which = [
        ...(named.length ? [`path IN (${named.map(() => "?").join(", ")})`] : []),
        ...(named.length < chunk.length ? ["path IS NULL"] : []),
      ].join(" OR ");
      const had = new Map<string | null, number>();
      for (const r of await db.query(
        `SELECT path, views FROM ${this.t.deleted} WHERE ${where} AND (${which})`,
        [...key, ...named],
      )) {
        const v = r.path === null ? null : String(r.path);
        had.set(v, (had.get(v) ?? 0) + num(r.views));
      }
      const sums = new Map<string | null, number>();
      for (const v of chunk) {
        const before = had.get(v) ?? 0;
        const after = Math.max(0, before + sign * (counts.get(v) ?? 0));
        changed += Math.abs(after - before);
        if (after > 0) sums.set(v, after);
      }
      await db.execute(`DELETE FROM ${this.t.deleted} WHERE ${where} AND (${which})`, [
        ...key,
        ...named,
      ]);
      const rows = [...sums];
      const rowsPer = Math.max(1, Math.floor(this.d.maxParams / columns.length));
      for (let j = 0; j < rows.length; j += rowsPer) {
        const some = rows.slice(j, j + rowsPer);
        await db.execute(
          `INSERT INTO ${this.t.deleted} (${columns.join(", ")}) VALUES ${valueRows(columns.length, some.length)}`,
          some.flatMap(([path, views]) => [...key, path, pathKey(path), views]),
        );
      }
    }
    return changed;
  }

  /**
   * @internal One cleanup batch where the database has no interactive transactions (D1): the
   * delete and the record of it go as one atomic batch. Each statement runs only while the
   * lease is ours, and SQLite's changes() carries the delete's count into the part's row.
   * With `count` (`SELECT p, n`: the stats column's value and its rows, over exactly the rows
   * the delete matches), the part's deleted-row counts gain what the delete removed: the
   * matched rows counted before it, less those still matched after it (a trigger kept them).
   */
  async deleteAndRecord(
    lease: Lease,
    part: number,
    cursor: number | null,
    del: BatchStatement,
    count?: BatchStatement,
  ): Promise<number> {
    const batch = batchesOf(this.db);
    if (!batch) throw new Error("deleteAndRecord needs a source whose writes go as batches");
    const q = this.date;
    const fence = this.ours(lease);
    const fp = fence.params ?? [];
    const from = statesBefore("cleaning");
    const key = [lease.table, lease.date, part];
    const mine = `source_table = ? AND ${q} = ? AND part = ?`;
    const cp = count?.params ?? [];
    const d = this.t.deleted;
    // SQLite's `IS` matches NULL to NULL: a value's one row, whatever its value.
    const adjust = (sign: "+" | "-"): BatchStatement => ({
      sql: `UPDATE ${d} SET views = views ${sign} c.n FROM (${count?.sql}) c
            WHERE ${d}.source_table = ? AND ${d}.${q} = ? AND ${d}.part = ? AND ${d}.path IS c.p AND ${fence.sql}`,
      params: [...cp, ...key, ...fp],
    });
    const before: BatchStatement[] = count
      ? [
          adjust("+"),
          {
            sql: `INSERT INTO ${d} (source_table, ${q}, part, path, path_key, views)
                  SELECT ?, ?, ?, c.p, ${pathKeySql(this.d, "c.p")}, c.n FROM (${count.sql}) c
                  WHERE NOT EXISTS (SELECT 1 FROM ${d} x WHERE x.source_table = ? AND x.${q} = ? AND x.part = ? AND x.path IS c.p) AND ${fence.sql}`,
            params: [...key, ...cp, ...key, ...fp],
          },
        ]
      : [];
    const after: BatchStatement[] = count
      ? [
          adjust("-"),
          {
            sql: `DELETE FROM ${d} WHERE ${mine} AND views = 0 AND ${fence.sql}`,
            params: [...key, ...fp],
          },
        ]
      : [];
    const results = await batch([
      ...before,
      { sql: `${del.sql} AND ${fence.sql}`, params: [...(del.params ?? []), ...fp] },
      {
        sql: `UPDATE ${this.t.parts} SET cleaned_count = cleaned_count + changes(), cleanup_cursor = ?${count ? ", deleted_rollup_rows = deleted_rollup_rows + changes()" : ""}
              WHERE ${mine} AND ${fence.sql}`,
        params: [cursor, ...key, ...fp],
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
   * rows changed in the hot store, and the cursor to resume from when rows were kept.
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
      "changed_count = changed_count + ?, changed_keys = ?, cleanup_cursor = ?",
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

/**
 * A stats value's key in archive_deleted_rollups: `n` for null, the value after `s:` up to
 * PATH_KEY_TEXT characters, else `h:` and its sha256, so that a key fits a unique index.
 */
export function pathKey(value: string | null): string {
  if (value === null) return "n";
  if (value.length <= PATH_KEY_TEXT) return `s:${value}`;
  const h = portableSha256();
  h.update(new TextEncoder().encode(value));
  return `h:${h.hex()}`;
}

/** Rollup entries as JSON arrays of `[value, count]`, each text under 512 KB (D1: 2 MB a value). */
function* jsonChunks(entries: readonly [string | null, number][]): Generator<string> {
  let chunk: string[] = [];
  let size = 0;
  for (const e of entries) {
    const text = JSON.stringify(e);
    if (size + text.length > 512 * 1024 && chunk.length) {
      yield `[${chunk.join(",")}]`;
      chunk = [];
      size = 0;
    }
    chunk.push(text);
    size += text.length + 1;
  }
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
}

/** Parameters deleteAndRecord adds to a DELETE to run it only while the lease is ours. */
export const LEASE_GUARD_PARAMS = 3;

import { LeaseHeldError, LeaseLostError } from "../../errors.js";
import { type BatchStatement, batchesOf, runAtomically } from "../../sql/source.js";
import { Lease } from "./lease.js";
import { PartWrites } from "./part-writes.js";
import type { PartObject, PartRecord } from "./records.js";

/**
 * The ledger of one database: who holds each partition's lease, the partition's state, and
 * its parts. Every write made under a lease is fenced by its owner (base.ts); the writes to a
 * part's row are in part-writes.ts.
 */
export class Ledger extends PartWrites {
  /**
   * Take the partition's lease, or throw LeaseHeldError naming who has it. A holder whose
   * lease expired, or who is known to be dead, is taken over. A lease is never shared: each
   * job asks under an owner of its own, and an owner cannot take what it already holds.
   */
  async acquire(table: string, date: string, owner: string): Promise<Lease> {
    // Two tries: a lease released, or a dead holder's taken, between our reads is one retry.
    for (let attempt = 0; ; attempt++) {
      const lease = await this.tryAcquire(table, date, owner, attempt > 0);
      if (lease) return lease;
    }
  }

  private async tryAcquire(
    table: string,
    date: string,
    owner: string,
    last: boolean,
  ): Promise<Lease | null> {
    const q = this.date;
    await this.db.execute(
      this.d.insertIgnore(this.t.meta, ["source_table", "date", "state", "updated_at"]),
      [table, date, "pending", this.iso()],
    );
    const now = this.now();
    const res = await this.db.execute(
      `UPDATE ${this.t.meta} SET lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1, updated_at = ?
       WHERE source_table = ? AND ${q} = ? AND (lease_owner IS NULL OR lease_expires_at < ?)`,
      [owner, now + this.leaseMs, this.iso(), table, date, now],
    );
    if (res.changes === 1) return new Lease(this, table, date, owner);
    const rec = await this.get(table, date);
    const holder = rec?.leaseOwner;
    if (holder && holder !== owner && this.isHolderGone(holder)) {
      // Fenced on the exact dead holder: if someone else got there first, we lose cleanly.
      const taken = await this.db.execute(
        `UPDATE ${this.t.meta} SET lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1, updated_at = ?
         WHERE source_table = ? AND ${q} = ? AND lease_owner = ?`,
        [owner, now + this.leaseMs, this.iso(), table, date, holder],
      );
      if (taken.changes === 1) return new Lease(this, table, date, owner);
    }
    // Stryker disable next-line LogicalOperator: equivalent; a named live holder read first asks once more, then is named
    if (!holder && !last) return null;
    throw new LeaseHeldError(
      table,
      date,
      holder ?? "an unknown process",
      rec?.leaseExpiresAt ?? now,
    );
  }

  /** @internal Extend a lease; false if it is no longer ours. */
  async renew(table: string, date: string, owner: string): Promise<boolean> {
    const res = await this.db.execute(
      `UPDATE ${this.t.meta} SET lease_expires_at = ? WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
      [this.now() + this.leaseMs, table, date, owner],
    );
    return res.changes === 1;
  }

  /** @internal Let go; a partition that never got past pending leaves no ledger row. */
  async release(table: string, date: string, owner: string): Promise<void> {
    await this.db.execute(
      `DELETE FROM ${this.t.meta} WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ? AND state = 'pending' AND part_count = 0`,
      [table, date, owner],
    );
    await this.db.execute(
      `UPDATE ${this.t.meta} SET lease_owner = NULL, lease_expires_at = NULL WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
      [table, date, owner],
    );
  }

  /**
   * @internal Note the object an upload is about to write (or null once recorded), so that a
   * later holder can remove it if this one dies before recording it.
   */
  async setPendingObject(lease: Lease, key: string | null): Promise<void> {
    const res = await this.db.execute(
      `UPDATE ${this.t.meta} SET pending_object = ? WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
      [key, lease.table, lease.date, lease.owner],
    );
    if (res.changes !== 1) throw new LeaseLostError(lease.table, lease.date);
  }

  /** @internal Set the partition's `last_error` and leave its state as it is. */
  async noteError(lease: Lease, text: string): Promise<void> {
    const res = await this.db.execute(
      `UPDATE ${this.t.meta} SET last_error = ?, updated_at = ? WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
      [text, this.iso(), lease.table, lease.date, lease.owner],
    );
    if (res.changes !== 1) throw new LeaseLostError(lease.table, lease.date);
  }

  /** @internal Write the partition's latest job (JSON) for every process to read. */
  async recordJob(lease: Lease, job: string): Promise<void> {
    const res = await this.db.execute(
      `UPDATE ${this.t.meta} SET job = ? WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
      [job, lease.table, lease.date, lease.owner],
    );
    if (res.changes !== 1) throw new LeaseLostError(lease.table, lease.date);
  }

  /** @internal Record a restore of the partition's archive (rows inserted, and where). */
  async recordRestore(lease: Lease, rows: number, into: string): Promise<void> {
    const res = await this.db.execute(
      `UPDATE ${this.t.meta} SET restored_at = ?, restored_rows = ?, restored_into = ?, updated_at = ?
       WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
      [this.iso(), rows, into, this.iso(), lease.table, lease.date, lease.owner],
    );
    if (res.changes !== 1) throw new LeaseLostError(lease.table, lease.date);
  }

  /**
   * @internal Record a written part and refresh the partition's totals, all or nothing, and
   * only while the lease is ours and the partition is `archiving`: a writer whose lease ran
   * out while it uploaded records nothing.
   */
  async recordPart(lease: Lease, part: PartRecord): Promise<void> {
    const q = this.date;
    const key = [part.sourceTable, part.date, part.part];
    const columns = `source_table, ${q}, part, object_key, manifest_key, event_count, raw_size, file_size, sha256, min_id, max_id, archived_at, chunk_bytes, chunk_sha256`;
    const values = [
      ...key,
      part.objectKey,
      part.manifestKey,
      part.eventCount,
      part.rawSize,
      part.fileSize,
      part.sha256,
      part.minId,
      part.maxId,
      part.archivedAt,
      part.chunkBytes,
      part.chunkSha256,
    ];
    const totals = this.totals(lease);
    const moved: BatchStatement = {
      sql: `UPDATE ${this.t.meta} SET state = 'archived', updated_at = ?, ${totals.sql},
              object_key = ?, sha256 = ?, archived_at = ?, verified_at = NULL, d1_cleaned = 0,
              last_error = NULL, pending_object = NULL
            WHERE source_table = ? AND ${q} = ? AND lease_owner = ? AND state = 'archiving'`,
      params: [
        this.iso(),
        ...totals.params,
        part.objectKey,
        part.sha256,
        part.archivedAt,
        lease.table,
        lease.date,
        lease.owner,
      ],
    };
    const del = `DELETE FROM ${this.t.parts} WHERE source_table = ? AND ${q} = ? AND part = ?`;
    const batch = batchesOf(this.db);
    if (batch) {
      // No interactive transaction (D1): every statement of the batch carries the fence.
      const fence = this.ours(lease, "archiving");
      const fp = fence.params;
      const [, , res] = await batch([
        { sql: `${del} AND ${fence.sql}`, params: [...key, ...fp] },
        {
          sql: `INSERT INTO ${this.t.parts} (${columns}) SELECT ${values.map(() => "?").join(", ")} WHERE ${fence.sql}`,
          params: [...values, ...fp],
        },
        moved,
      ]);
      if (res?.changes !== 1) throw await this.whyNot(lease, "record the part");
      return;
    }
    await this.db.transaction(async (tx) => {
      // The fenced move first: it locks the partition's row until commit, so the lease
      // cannot change hands while the part is written. Its totals are refreshed after.
      const res = await tx.execute(moved.sql, moved.params);
      if (res.changes !== 1) throw await this.whyNot(lease, "record the part");
      await tx.execute(del, key);
      await tx.execute(
        `INSERT INTO ${this.t.parts} (${columns}) VALUES (${values.map(() => "?").join(", ")})`,
        values,
      );
      await tx.execute(
        `UPDATE ${this.t.meta} SET ${totals.sql} WHERE source_table = ? AND ${q} = ?`,
        [...totals.params, lease.table, lease.date],
      );
    });
  }

  /**
   * @internal Forget a part that was never verified and had nothing deleted on its strength,
   * when the rows it held are gone from the source (nothing left to rewrite it from).
   */
  async removeUnverifiedPart(lease: Lease, part: number): Promise<void> {
    const fence = this.ours(lease);
    const totals = this.totals(lease);
    const [removed] = await runAtomically(this.db, [
      {
        sql: `DELETE FROM ${this.t.parts} WHERE source_table = ? AND ${this.date} = ? AND part = ? AND verified_at IS NULL AND cleaned_count = 0 AND ${fence.sql}`,
        params: [lease.table, lease.date, part, ...fence.params],
      },
      {
        sql: `UPDATE ${this.t.meta} SET ${totals.sql}, updated_at = ? WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
        params: [...totals.params, this.iso(), lease.table, lease.date, lease.owner],
      },
      {
        // Keys restored while it was verified would otherwise skip lines of its rewrite.
        sql: `DELETE FROM ${this.t.skipped} WHERE source_table = ? AND ${this.date} = ? AND part = ? AND NOT EXISTS (SELECT 1 FROM ${this.t.parts} p WHERE p.source_table = ? AND p.${this.date} = ? AND p.part = ?) AND ${fence.sql}`,
        params: [lease.table, lease.date, part, lease.table, lease.date, part, ...fence.params],
      },
    ]);
    // Stryker disable next-line StringLiteral: the error's words
    if (removed?.changes !== 1) throw await this.whyNot(lease, `remove part ${part}`);
  }

  /**
   * @internal Point a verified part at another object holding exactly its lines (a format
   * conversion), with the partition's totals, in one atomic write; refused unless the part
   * still has the object `from` and the lease is ours.
   */
  async swapPartObject(lease: Lease, part: number, from: string, to: PartObject): Promise<void> {
    const fence = this.ours(lease);
    const totals = this.totals(lease);
    const [swapped] = await runAtomically(this.db, [
      {
        sql: `UPDATE ${this.t.parts} SET object_key = ?, manifest_key = ?, file_size = ?, sha256 = ?, chunk_bytes = ?, chunk_sha256 = ?
              WHERE source_table = ? AND ${this.date} = ? AND part = ? AND object_key = ? AND verified_at IS NOT NULL AND ${fence.sql}`,
        params: [
          to.objectKey,
          to.manifestKey,
          to.fileSize,
          to.sha256,
          to.chunkBytes,
          to.chunkSha256,
          lease.table,
          lease.date,
          part,
          from,
          ...fence.params,
        ],
      },
      {
        // sha256 first: MariaDB reads the columns a SET assigned before it as already assigned.
        sql: `UPDATE ${this.t.meta} SET ${totals.sql},
                sha256 = CASE WHEN object_key = ? THEN ? ELSE sha256 END,
                object_key = CASE WHEN object_key = ? THEN ? ELSE object_key END,
                pending_object = NULL, updated_at = ?
              WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
        params: [
          ...totals.params,
          from,
          to.sha256,
          from,
          to.objectKey,
          this.iso(),
          lease.table,
          lease.date,
          lease.owner,
        ],
      },
    ]);
    // Stryker disable next-line StringLiteral: the error's words
    if (swapped?.changes !== 1) throw await this.whyNot(lease, `swap part ${part}'s object`);
  }
}

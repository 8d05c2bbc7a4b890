import { LeaseHeldError, LeaseLostError, SluiceError } from "../errors.js";
import {
  type BatchStatement,
  type Dialect,
  type Row,
  type SqlExecutor,
  type SqlSource,
  runAtomically,
  toCount,
} from "../sql/source.js";

/**
 * The archive_metadata table: one row per (table, date) partition, moved through an
 * explicit state machine by whoever holds its lease. archive_parts: one row per object.
 */
export type PartitionState =
  | "pending"
  | "archiving"
  | "archived"
  | "verified"
  | "cleaning"
  | "cleaned"
  | "failed";

/**
 * Allowed moves. `cleaned -> archiving` and `verified -> archiving` write late rows as a new
 * part; `archiving -> archiving` is a rerun after a job was killed mid-write.
 */
export const TRANSITIONS: Readonly<Record<PartitionState, readonly PartitionState[]>> = {
  pending: ["archiving", "failed"],
  archiving: ["archiving", "archived", "failed"],
  archived: ["verified", "archiving", "failed"],
  verified: ["cleaning", "archiving", "failed"],
  cleaning: ["cleaning", "cleaned", "failed"],
  cleaned: ["archiving"],
  failed: ["archiving", "verified", "cleaning", "failed"],
};

export function canMove(from: PartitionState, to: PartitionState): boolean {
  return TRANSITIONS[from].includes(to);
}

export interface PartitionRecord {
  sourceTable: string;
  date: string;
  state: PartitionState;
  /** The latest part's object key: the seed's `r2_path`. */
  objectKey: string | null;
  partCount: number;
  eventCount: number;
  rawSize: number;
  fileSize: number;
  /** sha256 of the latest part's compressed bytes. */
  sha256: string | null;
  minId: number | null;
  maxId: number | null;
  archivedAt: string | null;
  verifiedAt: string | null;
  /** 1 only when a count said zero archived rows remain in the hot store. */
  d1Cleaned: number;
  cleanedCount: number;
  lastError: string | null;
  attempts: number;
  leaseOwner: string | null;
  leaseExpiresAt: number | null;
  updatedAt: string | null;
  /** An object being uploaded under the lease and not yet recorded as a part. */
  pendingObject: string | null;
}

export interface PartRecord {
  sourceTable: string;
  date: string;
  part: number;
  objectKey: string;
  manifestKey: string;
  eventCount: number;
  rawSize: number;
  fileSize: number;
  sha256: string;
  minId: number;
  maxId: number;
  archivedAt: string;
  verifiedAt: string | null;
  cleanedCount: number;
  /** Highest archived key whose delete has committed: where a resumed cleanup starts. */
  cleanupCursor: number | null;
  cleanedAt: string | null;
  /** Bytes per chunk of the object that {@link chunkSha256} covers. */
  chunkBytes: number | null;
  /**
   * sha256 of each chunk of the object, hex, concatenated: cleanup acts on a line only once
   * the bytes it came from have matched here, in the same read. Null for parts written before.
   */
  chunkSha256: string | null;
  /** Archived rows that cleanup found changed in the hot store, so left there. */
  changedCount: number;
  /** The first few of their keys, comma-separated, for the error that reports them. */
  changedKeys: string | null;
}

interface Migration {
  version: number;
  statements(d: Dialect): readonly string[];
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    statements: () => [
      `CREATE TABLE IF NOT EXISTS archive_metadata (
        source_table VARCHAR(64) NOT NULL,
        date VARCHAR(10) NOT NULL,
        state VARCHAR(16) NOT NULL,
        object_key VARCHAR(512),
        part_count INTEGER NOT NULL DEFAULT 0,
        event_count BIGINT NOT NULL DEFAULT 0,
        raw_size BIGINT NOT NULL DEFAULT 0,
        file_size BIGINT NOT NULL DEFAULT 0,
        sha256 VARCHAR(64),
        min_id BIGINT,
        max_id BIGINT,
        archived_at VARCHAR(32),
        verified_at VARCHAR(32),
        d1_cleaned INTEGER NOT NULL DEFAULT 0,
        cleaned_count BIGINT NOT NULL DEFAULT 0,
        last_error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_owner VARCHAR(128),
        lease_expires_at BIGINT,
        updated_at VARCHAR(32),
        PRIMARY KEY (source_table, date)
      )`,
      `CREATE TABLE IF NOT EXISTS archive_parts (
        source_table VARCHAR(64) NOT NULL,
        date VARCHAR(10) NOT NULL,
        part INTEGER NOT NULL,
        object_key VARCHAR(512) NOT NULL,
        manifest_key VARCHAR(512) NOT NULL,
        event_count BIGINT NOT NULL,
        raw_size BIGINT NOT NULL,
        file_size BIGINT NOT NULL,
        sha256 VARCHAR(64) NOT NULL,
        min_id BIGINT NOT NULL,
        max_id BIGINT NOT NULL,
        archived_at VARCHAR(32) NOT NULL,
        verified_at VARCHAR(32),
        cleaned_count BIGINT NOT NULL DEFAULT 0,
        cleanup_cursor BIGINT,
        cleaned_at VARCHAR(32),
        PRIMARY KEY (source_table, date, part)
      )`,
    ],
  },
  {
    version: 2,
    statements: (d) => [
      "ALTER TABLE archive_parts ADD COLUMN chunk_bytes INTEGER",
      "ALTER TABLE archive_parts ADD COLUMN chunk_sha256 TEXT",
      "ALTER TABLE archive_parts ADD COLUMN changed_count BIGINT NOT NULL DEFAULT 0",
      "ALTER TABLE archive_parts ADD COLUMN changed_keys TEXT",
      "ALTER TABLE archive_metadata ADD COLUMN pending_object VARCHAR(512)",
      // MySQL's default collation folds case: tables `Events` and `events` would share rows.
      ...(d.name === "mysql"
        ? [
            "ALTER TABLE archive_metadata MODIFY source_table VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL",
            "ALTER TABLE archive_parts MODIFY source_table VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL",
          ]
        : []),
    ],
  },
];

/** A migration statement another process already ran (it added the column first). */
const ALREADY_DONE = /duplicate column|already exists/i;

const num = (v: unknown): number => toCount(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

function toPartition(r: Row): PartitionRecord {
  return {
    sourceTable: String(r.source_table),
    date: String(r.date),
    state: String(r.state) as PartitionState,
    objectKey: strOrNull(r.object_key),
    partCount: num(r.part_count),
    eventCount: num(r.event_count),
    rawSize: num(r.raw_size),
    fileSize: num(r.file_size),
    sha256: strOrNull(r.sha256),
    minId: numOrNull(r.min_id),
    maxId: numOrNull(r.max_id),
    archivedAt: strOrNull(r.archived_at),
    verifiedAt: strOrNull(r.verified_at),
    d1Cleaned: num(r.d1_cleaned),
    cleanedCount: num(r.cleaned_count),
    lastError: strOrNull(r.last_error),
    attempts: num(r.attempts),
    leaseOwner: strOrNull(r.lease_owner),
    leaseExpiresAt: numOrNull(r.lease_expires_at),
    updatedAt: strOrNull(r.updated_at),
    pendingObject: strOrNull(r.pending_object),
  };
}

function toPart(r: Row): PartRecord {
  return {
    sourceTable: String(r.source_table),
    date: String(r.date),
    part: num(r.part),
    objectKey: String(r.object_key),
    manifestKey: String(r.manifest_key),
    eventCount: num(r.event_count),
    rawSize: num(r.raw_size),
    fileSize: num(r.file_size),
    sha256: String(r.sha256),
    minId: num(r.min_id),
    maxId: num(r.max_id),
    archivedAt: String(r.archived_at),
    verifiedAt: strOrNull(r.verified_at),
    cleanedCount: num(r.cleaned_count),
    cleanupCursor: numOrNull(r.cleanup_cursor),
    cleanedAt: strOrNull(r.cleaned_at),
    chunkBytes: numOrNull(r.chunk_bytes),
    chunkSha256: strOrNull(r.chunk_sha256),
    changedCount: num(r.changed_count),
    changedKeys: strOrNull(r.changed_keys),
  };
}

export interface LedgerOptions {
  /** How long a lease lasts without renewal. */
  leaseMs?: number;
  now?: () => number;
  /**
   * Whether a lease holder is known to be dead (same host, its pid gone), so that a rerun
   * after a crash need not wait for the lease to expire. Runtimes without processes omit it.
   */
  isHolderGone?: (holder: string) => boolean;
}

export const DEFAULT_LEASE_MS = 120_000;

/** The ledger of one database. Every write made under a lease is fenced by its owner. */
export class Ledger {
  readonly leaseMs: number;
  private readonly now: () => number;
  private readonly isHolderGone: (holder: string) => boolean;

  constructor(
    private readonly db: SqlSource,
    options: LedgerOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.now = options.now ?? Date.now;
    this.isHolderGone = options.isHolderGone ?? (() => false);
  }

  private get d() {
    return this.db.dialect;
  }

  private get date() {
    return this.d.quote("date");
  }

  private iso(): string {
    return new Date(this.now()).toISOString();
  }

  /**
   * `EXISTS` true only while `lease` is held (and, given `states`, the partition is in one of
   * them): appended to a statement that must do nothing for a holder whose lease was taken.
   */
  private ours(lease: Lease, states: readonly PartitionState[] = []): BatchStatement {
    const inState = states.length ? ` AND m.state IN (${states.map(() => "?").join(", ")})` : "";
    return {
      sql: `EXISTS (SELECT 1 FROM archive_metadata m WHERE m.source_table = ? AND m.${this.date} = ? AND m.lease_owner = ?${inState})`,
      params: [lease.table, lease.date, lease.owner, ...states],
    };
  }

  /** An UPDATE of one part's row that happens only while the lease is ours. */
  private async updatePart(
    lease: Lease,
    part: number,
    sets: string,
    params: readonly unknown[],
    db: SqlExecutor = this.db,
  ): Promise<void> {
    const fence = this.ours(lease);
    const res = await db.execute(
      `UPDATE archive_parts SET ${sets} WHERE source_table = ? AND ${this.date} = ? AND part = ? AND ${fence.sql}`,
      [...params, lease.table, lease.date, part, ...(fence.params ?? [])],
    );
    if (res.changes !== 1) throw await this.whyNot(lease, `update part ${part}`);
  }

  /** The error for a fenced write that changed nothing: the lease went, or the part did. */
  private async whyNot(lease: Lease, what: string): Promise<SluiceError> {
    const rec = await this.get(lease.table, lease.date);
    if (rec?.leaseOwner !== lease.owner) return new LeaseLostError(lease.table, lease.date);
    return new SluiceError("failed", `${lease.table} ${lease.date}: could not ${what}`);
  }

  /** Create or upgrade the ledger tables. Safe to run from several processes at once. */
  async migrate(): Promise<void> {
    await this.db.execute(
      "CREATE TABLE IF NOT EXISTS sluice_migrations (version INTEGER PRIMARY KEY, applied_at VARCHAR(32) NOT NULL)",
    );
    const done = new Set(
      (await this.db.query("SELECT version FROM sluice_migrations")).map((r) => num(r.version)),
    );
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      for (const s of m.statements(this.d)) {
        try {
          await this.db.execute(s);
        } catch (err) {
          if (!ALREADY_DONE.test((err as Error).message)) throw err;
        }
      }
      await this.db.execute(this.d.insertIgnore("sluice_migrations", ["version", "applied_at"]), [
        m.version,
        this.iso(),
      ]);
    }
  }

  async get(table: string, date: string): Promise<PartitionRecord | null> {
    const rows = await this.db.query(
      `SELECT * FROM archive_metadata WHERE source_table = ? AND ${this.date} = ?`,
      [table, date],
    );
    return rows[0] ? toPartition(rows[0]) : null;
  }

  async list(table?: string): Promise<PartitionRecord[]> {
    const rows = table
      ? await this.db.query(
          `SELECT * FROM archive_metadata WHERE source_table = ? ORDER BY ${this.date}`,
          [table],
        )
      : await this.db.query(`SELECT * FROM archive_metadata ORDER BY source_table, ${this.date}`);
    return rows.map(toPartition);
  }

  async parts(table: string, date: string, db: SqlExecutor = this.db): Promise<PartRecord[]> {
    const rows = await db.query(
      `SELECT * FROM archive_parts WHERE source_table = ? AND ${this.date} = ? ORDER BY part`,
      [table, date],
    );
    return rows.map(toPart);
  }

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
      this.d.insertIgnore("archive_metadata", ["source_table", "date", "state", "updated_at"]),
      [table, date, "pending", this.iso()],
    );
    const now = this.now();
    const res = await this.db.execute(
      `UPDATE archive_metadata SET lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1, updated_at = ?
       WHERE source_table = ? AND ${q} = ? AND (lease_owner IS NULL OR lease_expires_at < ?)`,
      [owner, now + this.leaseMs, this.iso(), table, date, now],
    );
    if (res.changes === 1) return new Lease(this, table, date, owner);
    const rec = await this.get(table, date);
    const holder = rec?.leaseOwner;
    if (holder && holder !== owner && this.isHolderGone(holder)) {
      // Fenced on the exact dead holder: if someone else got there first, we lose cleanly.
      const taken = await this.db.execute(
        `UPDATE archive_metadata SET lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1, updated_at = ?
         WHERE source_table = ? AND ${q} = ? AND lease_owner = ?`,
        [owner, now + this.leaseMs, this.iso(), table, date, holder],
      );
      if (taken.changes === 1) return new Lease(this, table, date, owner);
    }
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
      `UPDATE archive_metadata SET lease_expires_at = ? WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
      [this.now() + this.leaseMs, table, date, owner],
    );
    return res.changes === 1;
  }

  /** @internal Let go; a partition that never got past pending leaves no ledger row. */
  async release(table: string, date: string, owner: string): Promise<void> {
    await this.db.execute(
      `DELETE FROM archive_metadata WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ? AND state = 'pending' AND part_count = 0`,
      [table, date, owner],
    );
    await this.db.execute(
      `UPDATE archive_metadata SET lease_owner = NULL, lease_expires_at = NULL WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
      [table, date, owner],
    );
  }

  /**
   * @internal Move the partition to `to`, setting `fields` too, if it is ours and in a state
   * that may move there. Runs on `db` so that it can share a transaction with a delete.
   */
  async move(
    lease: Lease,
    to: PartitionState,
    fields: Record<string, unknown> = {},
    db: SqlExecutor = this.db,
  ): Promise<void> {
    const from = (Object.keys(TRANSITIONS) as PartitionState[]).filter((s) => canMove(s, to));
    const sets = Object.keys(fields).map((k) => `${k} = ?`);
    const res = await db.execute(
      `UPDATE archive_metadata SET state = ?, updated_at = ?${sets.length ? `, ${sets.join(", ")}` : ""}
       WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ? AND state IN (${from.map(() => "?").join(", ")})`,
      [to, this.iso(), ...Object.values(fields), lease.table, lease.date, lease.owner, ...from],
    );
    if (res.changes === 1) return;
    const rec = await this.get(lease.table, lease.date);
    if (rec?.leaseOwner !== lease.owner) throw new LeaseLostError(lease.table, lease.date);
    throw new SluiceError(
      "failed",
      `${lease.table} ${lease.date}: cannot move from '${rec.state}' to '${to}'`,
    );
  }

  /**
   * @internal Note the object an upload is about to write (or null once recorded), so that a
   * later holder can remove it if this one dies before recording it.
   */
  async setPendingObject(lease: Lease, key: string | null): Promise<void> {
    const res = await this.db.execute(
      `UPDATE archive_metadata SET pending_object = ? WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
      [key, lease.table, lease.date, lease.owner],
    );
    if (res.changes !== 1) throw new LeaseLostError(lease.table, lease.date);
  }

  /** The partition's totals, recomputed from its parts, as SET assignments and parameters. */
  private totals(lease: Lease): BatchStatement {
    const of = (expr: string) =>
      `(SELECT ${expr} FROM archive_parts p WHERE p.source_table = ? AND p.${this.date} = ?)`;
    const cols: [string, string][] = [
      ["part_count", "COUNT(*)"],
      ["event_count", "COALESCE(SUM(p.event_count), 0)"],
      ["raw_size", "COALESCE(SUM(p.raw_size), 0)"],
      ["file_size", "COALESCE(SUM(p.file_size), 0)"],
      ["min_id", "MIN(p.min_id)"],
      ["max_id", "MAX(p.max_id)"],
      ["cleaned_count", "COALESCE(SUM(p.cleaned_count), 0)"],
    ];
    return {
      sql: cols.map(([c, e]) => `${c} = ${of(e)}`).join(", "),
      params: cols.flatMap(() => [lease.table, lease.date]),
    };
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
      sql: `UPDATE archive_metadata SET state = 'archived', updated_at = ?, ${totals.sql},
              object_key = ?, sha256 = ?, archived_at = ?, verified_at = NULL, d1_cleaned = 0,
              last_error = NULL, pending_object = NULL
            WHERE source_table = ? AND ${q} = ? AND lease_owner = ? AND state = 'archiving'`,
      params: [
        this.iso(),
        ...(totals.params ?? []),
        part.objectKey,
        part.sha256,
        part.archivedAt,
        lease.table,
        lease.date,
        lease.owner,
      ],
    };
    const del = `DELETE FROM archive_parts WHERE source_table = ? AND ${q} = ? AND part = ?`;
    if (this.db.batch) {
      // No interactive transaction (D1): every statement of the batch carries the fence.
      const fence = this.ours(lease, ["archiving"]);
      const fp = fence.params ?? [];
      const [, , res] = await this.db.batch([
        { sql: `${del} AND ${fence.sql}`, params: [...key, ...fp] },
        {
          sql: `INSERT INTO archive_parts (${columns}) SELECT ${values.map(() => "?").join(", ")} WHERE ${fence.sql}`,
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
        `INSERT INTO archive_parts (${columns}) VALUES (${values.map(() => "?").join(", ")})`,
        values,
      );
      await tx.execute(
        `UPDATE archive_metadata SET ${totals.sql} WHERE source_table = ? AND ${q} = ?`,
        [...(totals.params ?? []), lease.table, lease.date],
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
        sql: `DELETE FROM archive_parts WHERE source_table = ? AND ${this.date} = ? AND part = ? AND verified_at IS NULL AND cleaned_count = 0 AND ${fence.sql}`,
        params: [lease.table, lease.date, part, ...(fence.params ?? [])],
      },
      {
        sql: `UPDATE archive_metadata SET ${totals.sql}, updated_at = ? WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
        params: [...(totals.params ?? []), this.iso(), lease.table, lease.date, lease.owner],
      },
    ]);
    if (removed?.changes !== 1) throw await this.whyNot(lease, `remove part ${part}`);
  }

  /** @internal Mark one part verified; the partition is verified when all its parts are. */
  async markPartVerified(lease: Lease, part: number): Promise<void> {
    await this.updatePart(lease, part, "verified_at = ?", [this.iso()]);
  }

  /** @internal A part that failed verification before any delete: the next archive rewrites it. */
  async markPartUnverified(lease: Lease, part: number): Promise<void> {
    const fence = this.ours(lease);
    await this.db.execute(
      `UPDATE archive_parts SET verified_at = NULL WHERE source_table = ? AND ${this.date} = ? AND part = ? AND cleaned_count = 0 AND ${fence.sql}`,
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
    await this.updatePart(
      lease,
      part,
      "cleaned_count = cleaned_count + ?, cleanup_cursor = ?, changed_count = changed_count + ?, changed_keys = ?",
      [progress.deleted, progress.cursor, progress.changed, progress.changedKeys],
      db,
    );
    const [sum] = await db.query(
      `SELECT COALESCE(SUM(cleaned_count), 0) AS n FROM archive_parts WHERE source_table = ? AND ${this.date} = ?`,
      [lease.table, lease.date],
    );
    await this.move(lease, "cleaning", { cleaned_count: num(sum?.n) }, db);
  }

  /**
   * @internal One cleanup batch where the database has no interactive transactions (D1): the
   * delete and the record of it go as one atomic batch. Each statement runs only while the
   * lease is ours, and SQLite's changes() carries the delete's count into the part's row.
   */
  async deleteAndRecord(
    lease: Lease,
    part: number,
    cursor: number | null,
    del: BatchStatement,
  ): Promise<number> {
    if (!this.db.batch) throw new Error("deleteAndRecord needs a source with batch()");
    const q = this.date;
    const fence = this.ours(lease);
    const fp = fence.params ?? [];
    const from = (Object.keys(TRANSITIONS) as PartitionState[]).filter((s) =>
      canMove(s, "cleaning"),
    );
    const [deleted, , moved] = await this.db.batch([
      { sql: `${del.sql} AND ${fence.sql}`, params: [...(del.params ?? []), ...fp] },
      {
        sql: `UPDATE archive_parts SET cleaned_count = cleaned_count + changes(), cleanup_cursor = ?
              WHERE source_table = ? AND ${q} = ? AND part = ? AND ${fence.sql}`,
        params: [cursor, lease.table, lease.date, part, ...fp],
      },
      {
        sql: `UPDATE archive_metadata SET state = 'cleaning', updated_at = ?,
                cleaned_count = (SELECT SUM(p.cleaned_count) FROM archive_parts p WHERE p.source_table = ? AND p.${q} = ?)
              WHERE source_table = ? AND ${q} = ? AND lease_owner = ? AND state IN (${from.map(() => "?").join(", ")})`,
        params: [this.iso(), lease.table, lease.date, ...fp, ...from],
      },
    ]);
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

/** What one cleanup batch did to a part, recorded with its delete. */
export interface CleanupProgress {
  deleted: number;
  /** Where a resumed pass starts: the highest archived key done (null: from the start). */
  cursor: number | null;
  /** Archived rows found changed in the hot store (left there). */
  changed: number;
  /** The part's first few changed keys so far, or null. */
  changedKeys: string | null;
}

/** Parameters deleteAndRecord adds to a DELETE to run it only while the lease is ours. */
export const LEASE_GUARD_PARAMS = 3;

/** A held lease. Renew it during long work; every ledger write checks it is still ours. */
export class Lease {
  private renewedAt = Date.now();
  constructor(
    readonly ledger: Ledger,
    readonly table: string,
    readonly date: string,
    readonly owner: string,
  ) {}

  /** Renew if a third of the lease has passed; throws LeaseLostError if it was taken. */
  async keepAlive(): Promise<void> {
    if (Date.now() - this.renewedAt < this.ledger.leaseMs / 3) return;
    if (!(await this.ledger.renew(this.table, this.date, this.owner))) {
      throw new LeaseLostError(this.table, this.date);
    }
    this.renewedAt = Date.now();
  }

  /** Throws LeaseLostError unless the lease is still ours (renewing it if it is). */
  async check(): Promise<void> {
    if (!(await this.ledger.renew(this.table, this.date, this.owner))) {
      throw new LeaseLostError(this.table, this.date);
    }
    this.renewedAt = Date.now();
  }

  release(): Promise<void> {
    return this.ledger.release(this.table, this.date, this.owner);
  }
}

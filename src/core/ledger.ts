import { LeaseHeldError, LeaseLostError, SluiceError } from "./errors.js";
import {
  type BatchStatement,
  type Row,
  type SqlExecutor,
  type SqlSource,
  toCount,
} from "./source.js";

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
}

const MIGRATIONS: readonly { version: number; statements: readonly string[] }[] = [
  {
    version: 1,
    statements: [
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
];

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
    private readonly db: SqlExecutor,
    options: LedgerOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.now = options.now ?? Date.now;
    this.isHolderGone = options.isHolderGone ?? (() => false);
  }

  private get d() {
    return this.db.dialect;
  }

  private iso(): string {
    return new Date(this.now()).toISOString();
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
      for (const s of m.statements) await this.db.execute(s);
      await this.db.execute(this.d.insertIgnore("sluice_migrations", ["version", "applied_at"]), [
        m.version,
        this.iso(),
      ]);
    }
  }

  async get(table: string, date: string): Promise<PartitionRecord | null> {
    const rows = await this.db.query(
      `SELECT * FROM archive_metadata WHERE source_table = ? AND ${this.d.quote("date")} = ?`,
      [table, date],
    );
    return rows[0] ? toPartition(rows[0]) : null;
  }

  async list(table?: string): Promise<PartitionRecord[]> {
    const rows = table
      ? await this.db.query(
          `SELECT * FROM archive_metadata WHERE source_table = ? ORDER BY ${this.d.quote("date")}`,
          [table],
        )
      : await this.db.query(
          `SELECT * FROM archive_metadata ORDER BY source_table, ${this.d.quote("date")}`,
        );
    return rows.map(toPartition);
  }

  async parts(table: string, date: string, db: SqlExecutor = this.db): Promise<PartRecord[]> {
    const rows = await db.query(
      `SELECT * FROM archive_parts WHERE source_table = ? AND ${this.d.quote("date")} = ? ORDER BY part`,
      [table, date],
    );
    return rows.map(toPart);
  }

  /**
   * Take the partition's lease, or throw LeaseHeldError naming who has it. A holder whose
   * lease expired, or who is known to be dead, is taken over.
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
    const q = this.d.quote("date");
    await this.db.execute(
      this.d.insertIgnore("archive_metadata", ["source_table", "date", "state", "updated_at"]),
      [table, date, "pending", this.iso()],
    );
    const now = this.now();
    const res = await this.db.execute(
      `UPDATE archive_metadata SET lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1, updated_at = ?
       WHERE source_table = ? AND ${q} = ? AND (lease_owner IS NULL OR lease_expires_at < ? OR lease_owner = ?)`,
      [owner, now + this.leaseMs, this.iso(), table, date, now, owner],
    );
    if (res.changes === 1) return new Lease(this, table, date, owner);
    const rec = await this.get(table, date);
    const holder = rec?.leaseOwner;
    if (holder && this.isHolderGone(holder)) {
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
      `UPDATE archive_metadata SET lease_expires_at = ? WHERE source_table = ? AND ${this.d.quote("date")} = ? AND lease_owner = ?`,
      [this.now() + this.leaseMs, table, date, owner],
    );
    return res.changes === 1;
  }

  /** @internal Let go; a partition that never got past pending leaves no ledger row. */
  async release(table: string, date: string, owner: string): Promise<void> {
    await this.db.execute(
      `DELETE FROM archive_metadata WHERE source_table = ? AND ${this.d.quote("date")} = ? AND lease_owner = ? AND state = 'pending' AND part_count = 0`,
      [table, date, owner],
    );
    await this.db.execute(
      `UPDATE archive_metadata SET lease_owner = NULL, lease_expires_at = NULL WHERE source_table = ? AND ${this.d.quote("date")} = ? AND lease_owner = ?`,
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
       WHERE source_table = ? AND ${this.d.quote("date")} = ? AND lease_owner = ? AND state IN (${from.map(() => "?").join(", ")})`,
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

  /** @internal Record a written part and refresh the partition's totals, in one transaction. */
  async recordPart(lease: Lease, part: PartRecord, db: SqlExecutor): Promise<void> {
    const q = this.d.quote("date");
    await db.execute(`DELETE FROM archive_parts WHERE source_table = ? AND ${q} = ? AND part = ?`, [
      part.sourceTable,
      part.date,
      part.part,
    ]);
    await db.execute(
      `INSERT INTO archive_parts (source_table, ${q}, part, object_key, manifest_key, event_count, raw_size, file_size, sha256, min_id, max_id, archived_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        part.sourceTable,
        part.date,
        part.part,
        part.objectKey,
        part.manifestKey,
        part.eventCount,
        part.rawSize,
        part.fileSize,
        part.sha256,
        part.minId,
        part.maxId,
        part.archivedAt,
      ],
    );
    const totals = await this.totals(lease, db);
    await this.move(
      lease,
      "archived",
      {
        ...totals,
        object_key: part.objectKey,
        sha256: part.sha256,
        archived_at: part.archivedAt,
        verified_at: null,
        d1_cleaned: 0,
        last_error: null,
      },
      db,
    );
  }

  /** @internal Mark one part verified; the partition is verified when all its parts are. */
  async markPartVerified(lease: Lease, part: number): Promise<void> {
    const q = this.d.quote("date");
    const at = this.iso();
    const res = await this.db.execute(
      `UPDATE archive_parts SET verified_at = ? WHERE source_table = ? AND ${q} = ? AND part = ?
       AND EXISTS (SELECT 1 FROM archive_metadata m WHERE m.source_table = ? AND m.${q} = ? AND m.lease_owner = ?)`,
      [at, lease.table, lease.date, part, lease.table, lease.date, lease.owner],
    );
    if (res.changes !== 1) throw new LeaseLostError(lease.table, lease.date);
  }

  /** @internal A part that failed verification before any delete: the next archive rewrites it. */
  async markPartUnverified(lease: Lease, part: number): Promise<void> {
    await this.db.execute(
      `UPDATE archive_parts SET verified_at = NULL WHERE source_table = ? AND ${this.d.quote("date")} = ? AND part = ? AND cleaned_count = 0`,
      [lease.table, lease.date, part],
    );
  }

  /**
   * @internal Save cleanup progress for a part. Called inside the delete's transaction, so
   * the deleted count and the cursor are exactly what committed.
   */
  async addCleaned(
    lease: Lease,
    part: number,
    deleted: number,
    cursor: number,
    db: SqlExecutor,
  ): Promise<void> {
    const q = this.d.quote("date");
    await db.execute(
      `UPDATE archive_parts SET cleaned_count = cleaned_count + ?, cleanup_cursor = ?
       WHERE source_table = ? AND ${q} = ? AND part = ?`,
      [deleted, cursor, lease.table, lease.date, part],
    );
    const { cleaned_count } = await this.totals(lease, db);
    await this.move(lease, "cleaning", { cleaned_count }, db);
  }

  /**
   * @internal One cleanup batch where the database has no interactive transactions (D1): the
   * delete and the record of it go as one atomic batch. Each statement runs only while the
   * lease is ours, and SQLite's changes() carries the delete's count into the part's row.
   */
  async deleteAndRecord(
    source: SqlSource,
    lease: Lease,
    part: number,
    cursor: number,
    del: BatchStatement,
  ): Promise<number> {
    if (!source.batch) throw new Error("deleteAndRecord needs a source with batch()");
    const q = this.d.quote("date");
    const ours = `EXISTS (SELECT 1 FROM archive_metadata m WHERE m.source_table = ? AND m.${q} = ? AND m.lease_owner = ?)`;
    const who = [lease.table, lease.date, lease.owner]; // LEASE_GUARD_PARAMS of them
    const from = (Object.keys(TRANSITIONS) as PartitionState[]).filter((s) =>
      canMove(s, "cleaning"),
    );
    const [deleted, , moved] = await source.batch([
      { sql: `${del.sql} AND ${ours}`, params: [...(del.params ?? []), ...who] },
      {
        sql: `UPDATE archive_parts SET cleaned_count = cleaned_count + changes(), cleanup_cursor = ?
              WHERE source_table = ? AND ${q} = ? AND part = ? AND ${ours}`,
        params: [cursor, lease.table, lease.date, part, ...who],
      },
      {
        sql: `UPDATE archive_metadata SET state = 'cleaning', updated_at = ?,
                cleaned_count = (SELECT SUM(p.cleaned_count) FROM archive_parts p WHERE p.source_table = ? AND p.${q} = ?)
              WHERE source_table = ? AND ${q} = ? AND lease_owner = ? AND state IN (${from.map(() => "?").join(", ")})`,
        params: [this.iso(), lease.table, lease.date, ...who, ...from],
      },
    ]);
    if (moved?.changes !== 1) throw new LeaseLostError(lease.table, lease.date);
    return deleted?.changes ?? 0;
  }

  /** @internal The next cleanup of this part reads every archived key again. */
  async resetCleanupCursor(lease: Lease, part: number): Promise<void> {
    await this.db.execute(
      `UPDATE archive_parts SET cleanup_cursor = NULL WHERE source_table = ? AND ${this.d.quote("date")} = ? AND part = ?`,
      [lease.table, lease.date, part],
    );
  }

  /** @internal */
  async markPartCleaned(lease: Lease, part: number, db: SqlExecutor = this.db): Promise<void> {
    await db.execute(
      `UPDATE archive_parts SET cleaned_at = ? WHERE source_table = ? AND ${this.d.quote("date")} = ? AND part = ?`,
      [this.iso(), lease.table, lease.date, part],
    );
  }

  private async totals(lease: Lease, db: SqlExecutor): Promise<Record<string, number | null>> {
    const rows = await db.query(
      `SELECT COUNT(*) AS part_count, SUM(event_count) AS event_count, SUM(raw_size) AS raw_size,
              SUM(file_size) AS file_size, MIN(min_id) AS min_id, MAX(max_id) AS max_id,
              SUM(cleaned_count) AS cleaned_count
       FROM archive_parts WHERE source_table = ? AND ${this.d.quote("date")} = ?`,
      [lease.table, lease.date],
    );
    const r = rows[0] ?? {};
    return {
      part_count: num(r.part_count),
      event_count: num(r.event_count),
      raw_size: num(r.raw_size),
      file_size: num(r.file_size),
      min_id: numOrNull(r.min_id),
      max_id: numOrNull(r.max_id),
      cleaned_count: num(r.cleaned_count),
    };
  }
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

  release(): Promise<void> {
    return this.ledger.release(this.table, this.date, this.owner);
  }
}

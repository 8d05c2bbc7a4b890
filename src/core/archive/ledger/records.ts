import { type Row, toCount } from "../../sql/source.js";
import type { PartitionState } from "./states.js";

export interface PartitionRecord {
  sourceTable: string;
  date: string;
  state: PartitionState;
  /** The latest part's object key (what users of the original Worker call `r2_path`). */
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
  /**
   * True only when every archived row is gone from the hot store (stored as the column
   * d1_cleaned, 1 or 0, the name the archive's first users know it by).
   */
  cleaned: boolean;
  cleanedCount: number;
  lastError: string | null;
  attempts: number;
  leaseOwner: string | null;
  leaseExpiresAt: number | null;
  updatedAt: string | null;
  /** An object being uploaded under the lease and not yet recorded as a part. */
  pendingObject: string | null;
  /** The last restore of the archive: when, the rows it inserted, and into which table. */
  restoredAt: string | null;
  restoredRows: number;
  restoredInto: string | null;
  /** The latest job a service ran on the partition, as its JobRunner wrote it (JSON). */
  job: string | null;
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
  /** Rows the part's rollup counts (archive_rollups), written with its verification; null: none. */
  rollupRows: number | null;
  /** Rows cleanup deleted that archive_deleted_rollups counts (the stats of the day keep them). */
  deletedRollupRows: number;
  /**
   * The highest key a committed cleanup batch of this part went past (null: none): each line
   * at or under it is a row cleanup deleted, unless its key is one of the part's skipped keys.
   */
  passedKey: number | null;
  /** False for a part cleaned, leaving rows, before skipped keys were recorded (ledger v7). */
  skipsKnown: boolean;
}

/** The facts of the object a part's lines are stored in. */
export type PartObject = Pick<
  PartRecord,
  "objectKey" | "manifestKey" | "fileSize" | "sha256" | "chunkBytes" | "chunkSha256"
>;

/** One part's rows counted by the stats column's value (null for SQL NULL), and their sum. */
export interface PartRollup {
  counts: Map<string | null, number>;
  total: number;
}

export const num = (v: unknown): number => toCount(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));
export const strOrNull = (v: unknown): string | null =>
  v === null || v === undefined ? null : String(v);

export function toPartition(r: Row): PartitionRecord {
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
    cleaned: num(r.d1_cleaned) === 1,
    cleanedCount: num(r.cleaned_count),
    lastError: strOrNull(r.last_error),
    attempts: num(r.attempts),
    leaseOwner: strOrNull(r.lease_owner),
    leaseExpiresAt: numOrNull(r.lease_expires_at),
    updatedAt: strOrNull(r.updated_at),
    pendingObject: strOrNull(r.pending_object),
    restoredAt: strOrNull(r.restored_at),
    restoredRows: num(r.restored_rows),
    restoredInto: strOrNull(r.restored_into),
    job: strOrNull(r.job),
  };
}

export function toPart(r: Row): PartRecord {
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
    rollupRows: numOrNull(r.rollup_rows),
    deletedRollupRows: num(r.deleted_rollup_rows),
    passedKey: numOrNull(r.passed_key),
    skipsKnown: num(r.skips_known ?? 1) === 1,
  };
}

/** What a move of a partition may set besides its state. */
export interface PartitionFields {
  lastError?: string | null;
  cleaned?: boolean;
  verifiedAt?: string | null;
  cleanedCount?: number;
}

/** The archive_metadata columns of {@link PartitionFields}, by the names its users know. */
const FIELD_COLUMNS: { readonly [K in keyof PartitionFields]-?: string } = {
  lastError: "last_error",
  cleaned: "d1_cleaned",
  verifiedAt: "verified_at",
  cleanedCount: "cleaned_count",
};

/** `fields` as (column, value) pairs, in the columns' own terms. */
export function fieldColumns(fields: PartitionFields): [string, unknown][] {
  return (Object.keys(fields) as (keyof PartitionFields)[]).map((k) => {
    const v = fields[k];
    return [FIELD_COLUMNS[k], typeof v === "boolean" ? (v ? 1 : 0) : v];
  });
}

import type { Dialect, SqlExecutor, SqlSource } from "../../sql/source.js";
import { num } from "./records.js";

/**
 * The ledger's tables, created and upgraded in numbered steps recorded in sluice_migrations.
 * archive_metadata: one row per (table, date) partition; archive_parts: one per object.
 */
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
  {
    version: 3,
    statements: () => [
      "ALTER TABLE archive_metadata ADD COLUMN restored_at VARCHAR(32)",
      "ALTER TABLE archive_metadata ADD COLUMN restored_rows BIGINT NOT NULL DEFAULT 0",
      "ALTER TABLE archive_metadata ADD COLUMN restored_into VARCHAR(128)",
    ],
  },
];

/** A migration statement another process already ran (it added the column first). */
const ALREADY_DONE = /duplicate column|already exists/i;

/**
 * Whether the ledger's tables exist at the latest version, asked without creating anything
 * (what a read-only command may do).
 */
export async function ledgerIsCurrent(db: SqlSource): Promise<boolean> {
  if (!(await db.tableColumns("sluice_migrations"))) return false;
  const done = new Set(
    (await db.query("SELECT version FROM sluice_migrations")).map((r) => num(r.version)),
  );
  return MIGRATIONS.every((m) => done.has(m.version));
}

/** Create or upgrade the ledger tables. Safe to run from several processes at once. */
export async function migrateLedger(db: SqlExecutor, now: () => string): Promise<void> {
  const d = db.dialect;
  await db.execute(
    "CREATE TABLE IF NOT EXISTS sluice_migrations (version INTEGER PRIMARY KEY, applied_at VARCHAR(32) NOT NULL)",
  );
  const done = new Set(
    (await db.query("SELECT version FROM sluice_migrations")).map((r) => num(r.version)),
  );
  for (const m of MIGRATIONS) {
    if (done.has(m.version)) continue;
    for (const s of m.statements(d)) {
      try {
        await db.execute(s);
      } catch (err) {
        if (!ALREADY_DONE.test((err as Error).message)) throw err;
      }
    }
    await db.execute(d.insertIgnore("sluice_migrations", ["version", "applied_at"]), [
      m.version,
      now(),
    ]);
  }
}

import { type Dialect, type SqlSource, batchesOf } from "../../sql/source.js";
import { pathKeySql } from "./path-key.js";
import { num } from "./records.js";

/**
 * The ledger's tables, created and upgraded in numbered steps recorded in sluice_migrations.
 * archive_metadata: one row per (table, date) partition; archive_parts: one per object.
 */
interface Migration {
  version: number;
  statements(d: Dialect, t: LedgerTables): readonly string[];
  /**
   * Rows to write after the statements: run once, in the transaction (or batch) that records
   * the version, so that processes migrating at once never write them twice.
   */
  data?(d: Dialect, t: LedgerTables): readonly string[];
}

/** The ledger's tables as SQL names (quoted, with the ledger's schema if it has one). */
export interface LedgerTables {
  meta: string;
  parts: string;
  /** Views per path of each verified part (see archive/rollup.ts). */
  rollups: string;
  /** Views per path of the rows cleanup deleted, per part, written in the delete's transaction. */
  deleted: string;
  /** Archived keys at or under a part's `passed_key` whose line is not a row cleanup deleted. */
  skipped: string;
  migrations: string;
  /** The schema the ledger lives in (SLUICE_LEDGER_SCHEMA), null: the connection's own. */
  schema: string | null;
}

/** The ledger's table names for `schema` (null: unqualified, in the connection's schema). */
export function ledgerTables(d: Dialect, schema: string | null = null): LedgerTables {
  const name = (table: string) => d.quote(schema ? `${schema}.${table}` : table);
  return {
    meta: name("archive_metadata"),
    parts: name("archive_parts"),
    rollups: name("archive_rollups"),
    deleted: name("archive_deleted_rollups"),
    skipped: name("archive_cleanup_skipped"),
    migrations: name("sluice_migrations"),
    schema,
  };
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    statements: (_d, t) => [
      `CREATE TABLE IF NOT EXISTS ${t.meta} (
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
      `CREATE TABLE IF NOT EXISTS ${t.parts} (
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
    statements: (d, t) => [
      `ALTER TABLE ${t.parts} ADD COLUMN chunk_bytes INTEGER`,
      `ALTER TABLE ${t.parts} ADD COLUMN chunk_sha256 TEXT`,
      `ALTER TABLE ${t.parts} ADD COLUMN changed_count BIGINT NOT NULL DEFAULT 0`,
      `ALTER TABLE ${t.parts} ADD COLUMN changed_keys TEXT`,
      `ALTER TABLE ${t.meta} ADD COLUMN pending_object VARCHAR(512)`,
      // MySQL's default collation folds case: tables `Events` and `events` would share rows.
      ...(d.name === "mysql"
        ? [
            `ALTER TABLE ${t.meta} MODIFY source_table VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL`,
            `ALTER TABLE ${t.parts} MODIFY source_table VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL`,
          ]
        : []),
    ],
  },
  {
    version: 3,
    statements: (_d, t) => [
      `ALTER TABLE ${t.meta} ADD COLUMN restored_at VARCHAR(32)`,
      `ALTER TABLE ${t.meta} ADD COLUMN restored_rows BIGINT NOT NULL DEFAULT 0`,
      `ALTER TABLE ${t.meta} ADD COLUMN restored_into VARCHAR(128)`,
    ],
  },
  {
    version: 4,
    // The partition's latest service job as JSON (state, progress, outcome): every worker of
    // the service answers for it, not only the one running it.
    statements: (_d, t) => [`ALTER TABLE ${t.meta} ADD COLUMN job TEXT`],
  },
  {
    version: 5,
    // Per verified part, its rows counted by the stats column, so that the stats of a day stay
    // answerable once its rows left the hot table. `rollup_rows` (the sum of the part's
    // counts) is written in the same transaction as the counts; null: none kept.
    statements: (d, t) => {
      const bin = d.name === "mysql" ? " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" : "";
      return [
        `ALTER TABLE ${t.parts} ADD COLUMN rollup_rows BIGINT`,
        `CREATE TABLE IF NOT EXISTS ${t.rollups} (
          source_table VARCHAR(64)${bin} NOT NULL,
          date VARCHAR(10) NOT NULL,
          part INTEGER NOT NULL,
          path TEXT${bin},
          views BIGINT NOT NULL
        )`,
        `CREATE INDEX ${d.quote("archive_rollups_part")} ON ${t.rollups} (source_table, date, part)`,
      ];
    },
  },
  {
    version: 6,
    // The rows cleanup deleted, counted by the stats column in the delete's own transaction:
    // the stats of a day are its hot rows plus these, so a row counts once whatever became of
    // it (updated and archived again, its key used again). `deleted_rollup_rows` is their sum
    // per part; below `cleaned_count`, some deleted rows are not counted and the day says so.
    // A part cleaned whole before this step deleted exactly the rows its verified rollup
    // counts: those counts are its deleted rows'.
    statements: (d, t) => {
      const bin = d.name === "mysql" ? " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" : "";
      return [
        `ALTER TABLE ${t.parts} ADD COLUMN deleted_rollup_rows BIGINT NOT NULL DEFAULT 0`,
        // path_key (see records.ts pathKey) makes a path's row unique per part, so that a
        // batch adds its counts in one statement; null only where SQL could not compute it.
        `CREATE TABLE IF NOT EXISTS ${t.deleted} (
          source_table VARCHAR(64)${bin} NOT NULL,
          date VARCHAR(10) NOT NULL,
          part INTEGER NOT NULL,
          path TEXT${bin},
          path_key VARCHAR(255)${bin},
          views BIGINT NOT NULL
        )`,
        `CREATE UNIQUE INDEX ${d.quote("archive_deleted_rollups_path")} ON ${t.deleted} (source_table, date, part, path_key)`,
      ];
    },
    data: (d, t) => {
      const date = d.quote("date");
      const whole = "p.cleaned_count = p.event_count AND p.rollup_rows = p.event_count";
      return [
        `INSERT INTO ${t.deleted} (source_table, ${date}, part, path, path_key, views)
         SELECT r.source_table, r.${date}, r.part, r.path, ${pathKeySql(d, "r.path")}, r.views FROM ${t.rollups} r
         JOIN ${t.parts} p ON p.source_table = r.source_table AND p.${date} = r.${date} AND p.part = r.part
         WHERE ${whole}`,
        `UPDATE ${t.parts} SET deleted_rollup_rows = cleaned_count
         WHERE cleaned_count = event_count AND rollup_rows = event_count`,
      ];
    },
  },
  {
    version: 7,
    // Which archived lines are rows cleanup deleted, so that a query over both tiers counts
    // each row once: every line of a part at or under its `passed_key` (the highest key a
    // committed cleanup batch went past) is one, except the keys archive_cleanup_skipped holds
    // (the row was changed and kept, deleted by hand before cleanup came, kept by the
    // database, or restored into the table). A part cleaned before this step that left rows
    // has `skips_known` 0: which of its lines those were, nothing recorded.
    statements: (d, t) => {
      const bin = d.name === "mysql" ? " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" : "";
      return [
        `ALTER TABLE ${t.parts} ADD COLUMN passed_key BIGINT`,
        `ALTER TABLE ${t.parts} ADD COLUMN skips_known INTEGER NOT NULL DEFAULT 1`,
        `CREATE TABLE IF NOT EXISTS ${t.skipped} (
          source_table VARCHAR(64)${bin} NOT NULL,
          date VARCHAR(10) NOT NULL,
          part INTEGER NOT NULL,
          row_key BIGINT NOT NULL,
          PRIMARY KEY (source_table, date, part, row_key)
        )`,
      ];
    },
    data: (_d, t) => [
      `UPDATE ${t.parts} SET passed_key = CASE WHEN cleaned_at IS NULL THEN cleanup_cursor ELSE max_id END
       WHERE cleaned_at IS NOT NULL OR cleanup_cursor IS NOT NULL`,
      `UPDATE ${t.parts} SET skips_known = 0 WHERE passed_key IS NOT NULL AND cleaned_count < event_count`,
    ],
  },
];

/** A migration statement another process already ran (it added the column first). */
const ALREADY_DONE = /duplicate column|duplicate key name|already exists/i;

/**
 * Whether the ledger's tables exist at the latest version, asked without creating anything
 * (what a read-only command may do).
 */
export async function ledgerIsCurrent(db: SqlSource, t: LedgerTables): Promise<boolean> {
  const name = t.schema ? `${t.schema}.sluice_migrations` : "sluice_migrations";
  if (!(await db.tableColumns(name))) return false;
  const done = new Set(
    (await db.query(`SELECT version FROM ${t.migrations}`)).map((r) => num(r.version)),
  );
  return MIGRATIONS.every((m) => done.has(m.version));
}

/** Create or upgrade the ledger tables. Safe to run from several processes at once. */
export async function migrateLedger(
  db: SqlSource,
  t: LedgerTables,
  now: () => string,
): Promise<void> {
  const d = db.dialect;
  if (t.schema) {
    const kind = d.name === "mysql" ? "DATABASE" : "SCHEMA";
    await db.execute(`CREATE ${kind} IF NOT EXISTS ${d.quote(t.schema)}`);
  }
  await db.execute(
    `CREATE TABLE IF NOT EXISTS ${t.migrations} (version INTEGER PRIMARY KEY, applied_at VARCHAR(32) NOT NULL)`,
  );
  const done = new Set(
    (await db.query(`SELECT version FROM ${t.migrations}`)).map((r) => num(r.version)),
  );
  for (const m of MIGRATIONS) {
    if (done.has(m.version)) continue;
    for (const s of m.statements(d, t)) {
      try {
        await db.execute(s);
      } catch (err) {
        if (!ALREADY_DONE.test((err as Error).message)) throw err;
      }
    }
    if (m.data) await migrateData(db, t, m.version, m.data(d, t), now());
    else {
      await db.execute(d.insertIgnore(t.migrations, ["version", "applied_at"]), [m.version, now()]);
    }
  }
}

/**
 * The version's row and its data statements, all or nothing: a process that finds the row
 * already written (another one migrated first) leaves the data as that one wrote it.
 */
async function migrateData(
  db: SqlSource,
  t: LedgerTables,
  version: number,
  data: readonly string[],
  at: string,
): Promise<void> {
  const claim = {
    sql: `INSERT INTO ${t.migrations} (version, applied_at) VALUES (?, ?)`,
    params: [version, at],
  };
  try {
    const batch = batchesOf(db);
    if (batch) await batch([claim, ...data.map((sql) => ({ sql }))]);
    else {
      await db.transaction(async (tx) => {
        await tx.execute(claim.sql, claim.params);
        for (const sql of data) await tx.execute(sql);
      });
    }
  } catch (err) {
    const [done] = await db.query(`SELECT version FROM ${t.migrations} WHERE version = ?`, [
      version,
    ]);
    if (!done) throw err;
  }
}

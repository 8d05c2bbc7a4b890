import { BadInputError } from "../../core/errors.js";
import { insertRows } from "../../core/sql/insert.js";
import type { SqlSource } from "../../core/sql/source.js";
import { MES_COLUMNS, MES_KEY, MES_TABLES, type MesTable } from "../../core/trace/tables.js";
import { MES_ROWS_PER_LOT, mesLots } from "./factory.js";
import { generateMesFactory } from "./generate.js";
import { mesSchema } from "./schema.js";

/** Scale 1: ~70K lots, ~2.6M rows (the largest factory the trace is built for); the CLI takes (0, 10]. */
export const MES_MAX_SCALE = 10;

export interface MesPrepareOptions {
  /** 1: ~70K lots, ~525K moves, ~114K containers, ~1M rows per event domain. */
  scale: number;
  /**
   * Drop the four MES tables first, if they exist, and generate them again. Without it, tables
   * that already hold rows are refused (so that a real MES table is never written into).
   */
  replace?: boolean;
  /** Rows inserted so far, of an estimated total (the total is exact on the last call). */
  onProgress?: (inserted: number, total: number) => void;
}

/** What prepareMesData wrote: rows per table, and the factory's lots and containers. */
export interface MesSummary {
  scale: number;
  lots: number;
  containers: number;
  lot_moves: number;
  container_lineage: number;
  upstream_history: number;
  defect_records: number;
  /** All rows of the four tables. */
  rows: number;
}

/** Throw a BadInputError unless `scale` is a number in (0, MES_MAX_SCALE]. */
export function checkMesScale(scale: unknown): number {
  if (typeof scale !== "number" || !Number.isFinite(scale) || scale <= 0 || scale > MES_MAX_SCALE) {
    throw new BadInputError(
      `MES scale ${String(scale)} must be a number greater than 0 and at most ${MES_MAX_SCALE} (1 = 70K lots)`,
    );
  }
  return scale;
}

/**
 * Create the four MES tables and their indexes if they are missing (WAL on SQLite); with
 * `replace`, drop them first. Refuses tables that exist with other columns.
 */
export async function ensureMesTables(
  source: SqlSource,
  options: { replace?: boolean } = {},
): Promise<void> {
  const q = source.dialect.quote;
  if (source.dialect.name === "sqlite") await source.execute("PRAGMA journal_mode = WAL");
  if (options.replace) {
    for (const t of MES_TABLES) await source.execute(`DROP TABLE IF EXISTS ${q(t)}`);
  }
  for (const stmt of mesSchema(source.dialect)) {
    try {
      await source.execute(stmt);
    } catch (err) {
      // MySQL has no CREATE INDEX IF NOT EXISTS; an existing index is what we wanted.
      if (!/Duplicate key name/i.test((err as Error).message)) throw err;
    }
  }
  for (const t of MES_TABLES) {
    const have = (await source.tableColumns(t)) ?? [];
    const missing = [MES_KEY, ...MES_COLUMNS[t]].filter((c) => !have.includes(c));
    if (missing.length > 0) {
      throw new BadInputError(
        `table ${t} exists without the MES columns ${missing.join(", ")} (it has ${have.join(", ")}): drop it or use another database`,
      );
    }
  }
}

/**
 * Create the MES trace tables and fill them with a generated factory at `scale` (see
 * generate.ts): the same scale gives the same rows, ids included, every time. Rows go in with
 * multi-row INSERTs, one transaction per batch of lots (a few thousand rows), so a run that is
 * killed leaves whole batches; run it again with `replace` to start over.
 */
export async function prepareMesData(
  source: SqlSource,
  options: MesPrepareOptions,
): Promise<MesSummary> {
  const scale = checkMesScale(options.scale);
  await ensureMesTables(source, { replace: options.replace });
  if (!options.replace) {
    for (const t of MES_TABLES) {
      const rows = await source.query(`SELECT 1 AS x FROM ${source.dialect.quote(t)} LIMIT 1`);
      if (rows.length > 0) {
        throw new BadInputError(
          `table ${t} already holds rows; MES data goes into empty tables only: pass --replace (option replace) to drop the four MES tables and generate them again`,
        );
      }
    }
  }
  const summary: MesSummary = {
    scale,
    lots: 0,
    containers: 0,
    lot_moves: 0,
    container_lineage: 0,
    upstream_history: 0,
    defect_records: 0,
    rows: 0,
  };
  const estimate = Math.round(mesLots(scale) * MES_ROWS_PER_LOT);
  for (const batch of generateMesFactory(scale)) {
    const counts = await source.transaction(async (tx) => {
      const n: Partial<Record<MesTable, number>> = {};
      for (const t of MES_TABLES) n[t] = await insertRows(tx, t, MES_COLUMNS[t], batch[t]);
      return n;
    });
    for (const t of MES_TABLES) {
      summary[t] += counts[t] ?? 0;
      summary.rows += counts[t] ?? 0;
    }
    summary.lots += batch.lots;
    summary.containers += batch.containers;
    options.onProgress?.(summary.rows, Math.max(estimate, summary.rows));
  }
  options.onProgress?.(summary.rows, summary.rows);
  // A freshly loaded PostgreSQL table has no statistics; the trace stages read these next.
  for (const t of MES_TABLES) await source.pages.analyze(t);
  return summary;
}

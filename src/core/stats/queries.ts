import type { PartitionSpec } from "../archive/partition.js";
import { nextDay } from "../dates.js";
import { type Dialect, toCount } from "../sql/source.js";
import type { StatsQuery } from "./admission.js";

/** Where a day's answer came from: rows in the hot table, rollups of its archive, or both. */
export type Tier = "hot" | "archive" | "both";

/** Which days of a range an answer covers, and from where; every day of the range is in one list. */
export interface Coverage {
  /** Days with rows in the hot table (and no verified archive). */
  hot: string[];
  /** Days answered from the rollups of their verified archive only. */
  archive: string[];
  /** Days answered from both: archived, and rows (late, or not yet deleted) in the hot table. */
  both: string[];
  /** Days with archived rows deleted from the hot table and no rollup kept: not in the answer. */
  unanswered: string[];
  /** Days with no rows anywhere. */
  missing: string[];
}

/** The stats the API answers, across the hot table and the archive's rollups. */
export interface StatsReader {
  /** Views per path over the days `from..to`, most viewed first, and where each day came from. */
  topPaths(
    from: string,
    to: string,
    limit: number,
    signal?: AbortSignal,
  ): Promise<{ paths: { path: unknown; views: number }[]; coverage: Coverage }>;
  /** Views of one path per day over `from..to`, each day with its tier. */
  pathDaily(
    path: string,
    from: string,
    to: string,
    signal?: AbortSignal,
  ): Promise<{ date: string; views: number; tier: Tier }[]>;
}

/** The ledger's tables (SQL names) where the archive's rollups are kept. */
export interface RollupTables {
  parts: string;
  rollups: string;
}

/**
 * The stats of `spec`'s table, whose views are counted by `pathColumn` (checked identifier).
 * With `rollups`, a day is the hot rows no verified part holds plus the verified parts'
 * rollups, read in one statement (one snapshot), so that a day being cleaned is counted once:
 * a row leaves the hot count exactly when it is in a verified part, whose rollup counts it.
 */
export function statsReader(
  query: StatsQuery,
  dialect: Dialect,
  spec: PartitionSpec,
  pathColumn = "path",
  rollups: RollupTables | null = null,
  /** For the coverage's small reads (index probes, the ledger): not admitted one by one. */
  probe: StatsQuery = query,
): StatsReader {
  const q = dialect.quote;
  const text = (expr: string) => dialect.asText?.(expr) ?? expr;
  const table = q(spec.table);
  const day = `h.${q(spec.partitionColumn)}`;
  const key = `h.${q(spec.keyColumn)}`;
  const counted = `h.${q(pathColumn)}`;
  const date = q("date");
  // A verified part with its rollup: its rows are counted from the rollup, never from the table.
  const rolled = "p.verified_at IS NOT NULL AND p.rollup_rows IS NOT NULL";
  const notHeld = rollups
    ? ` AND NOT EXISTS (SELECT 1 FROM ${rollups.parts} p WHERE p.source_table = ? AND p.${date} = ${text(day)} AND ${rolled} AND ${key} BETWEEN p.min_id AND p.max_id)`
    : "";
  const heldParams = rollups ? [spec.table] : [];
  const fromRollups = (select: string, where: string, groupBy: string) =>
    rollups
      ? ` UNION ALL SELECT ${select} FROM ${rollups.rollups} r JOIN ${rollups.parts} p
            ON p.source_table = r.source_table AND p.${date} = r.${date} AND p.part = r.part
          WHERE r.source_table = ? AND r.${date} BETWEEN ? AND ? AND ${rolled}${where} GROUP BY ${groupBy}`
      : "";

  /** Days of `from..to` with rows in the hot table: one MIN probe per day, by index. */
  async function hotDays(from: string, to: string, signal?: AbortSignal): Promise<Set<string>> {
    const col = q(spec.partitionColumn);
    const min = text(`MIN(${col})`);
    const days = new Set<string>();
    let sql = `SELECT ${min} AS d FROM ${table} WHERE ${col} >= ? AND ${col} <= ?`;
    let after = from;
    for (;;) {
      const [row] = await probe(sql, [after, to], signal);
      if (row?.d === null || row?.d === undefined) return days;
      after = String(row.d);
      days.add(after);
      sql = `SELECT ${min} AS d FROM ${table} WHERE ${col} > ? AND ${col} <= ?`;
    }
  }

  async function archiveDays(from: string, to: string, signal?: AbortSignal) {
    const answered = new Set<string>();
    const unanswered = new Set<string>();
    if (!rollups) return { answered, unanswered };
    const rows = await probe(
      `SELECT ${date} AS d, MAX(CASE WHEN verified_at IS NOT NULL AND rollup_rows IS NOT NULL THEN 1 ELSE 0 END) AS rolled,
              SUM(CASE WHEN rollup_rows IS NULL AND (cleaned_count > 0 OR cleaned_at IS NOT NULL) THEN 1 ELSE 0 END) AS lost
       FROM ${rollups.parts} WHERE source_table = ? AND ${date} BETWEEN ? AND ? GROUP BY ${date}`,
      [spec.table, from, to],
      signal,
    );
    for (const r of rows) {
      // A part with its rollup answers for its rows; one without, whose rows were deleted,
      // leaves them out of the answer. A part not yet verified has all its rows still hot.
      if (toCount(r.lost) > 0) unanswered.add(String(r.d));
      else if (toCount(r.rolled) === 1) answered.add(String(r.d));
    }
    return { answered, unanswered };
  }

  return {
    async topPaths(from, to, limit, signal) {
      const rows = await query(
        `SELECT path, SUM(views) AS views FROM (
           SELECT ${text(counted)} AS path, COUNT(*) AS views FROM ${table} h
           WHERE ${day} BETWEEN ? AND ?${notHeld} GROUP BY ${counted}
           ${fromRollups("r.path AS path, SUM(r.views) AS views", "", "r.path")}
         ) t GROUP BY path ORDER BY views DESC, path LIMIT ?`,
        [from, to, ...heldParams, ...(rollups ? [spec.table, from, to] : []), limit],
        signal,
      );
      const paths = rows.map((r) => ({ path: r.path, views: toCount(r.views) }));
      const [hot, archived] = await Promise.all([
        hotDays(from, to, signal),
        archiveDays(from, to, signal),
      ]);
      return { paths, coverage: coverageOf(from, to, hot, archived) };
    },
    async pathDaily(path, from, to, signal) {
      const rows = await query(
        `SELECT d, tier, SUM(views) AS views FROM (
           SELECT ${text(day)} AS d, 'hot' AS tier, COUNT(*) AS views FROM ${table} h
           WHERE ${day} BETWEEN ? AND ? AND ${counted} = ?${notHeld} GROUP BY ${day}
           ${fromRollups(`r.${date} AS d, 'archive' AS tier, SUM(r.views) AS views`, " AND r.path = ?", `r.${date}`)}
         ) t GROUP BY d, tier ORDER BY d`,
        [from, to, path, ...heldParams, ...(rollups ? [spec.table, from, to, path] : [])],
        signal,
      );
      const days = new Map<string, { date: string; views: number; tier: Tier }>();
      for (const r of rows) {
        const d = String(r.d);
        const tier = String(r.tier) as "hot" | "archive";
        const seen = days.get(d);
        if (seen) {
          seen.views += toCount(r.views);
          seen.tier = "both";
        } else days.set(d, { date: d, views: toCount(r.views), tier });
      }
      return [...days.values()];
    },
  };
}

/** Every day of `from..to` in exactly one list of the coverage. */
function coverageOf(
  from: string,
  to: string,
  hot: Set<string>,
  archived: { answered: Set<string>; unanswered: Set<string> },
): Coverage {
  const c: Coverage = { hot: [], archive: [], both: [], unanswered: [], missing: [] };
  for (let d = from; d <= to; d = nextDay(d)) {
    if (archived.unanswered.has(d)) c.unanswered.push(d);
    else if (archived.answered.has(d)) (hot.has(d) ? c.both : c.archive).push(d);
    else (hot.has(d) ? c.hot : c.missing).push(d);
  }
  return c;
}

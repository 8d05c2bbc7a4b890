import type { PartitionSpec } from "../archive/partition.js";
import { nextDay } from "../dates.js";
import { type Dialect, toCount } from "../sql/source.js";
import type { StatsQuery } from "./admission.js";

/** Where a day's answer came from: rows in the hot table, counts of its deleted rows, or both. */
export type Tier = "hot" | "archive" | "both";

/** Which days of a range an answer covers, and from where; every day of the range is in one list. */
export interface Coverage {
  /** Days answered from rows in the hot table only (archived or not, none deleted yet). */
  hot: string[];
  /** Days whose rows cleanup deleted, answered from the counts kept as it deleted them. */
  archive: string[];
  /** Days answered from both: rows deleted and counted, and rows (late, or not yet deleted) hot. */
  both: string[];
  /** Days with rows deleted from the hot table and not counted (rollups off): not in the answer. */
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

/** The ledger's tables (SQL names) that the stats read: the parts and their deleted rows' counts. */
export interface RollupTables {
  parts: string;
  deleted: string;
  /**
   * Whether the deleted rows were counted by this reader's path column. False: the answer is
   * the hot rows only, and a day with rows deleted says it is unanswered.
   */
  counted: boolean;
}

/**
 * The stats of `spec`'s table, whose views are counted by `pathColumn` (checked identifier).
 * With `rollups`, a day is every hot row plus the counts of the rows cleanup deleted (written
 * in each delete's own transaction), read in one statement (one snapshot): what the table
 * would answer had cleanup deleted nothing. A row counts once whatever became of it: updated
 * and archived again, deleted half-way through a cleanup, or its key used again.
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
  const counted = `h.${q(pathColumn)}`;
  const date = q("date");
  const fromDeleted = (select: string, where: string, groupBy: string) =>
    rollups?.counted
      ? ` UNION ALL SELECT ${select} FROM ${rollups.deleted} r
          WHERE r.source_table = ? AND r.${date} BETWEEN ? AND ?${where} GROUP BY ${groupBy}`
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
      `SELECT ${date} AS d, SUM(deleted_rollup_rows) AS rolled,
              SUM(CASE WHEN cleaned_count > ${rollups.counted ? "deleted_rollup_rows" : "0"} THEN 1 ELSE 0 END) AS lost
       FROM ${rollups.parts} WHERE source_table = ? AND ${date} BETWEEN ? AND ? GROUP BY ${date}`,
      [spec.table, from, to],
      signal,
    );
    for (const r of rows) {
      // Rows deleted and counted answer for themselves; rows deleted uncounted (cleaned with
      // rollups off, or before they were kept) leave the day's answer short, and it says so.
      if (toCount(r.lost) > 0) unanswered.add(String(r.d));
      else if (toCount(r.rolled) > 0) answered.add(String(r.d));
    }
    return { answered, unanswered };
  }

  return {
    async topPaths(from, to, limit, signal) {
      const rows = await query(
        `SELECT path, SUM(views) AS views FROM (
           SELECT ${text(counted)} AS path, COUNT(*) AS views FROM ${table} h
           WHERE ${day} BETWEEN ? AND ? GROUP BY ${counted}
           ${fromDeleted("r.path AS path, SUM(r.views) AS views", "", "r.path")}
         ) t GROUP BY path ORDER BY views DESC, path LIMIT ?`,
        [from, to, ...(rollups?.counted ? [spec.table, from, to] : []), limit],
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
           WHERE ${day} BETWEEN ? AND ? AND ${counted} = ? GROUP BY ${day}
           ${fromDeleted(`r.${date} AS d, 'archive' AS tier, SUM(r.views) AS views`, " AND r.path = ?", `r.${date}`)}
         ) t GROUP BY d, tier ORDER BY d`,
        [from, to, path, ...(rollups?.counted ? [spec.table, from, to, path] : [])],
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

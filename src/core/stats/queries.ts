import type { PartitionSpec } from "../archive/partition.js";
import { type Dialect, toCount } from "../sql/source.js";
import type { StatsQuery } from "./admission.js";

/** The stats the API answers from the hot table: what they ask of it, and how. */
export interface StatsReader {
  /** Views per path over the days `from..to`, most viewed first. */
  topPaths(
    from: string,
    to: string,
    limit: number,
    signal?: AbortSignal,
  ): Promise<{ path: unknown; views: number }[]>;
  /** Views of one path per day over `from..to`. */
  pathDaily(
    path: string,
    from: string,
    to: string,
    signal?: AbortSignal,
  ): Promise<{ date: string; views: number }[]>;
}

/** The stats of `spec`'s table, whose views are counted by `pathColumn` (checked identifier). */
export function statsReader(
  query: StatsQuery,
  dialect: Dialect,
  spec: PartitionSpec,
  pathColumn = "path",
): StatsReader {
  const q = dialect.quote;
  const table = q(spec.table);
  const day = q(spec.partitionColumn);
  const counted = q(pathColumn);
  return {
    async topPaths(from, to, limit, signal) {
      const rows = await query(
        `SELECT ${counted} AS path, COUNT(*) AS views FROM ${table} WHERE ${day} BETWEEN ? AND ?
         GROUP BY ${counted} ORDER BY views DESC, ${counted} LIMIT ?`,
        [from, to, limit],
        signal,
      );
      return rows.map((r) => ({ path: r.path, views: toCount(r.views) }));
    },
    async pathDaily(path, from, to, signal) {
      const rows = await query(
        `SELECT ${day} AS d, COUNT(*) AS views FROM ${table}
         WHERE ${day} BETWEEN ? AND ? AND ${counted} = ? GROUP BY ${day} ORDER BY ${day}`,
        [from, to, path],
        signal,
      );
      return rows.map((r) => ({ date: String(r.d), views: toCount(r.views) }));
    },
  };
}

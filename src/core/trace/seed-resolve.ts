import { nextDay, parseDateField } from "../dates.js";
import { BadInputError } from "../errors.js";
import type { SqlSource } from "../sql/source.js";
import { idBatches, placeholders, readSqlStreaming } from "./readers.js";

/** Seed lots by id, or every lot that left a station within a date range (inclusive). */
export type SeedFilter = { lotIds: string[] } | { workcenter: string; from: string; to: string };

export interface Seeds {
  lots: string[];
  containers: string[];
  /** lot_moves rows read to find them. */
  moves: number;
}

/** A lot, container or station id: what the site uses, and nothing that could be SQL. */
export const MES_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Check a request's filter; a bad one is a BadInputError that says what to fix. */
export function checkSeedFilter(input: unknown, maxLots = 100_000): SeedFilter {
  const f = input as Record<string, unknown> | null;
  if (f && Array.isArray(f.lotIds)) {
    if (f.lotIds.length === 0 || f.lotIds.length > maxLots) {
      throw new BadInputError(`lotIds must hold 1 to ${maxLots} lot ids`);
    }
    for (const [i, id] of f.lotIds.entries()) {
      if (typeof id !== "string" || !MES_ID.test(id)) {
        throw new BadInputError(`lotIds[${i}] is not a lot id (letters, digits, _.:-; 1-64)`);
      }
    }
    return { lotIds: f.lotIds as string[] };
  }
  if (f && typeof f.workcenter === "string") {
    if (!MES_ID.test(f.workcenter)) throw new BadInputError("workcenter is not a station name");
    const from = parseDateField("filter.from", f.from);
    const to = parseDateField("filter.to", f.to);
    if (from > to) throw new BadInputError(`from ${from} is after to ${to}`);
    return { workcenter: f.workcenter, from, to };
  }
  throw new BadInputError(
    'filter must be {"lotIds": [...]} or {"workcenter": "TMTT", "from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}',
  );
}

/**
 * Stage 1: the lots and containers of `lot_moves` rows matching the filter, read as a stream
 * (a two-week station filter: 525K rows -> 70K lots); holds only the distinct ids.
 */
export async function resolveSeeds(
  source: SqlSource,
  filter: SeedFilter,
  options: { fetchSize?: number; signal?: AbortSignal } = {},
): Promise<Seeds> {
  const q = source.dialect.quote;
  const lots = new Set<string>();
  const containers = new Set<string>();
  let moves = 0;
  const select = `SELECT ${q("LOTID")} AS l, ${q("CONTAINERID")} AS c FROM ${q("lot_moves")}`;
  const read = async (sql: string, params: unknown[]) => {
    for await (const batch of readSqlStreaming(source, sql, params, {
      batchSize: options.fetchSize,
      signal: options.signal,
    })) {
      moves += batch.length;
      for (const row of batch) {
        lots.add(String(row.l));
        containers.add(String(row.c));
      }
    }
  };
  if ("lotIds" in filter) {
    for (const ids of idBatches(filter.lotIds)) {
      await read(`${select} WHERE ${q("LOTID")} IN (${placeholders(ids.length)})`, ids);
    }
  } else {
    // TRACKOUT_TS is ISO-8601 text: the day after `to` bounds the range from above. After
    // the last day of year 9999 (there is no YYYY-MM-DD day after it) "9999-12-32" does: it
    // sorts after every timestamp of 9999-12-31, in any collation (digits only differ).
    const end = filter.to === "9999-12-31" ? "9999-12-32" : nextDay(filter.to);
    await read(
      `${select} WHERE ${q("WORKCENTER")} = ? AND ${q("TRACKOUT_TS")} >= ? AND ${q("TRACKOUT_TS")} < ?`,
      [filter.workcenter, filter.from, end],
    );
  }
  return { lots: [...lots], containers: [...containers], moves };
}

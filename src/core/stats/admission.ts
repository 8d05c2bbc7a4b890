import { BusyError } from "../errors.js";
import { Semaphore } from "../semaphore.js";
import type { Row } from "../sql/source.js";

/** A read for the HTTP API's stats; `signal`: the client went away, drop it if still waiting. */
export type StatsQuery = (
  sql: string,
  params: readonly unknown[],
  signal?: AbortSignal,
) => Promise<Row[]>;

export interface Admission {
  /** Queries running at once. */
  concurrent: number;
  /** Queries waiting for one of those slots; one more is refused with BusyError. */
  maxQueued: number;
  /** What a refusal says the client may wait before trying again. */
  retryAfterSeconds: number;
}

/**
 * `query` with at most `concurrent` calls running and `maxQueued` waiting. A call beyond that
 * is refused at once (BusyError: 503 + Retry-After), so that a burst of expensive reads from
 * anyone cannot build a queue without end in front of the database.
 */
export function admitQueries(query: StatsQuery, o: Admission): StatsQuery {
  const slots = new Semaphore(o.concurrent, {
    maxQueued: o.maxQueued,
    refuse: () =>
      new BusyError(
        `${o.concurrent} stats queries running and ${o.maxQueued} waiting (STATS_MAX_CONCURRENT, STATS_MAX_QUEUED); try again in ${o.retryAfterSeconds} s`,
        o.retryAfterSeconds,
      ),
  });
  return async (sql, params, signal) => {
    const release = await slots.acquire(signal);
    try {
      return await query(sql, params, signal);
    } finally {
      release();
    }
  };
}

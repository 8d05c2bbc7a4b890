import type { Row, SqlSource } from "../source.js";
import { idBatches, placeholders, readSqlStreaming } from "./readers.js";

/** The event domains and the columns the trace API returns for each (DOMAINS.md). */
export const EVENT_DOMAINS = {
  upstream_history: [
    "CONTAINERID",
    "WORKCENTER",
    "EQUIPMENT",
    "SPEC",
    "TRACKIN_TS",
    "TRACKOUT_TS",
    "QTY",
    "OPERATOR",
  ],
  defect_records: ["CONTAINERID", "WORKCENTER", "EQUIPMENT", "REASON_CODE", "DEFECT_QTY", "TS"],
} as const;

export type EventDomain = keyof typeof EVENT_DOMAINS;

export function isEventDomain(name: unknown): name is EventDomain {
  return typeof name === "string" && Object.hasOwn(EVENT_DOMAINS, name);
}

export interface EventOptions {
  /** Ids per IN-list (Oracle: at most 1000). */
  idsPerStatement?: number;
  /** Statements in flight at once for this domain (the seed's two workers). */
  workers?: number;
  /** Rows per fetch: DB_SLOW_FETCHMANY_SIZE. */
  fetchSize?: number;
  signal?: AbortSignal;
}

/**
 * Stage 3 for one domain: its rows for `cids`, as batches, grouped by CONTAINERID. Ids go
 * in IN-lists of `idsPerStatement`, each statement ordered by CONTAINERID, so a container's
 * rows come together. `workers` statements run at once; the next ones' rows wait in order
 * behind the one being written. Memory: `workers` id-batches' rows, whatever the total.
 */
export async function* domainEvents(
  source: SqlSource,
  domain: EventDomain,
  cids: readonly string[],
  options: EventOptions = {},
): AsyncGenerator<Row[]> {
  const q = source.dialect.quote;
  const columns = EVENT_DOMAINS[domain].map(q).join(", ");
  const workers = Math.max(1, options.workers ?? 2);
  const stop = new AbortController();
  const onAbort = () => stop.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const batches = idBatches(cids, options.idsPerStatement ?? 1000);
  const fetchOne = async (ids: string[]): Promise<Row[][]> => {
    const chunks: Row[][] = [];
    const sql = `SELECT ${columns} FROM ${q(domain)} WHERE ${q("CONTAINERID")} IN (${placeholders(ids.length)}) ORDER BY ${q("CONTAINERID")}, ${q("ID")}`;
    for await (const chunk of readSqlStreaming(source, sql, ids, {
      batchSize: options.fetchSize,
      signal: stop.signal,
    })) {
      chunks.push(chunk);
    }
    return chunks;
  };
  const inFlight: Promise<Row[][]>[] = [];
  const fill = () => {
    while (inFlight.length < workers) {
      const next = batches.next();
      if (next.done) return;
      const p = fetchOne(next.value);
      // Awaited in turn below; until then a failure must not count as unhandled.
      p.catch(() => undefined);
      inFlight.push(p);
    }
  };
  try {
    fill();
    while (inFlight.length > 0) {
      const chunks = await (inFlight.shift() as Promise<Row[][]>);
      fill();
      for (const chunk of chunks) {
        if (chunk.length > 0) yield chunk;
      }
    }
  } finally {
    // A consumer that stopped early (client gone) stops the statements still running.
    stop.abort();
    options.signal?.removeEventListener("abort", onAbort);
  }
}

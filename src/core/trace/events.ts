import { type CopyColumn, CopyTextRows } from "../json/copy-text.js";
import { JsonRows, type RowBatch, rowsOf } from "../json/json-rows.js";
import type { RowPacer } from "../pacer.js";
import { DEFAULT_FETCH_SIZE, type Row, type SqlSource } from "../sql/source.js";
import { idBatches, placeholders, readSqlStreaming } from "./readers.js";
import { DEFECT_RECORDS_COLUMNS, UPSTREAM_HISTORY_COLUMNS } from "./tables.js";

/** The event domains and the columns the trace API returns for each (README, "The MES tables"). */
export const EVENT_DOMAINS = {
  upstream_history: UPSTREAM_HISTORY_COLUMNS,
  defect_records: DEFECT_RECORDS_COLUMNS,
} as const;

export type EventDomain = keyof typeof EVENT_DOMAINS;

/**
 * The fields of an event row read as values where rows come as JSON (the COPY path): what the
 * grouping below and MsdPareto.add read. The rest of a row is only written out.
 */
const KEPT: { readonly [D in EventDomain]: readonly string[] } = {
  upstream_history: ["CONTAINERID", "WORKCENTER", "EQUIPMENT"],
  defect_records: ["CONTAINERID", "DEFECT_QTY"],
};

export function isEventDomain(name: unknown): name is EventDomain {
  return typeof name === "string" && Object.hasOwn(EVENT_DOMAINS, name);
}

export interface EventOptions {
  /** Ids per IN-list (Oracle: at most 1000). */
  idsPerStatement?: number;
  /** Statements in flight at once for this domain (two by default). */
  workers?: number;
  /** Rows per fetch: DB_SLOW_FETCHMANY_SIZE. */
  fetchSize?: number;
  signal?: AbortSignal;
  /** Told of every batch read: collects garbage on long streams (one per process). */
  gc?: RowPacer;
}

/**
 * One statement read ahead by at most `ahead` chunks: its cursor waits (backpressure) until
 * the consumer takes one. Rows then live briefly and die young, instead of a whole
 * statement's rows surviving into V8's old generation and raising RSS with the request.
 */
class Fetcher {
  private readonly chunks: RowBatch[] = [];
  private done = false;
  private error: { err: unknown } | null = null;
  private wake: (() => void) | null = null;
  private resume: (() => void) | null = null;
  private closed = false;
  /** Resolves once the statement has stopped and its connection is given back. */
  readonly finished: Promise<void>;

  constructor(
    rows: AsyncIterable<RowBatch>,
    private readonly ahead = 2,
  ) {
    this.finished = this.run(rows);
  }

  private async run(rows: AsyncIterable<RowBatch>): Promise<void> {
    try {
      for await (const chunk of rows) {
        this.chunks.push(chunk);
        this.signal();
        while (this.chunks.length >= this.ahead && !this.closed) {
          await new Promise<void>((r) => {
            this.resume = r;
          });
        }
        // Leaving the loop returns the statement's iterator: its cursor closes.
        if (this.closed) break;
      }
    } catch (err) {
      this.error = { err };
    } finally {
      this.done = true;
      this.signal();
    }
  }

  private signal(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Stop reading: a waiting statement is closed rather than left open behind backpressure. */
  close(): void {
    this.closed = true;
    this.chunks.length = 0;
    const r = this.resume;
    this.resume = null;
    r?.();
  }

  /** The next chunk, or null at the end; throws what the statement threw. */
  async next(): Promise<RowBatch | null> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) {
        const r = this.resume;
        this.resume = null;
        r?.();
        return chunk;
      }
      if (this.error) throw this.error.err;
      if (this.done) return null;
      await new Promise<void>((r) => {
        this.wake = r;
      });
    }
  }
}

/**
 * Stage 3 for one domain: its rows for `cids`, as batches, grouped by CONTAINERID. Ids go
 * in IN-lists of `idsPerStatement`, each statement ordered by CONTAINERID, so a container's
 * rows come together. `workers` statements are open at once and are read in turn, switching
 * only where a container ends, each read at most two fetches ahead: memory is about
 * workers x 3 x fetchSize rows, whatever the total, and no row waits for a whole statement
 * to drain (rows that wait that long outlive V8's young generation and raise RSS).
 */
export async function* domainEvents(
  source: SqlSource,
  domain: EventDomain,
  cids: Iterable<string>,
  options: EventOptions = {},
): AsyncGenerator<RowBatch> {
  const q = source.dialect.quote;
  const columns = EVENT_DOMAINS[domain].map(q).join(", ");
  const copy = await copyColumns(source, domain);
  const pace = (batch: RowBatch) => {
    options.gc?.count(batch.length);
    if (batch instanceof JsonRows) options.gc?.bytes?.(batch.text.byteLength);
  };
  const workers = Math.max(1, options.workers ?? 2);
  const stop = new AbortController();
  const onAbort = () => stop.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const batches = idBatches(cids, options.idsPerStatement ?? 1000);
  const sqlFor = (n: number) =>
    `SELECT ${columns} FROM ${q(domain)} WHERE ${q("CONTAINERID")} IN (${placeholders(n)}) ORDER BY ${q("CONTAINERID")}, ${q("ID")}`;
  /** A statement, and the rows of its next containers already fetched. */
  const inFlight: { fetcher: Fetcher; pending: RowBatch | null }[] = [];
  const fill = () => {
    while (inFlight.length < workers) {
      const next = batches.next();
      if (next.done) return;
      const sql = sqlFor(next.value.length);
      const rows = copy
        ? copyBatches(source, sql, next.value, copy, options.fetchSize, stop.signal)
        : readSqlStreaming(source, sql, next.value, {
            batchSize: options.fetchSize,
            signal: stop.signal,
          });
      inFlight.push({ fetcher: new Fetcher(rows), pending: null });
    }
  };
  try {
    fill();
    for (let turn = 0; inFlight.length > 0; ) {
      const s = inFlight[turn] as (typeof inFlight)[number];
      let batch = s.pending ?? (await s.fetcher.next());
      s.pending = null;
      // One batch, then the rows of its last container that the next fetch holds; the rest
      // waits for this statement's next turn.
      let last: string | null = null;
      while (batch !== null) {
        if (batch.length > 0) {
          pace(batch);
          yield batch;
          last = String((rowsOf(batch)[batch.length - 1] as Row).CONTAINERID);
        }
        const after = await s.fetcher.next();
        if (after === null) {
          batch = null;
          break;
        }
        let cut = 0;
        const rows = rowsOf(after);
        while (cut < after.length && String((rows[cut] as Row).CONTAINERID) === last) cut++;
        if (cut < after.length) {
          s.pending = cut === 0 ? after : after.slice(cut);
          batch = cut === 0 ? null : after.slice(0, cut);
          if (batch) {
            pace(batch);
            yield batch;
          }
          break;
        }
        batch = after;
      }
      if (s.pending === null) {
        inFlight.splice(turn, 1);
        fill();
        // A statement replaced at the end of the list keeps the turns in order.
        if (turn >= inFlight.length) turn = 0;
      } else {
        turn = (turn + 1) % inFlight.length;
      }
    }
  } finally {
    // A consumer that stopped early (client gone) stops the statements still running,
    // and closes those waiting for it; it goes on only once they have stopped (whoever
    // holds a database slot for them gives it back then).
    stop.abort();
    for (const s of inFlight) s.fetcher.close();
    options.signal?.removeEventListener("abort", onAbort);
    await Promise.all(inFlight.map((s) => s.fetcher.finished));
  }
}

/**
 * The domain's columns as a COPY reads them, where the source has COPY and the dialect writes
 * every one of them exactly as JSON; else null (rows are read as values and written in JS).
 */
async function copyColumns(source: SqlSource, domain: EventDomain): Promise<CopyColumn[] | null> {
  const kind = source.dialect.copyKind;
  if (!source.copyText || !kind) return null;
  const types = new Map((await source.columnInfo(domain))?.map((c) => [c.name, c.type]) ?? []);
  const columns: CopyColumn[] = [];
  for (const name of EVENT_DOMAINS[domain]) {
    const type = types.get(name);
    const k = type === undefined ? undefined : kind(type);
    if (!k) return null;
    columns.push({ name, kind: k, keep: KEPT[domain].includes(name) });
  }
  return columns;
}

/** A statement's rows through COPY, as JSON, in batches of at most `size` rows. */
async function* copyBatches(
  source: SqlSource,
  sql: string,
  params: readonly unknown[],
  columns: readonly CopyColumn[],
  size = DEFAULT_FETCH_SIZE,
  signal?: AbortSignal,
): AsyncGenerator<JsonRows> {
  const copyText = source.copyText as NonNullable<SqlSource["copyText"]>;
  const rows = new CopyTextRows(columns);
  const pieces = function* (batch: JsonRows) {
    for (let at = 0; at < batch.length; at += size) yield batch.slice(at, at + size);
  };
  for await (const chunk of copyText.call(source, sql, params, { signal })) {
    rows.push(chunk);
    if (rows.rows >= size) yield* pieces(rows.take());
  }
  rows.end();
  if (rows.rows > 0) yield* pieces(rows.take());
}

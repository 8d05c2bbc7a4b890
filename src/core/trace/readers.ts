import { BadInputError } from "../errors.js";
import { DEFAULT_FETCH_SIZE, type Row, type SqlSource } from "../sql/source.js";

/**
 * Two readers. The streaming one reads batches of DB_SLOW_FETCHMANY_SIZE rows, never the whole
 * result (what `read_sql_df_slow_iter` did in the trace service this replaces). The
 * materialising one is for results known to be small; it refuses to grow past `maxRows`
 * instead of taking the process down.
 */
export function readSqlStreaming(
  source: SqlSource,
  sql: string,
  params: readonly unknown[] = [],
  options: { batchSize?: number; signal?: AbortSignal } = {},
): AsyncIterable<Row[]> {
  return source.stream(sql, params, {
    batchSize: options.batchSize ?? DEFAULT_FETCH_SIZE,
    signal: options.signal,
  });
}

/** Read a small result whole; throws BadInputError beyond `maxRows` (default 100,000). */
export async function readSqlMaterialised(
  source: SqlSource,
  sql: string,
  params: readonly unknown[] = [],
  options: { maxRows?: number; signal?: AbortSignal } = {},
): Promise<Row[]> {
  const max = options.maxRows ?? 100_000;
  const rows: Row[] = [];
  for await (const batch of readSqlStreaming(source, sql, params, { signal: options.signal })) {
    if (rows.length + batch.length > max) {
      throw new BadInputError(
        `the result has more than ${max} rows: narrow the request (it is read whole)`,
      );
    }
    for (const r of batch) rows.push(r);
  }
  return rows;
}

/** Split ids into IN-lists of at most `size` (Oracle's limit is 1000 items per list). */
export function* idBatches<T>(ids: Iterable<T>, size = 1000): Generator<T[]> {
  let batch: T[] = [];
  for (const id of ids) {
    batch.push(id);
    if (batch.length === size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/** `?, ?, ?` for an IN-list of n items. */
export function placeholders(n: number): string {
  return Array.from({ length: n }, () => "?").join(", ");
}

import { BadInputError } from "../errors.js";
import { DEFAULT_FETCH_SIZE, type Row } from "../sql/source.js";
import type { JobContext } from "./context.js";
import { dayCondition } from "./days.js";
import type { Lease } from "./ledger/lease.js";
import { dayColumn } from "./partition.js";
import { type RowLines, rowLines } from "./rows.js";

/** One page of rows, each already JSON text (no newline). */
export interface Page {
  lines: string[];
  firstKey: number;
  lastKey: number;
}

/**
 * Pages of a date's rows in key order, `key > last` each time: never OFFSET. Rows are
 * rendered as JSON lines with the key first, by the database where it can. With `lease`, it
 * is kept alive after each page.
 */
export async function* pagesByKey(
  ctx: JobContext,
  lines: RowLines,
  date: string,
  after: number | null,
  lease?: Lease,
): AsyncGenerator<Page> {
  const q = ctx.source.dialect.quote;
  const { table, partitionColumn, keyColumn } = ctx.spec;
  const size = ctx.fetchSize ?? DEFAULT_FETCH_SIZE;
  const hint = await ctx.source.pages.hint(table, partitionColumn, keyColumn);
  const day = dayCondition(q(partitionColumn), dayColumn(ctx.spec), date);
  // Stryker disable next-line LogicalOperator,StringLiteral: equivalent; an index hint picks the plan, never the rows
  const hinted = hint && ` ${hint}`;
  const from = `SELECT ${lines.selectList} FROM ${q(table)}${hinted} WHERE ${day.sql}`;
  const page = (more: string) =>
    // Stryker disable next-line BooleanLiteral: equivalent on these engines (the inner ORDER BY ... LIMIT orders what they return), and verify refuses a part out of key order
    lines.select(`${from}${more} ORDER BY ${q(keyColumn)} LIMIT ?`, true);
  const first = page("");
  const next = page(` AND ${q(keyColumn)} > ?`);
  const keyOf = (key: unknown) => {
    if (typeof key !== "number" || !Number.isSafeInteger(key)) {
      throw new BadInputError(
        `key column '${keyColumn}' of '${table}' must hold integers; found ${JSON.stringify(key)}`,
      );
    }
    return key;
  };
  // A line the database rendered comes with its key as a row of two values, where the driver
  // reads such rows for less than objects.
  const values = lines.rendered ? ctx.source.pages.readValues : undefined;
  const pageOf = (texts: string[], first: unknown, last: unknown): Page | null =>
    texts.length === 0 ? null : { lines: texts, firstKey: keyOf(first), lastKey: keyOf(last) };
  const read = (last: number | null): Promise<Page | null> => {
    const [sql, params] =
      last === null ? [first, [...day.params, size]] : [next, [...day.params, last, size]];
    const reading = values
      ? values.call(ctx.source.pages, sql, params).then((rows) =>
          pageOf(
            rows.map((r) => r[1] as string),
            rows[0]?.[0],
            rows.at(-1)?.[0],
          ),
        )
      : ctx.source.pages
          .read(sql, params)
          .then((rows) =>
            rows.length === 0
              ? null
              : pageOf(
                  rows.map(lines.line),
                  lines.key(rows[0] as Row),
                  lines.key(rows.at(-1) as Row),
                ),
          );
    // Awaited below, or abandoned with the generator: a failure then is no one's to report.
    reading.catch(() => undefined);
    return reading;
  };
  let reading = read(after);
  for (;;) {
    ctx.signal?.throwIfAborted();
    const out = await reading;
    if (out === null) return;
    const full = out.lines.length === size;
    // The next page is asked for before this one is handed on: the database reads it while
    // the caller encodes and stores this one. It starts after this page's last key, as the
    // read after the caller would have.
    if (full) reading = read(out.lastKey);
    yield out;
    await lease?.keepAlive();
    if (!full) return;
  }
}

/** The renderer of the spec's table: its columns, the key first. */
export async function tableLines(ctx: JobContext): Promise<RowLines> {
  const columns = await ctx.source.columnInfo(ctx.spec.table);
  if (!columns) throw new BadInputError(`table '${ctx.spec.table}' does not exist`);
  return rowLines(ctx.source.dialect, columns, ctx.spec.keyColumn);
}

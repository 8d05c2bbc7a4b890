import { DEFAULT_FETCH_SIZE } from "../sql/source.js";
import type { JobContext } from "./context.js";
import { dayCondition } from "./days.js";
import { tableLines } from "./pages.js";
import { dayColumn } from "./partition.js";

/**
 * Every row of `date` in the hot table, as archive lines, page by page in key order (`key >
 * last`, never OFFSET): with the archived lines that stand for rows cleanup deleted, each row
 * of the date exactly once.
 */
export async function* hotLines(ctx: JobContext, date: string): AsyncGenerator<string[]> {
  const q = ctx.source.dialect.quote;
  const { table, partitionColumn, keyColumn } = ctx.spec;
  const lines = await tableLines(ctx);
  const key = q(keyColumn);
  const day = dayCondition(q(partitionColumn), dayColumn(ctx.spec), date);
  const size = ctx.fetchSize ?? DEFAULT_FETCH_SIZE;
  const page = (after: boolean) =>
    lines.select(
      `SELECT ${lines.selectList} FROM ${q(table)} WHERE ${day.sql}${after ? ` AND ${key} > ?` : ""} ORDER BY ${key} LIMIT ?`,
      true,
    );
  let last: unknown = null;
  for (;;) {
    ctx.signal?.throwIfAborted();
    const params = [...day.params, ...(last === null ? [] : [last]), size];
    const rows = await ctx.source.pages.read(page(last !== null), params);
    if (rows.length === 0) return;
    yield rows.map(lines.line);
    last = lines.key(rows.at(-1) ?? {});
    if (rows.length < size) return;
  }
}

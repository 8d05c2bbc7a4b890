import { DEFAULT_FETCH_SIZE } from "../sql/source.js";
import type { JobContext } from "./context.js";
import { dayCondition } from "./days.js";
import type { PartRecord } from "./ledger/records.js";
import { tableLines } from "./pages.js";
import { dayColumn } from "./partition.js";

/**
 * The rows of `date` still in the hot table that none of `verified` holds (by key range), as
 * archive lines, page by page in key order (`key > last`, never OFFSET): with the verified
 * parts themselves, each row of the date exactly once. `verified` must be read from the
 * ledger before this starts: a part verified later is then read here, and rows a cleanup
 * deletes meanwhile are in a part excluded here.
 */
export async function* unheldLines(
  ctx: JobContext,
  date: string,
  verified: readonly PartRecord[],
): AsyncGenerator<string[]> {
  const q = ctx.source.dialect.quote;
  const { table, partitionColumn, keyColumn } = ctx.spec;
  const lines = await tableLines(ctx);
  const key = q(keyColumn);
  const day = dayCondition(q(partitionColumn), dayColumn(ctx.spec), date);
  const ranges = verified.filter((p) => p.date === date);
  const held = ranges.map(() => ` AND ${key} NOT BETWEEN ? AND ?`).join("");
  const heldParams = ranges.flatMap((p) => [p.minId, p.maxId]);
  const size = ctx.fetchSize ?? DEFAULT_FETCH_SIZE;
  const page = (after: boolean) =>
    lines.select(
      `SELECT ${lines.selectList} FROM ${q(table)} WHERE ${day.sql}${held}${after ? ` AND ${key} > ?` : ""} ORDER BY ${key} LIMIT ?`,
      true,
    );
  let last: unknown = null;
  for (;;) {
    ctx.signal?.throwIfAborted();
    const params = [...day.params, ...heldParams, ...(last === null ? [] : [last]), size];
    const rows = await ctx.source.pages.read(page(last !== null), params);
    if (rows.length === 0) return;
    yield rows.map(lines.line);
    last = lines.key(rows.at(-1) ?? {});
    if (rows.length < size) return;
  }
}

import { nextDay } from "../dates.js";
import { BadInputError } from "../errors.js";
import type { Dialect, Row } from "../sql/source.js";
import { type Condition, dayOfValue, daysFromCondition } from "./days.js";
import { type PartitionSpec, dayColumn } from "./partition.js";

/** Runs one small query: the source's own, or a read thread's. */
export type Query = (sql: string, params: readonly unknown[]) => Promise<Row[]>;

/**
 * The days before `before` that have rows in the table, ascending. Walks them by index, one
 * MIN probe per day (the next one from the end of the last), never a scan of the table.
 */
export async function hotDays(
  query: Query,
  dialect: Dialect,
  spec: PartitionSpec,
  before: string,
): Promise<string[]> {
  const { table, partitionColumn } = spec;
  const col = dialect.quote(partitionColumn);
  const day = dayColumn(spec);
  const min = dialect.asText?.(`MIN(${col})`) ?? `MIN(${col})`;
  const days: string[] = [];
  let last: string | null = null;
  for (;;) {
    const where: Condition =
      last === null
        ? daysFromCondition(col, day, null, before)
        : day.kind === "date"
          ? { sql: `${col} > ? AND ${col} < ?`, params: [last, before] }
          : daysFromCondition(col, day, nextDay(last), before);
    const rows = await query(
      `SELECT ${min} AS d FROM ${dialect.quote(table)} WHERE ${where.sql}`,
      where.params,
    );
    const d = rows[0]?.d;
    if (d === null || d === undefined) return days;
    if (day.kind === "date") {
      last = String(d);
    } else {
      const next = dayOfValue(day, d);
      if (next === null) {
        throw new BadInputError(
          `${table}.${partitionColumn} holds ${JSON.stringify(d)}, which is not a timestamp sluice reads`,
        );
      }
      // Only a zone whose dates run backwards at a midnight could give a day again.
      if (last !== null && next <= last) {
        throw new BadInputError(
          `${table}.${partitionColumn} ${JSON.stringify(d)} falls on ${next} in ${day.timeZone}, after ${last}: the zone's days do not follow each other`,
        );
      }
      last = next;
    }
    days.push(last);
  }
}

import { nextDay } from "../dates.js";
import { BadInputError } from "../errors.js";
import type { Dialect } from "../sql/source.js";
import { dayInZone, dayStartInZone } from "../time-zones.js";

/**
 * How the partition column holds a row's day. `date`: a DATE, or text `YYYY-MM-DD`, equal to
 * the day. `timestamp`: a day is `[00:00, 24:00)` in `timeZone`, read as a half-open range so
 * that an index on the column serves it. `aware` columns hold instants (PostgreSQL
 * timestamptz, MySQL TIMESTAMP); the others (timestamp without time zone, DATETIME, SQLite
 * text) hold wall-clock times, whose day is their date part.
 */
export type DayColumn = { kind: "date" } | { kind: "timestamp"; aware: boolean; timeZone: string };

export const TEXT_DATE: DayColumn = { kind: "date" };

/** The day kind of a partition column from its declared type; a clear error if none fits. */
export function dayColumnOf(
  dialect: Dialect["name"],
  column: string,
  type: string,
  timeZone: string,
): DayColumn {
  const t = type.toLowerCase();
  if (/^timestamp|^datetime/.test(t)) {
    const aware =
      (dialect === "postgres" && (t.includes("with time zone") || t.startsWith("timestamptz"))) ||
      (dialect === "mysql" && t.startsWith("timestamp"));
    if (!aware && (dialect === "sqlite" || dialect === "d1") && timeZone !== "UTC") {
      throw new BadInputError(
        `partition column '${column}' is ${type} in SQLite, read as UTC text: days in '${timeZone}' need a time zone in the values; set SLUICE_PARTITION_TIME_ZONE=UTC`,
      );
    }
    return { kind: "timestamp", aware, timeZone };
  }
  if (t === "date" || t === "" || /char|text|clob|string/.test(t)) return TEXT_DATE;
  throw new BadInputError(
    `partition column '${column}' is ${type}: sluice partitions by a DATE, a YYYY-MM-DD text or a timestamp column`,
  );
}

/** An SQL condition and its parameters. */
export interface Condition {
  sql: string;
  params: unknown[];
}

/** UTC wall text `YYYY-MM-DD HH:MM:SS.mmm`: what both servers read as an instant in a UTC session. */
function utcText(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

/** The rows of `date`: `quoted` is the partition column, quoted for the dialect. */
export function dayCondition(quoted: string, day: DayColumn, date: string): Condition {
  if (day.kind === "date") return { sql: `${quoted} = ?`, params: [date] };
  const sql = `${quoted} >= ? AND ${quoted} < ?`;
  if (!day.aware) return { sql, params: [date, nextDay(date)] };
  return {
    sql,
    params: [
      utcText(dayStartInZone(date, day.timeZone)),
      utcText(dayStartInZone(nextDay(date), day.timeZone)),
    ],
  };
}

/**
 * The rows from the start of day `from` (from the first row if null), before the start of day
 * `before`: what walking the days by index asks.
 */
export function daysFromCondition(
  quoted: string,
  day: DayColumn,
  from: string | null,
  before: string,
): Condition {
  const start = (d: string) =>
    day.kind === "timestamp" && day.aware ? utcText(dayStartInZone(d, day.timeZone)) : d;
  if (from === null) return { sql: `${quoted} < ?`, params: [start(before)] };
  return { sql: `${quoted} >= ? AND ${quoted} < ?`, params: [start(from), start(before)] };
}

const STAMP =
  /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * The day a partition value falls on, as the database rendered it (`2025-10-13`,
 * `2025-10-13T01:02:03.456789+00:00`, `2025-10-13 01:02:03`); null for anything else. An
 * aware value without an offset is UTC: every session is pinned to UTC.
 */
export function dayOfValue(day: DayColumn, value: unknown): string | null {
  if (typeof value !== "string") return null;
  const m = STAMP.exec(value);
  if (!m) return null;
  const date = m[1] as string;
  // The fraction of a second is left out: a zone's days start on a whole minute.
  const [hh = "00", mi = "00", ss = "00", , zone] = m.slice(2);
  if (day.kind === "date") return zone || m[2] !== undefined ? null : date;
  let offsetMin = 0;
  // Stryker disable next-line StringLiteral: equivalent; "Z" read as an offset is 0 minutes
  if (zone && zone !== "Z") {
    const digits = zone.slice(1).replace(":", "");
    // Stryker disable next-line StringLiteral: equivalent; Number("") is 0 as Number("0") is
    offsetMin = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || "0");
    if (zone[0] === "-") offsetMin = -offsetMin;
  }
  // Wall-clock text is its own day; one that names a zone must name UTC's (SQLite's `...Z`).
  if (!day.aware) return offsetMin === 0 ? date : null;
  const ms = Date.parse(`${date}T${hh}:${mi}:${ss}Z`);
  if (Number.isNaN(ms)) return null;
  return dayInZone(ms - offsetMin * 60_000, day.timeZone);
}

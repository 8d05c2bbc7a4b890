import type { Row } from "../sql/source.js";
import { type DayColumn, TEXT_DATE, dayOfValue } from "./days.js";

/**
 * Reads the key and checks the partition of one archived line. Lines are written key first
 * (`{"id":123,...}`), so the key is read from the text; any other shape is parsed as JSON.
 * The partition test is exact: inside a JSON string a quote is always escaped, so
 * `"event_date":"2025-10-13"` can only appear as a member, and in a line with no nested
 * object (an array holds members only inside one), only as the row's own member.
 */
export function lineReader(
  keyColumn: string,
  partitionColumn: string,
  date: string,
  day: DayColumn = TEXT_DATE,
) {
  const prefix = `{${JSON.stringify(keyColumn)}:`;
  const member = `${JSON.stringify(partitionColumn)}:${JSON.stringify(date)}`;
  const stamp = `${JSON.stringify(partitionColumn)}:"`;
  // A timestamp's day is worked out from its text, which holds no quote or escape.
  const inDay =
    // Stryker disable next-line ConditionalExpression: equivalent; a date's member read as a stamp is the same text, which dayOfValue of a date column gives back as itself
    day.kind === "date"
      ? (line: string) => line.includes(member)
      : (line: string) => {
          const at = line.indexOf(stamp);
          // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent; read from -1, the text before the first quote is no stamp, so no day
          if (at < 0) return false;
          const from = at + stamp.length;
          return dayOfValue(day, line.slice(from, line.indexOf('"', from))) === date;
        };
  const valueInDay = (value: unknown) =>
    // Stryker disable next-line ConditionalExpression: equivalent; dayOfValue of a date column is the value itself when it is a bare date, else null
    day.kind === "date" ? value === date : dayOfValue(day, value) === date;
  return (line: string): { key: unknown; inPartition: boolean } => {
    if (line.startsWith(prefix) && line.indexOf("{", 1) === -1) {
      const sign = line.charCodeAt(prefix.length) === 45 ? 1 : 0; // '-'
      const digits = prefix.length + sign;
      let end = digits;
      // Past the end, charCodeAt is NaN: no digit, so the loop stops there.
      while (line.charCodeAt(end) >= 48 && line.charCodeAt(end) <= 57) end++;
      const next = line.charCodeAt(end);
      if (end > digits && (next === 44 || next === 125) && line.endsWith("}")) {
        return { key: Number(line.slice(prefix.length, end)), inPartition: inDay(line) };
      }
    }
    const row = JSON.parse(line) as Row;
    return { key: row[keyColumn], inPartition: valueInDay(row[partitionColumn]) };
  };
}

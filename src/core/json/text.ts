import type { Row } from "../sql/source.js";

/**
 * JSON text of a value with the trace API's rules, at any depth: NaN, Infinity and undefined
 * become null; a bigint becomes a number when it is a safe integer, else a string; a Date
 * its ISO string (an invalid Date null); everything else as JSON.stringify does it.
 */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, replacer) ?? "null";
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** JSON.stringify already writes NaN/Infinity as null and calls Date's toJSON. */
function replacer(_key: string, value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === "bigint") {
    return value >= -MAX_SAFE && value <= MAX_SAFE ? Number(value) : value.toString();
  }
  return value;
}

/**
 * Whether plain JSON.stringify could get a row wrong (drop an undefined, throw on a bigint,
 * somewhere inside a nested value). Most rows are strings, numbers, nulls and Dates, and go
 * through JSON.stringify without a replacer, which is much faster.
 */
function needsReplacer(row: Row): boolean {
  for (const key in row) {
    const v = row[key];
    if (v === undefined || typeof v === "bigint") return true;
    if (typeof v === "object" && v !== null && !(v instanceof Date)) return true;
  }
  return false;
}

export function rowsText(rows: Row[]): string {
  for (const row of rows) {
    if (needsReplacer(row)) return JSON.stringify(rows, replacer);
  }
  return JSON.stringify(rows);
}

export function rowText(row: Row): string {
  const text = needsReplacer(row) ? JSON.stringify(row, replacer) : JSON.stringify(row);
  if (typeof text !== "string" || text.charCodeAt(0) !== 0x7b) {
    throw new TypeError(`a row must be an object; got ${text}`);
  }
  return text;
}

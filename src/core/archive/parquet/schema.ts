import type { Column, Dialect } from "../../sql/source.js";

/**
 * How each column of a table is stored in a Parquet part. The kind decides both the Parquet
 * type and how the decoder writes the value back into the line, so that a Parquet part
 * decodes to exactly the text its JSONL part would hold.
 *
 * - `int64`: JSON integer digits, stored as INT64 (read back as a BigInt, written as digits).
 *   The MariaDB driver gives integers past 2^53 as strings (`"9007199254740993"`): the part's
 *   first such value decides whether they are quoted, recorded in the file's metadata.
 * - `boolean`: `true` / `false`, stored as BOOLEAN.
 * - `double`: a JSON number, stored as DOUBLE, written back as JavaScript writes the number.
 * - `string`: a JSON string, stored unquoted as UTF8; written back with JSON.stringify.
 * - `decimal`: exact numerics; databases render them as JSON numbers (PostgreSQL) or as
 *   strings (the MariaDB driver's text): the part's first non-null value decides which, the
 *   file's metadata lists the columns stored as raw JSON text (written back unquoted), and a
 *   later value of the other shape refuses the part.
 * - `json`: json/jsonb, decided the same way: the adapters read them as text, so lines hold
 *   them as JSON strings (stored unquoted, so readers see the JSON text itself); a line that
 *   nests the value itself is stored as its raw text.
 */
export type ColumnKind = "int64" | "boolean" | "double" | "string" | "json" | "decimal";

export interface PlannedColumn {
  readonly name: string;
  readonly kind: ColumnKind;
}

/**
 * A row group's values die young at this size: groups several times larger outlive V8's young
 * generation, and archiving spends its time in major GCs (bench/archive.mjs --parquet).
 */
export const DEFAULT_ROW_GROUP_ROWS = 5_000;

/** The file-level marker the decoder checks before it trusts the layout. */
export const FORMAT_KEY = "sluice.format";
export const FORMAT_VERSION = "sluice-lines-1";
/** Key-value metadata naming (as a JSON array) the columns stored as raw JSON text. */
export const RAW_JSON_KEY = "sluice.raw_json";

/** Key-value metadata naming (as a JSON array) the INT64 columns quoted beyond 2^53. */
export const QUOTED_BIG_INTS_KEY = "sluice.quoted_big_ints";

/** A plan that cannot be made (duplicate names): the part is written as JSONL instead. */
export class PlanError extends Error {
  override readonly name = "PlanError";
}

/**
 * The Parquet representation of each column, in line order (the key first). `dialect`: where
 * the lines come from; SQLite and D1 hold a BOOLEAN column's values as 0 and 1.
 */
export function planColumns(
  columns: readonly Column[],
  dialect?: Dialect["name"],
): PlannedColumn[] {
  const numericBooleans = dialect === "sqlite" || dialect === "d1" || dialect === "mysql";
  const seen = new Set<string>();
  return columns.map((c) => {
    // A line with two equal keys cannot be told apart from its columns; never guess.
    if (seen.has(c.name)) throw new PlanError(`column '${c.name}' appears twice`);
    seen.add(c.name);
    const kind = kindOf(c.type);
    return { name: c.name, kind: kind === "boolean" && numericBooleans ? "int64" : kind };
  });
}

/** The kind for a type as the database names it (case and size suffixes ignored). */
export function kindOf(declared: string): ColumnKind {
  const t = declared.trim().toLowerCase();
  const base = t
    .replace(/\(.*$/, "")
    .replace(/\s+(unsigned|signed|zerofill)\b.*$/, "")
    .trim();
  // PostgreSQL's boolean is a JSON boolean in its lines; MariaDB reports its BOOLEAN as
  // tinyint(1) (an integer), and SQLite's is planned as one by planColumns.
  if (base === "boolean" || base === "bool") return "boolean";
  if (
    /^(tinyint|smallint|mediumint|int|integer|bigint|int2|int4|int8|serial|bigserial|smallserial)$/.test(
      base,
    )
  ) {
    return "int64";
  }
  if (/^(double precision|double|float|float4|float8|real)$/.test(base)) return "double";
  if (/^(numeric|decimal|dec|fixed|number)$/.test(base)) return "decimal";
  if (base === "json" || base === "jsonb") return "json";
  return "string";
}

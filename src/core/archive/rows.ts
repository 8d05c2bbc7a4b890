import type { Column, Dialect, Row } from "../sql/source.js";

/**
 * How rows become archive lines: one JSON object per row, the key column first. Where the
 * database renders JSON itself (`Dialect.jsonRow`), the line is its text, exact for every type;
 * elsewhere it is rendered here from the driver's values. Archive writes these lines and
 * cleanup compares the hot rows with them through the same renderer, so a row whose content
 * changed never matches.
 */
export interface RowLines {
  /** The columns in line order, the key first, with their types. */
  readonly columns: readonly Column[];
  /** What an inner SELECT lists to read them, in that order. */
  readonly selectList: string;
  /**
   * The statement reading `inner`'s rows (`inner` selects {@link selectList}), with its lines
   * in key order when `ordered`.
   */
  select(inner: string, ordered: boolean): string;
  line(row: Row): string;
  key(row: Row): unknown;
  /**
   * True where the database renders the line: select() then gives two columns, the key and
   * the line's text, in that order.
   */
  readonly rendered: boolean;
}

export function rowLines(
  dialect: Dialect,
  tableColumns: readonly Column[],
  keyColumn: string,
): RowLines {
  const q = dialect.quote;
  // Stryker disable next-line StringLiteral: equivalent; a type only picks binary columns' text, and a key is an integer
  const key = tableColumns.find((c) => c.name === keyColumn) ?? { name: keyColumn, type: "" };
  const columns = [key, ...tableColumns.filter((c) => c.name !== keyColumn)];
  const names = columns.map((c) => c.name);
  const selectList = columns
    .map((c) => {
      const text = dialect.columnText?.(q(c.name), c.type);
      return text ? `${text} AS ${q(c.name)}` : q(c.name);
    })
    .join(", ");
  const json = dialect.jsonRow?.(names, "r");
  if (json) {
    return {
      columns,
      selectList,
      select: (inner, ordered) =>
        `SELECT r.${q(keyColumn)} AS sluice_key, ${json} AS sluice_json FROM (${inner}) r${ordered ? ` ORDER BY r.${q(keyColumn)}` : ""}`,
      line: (row) => row.sluice_json as string,
      key: (row) => row.sluice_key,
      rendered: true,
    };
  }
  // Property order follows the select list, except for names that look like array indexes.
  // Stryker disable next-line Regex: a name taken for an index only costs the fast path (the loop writes the same text); test/row-lines.test.ts refuses the one that misses "10"
  const plain = !names.some((c) => /^(0|[1-9][0-9]*)$/.test(c));
  return {
    columns,
    selectList,
    select: (inner) => inner,
    line: (row) => renderJson(row, names, plain),
    key: (row) => row[keyColumn],
    rendered: false,
  };
}

/**
 * A row as one JSON object text in `columns` order. Binary values are base64 strings and
 * bigints exact digits; drivers are set up to return dates, times and decimals as the
 * database's own text, so nothing else needs converting.
 */
export function renderJson(row: Row, columns: readonly string[], inOrder = false): string {
  // Stryker disable next-line ConditionalExpression: equivalent; the loop below writes what JSON.stringify writes, only slower
  if (inOrder && !needsConversion(row)) return JSON.stringify(row);
  let out = "{";
  for (let i = 0; i < columns.length; i++) {
    const c = columns[i] as string;
    out += `${i ? "," : ""}${JSON.stringify(c)}:${jsonValue(row[c])}`;
  }
  return `${out}}`;
}

function needsConversion(row: Row): boolean {
  for (const k in row) {
    const v = row[k];
    // Mutants that convert more rows than needed are equivalent: the loop writes the same text.
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent (above)
    if (typeof v === "bigint" || typeof v === "object" || v === undefined) {
      // Stryker disable next-line ConditionalExpression: equivalent (above)
      if (v !== null) return true;
    }
  }
  // Stryker disable next-line BooleanLiteral: equivalent (above)
  return false;
}

function jsonValue(v: unknown): string {
  // Stryker disable next-line ConditionalExpression: equivalent for null, which JSON.stringify writes as null; undefined is tested
  if (v === null || v === undefined) return "null";
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Uint8Array) return JSON.stringify(base64(v));
  if (v instanceof Date) return JSON.stringify(v.toISOString());
  return JSON.stringify(v);
}

/** Base64 without Node's Buffer (the core runs on Workers too). */
export function base64(bytes: Uint8Array): string {
  let binary = "";
  // Stryker disable next-line EqualityOperator: equivalent; one more pass adds an empty string
  for (let i = 0; i < bytes.byteLength; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

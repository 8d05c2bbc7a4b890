import { SluiceError } from "../errors.js";
import type { JobContext } from "./context.js";
import type { PartRecord, PartRollup } from "./ledger/records.js";

/** Most distinct values one part's rollup keeps: beyond it, the column is not a stats column. */
export const ROLLUP_MAX_VALUES = 200_000;

/** A part whose rows hold more distinct values of the stats column than a rollup keeps. */
export class RollupTooLargeError extends SluiceError {
  constructor(
    readonly table: string,
    readonly date: string,
    readonly column: string,
    readonly limit: number,
  ) {
    super(
      "failed",
      `${table} ${date}: more than ${limit} distinct values of '${column}' in one part, too many to keep as daily stats; turn rollups off for this table (SLUICE_ROLLUPS=off, or "rollups": false in the config file)`,
    );
  }
}

/**
 * Cleanup refused: a part's rollup is missing or does not count exactly its rows, so deleting
 * them would take that day out of the stats. Nothing was deleted.
 */
export class RollupMismatchError extends SluiceError {
  constructor(
    readonly table: string,
    readonly date: string,
    readonly part: number,
    readonly rows: number,
    readonly counted: number | null,
  ) {
    super(
      "failed",
      `${table} ${date}: part ${part} holds ${rows} rows but its rollup ${counted === null ? "is missing" : `counts ${counted}`}: refusing to delete any row. Run 'sluice rollup --date ${date}' to rebuild it from the archive`,
    );
  }
}

/**
 * Counts archived lines by one column's value, read from the line's text: the member
 * `"column":` preceded by `{`, `,` or a space (MySQL writes `, `) is the row's own in a line
 * with no nested object, since a quote inside a JSON string is always escaped. Anything else
 * (a nested object, an escape in the value) is parsed as JSON.
 */
export class RollupCounter {
  readonly counts = new Map<string | null, number>();
  total = 0;
  private readonly member: string;

  constructor(
    private readonly column: string,
    private readonly where: { table: string; date: string },
    private readonly maxValues = ROLLUP_MAX_VALUES,
  ) {
    this.member = `${JSON.stringify(column)}:`;
  }

  add(line: string): void {
    const value = this.fast(line);
    this.count(value === undefined ? this.parsed(line) : value);
  }

  rollup(): PartRollup {
    return { counts: this.counts, total: this.total };
  }

  private count(value: string | null): void {
    const n = this.counts.get(value);
    if (n === undefined && this.counts.size >= this.maxValues) {
      throw new RollupTooLargeError(this.where.table, this.where.date, this.column, this.maxValues);
    }
    this.counts.set(value, (n ?? 0) + 1);
    this.total++;
  }

  /**
   * The value from the text, or undefined where the text is not the simple shape: a string with
   * no escape, or null. Other values are parsed, so that `1.50` counts as JSON.parse reads it.
   */
  private fast(line: string): string | null | undefined {
    if (line.includes("{", 1)) return undefined;
    // Not found (-1): the code "before" it is NaN, which is no member's start.
    const at = line.indexOf(this.member);
    const before = line.charCodeAt(at - 1);
    // An unescaped quote after `{`, `,` or a space starts a member name: in a JSON string a
    // quote is escaped, so a name that ends in the member's text has a backslash before it.
    const member = before === 123 || before === 44 || before === 32;
    if (!member) return undefined;
    let from = at + this.member.length;
    if (line.charCodeAt(from) === 32) from++;
    if (line.startsWith("null", from)) return null;
    if (line.charCodeAt(from) !== 34) return undefined;
    const end = line.indexOf('"', from + 1);
    const text = line.slice(from + 1, end);
    return end === -1 || text.includes("\\") ? undefined : text;
  }

  private parsed(line: string): string | null {
    const value = (JSON.parse(line) as Record<string, unknown>)[this.column];
    if (value === null || value === undefined) return null;
    return typeof value === "string" ? value : JSON.stringify(value);
  }
}

/**
 * Before cleanup deletes a part's rows, its rollup must count exactly them: else the stats of
 * the day would change once the rows leave the hot table. Throws RollupMismatchError.
 */
export async function checkRollups(
  ctx: JobContext,
  date: string,
  parts: readonly PartRecord[],
): Promise<void> {
  if (!ctx.spec.rollupColumn) return;
  const counted = await ctx.ledger.rollupTotals(ctx.spec.table, date);
  for (const p of parts) {
    // A cleaned part's rows are gone: its rollup is verify's and `sluice rollup`'s to give it.
    // Stryker disable next-line ConditionalExpression: equivalent where reachable, since verify counts every part lacking a rollup
    if (p.cleanedAt !== null) continue;
    // The part's recorded total and the sum of its counts: both must be its rows.
    const off = [p.rollupRows, counted.get(p.part) ?? null].find((n) => n !== p.eventCount);
    if (off !== undefined) {
      throw new RollupMismatchError(p.sourceTable, p.date, p.part, p.eventCount, off);
    }
  }
}

import type { Row } from "../sql/source.js";

/**
 * Rows already written as JSON objects, `text` being `{...},{...}` (a comma between rows,
 * none around) and `ends[i]` where row i's object ends in it. `rows[i]` holds only the fields
 * a reader of the batch needs (the trace's grouping and pareto), as values.
 */
export class JsonRows {
  constructor(
    readonly rows: Row[],
    readonly text: Uint8Array,
    readonly ends: readonly number[],
  ) {}

  get length(): number {
    return this.rows.length;
  }

  /** Rows `from` to `to` (exclusive), as Array.prototype.slice takes them. */
  slice(from: number, to = this.rows.length): JsonRows {
    const end = Math.min(to, this.rows.length);
    if (from >= end) return new JsonRows([], new Uint8Array(0), []);
    const start = this.start(from);
    return new JsonRows(
      this.rows.slice(from, end),
      this.text.subarray(start, this.ends[end - 1]),
      this.ends.slice(from, end).map((e) => e - start),
    );
  }

  /** Row `i`'s JSON object. */
  row(i: number): Uint8Array {
    return this.text.subarray(this.start(i), this.ends[i]);
  }

  /** Where row `i` starts: after the comma that ends row i - 1. */
  private start(i: number): number {
    return i === 0 ? 0 : (this.ends[i - 1] as number) + 1;
  }
}

/** A batch of rows as values, or as JSON the database's text was turned into. */
export type RowBatch = Row[] | JsonRows;

/** The rows of a batch as values (for JsonRows: the fields it kept). */
export function rowsOf(batch: RowBatch): Row[] {
  return batch instanceof JsonRows ? batch.rows : batch;
}

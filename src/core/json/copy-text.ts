import type { Row } from "../sql/source.js";
import { JsonRows } from "./json-rows.js";

/** A column of a COPY: its JSON name, how its text is written, whether its value is kept. */
export interface CopyColumn {
  name: string;
  /** "number": the text is an integer and is written as it is; "string": a JSON string. */
  kind: "string" | "number";
  /** Also read as a value into the batch's `rows` (what grouping and the pareto need). */
  keep?: boolean;
}

const TAB = 0x09;
const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;
const QUOTE = 0x22;
const COMMA = 0x2c;
const CLOSE = 0x7d;
const HEX = "0123456789abcdef";
/** COPY's escapes after a backslash (b f n r t v) and the control characters they stand for. */
const UNESCAPE = new Int16Array(256).fill(-1);
for (const [c, code] of [
  ["b", 8],
  ["f", 12],
  ["n", 10],
  ["r", 13],
  ["t", 9],
  ["v", 11],
] as const) {
  UNESCAPE[c.charCodeAt(0)] = code;
}
/** What JSON.stringify writes for a control character after its backslash, where not \u00XX. */
const SHORT = new Int16Array(32).fill(-1);
for (const [code, c] of [
  [8, "b"],
  [12, "f"],
  [10, "n"],
  [13, "r"],
  [9, "t"],
] as const) {
  SHORT[code] = c.charCodeAt(0);
}

const encoder = new TextEncoder();

/**
 * Rows in PostgreSQL's COPY text format (a tab between fields, a newline after each row, `\N`
 * for NULL, a backslash before b f n r t v and before a backslash) written as JSON objects,
 * byte for byte what JSON.stringify writes for the same row read as values: no value is made
 * of a field unless it is kept. Chunks may end anywhere; a row is written once it is whole.
 */
export class CopyTextRows {
  private readonly names: Uint8Array[];
  private readonly namesLength: number;
  private out = new Uint8Array(1 << 16);
  private used = 0;
  private ends: number[] = [];
  private kept: Row[] = [];
  private tail: Uint8Array | null = null;
  /** Per kept column: its last value and the COPY text it came from, reused while equal. */
  private readonly last: { bytes: Uint8Array; value: unknown }[];
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });

  constructor(private readonly columns: readonly CopyColumn[]) {
    if (columns.length === 0) throw new Error("a COPY has at least one column");
    this.names = columns.map((c, i) =>
      encoder.encode(`${i === 0 ? "{" : ","}${JSON.stringify(c.name)}:`),
    );
    this.namesLength = this.names.reduce((n, b) => n + b.length, 0);
    this.last = columns.map(() => ({ bytes: new Uint8Array(0), value: undefined }));
  }

  /** Rows written since the last take(). */
  get rows(): number {
    return this.ends.length;
  }

  /** Read `chunk`: every row it completes is written. */
  push(chunk: Uint8Array): void {
    let from = 0;
    if (this.tail) {
      // The row begun in an earlier chunk, completed with this one's first bytes.
      let nl = 0;
      while (nl < chunk.length && chunk[nl] !== NEWLINE) nl++;
      const joined = new Uint8Array(this.tail.length + Math.min(nl + 1, chunk.length));
      joined.set(this.tail);
      joined.set(chunk.subarray(0, nl + 1), this.tail.length);
      this.tail = null;
      if (nl === chunk.length) {
        this.tail = joined;
        return;
      }
      this.write(joined, 0, joined.length);
      from = nl + 1;
    }
    let whole = chunk.length;
    while (whole > from && chunk[whole - 1] !== NEWLINE) whole--;
    if (whole > from) this.write(chunk, from, whole);
    // The rest of a row: copied, as the chunk it is in is not ours to keep.
    if (whole < chunk.length) this.tail = chunk.slice(Math.max(whole, from));
  }

  /** The rows written since the last take(), handed over. */
  take(): JsonRows {
    const batch = new JsonRows(this.kept, this.out.slice(0, this.used), this.ends);
    this.used = 0;
    this.ends = [];
    this.kept = [];
    return batch;
  }

  /** The COPY has ended: throws if it ended inside a row. */
  end(): void {
    if (this.tail) throw new Error("the COPY ended inside a row");
  }

  /** Write the whole rows from `from` to `to` (just after a newline) of `bytes`. */
  private write(bytes: Uint8Array, from: number, to: number): void {
    const n = this.columns.length;
    // A row is at least n bytes (its tabs and newline): room for the most rows there can be,
    // with 6 bytes (\u00XX) of JSON for every byte of them.
    const length = to - from;
    this.reserve(length * 6 + (Math.floor(length / n) + 1) * (this.namesLength + 2));
    const out = this.out;
    let used = this.used;
    let i = from;
    while (i < to) {
      if (this.ends.length > 0) out[used++] = COMMA;
      const kept: Row = {};
      for (let col = 0; col < n; col++) {
        const column = this.columns[col] as CopyColumn;
        const name = this.names[col] as Uint8Array;
        out.set(name, used);
        used += name.length;
        const start = i;
        const written = used;
        let isNull = false;
        if (
          bytes[i] === BACKSLASH &&
          bytes[i + 1] === 0x4e &&
          (bytes[i + 2] === TAB || bytes[i + 2] === NEWLINE)
        ) {
          out[used++] = 0x6e; // null
          out[used++] = 0x75;
          out[used++] = 0x6c;
          out[used++] = 0x6c;
          i += 2;
          isNull = true;
        } else if (column.kind === "number") {
          let b = bytes[i] as number;
          if (b === 0x2d) {
            out[used++] = b;
            b = bytes[++i] as number;
          }
          const digits = i;
          while (b >= 0x30 && b <= 0x39) {
            out[used++] = b;
            b = bytes[++i] as number;
          }
          if (i === digits || (b !== TAB && b !== NEWLINE)) {
            let e = i;
            while (e < to && bytes[e] !== TAB && bytes[e] !== NEWLINE) e++;
            const text = this.decoder.decode(bytes.subarray(start, e));
            throw new Error(`column ${column.name}: ${JSON.stringify(text)} is not an integer`);
          }
        } else {
          out[used++] = QUOTE;
          for (;;) {
            // A backslash before the newline cannot run the field past the row's bytes.
            if (i >= to) throw new Error("a COPY row ends inside a field");
            let b = bytes[i] as number;
            if (b === TAB || b === NEWLINE) break;
            if (b === BACKSLASH) {
              const e = bytes[++i] as number;
              const code = UNESCAPE[e] as number;
              b = code >= 0 ? code : e;
            }
            i++;
            if (b >= 0x20 && b !== QUOTE && b !== BACKSLASH) {
              out[used++] = b;
            } else if (b === QUOTE || b === BACKSLASH) {
              out[used++] = BACKSLASH;
              out[used++] = b;
            } else {
              out[used++] = BACKSLASH;
              const short = SHORT[b] as number;
              if (short >= 0) {
                out[used++] = short;
              } else {
                out[used++] = 0x75; // u00XX
                out[used++] = 0x30;
                out[used++] = 0x30;
                out[used++] = HEX.charCodeAt(b >> 4);
                out[used++] = HEX.charCodeAt(b & 15);
              }
            }
          }
          out[used++] = QUOTE;
        }
        // A field ends at a tab, the row's last at its newline: any other count is refused.
        const last = col === n - 1;
        if (bytes[i] !== (last ? NEWLINE : TAB)) {
          throw new Error(`a COPY row has ${last ? "more" : "fewer"} than ${n} fields`);
        }
        if (column.keep) {
          kept[column.name] = isNull ? null : this.keptValue(bytes, start, i, col, written, used);
        }
        i++;
      }
      out[used++] = CLOSE;
      this.ends.push(used);
      this.kept.push(kept);
    }
    this.used = used;
  }

  /**
   * A kept field's value: the last row's where its text is the same, else read anew (from the
   * JSON written for it from `written` to `used`, where the text has escapes or more than ASCII).
   */
  private keptValue(
    bytes: Uint8Array,
    from: number,
    to: number,
    col: number,
    written: number,
    used: number,
  ): unknown {
    const last = this.last[col] as { bytes: Uint8Array; value: unknown };
    const n = to - from;
    if (last.bytes.length === n) {
      let same = true;
      for (let i = 0; i < n; i++) {
        if (last.bytes[i] !== bytes[from + i]) {
          same = false;
          break;
        }
      }
      if (same) return last.value;
    }
    const column = this.columns[col] as CopyColumn;
    let value: unknown;
    if (column.kind === "number") {
      value = Number(this.decoder.decode(bytes.subarray(from, to)));
    } else {
      let plain = true;
      for (let i = from; i < to && plain; i++)
        plain = (bytes[i] as number) < 0x80 && bytes[i] !== BACKSLASH;
      // The JSON string just written, read back: exact for escapes and any UTF-8.
      value = plain
        ? String.fromCharCode.apply(null, bytes.subarray(from, to) as unknown as number[])
        : JSON.parse(this.decoder.decode(this.out.subarray(written, used)));
    }
    last.bytes = bytes.slice(from, to);
    last.value = value;
    return value;
  }

  private reserve(n: number): void {
    if (this.used + n <= this.out.length) return;
    const bigger = new Uint8Array(Math.max(this.used + n, this.out.length * 2));
    bigger.set(this.out.subarray(0, this.used));
    this.out = bigger;
  }
}

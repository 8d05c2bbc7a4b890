import type { DuckDBType } from "@duckdb/node-api";

/** Rows of a result as text, batch by batch: NDJSON, CSV, or a table for a person. */
export interface RowWriter {
  rows(batch: readonly (readonly unknown[])[]): string;
  end(): string;
}

/** Rows a table on the terminal shows; the rest are counted. */
const TABLE_ROWS = 1000;

/**
 * A writer for `format`. Values come as DuckDB's JSON (64-bit and wider integers as text):
 * integers that fit a double exactly become numbers again.
 */
export function rowWriter(
  format: "table" | "ndjson" | "csv",
  names: readonly string[],
  types: readonly DuckDBType[],
): RowWriter {
  const wide = types.map((t) => /^(U?BIGINT|HUGEINT|UHUGEINT)$/.test(String(t)));
  const value = (v: unknown, i: number) => {
    if (wide[i] && typeof v === "string") {
      const n = Number(v);
      if (Number.isSafeInteger(n)) return n;
    }
    return v;
  };
  if (format === "ndjson") {
    return {
      rows: (batch) =>
        batch
          .map((r) => {
            const o: Record<string, unknown> = {};
            names.forEach((n, i) => {
              o[n] = value(r[i], i);
            });
            return `${JSON.stringify(o)}\n`;
          })
          .join(""),
      end: () => "",
    };
  }
  if (format === "csv") {
    let header = `${names.map(csvCell).join(",")}\n`;
    return {
      rows: (batch) => {
        const text =
          header +
          batch.map((r) => `${r.map((v, i) => csvCell(value(v, i))).join(",")}\n`).join("");
        header = "";
        return text;
      },
      end: () => header,
    };
  }
  const shown: string[][] = [];
  let more = 0;
  return {
    rows: (batch) => {
      for (const r of batch) {
        if (shown.length < TABLE_ROWS) shown.push(r.map((v, i) => cellText(value(v, i))));
        else more++;
      }
      return "";
    },
    end: () => {
      const all = [[...names], ...shown];
      const widths = names.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
      const line = (r: string[]) =>
        r
          .map((c, i) => c.padEnd(widths[i] ?? 0))
          .join("  ")
          .trimEnd();
      const rule = widths.map((w) => "-".repeat(w)).join("  ");
      const tail = more ? `\n... ${more} more rows (--json or --csv prints them all)` : "";
      return `${[line(all[0] as string[]), rule, ...shown.map(line)].join("\n")}\n(${shown.length + more} rows)${tail}\n`;
    },
  };
}

function cellText(v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return "";
  const s = typeof v === "object" ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

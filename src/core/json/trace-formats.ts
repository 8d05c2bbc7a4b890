/**
 * The two shapes of a trace response (README, "MES trace"): JSON `{"results":{...}}` and NDJSON
 * lines, each a Format the trace writer (trace-stream.ts) fills batch by batch.
 */
import { CLOSE_BRACE, COMMA, type ChunkEncoder, NEWLINE, OPEN_BRACKET } from "./chunk-encoder.js";
import { JsonRows, type RowBatch } from "./json-rows.js";
import { jsonText, rowText, rowsText } from "./text.js";

/** What differs between the JSON and the NDJSON writers. */
export interface Format {
  open: string;
  domainStart(name: string, index: number): string;
  /**
   * Write a non-empty batch; `first` when it is the domain's first. Bytes it returns follow
   * what it wrote, as a chunk of their own (handed on as they are, not copied).
   */
  batch(out: ChunkEncoder, name: string, rows: RowBatch, first: boolean): Uint8Array | undefined;
  domainEnd(name: string, count: number): string;
  close(trailer: Record<string, unknown> | undefined): string;
}

export const JSON_FORMAT: Format = {
  open: '{"results":{',
  domainStart: (name, index) => `${index > 0 ? "," : ""}${JSON.stringify(name)}:{"data":`,
  batch(out, _name, rows, first) {
    if (rows instanceof JsonRows) {
      // Already "r1,...,rn", the batch's own bytes: the first batch's "[" opens "data".
      out.byte(first ? OPEN_BRACKET : COMMA);
      return rows.text;
    }
    // "[r1,...,rn]" in one native call; the first batch's "[" opens "data".
    out.arrayItems(rowsText(rows), first);
    return undefined;
  },
  domainEnd: (_name, count) => `${count === 0 ? "[" : ""}],"count":${count}}`,
  close(trailer) {
    if (trailer === undefined) return "}}";
    if (Object.hasOwn(trailer, "results")) {
      throw new Error('the trailer has a "results" key, which would repeat the results');
    }
    const text = jsonText(trailer);
    return text === "{}" ? "}}" : `},${text.slice(1)}`;
  },
};

export const NDJSON_FORMAT: Format = {
  open: "",
  domainStart: () => "",
  batch(out, name, rows) {
    const prefix = new TextEncoder().encode(`{"domain":${JSON.stringify(name)}`);
    if (rows instanceof JsonRows) {
      for (let i = 0; i < rows.length; i++) {
        // A row's object has a member at least: its "{" becomes the prefix and a comma.
        out.bytes(prefix);
        out.byte(COMMA);
        out.bytes(rows.row(i).subarray(1));
        out.byte(NEWLINE);
      }
      return undefined;
    }
    for (const row of rows) {
      const text = rowText(row);
      out.bytes(prefix);
      const at = out.used;
      out.write(text);
      if (text.length === 2) {
        // "{}": the line is just the domain
        out.used = at;
        out.byte(CLOSE_BRACE);
      } else {
        out.buf[at] = COMMA;
      }
      out.byte(NEWLINE);
    }
    return undefined;
  },
  domainEnd: (name, count) => `{"domain":${JSON.stringify(name)},"count":${count},"end":true}\n`,
  close: (trailer) => (trailer === undefined ? "" : `{"trailer":${jsonText(trailer)}}\n`),
};

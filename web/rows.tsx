/**
 * The rows a trace streams by: counted per domain, and a bounded window of them kept for the
 * table (the first WINDOW of each domain). The rest pass through and are dropped, so the page
 * stays as flat in memory as the server; the whole result is a download (a background job).
 */
import { useState } from "preact/hooks";
import { fmt } from "./api.js";

export const WINDOW = 2000;

/** A domain's last line: `{"domain":"<d>","count":N,"end":true}`, and nothing else. */
const END_LINE = /^\{"domain":"([^"\\]*)","count":(\d+),"end":true\}$/;
/** A row line's start: its domain, written first by the server (core/json/trace-stream.ts). */
const ROW_START = /^\{"domain":"([^"\\]*)"/;

export class RowWindow {
  readonly counts = new Map<string, number>();
  readonly kept = new Map<string, Record<string, unknown>[]>();
  /** Domains whose end line has arrived, with the count the server wrote in it. */
  readonly ended = new Map<string, number>();
  trailer: Record<string, unknown> | null = null;

  /**
   * One NDJSON line of /api/trace/events, as text. A row is parsed only while its domain's
   * window has room: past it (millions of rows) the line is counted, not parsed, which keeps
   * the page as fast as the stream and makes no garbage per row.
   */
  add(line: string): void {
    if (line.startsWith('{"trailer":')) {
      this.trailer = (JSON.parse(line) as { trailer: Record<string, unknown> }).trailer;
      return;
    }
    const end = END_LINE.exec(line);
    if (end) {
      this.ended.set(end[1] as string, Number(end[2]));
      return;
    }
    const d = ROW_START.exec(line)?.[1];
    if (d === undefined) throw new Error(`not a line of the events answer: ${line.slice(0, 80)}`);
    this.counts.set(d, (this.counts.get(d) ?? 0) + 1);
    let rows = this.kept.get(d);
    if (!rows) {
      rows = [];
      this.kept.set(d, rows);
    }
    if (rows.length < WINDOW) {
      const { domain: _, ...row } = JSON.parse(line) as Record<string, unknown>;
      rows.push(row);
    }
  }

  total(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }

  /** Every domain ended, each with as many rows as its end line says: nothing was lost. */
  whole(): boolean {
    for (const [d, n] of this.counts) if (this.ended.get(d) !== n) return false;
    for (const [d, n] of this.ended) if ((this.counts.get(d) ?? 0) !== n) return false;
    return true;
  }
}

const ROW_H = 28;
const VISIBLE = 14;

/** The kept rows of one domain, only the visible ones in the DOM. */
export function VirtualTable(props: { rows: Record<string, unknown>[]; count: number }) {
  const [top, setTop] = useState(0);
  const { rows } = props;
  const columns = rows[0] ? Object.keys(rows[0]) : [];
  const first = Math.max(0, Math.min(rows.length - VISIBLE, Math.floor(top / ROW_H)));
  const shown = rows.slice(first, first + VISIBLE + 1);
  return (
    <div>
      <p class="note" data-testid="window-note">
        {fmt.format(props.count)} rows; the first {fmt.format(rows.length)} are kept here
        {props.count > rows.length ? " (download the whole result below)" : ""}.
      </p>
      <div
        class="vtable"
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolled region must take the keyboard's arrows
        tabIndex={0}
        aria-label="Event rows (scroll)"
        onScroll={(e) => setTop((e.currentTarget as HTMLElement).scrollTop)}
        style={{ height: `${ROW_H * (VISIBLE + 1)}px` }}
      >
        <div class="vspace" style={{ height: `${ROW_H * (rows.length + 1)}px` }}>
          <table style={{ top: `${first * ROW_H}px` }}>
            <thead>
              <tr>
                <th>#</th>
                {columns.map((c) => (
                  <th key={c}>{c}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {shown.map((r, i) => (
                // biome-ignore lint/suspicious/noArrayIndexKey: the row's number in the window is its identity
                <tr key={first + i} class="event-row">
                  <td>{first + i + 1}</td>
                  {columns.map((c) => (
                    <td key={c}>{cell(r[c])}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </div>
    </div>
  );
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return "";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

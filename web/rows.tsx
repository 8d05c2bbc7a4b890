/**
 * The rows a trace streams by: counted per domain, and a bounded window of them kept for the
 * table (the first WINDOW of each domain). The rest pass through and are dropped, so the page
 * stays as flat in memory as the server; the whole result is a download (a background job).
 */
import { useState } from "preact/hooks";
import { fmt } from "./api.js";

export const WINDOW = 2000;

export class RowWindow {
  readonly counts = new Map<string, number>();
  readonly kept = new Map<string, Record<string, unknown>[]>();
  /** Domains whose end line (`"end":true`) has arrived. */
  readonly ended = new Set<string>();
  trailer: Record<string, unknown> | null = null;

  /** One NDJSON line of /api/trace/events. */
  add(line: Record<string, unknown>): void {
    if ("trailer" in line) {
      this.trailer = line.trailer as Record<string, unknown>;
      return;
    }
    const { domain, ...row } = line;
    const d = String(domain);
    if (line.end === true) {
      this.ended.add(d);
      return;
    }
    this.counts.set(d, (this.counts.get(d) ?? 0) + 1);
    let rows = this.kept.get(d);
    if (!rows) {
      rows = [];
      this.kept.set(d, rows);
    }
    if (rows.length < WINDOW) rows.push(row);
  }

  total(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
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

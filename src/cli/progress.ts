import type { Progress } from "../core/progress.js";

/** Seconds of work a rate is measured over: long enough not to jump with each page. */
const WINDOW_MS = 3000;

/**
 * A one-line progress bar with rows/s on a terminal; silent when not `enabled`. The rate is
 * the rows of the last few seconds over their time, shown once a second of the phase has
 * passed (the first page alone would claim millions of rows/s).
 */
export function progressLine(
  enabled: boolean,
  write: (text: string) => void = (t) => process.stderr.write(t),
  now: () => number = Date.now,
): {
  update: (p: Progress) => void;
  done: () => void;
} {
  let phase = "";
  let startedAt = 0;
  let drawnAt = Number.NEGATIVE_INFINITY;
  let drawn = false;
  let samples: { at: number; done: number }[] = [];
  const fmt = (n: number) => n.toLocaleString("en-US");
  return {
    update(p) {
      if (!enabled) return;
      const t = now();
      if (p.phase !== phase) {
        if (drawn) write("\n");
        phase = p.phase;
        startedAt = t;
        samples = [{ at: t, done: 0 }];
      }
      samples.push({ at: t, done: p.done });
      while (samples.length > 2 && t - (samples[1] as { at: number }).at >= WINDOW_MS) {
        samples.shift();
      }
      if (t - drawnAt < 100 && p.done !== p.total) return;
      drawnAt = t;
      const first = samples[0] as { at: number; done: number };
      const rate =
        t - startedAt >= 1000
          ? `  ${fmt(Math.round(((p.done - first.done) * 1000) / (t - first.at)))} rows/s`
          : "";
      const frac = p.total ? Math.min(1, p.done / p.total) : 0;
      const bar = p.total
        ? `[${"#".repeat(Math.round(frac * 24)).padEnd(24, "-")}] ${(frac * 100).toFixed(0).padStart(3)}% `
        : "";
      const of = p.total ? `/${fmt(p.total)}` : "";
      write(
        `\r${p.phase.padEnd(7)} ${p.table} ${p.date} ${bar}${fmt(p.done)}${of} rows${rate}\x1b[K`,
      );
      drawn = true;
    },
    done() {
      if (drawn) write("\n");
      drawn = false;
      phase = "";
    },
  };
}

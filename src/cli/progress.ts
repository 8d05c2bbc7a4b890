import type { Progress } from "../core/progress.js";

/** A one-line progress bar with rows/s on a terminal; silent when stderr is not one. */
export function progressLine(enabled: boolean): {
  update: (p: Progress) => void;
  done: () => void;
} {
  let phase = "";
  let startedAt = 0;
  let drawnAt = 0;
  let drawn = false;
  const fmt = (n: number) => n.toLocaleString("en-US");
  return {
    update(p) {
      if (!enabled) return;
      const now = Date.now();
      if (p.phase !== phase) {
        if (drawn) process.stderr.write("\n");
        phase = p.phase;
        startedAt = now;
      }
      if (now - drawnAt < 100 && p.done !== p.total) return;
      drawnAt = now;
      const rate = p.done / Math.max(0.001, (now - startedAt) / 1000);
      const frac = p.total ? Math.min(1, p.done / p.total) : 0;
      const bar = p.total
        ? `[${"#".repeat(Math.round(frac * 24)).padEnd(24, "-")}] ${(frac * 100).toFixed(0).padStart(3)}% `
        : "";
      const of = p.total ? `/${fmt(p.total)}` : "";
      process.stderr.write(
        `\r${p.phase.padEnd(7)} ${p.table} ${p.date} ${bar}${fmt(p.done)}${of} rows  ${fmt(Math.round(rate))} rows/s\x1b[K`,
      );
      drawn = true;
    },
    done() {
      if (drawn) process.stderr.write("\n");
      drawn = false;
      phase = "";
    },
  };
}

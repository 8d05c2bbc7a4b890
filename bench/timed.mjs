// Shared by the bench scripts: run a command under GNU time and read its figures.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";

/**
 * Run a command under /usr/bin/time -v; wall seconds, peak RSS (MB: of the largest single
 * process, as GNU time reports it), exit code, output, and the 1-minute load average just
 * before it started.
 */
export function timed(cmd, args, env = {}) {
  const load = loadavg()[0];
  const r = spawnSync("/usr/bin/time", ["-v", cmd, ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    maxBuffer: 64 << 20,
  });
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(
    r.stderr,
  );
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  const secs = wall
    ? Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3])
    : Number.NaN;
  const err = r.stderr.split("\n").find((l) => /Error|error:|sluice /.test(l));
  return {
    secs,
    rssMB: rss ? Number(rss[1]) / 1024 : Number.NaN,
    code: r.status,
    stdout: r.stdout,
    err,
    load,
  };
}

/** The stored object of a part in a date's folder: `part-0000-<attempt>.jsonl.gz`. */
export function partObject(folder, part = 0) {
  const prefix = `part-${String(part).padStart(4, "0")}-`;
  const name = readdirSync(folder).find(
    (n) => n.startsWith(prefix) && (n.endsWith(".jsonl.gz") || n.endsWith(".parquet")),
  );
  if (!name) throw new Error(`no object of part ${part} in ${folder}`);
  return join(folder, name);
}

/** `1.23 1.45 1.67`: the 1-, 5- and 15-minute load averages now. */
export const loads = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");

/** The median of some numbers (of an even count: the mean of the middle two). */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

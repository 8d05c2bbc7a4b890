// bench/archive: what archiving one day costs, sluice beside two baselines, in one run.
//
//   npm run bench:archive                      # 1M and 5M rows (a few minutes)
//   node bench/archive.mjs --sizes=100000      # a quick look
//   --naive-limit=SECONDS                      # stop the naive contender (default 300)
//   --rounds=N                                 # every contender N times, taking turns
//   --parquet                                  # (p) too: the same archive as Parquet parts
//
// For each size it generates a fresh day in SQLite (not timed), then runs under
// /usr/bin/time -v:
//   (a) sluice archive   key-paginated read -> JSONL -> gzip -> file, then read back and verified
//   (a2) sluice cleanup  delete exactly the archived keys, batches of 1000, count to zero
//   (p) with --parquet   sluice archive --format parquet: Parquet row groups, then verified
//   (b) naive            the seed's old code: OFFSET pages into one array, join, gzip whole
//   (c) sqlite3 | gzip   `sqlite3 -json ... | gzip` (RSS: the largest process of the pipe)
// and prints wall seconds, rows/s, peak RSS, archive size and the load average as each
// started; with --rounds, the contenders take turns N times and the ratio (a)/(c) is taken
// round by round. Figures, not pass/fail.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loads, median, partObject, timed } from "./timed.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "dist", "cli", "main.js");
const OUT = join(ROOT, "bench", "out");
const DATE = "2025-10-13";
const sizesArg = process.argv.find((a) => a.startsWith("--sizes="));
const sizes = (sizesArg ? sizesArg.slice(8) : "1000000,5000000").split(",").map(Number);
if (!existsSync(CLI)) throw new Error("run 'npm run build' first (npm run bench:archive does)");
if (!existsSync("/usr/bin/time")) throw new Error("needs GNU time: apt-get install time");
const hasSqlite3 = spawnSync("sqlite3", ["-version"]).status === 0;
// The naive contender pages with OFFSET, which is quadratic: at 5M rows it had read for
// 746 s (1.66 GB) without finishing. It is stopped at this limit and reported as such.
const limitArg = process.argv.find((a) => a.startsWith("--naive-limit="));
const NAIVE_LIMIT_S = limitArg ? Number(limitArg.slice(14)) : 300;
const roundsArg = process.argv.find((a) => a.startsWith("--rounds="));
const ROUNDS = roundsArg ? Number(roundsArg.slice(9)) : 1;
const PARQUET = process.argv.includes("--parquet");
const loadsAtStart = loads();

const mb = (bytes) => bytes / 1048576;
const results = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const n of sizes) {
    const dir = join(OUT, `archive-${n}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const db = join(dir, "hot.db");
    process.stderr.write(`generating ${n.toLocaleString()} rows for ${DATE} ...\n`);
    execFileSync(process.execPath, [
      CLI,
      "prepare-data",
      `--count=${n}`,
      `--date=${DATE}`,
      `--db=sqlite:${db}`,
    ]);
    if (hasSqlite3) execFileSync("sqlite3", [db, "PRAGMA wal_checkpoint(TRUNCATE);"]);
    const env = { SLUICE_DB: `sqlite:${db}`, SLUICE_STORE: `file:${join(dir, "store")}` };

    process.stderr.write("(a) sluice archive ...\n");
    const a = timed(process.execPath, [CLI, "archive", `--date=${DATE}`], env);
    results.push({
      rows: n,
      contender: "(a) sluice archive + verify",
      ...a,
      sizeMB:
        a.code === 0
          ? mb(statSync(partObject(join(dir, "store", "traffic_events", `date=${DATE}`))).size)
          : null,
    });

    process.stderr.write("(a2) sluice cleanup ...\n");
    const a2 = timed(process.execPath, [CLI, "cleanup", `--date=${DATE}`], env);
    results.push({ rows: n, contender: "(a2) sluice cleanup", ...a2, sizeMB: null });

    // (b) and (c) read the same rows: restore them from the archive's source copy first.
    execFileSync(process.execPath, [
      CLI,
      "prepare-data",
      `--count=${n}`,
      `--date=${DATE}`,
      `--db=sqlite:${join(dir, "hot-b.db")}`,
    ]);
    const dbB = join(dir, "hot-b.db");
    process.stderr.write("(b) naive archive ...\n");
    const naiveOut = join(dir, "naive.jsonl.gz");
    const b = timed("timeout", [
      "-s",
      "TERM",
      String(NAIVE_LIMIT_S),
      process.execPath,
      "--max-old-space-size=16384",
      join(ROOT, "bench", "naive-archive.mjs"),
      dbB,
      DATE,
      naiveOut,
    ]);
    if (b.code === 124) {
      b.err = `stopped at the ${NAIVE_LIMIT_S} s limit, still reading (OFFSET paging is quadratic)`;
    }
    results.push({
      rows: n,
      contender: "(b) naive (seed's old code)",
      ...b,
      sizeMB: b.code === 0 ? mb(statSync(naiveOut).size) : null,
    });

    if (PARQUET) {
      process.stderr.write("(p) sluice archive --format parquet ...\n");
      const envP = { SLUICE_DB: `sqlite:${dbB}`, SLUICE_STORE: `file:${join(dir, "store-p")}` };
      // On a copy: the ledger of this database must not list (p)'s part for (b) and (c).
      const dbP = join(dir, "hot-p.db");
      execFileSync("cp", [dbB, dbP]);
      envP.SLUICE_DB = `sqlite:${dbP}`;
      const p = timed(
        process.execPath,
        [CLI, "archive", `--date=${DATE}`, "--format=parquet"],
        envP,
      );
      results.push({
        rows: n,
        contender: "(p) sluice archive, Parquet",
        ...p,
        sizeMB:
          p.code === 0
            ? mb(statSync(partObject(join(dir, "store-p", "traffic_events", `date=${DATE}`))).size)
            : null,
      });
      rmSync(dbP, { force: true });
    }

    if (hasSqlite3) {
      process.stderr.write("(c) sqlite3 -json | gzip ...\n");
      const pipeOut = join(dir, "pipe.json.gz");
      const c = timed("bash", [
        "-c",
        `set -o pipefail; sqlite3 -json '${dbB}' "SELECT * FROM traffic_events WHERE event_date='${DATE}'" | gzip > '${pipeOut}'`,
      ]);
      results.push({
        rows: n,
        contender: "(c) sqlite3 -json | gzip",
        ...c,
        sizeMB: c.code === 0 ? mb(statSync(pipeOut).size) : null,
      });
    }
    rmSync(join(dir, "hot-b.db"), { force: true });
    for (const r of results) r.round ??= round;
  }
}

const pad = (s, w) => String(s).padStart(w);
console.log(
  `\nbench/archive on ${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${(await import("node:os")).cpus().length} cores, ${ROUNDS} round(s); load average at the start ${loadsAtStart}, at the end ${loads()}`,
);
console.log(
  `${"round".padEnd(5)} ${"rows".padEnd(10)} ${"contender".padEnd(30)} ${pad("wall s", 8)} ${pad("rows/s", 10)} ${pad("peak RSS MB", 12)} ${pad("archive MB", 11)} ${pad("load", 5)}  note`,
);
for (const r of results) {
  const ok = r.code === 0;
  console.log(
    `${String(r.round + 1).padEnd(5)} ${r.rows.toLocaleString().padEnd(10)} ${r.contender.padEnd(30)} ${pad(r.secs.toFixed(2), 8)} ${pad(ok ? Math.round(r.rows / r.secs).toLocaleString() : "-", 10)} ${pad(r.rssMB.toFixed(1), 12)} ${pad(r.sizeMB === null ? "-" : r.sizeMB.toFixed(1), 11)} ${pad(r.load.toFixed(2), 5)}  ${ok ? "" : `FAILED: ${r.err ?? `exit ${r.code}`}`}`,
  );
}
const all = (n, prefix) =>
  results.filter((r) => r.rows === n && r.contender.startsWith(prefix) && r.code === 0);
const ratios = (n, a, b) =>
  all(n, a)
    .map((x) => [x, all(n, b).find((y) => y.round === x.round)])
    .filter(([, y]) => y)
    .map(([x, y]) => x.secs / y.secs);
const list = (xs) => xs.map((x) => x.toFixed(2)).join(", ");
const met = (ok) => (ok ? "met" : "NOT met");
console.log("\ngoals (issue 18, issue 16): each ratio beside its own");
for (const n of sizes) {
  for (const [a, b, words, goal] of [
    ["(a)", "(c)", "sqlite3 -json | gzip", 1.2],
    ["(a)", "(b)", "naive", null],
    ["(p)", "(a)", "JSONL", 1.3],
  ]) {
    const rs = ratios(n, a, b);
    const m = median(rs);
    if (rs.length)
      console.log(
        `  ${n.toLocaleString()} rows: wall ${a} / ${b} ${words} = ${m.toFixed(2)}x (median of ${rs.length} round(s): ${list(rs)})${goal ? `; goal at most ${goal}x: ${met(m <= goal)}` : ""}`,
      );
  }
  const a = median(all(n, "(a)").map((r) => r.rssMB));
  if (n === 1_000_000 && Number.isFinite(a))
    console.log(
      `  1,000,000 rows: peak RSS of (a) ${a.toFixed(1)} MB; goal under 100 MB: ${met(a < 100)}`,
    );
}
for (const who of PARQUET ? ["(a)", "(p)"] : ["(a)"]) {
  if (sizes.length < 2) break;
  const lo = median(all(sizes[0], who).map((r) => r.rssMB));
  const hi = median(all(sizes.at(-1), who).map((r) => r.rssMB));
  const growth = ((hi - lo) / lo) * 100;
  console.log(
    `  peak RSS of ${who}, median: ${lo.toFixed(1)} MB at ${sizes[0].toLocaleString()} -> ${hi.toFixed(1)} MB at ${sizes.at(-1).toLocaleString()} (${growth.toFixed(1)}%; goal within 10%: ${met(growth <= 10)})`,
  );
}
writeFileSync(
  join(OUT, "archive-results.json"),
  `${JSON.stringify(
    results.map(({ stdout, ...r }) => r),
    null,
    2,
  )}\n`,
);

// bench/stats-tiers: the stats of a month whose older days live in the archive, beside the same
// query over the whole month kept hot; and what the rollup adds to an archive.
//
//   npm run bench:stats-tiers                       # 30 days of 1M rows, SQLite and PostgreSQL
//   node bench/stats-tiers.mjs --per-day=100000 --dbs=sqlite     # a quick look
//   --days=N --hot=N --requests=N --rounds=N --pg=postgres://...
//
// For each database: generate `days` days of `per-day` rows (not timed), then
//   (1) top-paths over the whole range with every row hot: the plain GROUP BY, timed a few
//       times, its answer kept;
//   (2) sluice backlog: every day but the last `hot` archived, verified (rollups written) and
//       cleaned (timed once, for the record);
//   (3) top-paths over the same range through sluice's stats reader: every hot row plus the
//       counts of the rows cleanup deleted, `requests` times: p50 and p99, and its answer compared
//       with (1)'s: they must be identical.
// Then (SQLite) one day of `per-day` rows archived with SLUICE_ROLLUPS=on and =off, taking
// turns `rounds` times under /usr/bin/time -v: wall and peak RSS side by side.
// Figures, not pass/fail (except that a differing answer is reported and exits 1).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { loads, median, timed } from "./timed.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "dist", "cli", "main.js");
const OUT = join(ROOT, "bench", "out", "stats-tiers");
const arg = (name, def) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : def;
};
const PER_DAY = Number(arg("per-day", "1000000"));
const DAYS = Number(arg("days", "30"));
const HOT = Number(arg("hot", "3"));
const REQUESTS = Number(arg("requests", "50"));
const ROUNDS = Number(arg("rounds", "3"));
const DBS = arg("dbs", "sqlite,postgres").split(",");
const PG = arg("pg", process.env.SLUICE_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test");
const LAST = "2025-10-30";
if (!existsSync(CLI)) throw new Error("run 'npm run build' first (npm run bench:stats-tiers does)");

const lib = (p) => import(pathToFileURL(join(ROOT, "dist", p)).href);
const { openSource } = await lib("node/open.js");
const { openContext } = await lib("node/context.js");
const { loadConfig } = await lib("node/config.js");
const { statsReader } = await lib("core/stats/queries.js");
const { daysBefore } = await lib("core/dates.js");
const FIRST = daysBefore(new Date(`${LAST}T00:00:00Z`), DAYS - 1);
// backlog keeps `--retention-days` days hot counting back from --today itself.
const TODAY = LAST;

const pct = (xs, p) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const ms = (x) => `${x.toFixed(1)} ms`;
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

async function timeIt(fn) {
  const t = performance.now();
  const out = await fn();
  return { ms: performance.now() - t, out };
}

let failed = false;
const rows = [];
for (const name of DBS) {
  const dir = join(OUT, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const table = "tiers_events";
  const url = name === "sqlite" ? `sqlite:${join(dir, "hot.db")}` : PG;
  const env = { SLUICE_DB: url, SLUICE_STORE: `file:${join(dir, "store")}`, SLUICE_TABLE: table };
  if (name !== "sqlite") {
    const s = await openSource(url);
    await s.execute(`DROP TABLE IF EXISTS ${table}`);
    for (const t of [
      "archive_rollups",
      "archive_deleted_rollups",
      "archive_parts",
      "archive_metadata",
    ]) {
      await s.execute(`DELETE FROM ${t} WHERE source_table = '${table}'`).catch(() => undefined);
    }
    await s.close();
  }
  process.stderr.write(
    `${name}: generating ${DAYS} days of ${PER_DAY.toLocaleString()} rows ...\n`,
  );
  execFileSync(
    process.execPath,
    [CLI, "prepare-data", `--count=${PER_DAY}`, `--date=${LAST}`, `--days=${DAYS}`],
    {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const c = await openContext(loadConfig({ ...process.env, ...env }));
  const { source, spec, ledger } = c.ctx;
  const query = (sql, params) => source.query(sql, [...params]);
  const hotOnly = statsReader(query, source.dialect, spec, "path", null);
  const tiered = statsReader(query, source.dialect, spec, "path", {
    ...ledger.tables,
    counted: true,
  });
  const limit = 100;

  process.stderr.write(`${name}: (1) top-paths over ${DAYS} days, all hot ...\n`);
  const plain = [];
  let answer = null;
  for (let i = 0; i < 5; i++) {
    const r = await timeIt(() => hotOnly.topPaths(FIRST, LAST, limit));
    plain.push(r.ms);
    answer = r.out.paths;
  }
  process.stderr.write(`${name}: (2) backlog: archive, verify, clean ${DAYS - HOT} days ...\n`);
  const backlog = timed(
    process.execPath,
    [CLI, "backlog", `--retention-days=${HOT}`, `--today=${TODAY}`],
    env,
  );
  if (backlog.code !== 0) throw new Error(`backlog failed: ${backlog.err}`);
  process.stderr.write(`${name}: (3) top-paths across tiers x${REQUESTS} ...\n`);
  const tiers = [];
  let coverage = null;
  let differs = 0;
  for (let i = 0; i < REQUESTS; i++) {
    const r = await timeIt(() => tiered.topPaths(FIRST, LAST, limit));
    tiers.push(r.ms);
    coverage = r.out.coverage;
    if (!same(r.out.paths, answer)) differs++;
  }
  await c.close();
  if (differs) failed = true;
  rows.push({
    db: name,
    plainP50: median(plain),
    plainMax: Math.max(...plain),
    tiersP50: pct(tiers, 50),
    tiersP99: pct(tiers, 99),
    speedup: median(plain) / pct(tiers, 50),
    identical: differs === 0 ? "yes" : `NO (${differs} of ${REQUESTS} differ)`,
    archived: coverage?.archive.length,
    hot: (coverage?.hot.length ?? 0) + (coverage?.both.length ?? 0),
    backlogS: backlog.secs,
  });
}

console.log(`\nbench/stats-tiers  ${new Date().toISOString()}  load at end ${loads()}`);
console.log(
  `${DAYS} days x ${PER_DAY.toLocaleString()} rows, ${DAYS - HOT} archived and cleaned, ${HOT} hot; top-paths limit 100 over all ${DAYS} days`,
);
console.log(
  "| db | all hot GROUP BY: p50 (max of 5) | across tiers: p50 / p99 (of %d) | speedup (p50) | goal | identical answer | days archive / hot | backlog s |".replace(
    "%d",
    REQUESTS,
  ),
);
console.log("|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.db} | ${ms(r.plainP50)} (${ms(r.plainMax)}) | ${ms(r.tiersP50)} / ${ms(r.tiersP99)} | ${r.speedup.toFixed(1)}x | >= 10x | ${r.identical} | ${r.archived} / ${r.hot} | ${r.backlogS.toFixed(1)} |`,
  );
}

if (DBS.includes("sqlite") && ROUNDS > 0) {
  // The rollup's own cost: one day archived (write + verify) with rollups on and off.
  const dir = join(OUT, "rollup-cost");
  const on = [];
  const off = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const [mode, into] of [
      ["on", on],
      ["off", off],
    ]) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const env = {
        SLUICE_DB: `sqlite:${join(dir, "hot.db")}`,
        SLUICE_STORE: `file:${join(dir, "store")}`,
        SLUICE_ROLLUPS: mode,
      };
      execFileSync(
        process.execPath,
        [CLI, "prepare-data", `--count=${PER_DAY}`, `--date=${LAST}`],
        { env: { ...process.env, ...env } },
      );
      process.stderr.write(`rollup cost: round ${round + 1}, rollups ${mode} ...\n`);
      const r = timed(process.execPath, [CLI, "archive", `--date=${LAST}`], env);
      if (r.code !== 0) throw new Error(`archive failed: ${r.err}`);
      into.push(r);
    }
  }
  const w = (xs) => xs.map((x) => x.secs.toFixed(2)).join(", ");
  const m = (xs) => xs.map((x) => x.rssMB.toFixed(1)).join(", ");
  const ratio = median(on.map((x) => x.secs)) / median(off.map((x) => x.secs));
  console.log(
    `\narchive + verify of ${PER_DAY.toLocaleString()} rows (SQLite -> folder), rollups on vs off, ${ROUNDS} rounds taking turns`,
  );
  console.log("| rollups | wall s: median (rounds) | peak RSS MB (rounds) |");
  console.log("|---|---|---|");
  console.log(`| on | ${median(on.map((x) => x.secs)).toFixed(2)} (${w(on)}) | ${m(on)} |`);
  console.log(`| off | ${median(off.map((x) => x.secs)).toFixed(2)} (${w(off)}) | ${m(off)} |`);
  console.log(`on/off wall: ${ratio.toFixed(3)}x (goal: within 1.10x)`);
}
process.exitCode = failed ? 1 : 0;

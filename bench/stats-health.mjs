// bench/stats-health: how long /healthz takes while unauthenticated stats queries run.
//
//   npm run build && node bench/stats-health.mjs          # 910K rows (7 days of 130K), 8 at once
//   node bench/stats-health.mjs --rows=130000 --parallel=8 --cli=/other/build/dist/cli/main.js
//
// One `sluice serve` process (WEB_CONCURRENCY=1) on a SQLite file of --rows page views over 7
// days. Prints /healthz latency idle (30 probes in a row), the time of one
// /api/stats/top-paths over the 7 days alone, and then /healthz latency (a probe every 25 ms)
// while --parallel such requests run at once, with their statuses. --cli runs another build of
// sluice on the same data (e.g. the code before stats left the event loop). Figures, not
// pass/fail.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnServe } from "./serve.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const CLI = arg("cli") ?? join(ROOT, "dist", "cli", "main.js");
const OUT = join(ROOT, "bench", "out", "stats-health");
const ROWS = Number(arg("rows") ?? 910_000);
const PARALLEL = Number(arg("parallel") ?? 8);
const LAST = "2025-10-19";
const FIRST = "2025-10-13";
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first`);
const note = (msg) => process.stderr.write(`${msg}\n`);

mkdirSync(OUT, { recursive: true });
const template = join(OUT, `template-${ROWS}.db`);
if (!existsSync(template)) {
  note(`generating ${ROWS.toLocaleString()} rows over 7 days ...`);
  execFileSync(process.execPath, [
    join(ROOT, "dist", "cli", "main.js"),
    "prepare-data",
    `--count=${Math.ceil(ROWS / 7)}`,
    "--days=7",
    `--date=${LAST}`,
    `--db=sqlite:${template}`,
  ]);
  execFileSync("sqlite3", [template, "PRAGMA wal_checkpoint(TRUNCATE)"]);
}
const dir = join(OUT, "run");
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
copyFileSync(template, join(dir, "hot.db"));

const { child, url, exited } = await spawnServe(CLI, dir);
const stats = `${url}/api/stats/top-paths?from=${FIRST}&to=${LAST}&limit=10`;

async function timedGet(target) {
  const started = performance.now();
  const res = await fetch(target);
  await res.arrayBuffer();
  return { ms: performance.now() - started, status: res.status };
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const max = (xs) => Math.max(...xs);
const f = (ms) => ms.toFixed(1);

try {
  await timedGet(`${url}/healthz`);
  await timedGet(stats); // warm: page cache, prepared statements, a stats thread if any
  const idle = [];
  for (let i = 0; i < 30; i++) idle.push((await timedGet(`${url}/healthz`)).ms);
  const alone = [];
  for (let i = 0; i < 3; i++) alone.push((await timedGet(stats)).ms);

  const started = performance.now();
  let running = PARALLEL;
  const load = Array.from({ length: PARALLEL }, () =>
    timedGet(stats).finally(() => {
      running--;
    }),
  );
  const busy = [];
  while (running > 0) {
    busy.push((await timedGet(`${url}/healthz`)).ms);
    await new Promise((r) => setTimeout(r, 25)); // a health checker's pace, not a busy loop
  }
  const answers = await Promise.all(load);
  const wall = performance.now() - started;
  const codes = {};
  for (const a of answers) codes[a.status] = (codes[a.status] ?? 0) + 1;

  console.log(`sluice: ${CLI}`);
  console.log(`rows: ${ROWS.toLocaleString()} over 7 days; ${PARALLEL} top-paths at once`);
  console.log("| what | median ms | max ms |");
  console.log("|---|---|---|");
  console.log(`| /healthz idle (30 probes) | ${f(median(idle))} | ${f(max(idle))} |`);
  console.log(`| one top-paths alone (3 runs) | ${f(median(alone))} | ${f(max(alone))} |`);
  console.log(
    `| /healthz during ${PARALLEL} top-paths (${busy.length} probes) | ${f(median(busy))} | ${f(max(busy))} |`,
  );
  console.log(
    `| the ${PARALLEL} top-paths, wall | ${f(wall)} | statuses ${JSON.stringify(codes)} |`,
  );
} finally {
  child.kill("SIGTERM");
  await exited;
}

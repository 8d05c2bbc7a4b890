// bench/stats-health: how long /healthz takes while unauthenticated stats queries run.
//
//   npm run build && node bench/stats-health.mjs          # 910K rows (7 days of 130K), 8 at once
//   node bench/stats-health.mjs --rows=130000 --parallel=8 --cli=/other/build/dist/cli/main.js
//   node bench/stats-health.mjs --cli=dist/cli/main.js --cli=/old/dist/cli/main.js --rounds=3
//
// One `sluice serve` process (WEB_CONCURRENCY=1) on a SQLite file of --rows page views over 7
// days. Prints /healthz latency idle (30 probes in a row), the time of one
// /api/stats/top-paths over the 7 days alone, and then /healthz latency (a probe every 25 ms)
// while --parallel such requests run at once, with their statuses. --cli runs another build of
// sluice on the same data (e.g. the code before stats left the event loop); given more than
// once, the builds take turns, --rounds times (each on a fresh copy of the data), so that they
// are compared under the same load. Figures, not pass/fail.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnServe } from "./serve.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const CLIS = process.argv.filter((a) => a.startsWith("--cli=")).map((a) => resolve(a.slice(6)));
if (CLIS.length === 0) CLIS.push(join(ROOT, "dist", "cli", "main.js"));
const ROUNDS = Number(arg("rounds") ?? 1);
const OUT = join(ROOT, "bench", "out", "stats-health");
const ROWS = Number(arg("rows") ?? 910_000);
const PARALLEL = Number(arg("parallel") ?? 8);
const LAST = "2025-10-19";
const FIRST = "2025-10-13";
for (const cli of CLIS) {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run 'npm run build' first`);
}
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
const loads = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
const loadsAtStart = loads();

async function timedGet(target) {
  const started = performance.now();
  const res = await fetch(target);
  await res.arrayBuffer();
  return { ms: performance.now() - started, status: res.status };
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const max = (xs) => Math.max(...xs);
const f = (ms) => ms.toFixed(1);

/** One build on a fresh copy of the data: its figures. */
async function measure(cli) {
  const dir = join(OUT, "run");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  copyFileSync(template, join(dir, "hot.db"));
  const { child, url, exited } = await spawnServe(cli, dir);
  const stats = `${url}/api/stats/top-paths?from=${FIRST}&to=${LAST}&limit=10`;
  try {
    await timedGet(`${url}/healthz`);
    await timedGet(stats); // warm: page cache, prepared statements, a stats thread if any
    const idle = [];
    for (let i = 0; i < 30; i++) idle.push((await timedGet(`${url}/healthz`)).ms);
    const alone = [];
    for (let i = 0; i < 3; i++) alone.push((await timedGet(stats)).ms);

    const load = loadavg()[0];
    const started = performance.now();
    let running = PARALLEL;
    const queries = Array.from({ length: PARALLEL }, () =>
      timedGet(stats).finally(() => {
        running--;
      }),
    );
    const busy = [];
    while (running > 0) {
      busy.push((await timedGet(`${url}/healthz`)).ms);
      await new Promise((r) => setTimeout(r, 25)); // a health checker's pace, not a busy loop
    }
    const answers = await Promise.all(queries);
    const wall = performance.now() - started;
    const codes = {};
    for (const a of answers) codes[a.status] = (codes[a.status] ?? 0) + 1;
    return { idle, alone, busy, wall, codes, load };
  } finally {
    child.kill("SIGTERM");
    await exited;
  }
}

const runs = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const cli of CLIS) {
    note(`round ${round + 1}: ${cli} ...`);
    runs.push({ cli, round, ...(await measure(cli)) });
  }
}

console.log(
  `bench/stats-health on ${new Date().toISOString().slice(0, 10)}, node ${process.version}; ${ROWS.toLocaleString()} rows over 7 days; ${PARALLEL} top-paths at once; load average at the start ${loadsAtStart}, at the end ${loads()}`,
);
CLIS.forEach((cli, i) => console.log(`build ${i + 1}: ${cli}`));
console.log(
  `| build | round | one top-paths alone, median (max) ms | /healthz idle, median (max) ms | /healthz during ${PARALLEL} top-paths, median (max) ms | probes | the ${PARALLEL}, wall s | statuses | load |`,
);
console.log("|---|---|---|---|---|---|---|---|---|");
for (const r of runs) {
  console.log(
    `| ${CLIS.indexOf(r.cli) + 1} | ${r.round + 1} | ${f(median(r.alone))} (${f(max(r.alone))}) | ${f(median(r.idle))} (${f(max(r.idle))}) | ${f(median(r.busy))} (${f(max(r.busy))}) | ${r.busy.length} | ${(r.wall / 1000).toFixed(2)} | ${JSON.stringify(r.codes)} | ${r.load.toFixed(2)} |`,
  );
}

// bench/cleanup: what comparing every row with its archived line costs cleanup, beside a
// cleanup that deletes by archived keys without comparing, in one run.
//
//   npm run build && node bench/cleanup.mjs --baseline=DIR [--rows=1000000] [--dbs=sqlite,postgres,pg-partitioned] [--repeat=1]
//   npm run build && node bench/cleanup.mjs --rollups [...]
//
// --rollups: this checkout with SLUICE_ROLLUPS=on (each batch counts the rows it deleted, in
// its transaction, for the stats) beside =off, instead of a baseline checkout.
//
// DIR is another sluice checkout, built (DIR/dist/cli/main.js exists), whose cleanup does not
// compare: the main of 2026-12-01 (3962434) is the one measured in the README:
//   git worktree add /tmp/sluice-base 3962434 && ln -s "$PWD/node_modules" /tmp/sluice-base/ &&
//   (cd /tmp/sluice-base && npm run build)
// For each database and contender: the same generated day (not timed), `archive` (not timed),
// then `cleanup` under /usr/bin/time -v: wall seconds, rows/s, peak RSS. Contenders take turns
// within each repeat. PostgreSQL: SLUICE_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/test),
// a schema per contender, dropped first. pg-partitioned: the table is LIST-partitioned by day,
// so cleanup drops the day's partition (sluice after reading it beside the archive under the
// table lock; the baseline after counting rows in key ranges).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { loads, median, timed } from "./timed.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const OUT = join(ROOT, "bench", "out", "cleanup");
const DATE = "2025-10-13";
const arg = (name, def) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : def;
};
const baseline = arg("baseline", "");
const rollups = process.argv.includes("--rollups");
const rows = Number(arg("rows", "1000000"));
const dbs = arg("dbs", "sqlite,postgres").split(",");
const repeat = Number(arg("repeat", "1"));
const PG = process.env.SLUICE_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
if (!rollups && (!baseline || !existsSync(join(baseline, "dist", "cli", "main.js")))) {
  throw new Error("--baseline=DIR must be a built sluice checkout (see the head of this file)");
}
const here = join(ROOT, "dist", "cli", "main.js");
const contenders = rollups
  ? [
      { name: "rollups on: deleted rows counted", cli: here, env: { SLUICE_ROLLUPS: "on" } },
      { name: "rollups off", cli: here, env: { SLUICE_ROLLUPS: "off" } },
    ]
  : [
      { name: "sluice: compare each row, then delete", cli: here, env: {} },
      {
        name: "baseline: delete archived keys",
        cli: join(baseline, "dist", "cli", "main.js"),
        env: {},
      },
    ];

const pgUrl = (schema) =>
  `${PG}${PG.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}`;

async function fresh(kind, i) {
  if (kind === "sqlite") {
    const dir = join(OUT, `sqlite-${i}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    return { db: `sqlite:${join(dir, "hot.db")}`, store: `file:${join(dir, "store")}` };
  }
  const schema = `sluice_bench_cleanup_${kind.replace("-", "_")}_${i}`;
  const admin = new pg.Client({ connectionString: PG });
  await admin.connect();
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`);
  if (kind === "pg-partitioned") {
    await admin.query(`CREATE TABLE ${schema}.traffic_events (
      id BIGINT GENERATED ALWAYS AS IDENTITY, event_date VARCHAR(10) NOT NULL, ts BIGINT NOT NULL,
      path VARCHAR(512) NOT NULL, referrer VARCHAR(512), country VARCHAR(2),
      user_agent VARCHAR(512), status INTEGER NOT NULL, duration_ms INTEGER NOT NULL,
      PRIMARY KEY (event_date, id)) PARTITION BY LIST (event_date)`);
    await admin.query(
      `CREATE TABLE ${schema}.traffic_events_day PARTITION OF ${schema}.traffic_events FOR VALUES IN ('${DATE}')`,
    );
  }
  await admin.end();
  const dir = join(OUT, `${kind}-${i}`);
  rmSync(dir, { recursive: true, force: true });
  return { db: pgUrl(schema), store: `file:${join(dir, "store")}` };
}

const loadsAtStart = loads();
const results = [];
for (let r = 0; r < repeat; r++) {
  for (const kind of dbs) {
    for (const [i, c] of contenders.entries()) {
      const where = await fresh(kind, i);
      const env = { SLUICE_DB: where.db, SLUICE_STORE: where.store, ...c.env };
      process.stderr.write(`${kind}: ${c.name}: preparing ${rows.toLocaleString()} rows ...\n`);
      const run = (args) =>
        execFileSync(process.execPath, [c.cli, ...args], { env: { ...process.env, ...env } });
      run(["prepare-data", `--count=${rows}`, `--date=${DATE}`]);
      run(["archive", `--date=${DATE}`]);
      process.stderr.write(`${kind}: ${c.name}: cleanup ...\n`);
      const t = timed(process.execPath, [c.cli, "cleanup", `--date=${DATE}`], env);
      if (t.code !== 0) throw new Error(`${c.name} cleanup failed: ${t.err}`);
      results.push({ kind, contender: c.name, ...t });
    }
  }
}

const pad = (s, n) => String(s).padEnd(n);
console.log(
  `\ncleanup of ${rows.toLocaleString()} rows, ${repeat} run(s) each, ${new Date().toISOString().slice(0, 10)}; load average at the start ${loadsAtStart}, at the end ${loads()}\n`,
);
console.log(
  `${pad("database", 16)}${pad("contender", 42)}${pad("wall s", 9)}${pad("rows/s", 10)}${pad("peak RSS MB", 13)}load`,
);
for (const x of results) {
  console.log(
    `${pad(x.kind, 16)}${pad(x.contender, 42)}${pad(x.secs.toFixed(2), 9)}${pad(Math.round(rows / x.secs).toLocaleString(), 10)}${pad(x.rssMB.toFixed(1), 13)}${x.load.toFixed(2)}`,
  );
}
for (const kind of dbs) {
  const med = (name) =>
    median(results.filter((x) => x.kind === kind && x.contender === name).map((x) => x.secs));
  const ratio = med(contenders[0].name) / med(contenders[1].name);
  const what = rollups ? "rollups on / off" : "compare / baseline";
  console.log(`${kind}: ${what} wall (median) = ${ratio.toFixed(2)}x`);
}

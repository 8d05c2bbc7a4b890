// bench/query: `sluice query` over archived days beside DuckDB run directly on the same files.
//
//   npm run bench:query                              # 30 days of 1M rows (setup: ~15 min)
//   node bench/query.mjs --days=5 --rows=200000      # a quick look
//   --rounds=N                                       # each contender N times, taking turns
//   --format=parquet                                 # the days archived as Parquet parts
//
// Setup (not timed): N days of generated page views in SQLite, each archived, verified and
// cleaned by sluice (gzip JSONL in a folder store). Then, under /usr/bin/time -v, the same
// top-paths SQL over every day:
//   (a) sluice query          views over the verified parts the ledger lists
//   (a2) sluice query --hot   the same plus the hot table (empty here) and the ledger's
//                             passed keys and skipped lines
//   (b) DuckDB directly       read_json over the same folder with a glob, in one node process
// and prints wall seconds and peak RSS per round, the medians and (a)/(b), beside the goal
// (1.2x). The answers of all three are compared: a bench that answers differently fails.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loads, median, timed } from "./timed.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "dist", "cli", "main.js");
const arg = (name, fallback) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : fallback;
};
const DAYS = Number(arg("days", "30"));
const ROWS = Number(arg("rows", "1000000"));
const ROUNDS = Number(arg("rounds", "3"));
const LAST = "2025-10-30";
const GOAL = 1.2;
const FORMAT = arg("format", "jsonl");
if (!["jsonl", "parquet"].includes(FORMAT)) throw new Error("--format is jsonl or parquet");
if (!existsSync(CLI)) throw new Error("run 'npm run build' first (npm run bench:query does)");

const dir = join(
  ROOT,
  "bench",
  "out",
  `query-${DAYS}x${ROWS}${FORMAT === "jsonl" ? "" : `-${FORMAT}`}`,
);
const db = join(dir, "hot.db");
const store = join(dir, "store");
const env = { SLUICE_DB: `sqlite:${db}`, SLUICE_STORE: `file:${store}` };
const SQL =
  "SELECT path, COUNT(*) AS views FROM traffic_events GROUP BY path ORDER BY views DESC, path LIMIT 10";

if (!existsSync(join(dir, "ready"))) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  process.stderr.write(`generating ${DAYS} days of ${ROWS.toLocaleString()} rows ...\n`);
  const cli = (...args) =>
    execFileSync(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
  cli("prepare-data", `--count=${ROWS}`, `--days=${DAYS}`, `--date=${LAST}`);
  for (let i = DAYS - 1; i >= 0; i--) {
    const d = new Date(Date.parse(`${LAST}T00:00:00Z`) - i * 86_400_000).toISOString().slice(0, 10);
    process.stderr.write(`archiving and cleaning ${d} ...\n`);
    cli("archive", `--date=${d}`, `--format=${FORMAT}`);
    cli("cleanup", `--date=${d}`);
  }
  execFileSync("touch", [join(dir, "ready")]);
}

// DuckDB on the same files, as a user would run it by hand.
const direct = `
import { DuckDBInstance } from "@duckdb/node-api";
const db = await DuckDBInstance.create(":memory:");
const c = await db.connect();
const sql = process.argv[1].replace("traffic_events", ${JSON.stringify(
  FORMAT === "parquet"
    ? `read_parquet('${store}/traffic_events/*/*.parquet', hive_partitioning = true)`
    : `read_json('${store}/traffic_events/*/*.jsonl.gz', format = 'newline_delimited', hive_partitioning = true)`,
)});
const r = await c.runAndReadAll(sql);
for (const row of r.getRowObjectsJson()) process.stdout.write(JSON.stringify(row) + "\\n");
`;

const contenders = [
  ["(a) sluice query", [CLI, "--json", "query", SQL]],
  ["(a2) sluice query --hot", [CLI, "--json", "query", "--hot", SQL]],
  ["(b) DuckDB directly", ["--input-type=module", "-e", direct, SQL]],
];
const runs = new Map(contenders.map(([name]) => [name, []]));
const answers = new Map();
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, args] of contenders) {
    const r = timed(process.execPath, args, env);
    if (r.code !== 0) throw new Error(`${name} failed: ${r.err ?? r.stdout}`);
    const rows = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
      .map((x) => `${x.path} ${Number(x.views)}`);
    answers.set(name, rows.join("; "));
    runs.get(name).push(r);
    process.stderr.write(
      `round ${round + 1} ${name}: ${r.secs.toFixed(2)} s, ${r.rssMB.toFixed(1)} MB (load ${r.load.toFixed(2)})\n`,
    );
  }
}
const distinct = new Set(answers.values());
if (distinct.size !== 1)
  throw new Error(`the answers differ:\n${[...answers].map(([k, v]) => `${k}: ${v}`).join("\n")}`);

console.log(
  `\nsluice query bench: ${DAYS} days x ${ROWS.toLocaleString()} rows as ${FORMAT}, ${ROUNDS} rounds (load at end ${loads()})`,
);
console.log(`SQL: ${SQL}`);
console.log("| contender | wall s (median) | min | max | peak RSS MB (median) |");
console.log("|---|---|---|---|---|");
const med = (name, f) => median(runs.get(name).map(f));
for (const [name] of contenders) {
  const secs = runs.get(name).map((r) => r.secs);
  console.log(
    `| ${name} | ${med(name, (r) => r.secs).toFixed(2)} | ${Math.min(...secs).toFixed(2)} | ${Math.max(...secs).toFixed(2)} | ${med(name, (r) => r.rssMB).toFixed(1)} |`,
  );
}
const ratio = (a) => {
  const xs = runs.get(a).map((r, i) => r.secs / runs.get("(b) DuckDB directly")[i].secs);
  return median(xs);
};
console.log(
  `\n(a)/(b) wall, median of rounds: ${ratio("(a) sluice query").toFixed(2)}x (goal ${GOAL}x)`,
);
console.log(
  `(a2)/(b) wall, median of rounds: ${ratio("(a2) sluice query --hot").toFixed(2)}x (goal ${GOAL}x)`,
);
console.log(`answers equal: ${[...answers.values()][0]}`);

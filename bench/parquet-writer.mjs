// bench/parquet-writer: can a pure-JS Parquet writer (what the Worker can run) write a day as
// row groups streamed to the store, in bounded memory, at a cost near the gzip JSONL path?
//
//   node bench/parquet-writer.mjs                  # 1M rows
//   node bench/parquet-writer.mjs --rows=200000 --row-group=50000
//
// Generates one day of the traffic table in SQLite (not timed), then, each in its own process
// under /usr/bin/time -v, reads it in key order in pages of 5000 and writes:
//   (a) hyparquet-writer: typed columns (INT64, INT32, STRING), snappy, min/max statistics,
//       one row group per --row-group rows, each handed to the file as soon as it is encoded;
//   (b) gzip JSONL: each row as JSON, zlib level 6 (the archive's format, without sluice);
//   (c) DuckDB's native COPY ... TO parquet (zstd) from the same rows as JSONL, as the bar.
// Then DuckDB reads (a) back: the row count and sums of id, duration_ms, status must equal
// SQLite's. Prints wall s, rows/s, peak RSS, file size. Figures, not pass/fail.
import { execFileSync } from "node:child_process";
import {
  closeSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  openSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createGzip } from "node:zlib";
import { loads, timed } from "./timed.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "dist", "cli", "main.js");
const OUT = join(ROOT, "bench", "out", "parquet-writer");
const arg = (name, def) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : def;
};
const ROWS = Number(arg("rows", "1000000"));
const ROW_GROUP = Number(arg("row-group", "100000"));
const DATE = "2025-10-13";
const mode = arg("mode", "");

const COLUMNS = [
  ["id", "INT64"],
  ["event_date", "STRING"],
  ["ts", "INT64"],
  ["path", "STRING"],
  ["referrer", "STRING"],
  ["country", "STRING"],
  ["user_agent", "STRING"],
  ["status", "INT32"],
  ["duration_ms", "INT32"],
];

async function* pages(db) {
  const Database = (await import("better-sqlite3")).default;
  const sql = new Database(db, { readonly: true });
  const stmt = sql.prepare(
    "SELECT * FROM traffic_events WHERE event_date = ? AND id > ? ORDER BY id LIMIT 5000",
  );
  let last = -1;
  for (;;) {
    const rows = stmt.all(DATE, last);
    if (rows.length === 0) break;
    yield rows;
    last = rows.at(-1).id;
  }
  sql.close();
}

if (mode === "hyparquet") {
  const { ParquetWriter, ByteWriter } = await import("hyparquet-writer");
  const [, , db, file] = process.argv.filter((a) => !a.startsWith("--"));
  const fd = openSync(file, "w");
  const writer = new ByteWriter();
  // Each row group's bytes leave as soon as it is encoded: memory holds one group at a time.
  writer.flush = () => {
    writeSync(fd, new Uint8Array(writer.buffer, 0, writer.index));
    writer.index = 0;
  };
  writer.finish = () => writer.flush();
  const schema = [
    { name: "root", num_children: COLUMNS.length },
    ...COLUMNS.map(([name, type]) =>
      type === "STRING"
        ? { name, type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" }
        : { name, type, repetition_type: "OPTIONAL" },
    ),
  ];
  const pq = new ParquetWriter({ writer, schema, codec: "SNAPPY", statistics: true });
  let group = COLUMNS.map(() => []);
  let n = 0;
  const flushGroup = () => {
    if (n === 0) return;
    pq.write({
      columnData: COLUMNS.map(([name, type], i) => ({
        name,
        data: type === "INT64" ? group[i].map((v) => (v === null ? null : BigInt(v))) : group[i],
      })),
      rowGroupSize: n,
    });
    group = COLUMNS.map(() => []);
    n = 0;
  };
  for await (const rows of pages(db)) {
    for (const r of rows) {
      COLUMNS.forEach(([name], i) => group[i].push(r[name] ?? null));
      if (++n === ROW_GROUP) flushGroup();
    }
  }
  flushGroup();
  pq.finish();
  closeSync(fd);
  process.exit(0);
}

if (mode === "jsonl") {
  const [, , db, file] = process.argv.filter((a) => !a.startsWith("--"));
  const gzip = createGzip({ level: 6 });
  const out = createWriteStream(file);
  gzip.pipe(out);
  for await (const rows of pages(db)) {
    const text = `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`;
    if (!gzip.write(text)) await new Promise((r) => gzip.once("drain", r));
  }
  gzip.end();
  await new Promise((r) => out.once("finish", r));
  process.exit(0);
}

if (mode === "duckdb") {
  const [, , jsonl, file] = process.argv.filter((a) => !a.startsWith("--"));
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const conn = await (await DuckDBInstance.create(":memory:")).connect();
  await conn.run(
    `COPY (SELECT * FROM read_json('${jsonl}', format = 'newline_delimited')) TO '${file}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${ROW_GROUP})`,
  );
  process.exit(0);
}

// The driver: data, then each contender in its own process.
if (!existsSync(CLI)) throw new Error("run 'npm run build' first");
rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
const db = join(OUT, "hot.db");
process.stderr.write(`generating ${ROWS.toLocaleString()} rows ...\n`);
execFileSync(process.execPath, [
  CLI,
  "prepare-data",
  `--count=${ROWS}`,
  `--date=${DATE}`,
  `--db=sqlite:${db}`,
]);
const self = fileURLToPath(import.meta.url);
const files = {
  hyparquet: join(OUT, "day.parquet"),
  jsonl: join(OUT, "day.jsonl.gz"),
  duckdb: join(OUT, "day-duckdb.parquet"),
};
const results = [];
// The capped runs: V8 with a 64 MB old space (a Worker's isolate has 128 MB in all), which
// shows what the writer keeps rather than what a lazy collector leaves behind.
const CAP = "--max-old-space-size=64";
for (const [name, input, flags, label] of [
  ["jsonl", db, [], "jsonl"],
  ["hyparquet", db, [], "hyparquet"],
  ["jsonl", db, [CAP], "jsonl-capped"],
  ["hyparquet", db, [CAP], "hyparquet-capped"],
  ["duckdb", files.jsonl, [], "duckdb"],
]) {
  process.stderr.write(`(${label}) ...\n`);
  const r = timed(process.execPath, [
    ...flags,
    self,
    `--mode=${name}`,
    `--row-group=${ROW_GROUP}`,
    input,
    files[name],
  ]);
  if (r.code !== 0) throw new Error(`${label} failed: ${r.err}`);
  results.push({ name: label, ...r, mb: statSync(files[name]).size / 1048576 });
}

const { DuckDBInstance } = await import("@duckdb/node-api");
const conn = await (await DuckDBInstance.create(":memory:")).connect();
const sums =
  "COUNT(*)::BIGINT AS n, SUM(id)::BIGINT AS ids, SUM(duration_ms)::BIGINT AS ms, SUM(status)::BIGINT AS st";
const Database = (await import("better-sqlite3")).default;
const sql = new Database(db, { readonly: true });
const want = sql
  .prepare(
    "SELECT COUNT(*) AS n, SUM(id) AS ids, SUM(duration_ms) AS ms, SUM(status) AS st FROM traffic_events",
  )
  .get();
sql.close();
const got = (
  await conn.runAndReadAll(`SELECT ${sums} FROM '${files.hyparquet}'`)
).getRowObjectsJson()[0];
const groups = (
  await conn.runAndReadAll(
    `SELECT COUNT(DISTINCT row_group_id)::INTEGER AS g, BOOL_AND(stats_min_value IS NOT NULL) AS stats FROM parquet_metadata('${files.hyparquet}')`,
  )
).getRowObjectsJson()[0];
const same = ["n", "ids", "ms", "st"].every((k) => String(got[k]) === String(want[k]));

console.log(`\nbench/parquet-writer  ${new Date().toISOString()}  load ${loads()}`);
console.log(
  `${ROWS.toLocaleString()} rows of traffic_events (9 columns), row groups of ${ROW_GROUP.toLocaleString()}`,
);
console.log("| contender | wall s | rows/s | peak RSS MB | file MB |");
console.log("|---|---|---|---|---|");
const label = {
  jsonl: "gzip JSONL (JSON.stringify + zlib 6)",
  hyparquet: "hyparquet-writer (pure JS, snappy, statistics)",
  duckdb: "DuckDB COPY TO parquet (native, zstd), from the JSONL",
  "jsonl-capped": "gzip JSONL, V8 old space capped at 64 MB",
  "hyparquet-capped": "hyparquet-writer, V8 old space capped at 64 MB",
};
for (const r of results) {
  console.log(
    `| ${label[r.name]} | ${r.secs.toFixed(2)} | ${Math.round(ROWS / r.secs).toLocaleString()} | ${r.rssMB.toFixed(1)} | ${r.mb.toFixed(1)} |`,
  );
}
console.log(
  `DuckDB reads the hyparquet file back: ${same ? "same" : "DIFFERENT"} count and sums (${JSON.stringify(got)}); ${groups.g} row groups, min/max statistics: ${groups.stats}`,
);
if (!same) process.exitCode = 1;

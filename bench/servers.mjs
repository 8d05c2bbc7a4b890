// bench/servers: sluice on the real servers, each beside that database's own export pipe,
// MariaDB also beside Percona's pt-archiver, and archives to an S3-protocol server at two sizes.
//
//   npm run bench:servers                                        # 1M rows; S3 at 1M and 5M
//   node bench/servers.mjs --rows=100000 --s3-sizes=100000,200000  # a quick look
//
// Servers: SLUICE_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/test) and
// SLUICE_BENCH_MYSQL_URL (default mysql://root@127.0.0.1:3306/test); each run works in a
// schema/database `sluice_bench` it drops and makes anew. Needs GNU time, psql, mysql, gzip;
// pt-archiver (Debian: percona-toolkit) for its row. Every command runs under /usr/bin/time -v.
// Figures, not pass/fail.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { partObject, timed } from "./timed.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "dist", "cli", "main.js");
const OUT = join(ROOT, "bench", "out", "servers");
const DATE = "2025-10-13";
const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const ROWS = Number(arg("rows") ?? 1_000_000);
const S3_SIZES = (arg("s3-sizes") ?? "1000000,5000000").split(",").map(Number);
const PG = process.env.SLUICE_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const MY = process.env.SLUICE_BENCH_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test";
if (!existsSync(CLI)) throw new Error("run 'npm run build' first (npm run bench:servers does)");

rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
const results = [];
const note = (msg) => process.stderr.write(`${msg}\n`);
const sh = (script) => ["-c", `set -o pipefail; ${script}`];
const size = (file) => (existsSync(file) ? statSync(file).size / 1048576 : null);
const prepare = (db, table, n) =>
  execFileSync(process.execPath, [
    CLI,
    "prepare-data",
    `--count=${n}`,
    `--date=${DATE}`,
    `--db=${db}`,
    `--table=${table}`,
  ]);
function record(section, rows, contender, r, extra = {}) {
  results.push({ section, rows, contender, ...r, ...extra });
}

// PostgreSQL: sluice archive + cleanup beside COPY (SELECT row_to_json ...) | gzip.
{
  const schema = "sluice_bench";
  execFileSync("psql", [
    PG,
    "-qc",
    `DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`,
  ]);
  const db = `${PG}${PG.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  note(`PostgreSQL: generating ${ROWS.toLocaleString()} rows ...`);
  prepare(db, "te", ROWS);
  const env = { SLUICE_DB: db, SLUICE_STORE: `file:${join(OUT, "pg")}`, SLUICE_TABLE: "te" };
  const copyOut = join(OUT, "pg-copy.json.gz");
  const copy = timed(
    "bash",
    sh(
      `psql '${PG}' -qc "COPY (SELECT row_to_json(t) FROM ${schema}.te t WHERE event_date = '${DATE}') TO STDOUT" | gzip > '${copyOut}'`,
    ),
  );
  record("PostgreSQL", ROWS, "COPY row_to_json | gzip", copy, { sizeMB: size(copyOut) });
  const a = timed(process.execPath, [CLI, "archive", `--date=${DATE}`], env);
  record("PostgreSQL", ROWS, "sluice archive + verify", a, {
    sizeMB: size(partObject(join(OUT, "pg", "te", `date=${DATE}`))),
  });
  const c = timed(process.execPath, [CLI, "cleanup", `--date=${DATE}`], env);
  const left = execFileSync("psql", [
    PG,
    "-tAc",
    `SELECT count(*) FROM ${schema}.te WHERE event_date = '${DATE}'`,
  ]);
  record("PostgreSQL", ROWS, "sluice cleanup", c, { left: Number(String(left).trim()) });

  // The same rows in a table partitioned by date: cleanup drops the day's partition.
  execFileSync("psql", [
    PG,
    "-qc",
    `CREATE TABLE ${schema}.tp (id BIGINT GENERATED ALWAYS AS IDENTITY, event_date VARCHAR(10) NOT NULL,
       ts BIGINT NOT NULL, path VARCHAR(512) NOT NULL, referrer VARCHAR(512), country VARCHAR(2),
       user_agent VARCHAR(512), status INTEGER NOT NULL, duration_ms INTEGER NOT NULL,
       PRIMARY KEY (event_date, id)) PARTITION BY LIST (event_date);
     CREATE TABLE ${schema}.tp_day PARTITION OF ${schema}.tp FOR VALUES IN ('${DATE}');
     CREATE TABLE ${schema}.tp_rest PARTITION OF ${schema}.tp DEFAULT`,
  ]);
  note(`PostgreSQL: generating ${ROWS.toLocaleString()} rows in a partitioned table ...`);
  prepare(db, "tp", ROWS);
  const penv = { ...env, SLUICE_TABLE: "tp", SLUICE_STORE: `file:${join(OUT, "pg-part")}` };
  const pa = timed(process.execPath, [CLI, "archive", `--date=${DATE}`], penv);
  record("PostgreSQL", ROWS, "partitioned: sluice archive + verify", pa);
  const pc = timed(process.execPath, [CLI, "cleanup", `--date=${DATE}`, "--json"], penv);
  const how = /"method":"([a-z-]+)"/.exec(pc.stdout)?.[1];
  const pleft = execFileSync("psql", [
    PG,
    "-tAc",
    `SELECT count(*) FROM ${schema}.tp WHERE event_date = '${DATE}'`,
  ]);
  record("PostgreSQL", ROWS, `partitioned: sluice cleanup (${how})`, pc, {
    left: Number(String(pleft).trim()),
  });
  execFileSync("psql", [PG, "-qc", `DROP SCHEMA ${schema} CASCADE`]);
}

// MariaDB: sluice beside mysql --batch | gzip, and archive + delete beside pt-archiver.
{
  const u = new URL(MY);
  const conn = [`-h${u.hostname}`, `-P${u.port || 3306}`, `-u${decodeURIComponent(u.username)}`];
  if (u.password) conn.push(`-p${decodeURIComponent(u.password)}`);
  const dbName = "sluice_bench";
  const mysql = (sql) =>
    execFileSync("mysql", [...conn, "-N", "-e", sql])
      .toString()
      .trim();
  mysql(`DROP DATABASE IF EXISTS ${dbName}; CREATE DATABASE ${dbName}`);
  u.pathname = `/${dbName}`;
  const db = u.toString();
  note(`MariaDB: generating ${ROWS.toLocaleString()} rows, twice (sluice, pt-archiver) ...`);
  prepare(db, "te", ROWS);
  prepare(db, "te_pt", ROWS);
  const env = { SLUICE_DB: db, SLUICE_STORE: `file:${join(OUT, "my")}`, SLUICE_TABLE: "te" };
  const pipeOut = join(OUT, "my-batch.tsv.gz");
  const pipe = timed(
    "bash",
    sh(
      `mysql ${conn.join(" ")} ${dbName} --batch -e "SELECT * FROM te WHERE event_date = '${DATE}'" | gzip > '${pipeOut}'`,
    ),
  );
  record("MariaDB", ROWS, "mysql --batch | gzip", pipe, { sizeMB: size(pipeOut) });
  const a = timed(process.execPath, [CLI, "archive", `--date=${DATE}`], env);
  record("MariaDB", ROWS, "sluice archive + verify", a, {
    sizeMB: size(partObject(join(OUT, "my", "te", `date=${DATE}`))),
  });
  const c = timed(process.execPath, [CLI, "cleanup", `--date=${DATE}`], env);
  record("MariaDB", ROWS, "sluice cleanup", c, {
    left: Number(mysql(`SELECT COUNT(*) FROM ${dbName}.te WHERE event_date = '${DATE}'`)),
  });
  record("MariaDB", ROWS, "sluice archive + cleanup", {
    secs: a.secs + c.secs,
    rssMB: Math.max(a.rssMB, c.rssMB),
    code: a.code || c.code,
  });
  const ptOut = join(OUT, "pt-archiver.tsv");
  const source = [
    `h=${u.hostname}`,
    `P=${u.port || 3306}`,
    `u=${decodeURIComponent(u.username)}`,
    "A=utf8mb4",
  ];
  if (u.password) source.push(`p=${decodeURIComponent(u.password)}`);
  // pt-archiver's defaults, as a user would run it: it writes the rows to --file and deletes
  // them, 1000 a statement, committing each batch. By default (--safe-auto-increment) it
  // leaves the row with the highest AUTO_INCREMENT key, so "rows left" is 1, not 0.
  const hasPt = spawnSync("pt-archiver", ["--version"]).status === 0;
  if (!hasPt)
    note(
      "pt-archiver is not installed (Debian: apt-get install percona-toolkit); its row is skipped",
    );
  const pt = !hasPt
    ? null
    : timed("pt-archiver", [
        "--source",
        [...source, `D=${dbName}`, "t=te_pt"].join(","),
        "--where",
        `event_date = '${DATE}'`,
        "--file",
        ptOut,
        "--limit",
        "1000",
        "--commit-each",
      ]);
  if (pt)
    record("MariaDB", ROWS, "pt-archiver --file (archive + delete)", pt, {
      sizeMB: size(ptOut),
      left: Number(mysql(`SELECT COUNT(*) FROM ${dbName}.te_pt WHERE event_date = '${DATE}'`)),
    });
  mysql(`DROP DATABASE ${dbName}`);
}

// S3: archives from SQLite to an S3-protocol server (s3rver, its own process) at two sizes.
{
  const dir = join(OUT, "s3rver");
  mkdirSync(dir, { recursive: true });
  const server = spawn(
    process.execPath,
    [join(ROOT, "test", "fixtures", "s3rver-server.mjs"), dir],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const port = await new Promise((resolve) =>
    server.stdout.once("data", (d) => resolve(String(d).trim())),
  );
  const endpoint = `http://127.0.0.1:${port}`;
  const creds = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" };
  Object.assign(process.env, creds);
  const client = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true });
  await client.send(new CreateBucketCommand({ Bucket: "sluice-bench" }));
  try {
    for (const n of S3_SIZES) {
      const db = `sqlite:${join(OUT, `s3-${n}.db`)}`;
      note(`S3: generating ${n.toLocaleString()} rows ...`);
      prepare(db, "traffic_events", n);
      const store = `s3://sluice-bench/n${n}?endpoint=${encodeURIComponent(endpoint)}&region=us-east-1&forcePathStyle=true`;
      const a = timed(process.execPath, [CLI, "archive", `--date=${DATE}`], {
        SLUICE_DB: db,
        SLUICE_STORE: store,
        ...creds,
      });
      record("S3 (s3rver)", n, "sluice archive + verify, SQLite -> S3", a);
      rmSync(join(OUT, `s3-${n}.db`), { force: true });
    }
  } finally {
    server.kill();
  }
}

const pad = (s, w) => String(s).padStart(w);
console.log(`\nbench/servers on ${new Date().toISOString().slice(0, 10)}, node ${process.version}`);
console.log(
  `${"section".padEnd(12)} ${"rows".padEnd(10)} ${"contender".padEnd(46)} ${pad("wall s", 8)} ${pad("rows/s", 9)} ${pad("peak RSS MB", 12)} ${pad("out MB", 7)} ${pad("rows left", 9)}  note`,
);
for (const r of results) {
  const ok = r.code === 0;
  console.log(
    `${r.section.padEnd(12)} ${r.rows.toLocaleString().padEnd(10)} ${r.contender.padEnd(46)} ${pad(r.secs.toFixed(2), 8)} ${pad(ok ? Math.round(r.rows / r.secs).toLocaleString() : "-", 9)} ${pad(Number.isNaN(r.rssMB) ? "-" : r.rssMB.toFixed(1), 12)} ${pad(r.sizeMB == null ? "-" : r.sizeMB.toFixed(1), 7)} ${pad(r.left ?? "-", 9)}  ${ok ? "" : `FAILED: ${r.err ?? `exit ${r.code}`}`}`,
  );
}
const s3 = results.filter((r) => r.section.startsWith("S3"));
if (s3.length > 1) {
  const [lo, hi] = [s3[0], s3.at(-1)];
  console.log(
    `\nS3 peak RSS: ${lo.rssMB.toFixed(1)} MB at ${lo.rows.toLocaleString()} -> ${hi.rssMB.toFixed(1)} MB at ${hi.rows.toLocaleString()} (${(((hi.rssMB - lo.rssMB) / lo.rssMB) * 100).toFixed(1)}%; target: within 10%)`,
  );
}
writeFileSync(join(OUT, "..", "servers-results.json"), `${JSON.stringify(results, null, 2)}\n`);

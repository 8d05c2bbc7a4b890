// bench/servers: sluice on the real servers, each beside that database's own export pipe,
// MariaDB also beside Percona's pt-archiver (two settings), and archives to an S3-protocol
// server at two sizes.
//
//   npm run bench:servers                                        # 1M rows; S3 at 1M and 5M
//   node bench/servers.mjs --rounds=2                            # contenders take turns, twice
//   node bench/servers.mjs --rows=100000 --s3-sizes=100000,200000  # a quick look
//   node bench/servers.mjs --sections=mariadb                    # only some of pg,mariadb,s3
//
// Servers: SLUICE_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/test) and
// SLUICE_BENCH_MYSQL_URL (default mysql://root@127.0.0.1:3306/test); each run works in a
// schema/database `sluice_bench` it drops and makes anew. Needs GNU time, psql, mysql, gzip;
// pt-archiver for its rows (Debian/Ubuntu: `apt-get install -y percona-toolkit`; without it
// they are skipped, and the run says so). Every command runs under /usr/bin/time -v.
//
// Within a round every contender gets the same generated day in a table of its own (made
// before, not timed), and they run one after the other: the export pipe, sluice archive +
// verify, sluice cleanup, then pt-archiver as most guides show it (`--limit 1000
// --commit-each`: 1000 rows a SELECT, but one DELETE per row, by primary key) and at its
// fastest safe setting (`--bulk-delete --limit 1000 --commit-each`: one DELETE per 1000 rows,
// `WHERE key >= first AND key <= last AND (--where) LIMIT 1000`, committed with the batch
// after the batch's rows were written to --file). Both write the rows to --file (tab-separated,
// uncompressed, as SELECT INTO OUTFILE), read through `A=utf8mb4` so that its charset check
// passes, and keep pt-archiver's default --safe-auto-increment (the row with the highest
// AUTO_INCREMENT key stays: "rows left" is 1). --buffer is left out: its documentation warns
// it can lose data in a crash, and on this machine it made no measurable difference. Rounds
// repeat that order; the summary gives each contender's median and the median of the
// per-round ratios. Figures, not pass/fail.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { loads, median, partObject, timed } from "./timed.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "dist", "cli", "main.js");
const OUT = join(ROOT, "bench", "out", "servers");
const DATE = "2025-10-13";
const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const ROWS = Number(arg("rows") ?? 1_000_000);
const ROUNDS = Number(arg("rounds") ?? 1);
const S3_SIZES = (arg("s3-sizes") ?? "1000000,5000000").split(",").map(Number);
const SECTIONS = (arg("sections") ?? "pg,mariadb,s3").split(",");
const PG = process.env.SLUICE_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const MY = process.env.SLUICE_BENCH_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test";
if (!existsSync(CLI)) throw new Error("run 'npm run build' first (npm run bench:servers does)");
if (!existsSync("/usr/bin/time")) throw new Error("needs GNU time: apt-get install time");

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
function record(section, round, rows, contender, r, extra = {}) {
  results.push({ section, round, rows, contender, ...r, ...extra });
  const x = results.at(-1);
  note(
    `  ${section}, round ${round + 1}: ${contender}: ${x.secs.toFixed(2)} s, ${x.rssMB.toFixed(1)} MB (load ${x.load?.toFixed(2) ?? "-"})${x.code === 0 ? "" : `, FAILED: ${x.err ?? x.code}`}`,
  );
}
const loadsAtStart = loads();
note(`load average at the start: ${loadsAtStart}`);

// pt-archiver's settings: as most guides show it, and its fastest safe one.
const PT_SETTINGS = [
  { name: "pt-archiver --limit 1000 --commit-each", args: ["--limit", "1000", "--commit-each"] },
  {
    name: "pt-archiver --bulk-delete --limit 1000 --commit-each",
    args: ["--bulk-delete", "--limit", "1000", "--commit-each"],
  },
];
const hasPt = spawnSync("pt-archiver", ["--version"]).status === 0;
if (SECTIONS.includes("mariadb") && !hasPt) {
  note(
    "pt-archiver is not installed: its rows are skipped. To run them: apt-get install -y percona-toolkit (Debian/Ubuntu)",
  );
}

// PostgreSQL: sluice archive + cleanup beside COPY (SELECT row_to_json ...) | gzip.
const PG_SCHEMA = "sluice_bench";
const pgDb = `${PG}${PG.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${PG_SCHEMA}`)}`;
const pgCount = (table) =>
  Number(
    String(
      execFileSync("psql", [
        PG,
        "-tAc",
        `SELECT count(*) FROM ${PG_SCHEMA}.${table} WHERE event_date = '${DATE}'`,
      ]),
    ).trim(),
  );
function pgRound(round) {
  const te = `te_r${round}`;
  const tp = `tp_r${round}`;
  note(`PostgreSQL, round ${round + 1}: generating ${ROWS.toLocaleString()} rows, twice ...`);
  prepare(pgDb, te, ROWS);
  // The same rows in a table partitioned by date: cleanup drops the day's partition.
  execFileSync("psql", [
    PG,
    "-qc",
    `CREATE TABLE ${PG_SCHEMA}.${tp} (id BIGINT GENERATED ALWAYS AS IDENTITY, event_date VARCHAR(10) NOT NULL,
       ts BIGINT NOT NULL, path VARCHAR(512) NOT NULL, referrer VARCHAR(512), country VARCHAR(2),
       user_agent VARCHAR(512), status INTEGER NOT NULL, duration_ms INTEGER NOT NULL,
       PRIMARY KEY (event_date, id)) PARTITION BY LIST (event_date);
     CREATE TABLE ${PG_SCHEMA}.${tp}_day PARTITION OF ${PG_SCHEMA}.${tp} FOR VALUES IN ('${DATE}');
     CREATE TABLE ${PG_SCHEMA}.${tp}_rest PARTITION OF ${PG_SCHEMA}.${tp} DEFAULT`,
  ]);
  prepare(pgDb, tp, ROWS);
  const env = { SLUICE_DB: pgDb, SLUICE_STORE: `file:${join(OUT, "pg")}`, SLUICE_TABLE: te };
  const copyOut = join(OUT, `pg-copy-r${round}.json.gz`);
  const copy = timed(
    "bash",
    sh(
      `psql '${PG}' -qc "COPY (SELECT row_to_json(t) FROM ${PG_SCHEMA}.${te} t WHERE event_date = '${DATE}') TO STDOUT" | gzip > '${copyOut}'`,
    ),
  );
  record("PostgreSQL", round, ROWS, "COPY row_to_json | gzip", copy, { sizeMB: size(copyOut) });
  const a = timed(process.execPath, [CLI, "archive", `--date=${DATE}`], env);
  record("PostgreSQL", round, ROWS, "sluice archive + verify", a, {
    sizeMB: size(partObject(join(OUT, "pg", te, `date=${DATE}`))),
  });
  const c = timed(process.execPath, [CLI, "cleanup", `--date=${DATE}`], env);
  record("PostgreSQL", round, ROWS, "sluice cleanup", c, { left: pgCount(te) });
  const penv = { ...env, SLUICE_TABLE: tp, SLUICE_STORE: `file:${join(OUT, "pg-part")}` };
  const pa = timed(process.execPath, [CLI, "archive", `--date=${DATE}`], penv);
  record("PostgreSQL", round, ROWS, "partitioned: sluice archive + verify", pa);
  const pc = timed(process.execPath, [CLI, "cleanup", `--date=${DATE}`, "--json"], penv);
  const how = /"method":"([a-z-]+)"/.exec(pc.stdout)?.[1];
  record("PostgreSQL", round, ROWS, `partitioned: sluice cleanup (${how})`, pc, {
    left: pgCount(tp),
  });
  rmSync(copyOut, { force: true });
}
if (SECTIONS.includes("pg")) {
  execFileSync("psql", [
    PG,
    "-qc",
    `DROP SCHEMA IF EXISTS ${PG_SCHEMA} CASCADE; CREATE SCHEMA ${PG_SCHEMA}`,
  ]);
  for (let round = 0; round < ROUNDS; round++) pgRound(round);
  execFileSync("psql", [PG, "-qc", `DROP SCHEMA ${PG_SCHEMA} CASCADE`]);
}

// MariaDB: sluice beside mysql --batch | gzip, and archive + delete beside pt-archiver.
const my = new URL(MY);
const myConn = [`-h${my.hostname}`, `-P${my.port || 3306}`, `-u${decodeURIComponent(my.username)}`];
if (my.password) myConn.push(`-p${decodeURIComponent(my.password)}`);
const MY_DB = "sluice_bench";
const mysql = (sql) =>
  execFileSync("mysql", [...myConn, "-N", "-e", sql])
    .toString()
    .trim();
const myCount = (table) =>
  Number(mysql(`SELECT COUNT(*) FROM ${MY_DB}.${table} WHERE event_date = '${DATE}'`));
function mariaRound(round) {
  const u = new URL(MY);
  u.pathname = `/${MY_DB}`;
  const db = u.toString();
  const te = `te_r${round}`;
  const pts = PT_SETTINGS.map((_, i) => `te_pt${i}_r${round}`);
  note(
    `MariaDB, round ${round + 1}: generating ${ROWS.toLocaleString()} rows in ${1 + (hasPt ? pts.length : 0)} tables ...`,
  );
  prepare(db, te, ROWS);
  if (hasPt) for (const t of pts) prepare(db, t, ROWS);
  const env = { SLUICE_DB: db, SLUICE_STORE: `file:${join(OUT, "my")}`, SLUICE_TABLE: te };
  const pipeOut = join(OUT, `my-batch-r${round}.tsv.gz`);
  const pipe = timed(
    "bash",
    sh(
      `mysql ${myConn.join(" ")} ${MY_DB} --batch -e "SELECT * FROM ${te} WHERE event_date = '${DATE}'" | gzip > '${pipeOut}'`,
    ),
  );
  record("MariaDB", round, ROWS, "mysql --batch | gzip", pipe, { sizeMB: size(pipeOut) });
  rmSync(pipeOut, { force: true });
  const a = timed(process.execPath, [CLI, "archive", `--date=${DATE}`], env);
  record("MariaDB", round, ROWS, "sluice archive + verify", a, {
    sizeMB: size(partObject(join(OUT, "my", te, `date=${DATE}`))),
  });
  const c = timed(process.execPath, [CLI, "cleanup", `--date=${DATE}`], env);
  record("MariaDB", round, ROWS, "sluice cleanup", c, { left: myCount(te) });
  record(
    "MariaDB",
    round,
    ROWS,
    "sluice archive + cleanup",
    {
      secs: a.secs + c.secs,
      rssMB: Math.max(a.rssMB, c.rssMB),
      code: a.code || c.code,
      load: a.load,
    },
    { left: myCount(te) },
  );
  if (!hasPt) return;
  const source = [
    `h=${u.hostname}`,
    `P=${u.port || 3306}`,
    `u=${decodeURIComponent(u.username)}`,
    "A=utf8mb4",
    `D=${MY_DB}`,
  ];
  if (u.password) source.push(`p=${decodeURIComponent(u.password)}`);
  for (const [i, setting] of PT_SETTINGS.entries()) {
    const ptOut = join(OUT, `pt-archiver-${i}-r${round}.tsv`);
    const pt = timed("pt-archiver", [
      "--source",
      [...source, `t=${pts[i]}`].join(","),
      "--where",
      `event_date = '${DATE}'`,
      "--file",
      ptOut,
      ...setting.args,
    ]);
    record("MariaDB", round, ROWS, `${setting.name} --file (archive + delete)`, pt, {
      sizeMB: size(ptOut),
      left: myCount(pts[i]),
    });
    rmSync(ptOut, { force: true });
  }
}
if (SECTIONS.includes("mariadb")) {
  mysql(`DROP DATABASE IF EXISTS ${MY_DB}; CREATE DATABASE ${MY_DB}`);
  for (let round = 0; round < ROUNDS; round++) mariaRound(round);
  mysql(`DROP DATABASE ${MY_DB}`);
}

// S3: archives from SQLite to an S3-protocol server (s3rver, its own process) at two sizes.
if (SECTIONS.includes("s3")) {
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
      record("S3 (s3rver)", 0, n, "sluice archive + verify, SQLite -> S3", a);
      rmSync(join(OUT, `s3-${n}.db`), { force: true });
    }
  } finally {
    server.kill();
  }
}

const pad = (s, w) => String(s).padStart(w);
const f = (n, d = 2) => (n == null || Number.isNaN(n) ? "-" : n.toFixed(d));
console.log(
  `\nbench/servers on ${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${ROWS.toLocaleString()} rows, ${ROUNDS} round(s); load average at the start ${loadsAtStart}, at the end ${loads()}`,
);
console.log(
  `${"section".padEnd(12)} ${"round".padEnd(5)} ${"rows".padEnd(10)} ${"contender".padEnd(80)} ${pad("wall s", 8)} ${pad("rows/s", 9)} ${pad("peak RSS MB", 12)} ${pad("out MB", 7)} ${pad("rows left", 9)} ${pad("load", 5)}  note`,
);
for (const r of results) {
  const ok = r.code === 0;
  console.log(
    `${r.section.padEnd(12)} ${String(r.round + 1).padEnd(5)} ${r.rows.toLocaleString().padEnd(10)} ${r.contender.padEnd(80)} ${pad(f(r.secs), 8)} ${pad(ok ? Math.round(r.rows / r.secs).toLocaleString() : "-", 9)} ${pad(f(r.rssMB, 1), 12)} ${pad(f(r.sizeMB, 1), 7)} ${pad(r.left ?? "-", 9)} ${pad(f(r.load), 5)}  ${ok ? "" : `FAILED: ${r.err ?? `exit ${r.code}`}`}`,
  );
}

// Medians over the rounds, and the ratios taken round by round (the contenders of a round
// ran one after the other, so the machine's speed drifts less between them).
const of = (section, prefix) =>
  results.filter((r) => r.section === section && r.contender.startsWith(prefix));
function ratio(section, a, b, words, goal) {
  const as = of(section, a);
  const bs = of(section, b);
  const pairs = as
    .map((x) => [x, bs.find((y) => y.round === x.round)])
    .filter(([x, y]) => y && x.code === 0 && y.code === 0);
  if (pairs.length === 0) return;
  const rs = pairs.map(([x, y]) => x.secs / y.secs);
  console.log(
    `  ${section}: ${words}: ${f(median(rs))}x (median of ${rs.length} round(s): ${rs.map((x) => f(x)).join(", ")}; ${f(median(pairs.map(([x]) => x.secs)))} s vs ${f(median(pairs.map(([, y]) => y.secs)))} s)${goal ? `; issue 18's goal at most ${goal}x: ${median(rs) <= goal ? "met" : "NOT met"}` : ""}`,
  );
}
console.log("\nratios of wall time, round by round:");
ratio("PostgreSQL", "sluice archive", "COPY", "sluice archive + verify / COPY | gzip", 1.2);
ratio(
  "MariaDB",
  "sluice archive + verify",
  "mysql --batch",
  "sluice archive + verify / mysql | gzip",
  1.2,
);
for (const s of PT_SETTINGS) {
  ratio("MariaDB", s.name, "sluice archive + cleanup", `${s.name} / sluice archive + cleanup`);
}
const s3 = results.filter((r) => r.section.startsWith("S3"));
if (s3.length > 1) {
  const [lo, hi] = [s3[0], s3.at(-1)];
  console.log(
    `\nS3 peak RSS: ${lo.rssMB.toFixed(1)} MB at ${lo.rows.toLocaleString()} -> ${hi.rssMB.toFixed(1)} MB at ${hi.rows.toLocaleString()} (${(((hi.rssMB - lo.rssMB) / lo.rssMB) * 100).toFixed(1)}%; target: within 10%)`,
  );
}
writeFileSync(
  join(OUT, "..", "servers-results.json"),
  `${JSON.stringify(
    results.map(({ stdout, ...r }) => r),
    null,
    2,
  )}\n`,
);

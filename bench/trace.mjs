// bench/trace: POST /api/trace/events for MSD (both domains) at the seed's size, beside the
// seed's old path and beside psql, in one run.
//
//   npm run bench:trace                     # scales 1 (the seed's case) and 0.1
//   node bench/trace.mjs --scales=0.01      # a quick look
//   node bench/trace.mjs --keep             # leave the schemas (--reuse skips generating)
//   node bench/trace.mjs --station=TMTT     # seeds from another station (default PACK)
//   node bench/trace.mjs --no-concurrent    # skip the two-worker run
//   node bench/trace.mjs --rounds=3         # then sluice and psql twice more, taking turns
//
// Per scale, in a PostgreSQL schema of its own (SLUICE_BENCH_PG_URL, default
// postgres://postgres@127.0.0.1:5432/test; schema sluice_trace_s<scale>, dropped and made anew):
// 1. `sluice prepare-data --workload=mes --scale=S --replace`, then ANALYZE;
// 2. `sluice serve` (one process) on it; the MSD containers from POST /api/trace/seed-resolve
//    (--station, all dates: PACK by default, whose lots with their ancestors are the seed's
//    ~114K containers at scale 1; TMTT reaches 84K in this factory) and POST
//    /api/trace/lineage (backward); then query_tool over TRACE_EVENTS_CID_LIMIT with the same
//    containers, which must be a 413 before any event query;
// 3. sluice: POST /api/trace/events {profile: mid_section_defect, both domains}, read to the
//    last byte (counted, not kept; the counts and the msd trailer checked); the server's exact
//    peak RSS over the request: its VmHWM reset just before it (/proc/PID/clear_refs) and read
//    from /proc/PID/status once the last byte arrived, as /usr/bin/time -v reads the other
//    contenders' (and its VmRSS just before the request, beside it). Run as
//    deployed (MALLOC_MMAP_THRESHOLD_ fixed, as deploy/sluice.service and every cluster worker
//    have it), then again in a new server with glibc's adaptive threshold, for comparison;
// 4. naive: bench/trace-naive.mjs (materialise, group, serialise whole) under /usr/bin/time -v;
// 5. psql: `COPY (SELECT row_to_json(t) ... JOIN <ids table>) TO STDOUT > /dev/null` for both
//    domains in one bash -c, under /usr/bin/time -v (its output size is summed by a query);
// 6. the seed's incident load: `sluice serve` with WEB_CONCURRENCY=2, two MSD events requests
//    at once (one per worker); every process of the service has its VmHWM reset before and
//    read after, and the peaks are summed (each exact; their sum is at least the service's
//    peak, as the processes need not peak at the same instant).
// With --rounds=N, steps 3 (as deployed) and 5 run N-1 more times after those, taking turns,
// and sluice / psql is taken round by round (median). Results: a table on stdout, JSON in
// bench/out/trace-results.json. Figures, not pass/fail.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { MALLOC_ENV } from "../dist/node/cluster.js";
import { envLabel, msdContainers, postEvents, resetPeak, spawnServe, vmRss } from "./serve.mjs";
import { loads, median, timed } from "./timed.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "dist", "cli", "main.js");
const NAIVE = join(ROOT, "bench", "trace-naive.mjs");
const OUT = join(ROOT, "bench", "out", "trace");
const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const flag = (name) => process.argv.includes(`--${name}`);
const SCALES = (arg("scales") ?? "1,0.1").split(",").map(Number);
const STATION = arg("station") ?? "PACK";
const CONCURRENT = !flag("no-concurrent");
const KEEP = flag("keep");
const REUSE = flag("reuse");
const ROUNDS = Number(arg("rounds") ?? 1);
const PG = process.env.SLUICE_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const DOMAINS = ["upstream_history", "defect_records"];
const SLUICE = "sluice POST /api/trace/events";
if (!existsSync(CLI)) throw new Error("run 'npm run build' first (npm run bench:trace does)");
if (SCALES.some((s) => !(s > 0 && s <= 10))) throw new Error("--scales: numbers in (0, 10]");

const note = (msg) => process.stderr.write(`${msg}\n`);
const load = () => loadavg()[0];
const fmt = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : "-");
// No NOTICEs ("schema ... does not exist, skipping", "drop cascades to ...") on stderr.
const PSQL_ENV = { ...process.env, PGOPTIONS: "-c client_min_messages=warning" };
const psql = (sql) =>
  execFileSync("psql", [PG, "-qtAc", sql], { encoding: "utf8", env: PSQL_ENV }).trim();
const withSchema = (schema) =>
  `${PG}${PG.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}`;

async function startServer(dir, traceDb, env = {}) {
  const { child, url, exited } = await spawnServe(CLI, dir, {
    TRACE_DB: traceDb,
    TRACE_MEMORY_LIMIT_MB: "0",
    ...env,
  });
  return {
    url,
    pid: child.pid,
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

const COUNT_MARK = Buffer.from('],"count":');
const TAIL = 1 << 20;

/**
 * sluice's events request: read to the last byte, counting bytes and each domain's count
 * (`],"count":N}`, which no row holds: columns are upper case), keeping only the last MB or
 * so to parse the msd trailer; the server's peak RSS over the request is its VmHWM, reset
 * just before the request.
 */
async function sluiceEvents(server, containers) {
  const before = resetPeak(server.pid);
  const t0 = performance.now();
  let bytes = 0;
  const counts = new Map(); // offset of a mark in the body -> the count after it
  const tail = [];
  let tailBytes = 0;
  let carry = Buffer.alloc(0);
  const res = await postEvents(server.url, "mid_section_defect", containers);
  const status = res.status;
  if (!res.ok) throw new Error(`events: ${res.status} ${await res.text()}`);
  for await (const chunk of res.body) {
    // A mark or its number may straddle chunks: look at the last 40 bytes too.
    const look = Buffer.concat([carry, chunk]);
    const base = bytes - carry.length;
    for (let at = look.indexOf(COUNT_MARK); at >= 0; at = look.indexOf(COUNT_MARK, at + 1)) {
      const m = /^\],"count":(\d+)\}/.exec(look.subarray(at, at + 40).toString("latin1"));
      if (m) counts.set(base + at, Number(m[1]));
    }
    bytes += chunk.length;
    carry = look.subarray(Math.max(0, look.length - 40));
    tail.push(chunk);
    tailBytes += chunk.length;
    while (tail.length > 1 && tailBytes - tail[0].length >= TAIL) {
      tailBytes -= tail.shift().length;
    }
  }
  const secs = (performance.now() - t0) / 1000;
  const peak = vmRss(server.pid).hwm;
  const m = /"msd":(\{.*\})\}$/s.exec(Buffer.concat(tail).toString("utf8"));
  const msd = m ? JSON.parse(m[1]) : null;
  // MSD writes defect_records first (its pareto needs the defects before the history).
  const order = ["defect_records", "upstream_history"];
  const found = [...counts.entries()].sort((a, b) => a[0] - b[0]).map(([, n]) => n);
  const got =
    found.length === order.length ? Object.fromEntries(order.map((d, i) => [d, found[i]])) : null;
  return {
    secs,
    rssMB: peak,
    rssBeforeMB: before,
    sizeMB: bytes / 1048576,
    bytes,
    status,
    got,
    msd: msd
      ? {
          totalDefectQty: msd.totalDefectQty,
          defectiveContainers: msd.defectiveContainers,
          bars: msd.pareto?.length,
          head: msd.pareto?.[0],
        }
      : null,
    code:
      msd && got ? 0 : `msd trailer ${msd ? "found" : "missing"}, ${found.length} domain counts`,
  };
}

/** A process and its children (cluster workers). */
function tree(pid) {
  let kids = [];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean);
  } catch {}
  return [pid, ...kids.map(Number)];
}

/**
 * The seed's incident load: two MSD events requests at once on a service with two workers
 * (one request each), read to the end; every process of the service (primary + workers) has
 * its VmHWM reset before and read after, and the peaks are summed.
 */
async function concurrentEvents(server, containers) {
  const pids = tree(server.pid);
  const before = pids.reduce((n, p) => n + resetPeak(p), 0);
  const t0 = performance.now();
  const one = async () => {
    const res = await postEvents(server.url, "mid_section_defect", containers);
    if (!res.ok) throw new Error(`events: ${res.status} ${await res.text()}`);
    let bytes = 0;
    for await (const chunk of res.body) bytes += chunk.length;
    return bytes;
  };
  const sizes = await Promise.all([one(), one()]);
  const secs = (performance.now() - t0) / 1000;
  const peaks = pids.map((p) => vmRss(p).hwm);
  return {
    secs,
    rssMB: peaks.reduce((n, x) => n + x, 0),
    peaksMB: peaks,
    rssBeforeMB: before,
    sizeMB: sizes.reduce((a, b) => a + b, 0) / 1048576,
    code: 0,
  };
}

/**
 * The front end's flow on a server of its own with `env`: POST /api/trace/seed-resolve, then
 * /lineage (backward), `between` (given the containers; its time is not measured), then the
 * events request measured by sluiceEvents, then query_tool with the same containers (413).
 */
async function sluiceFlow(dir, db, env, between) {
  const server = await startServer(dir, db, env);
  try {
    const { seeds, lineage } = await msdContainers(server.url, STATION);
    const containers = lineage.containers;
    note(
      `${fmt(seeds.lots)} seed lots, ${fmt(seeds.count)} seed containers -> ${fmt(containers.length)} containers (lineage depth ${lineage.depth})`,
    );
    await between?.({ seeds, containers });
    await new Promise((r) => setTimeout(r, 1000));
    note(`sluice POST /api/trace/events, ${envLabel(env)} (load ${load().toFixed(2)}) ...`);
    const l0 = load();
    const events = { ...(await sluiceEvents(server, containers)), load: l0 };
    let admission = null;
    if (containers.length > 50_000) {
      admission = { containers: containers.length, ...(await overLimit(server, containers)) };
      note(
        `query_tool with ${fmt(containers.length)} containers: ${admission.status} in ${admission.ms.toFixed(0)} ms (${admission.body.message})`,
      );
    }
    return { seeds, containers, events, admission };
  } finally {
    await server.stop();
  }
}

/** query_tool with the MSD containers: over the limit it must be a 413, with no rows read. */
async function overLimit(server, containers) {
  const t0 = performance.now();
  const res = await postEvents(server.url, "query_tool", containers);
  const body = await res.json();
  return { status: res.status, ms: performance.now() - t0, body };
}

const loadsAtStart = loads();
const results = [];
const scales = [];
for (const scale of SCALES) {
  const schema = `sluice_trace_s${String(scale).replace(".", "_")}`;
  const db = withSchema(schema);
  const dir = join(OUT, `s${scale}`);
  const idsFile = join(dir, "ids.txt");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const have =
    REUSE &&
    psql(
      `SELECT count(*) FROM pg_tables WHERE schemaname = '${schema}' AND tablename = 'lot_moves'`,
    ) === "1";
  let prepared = null;
  if (!have) {
    psql(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`);
    note(`scale ${scale}: generating the factory in ${schema} ...`);
    const t0 = performance.now();
    const out = execFileSync(
      process.execPath,
      [
        CLI,
        "prepare-data",
        "--workload=mes",
        `--scale=${scale}`,
        "--replace",
        `--db=${db}`,
        "--json",
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    );
    prepared = {
      ...JSON.parse(out.trim().split("\n").at(-1)),
      wall: (performance.now() - t0) / 1000,
    };
  }
  // Statistics, as a production database has them (the same plans for every contender).
  psql(
    `ANALYZE ${[...DOMAINS, "lot_moves", "container_lineage"].map((t) => `${schema}.${t}`).join(", ")}`,
  );

  let containers;
  let seeds;
  let rows;
  // The MSD containers, as the front end gets them; then sluice's events request. First as
  // deployed (deploy/sluice.service, and every cluster worker: a fixed glibc mmap threshold),
  // then with glibc's adaptive threshold, in a server of its own.
  const deployed = await sluiceFlow(dir, db, MALLOC_ENV, async (flow) => {
    containers = flow.containers;
    seeds = flow.seeds;
    writeFileSync(idsFile, `${containers.join("\n")}\n`);
    psql(
      `DROP TABLE IF EXISTS ${schema}.trace_ids; CREATE TABLE ${schema}.trace_ids (cid VARCHAR(16) PRIMARY KEY)`,
    );
    execFileSync("psql", [PG, "-qc", `COPY ${schema}.trace_ids (cid) FROM STDIN`], {
      input: readFileSync(idsFile),
      env: PSQL_ENV,
    });
    psql(`ANALYZE ${schema}.trace_ids`);
    // The rows every contender reads, counted once (which also warms the cache for all).
    rows = Object.fromEntries(
      DOMAINS.map((d) => [
        d,
        Number(
          psql(
            `SELECT count(*) FROM ${schema}.${d} t JOIN ${schema}.trace_ids c ON c.cid = t."CONTAINERID"`,
          ),
        ),
      ]),
    );
  });
  const admission = deployed.admission ? { scale, ...deployed.admission } : null;
  const record = (contender, r) =>
    results.push({ scale, containers: containers.length, rows, contender, round: 0, ...r });
  record(SLUICE, deployed.events);
  const adaptive = await sluiceFlow(dir, db, { MALLOC_MMAP_THRESHOLD_: undefined });
  record("sluice, glibc's adaptive mmap threshold", adaptive.events);

  if (CONCURRENT) {
    note(
      `scale ${scale}: two MSD requests at once on WEB_CONCURRENCY=2 (load ${load().toFixed(2)}) ...`,
    );
    const two = await startServer(dir, db, { WEB_CONCURRENCY: "2" });
    try {
      await new Promise((r) => setTimeout(r, 1500)); // both workers up
      const cl = load();
      record("sluice, 2 workers, 2 MSD requests at once", {
        ...(await concurrentEvents(two, containers)),
        load: cl,
      });
    } finally {
      await two.stop();
    }
  }

  note(`scale ${scale}: naive: materialise, group, serialise (load ${load().toFixed(2)}) ...`);
  const nl = load();
  const naive = timed(process.execPath, [NAIVE, `--db=${db}`, `--ids=${idsFile}`]);
  let naiveOut = null;
  try {
    naiveOut = JSON.parse(naive.stdout.trim().split("\n").at(-1));
  } catch {}
  record("naive: materialise, group, serialise", {
    secs: naive.secs,
    rssMB: naive.rssMB,
    sizeMB: naiveOut ? naiveOut.bytes / 1048576 : Number.NaN,
    got: naiveOut?.rows ?? null,
    code: naive.code,
    err: naive.err,
    load: nl,
  });

  note(`scale ${scale}: psql COPY row_to_json, both domains (load ${load().toFixed(2)}) ...`);
  const copy = (d) =>
    `psql '${PG}' -qc "COPY (SELECT row_to_json(t) FROM ${schema}.${d} t JOIN ${schema}.trace_ids c ON c.cid = t.\\"CONTAINERID\\") TO STDOUT" > /dev/null`;
  const psqlCopy = () => timed("bash", ["-c", `set -e; ${DOMAINS.map(copy).join("; ")}`]);
  const p = psqlCopy();
  // Its output's size, summed by a query (the timed run writes to /dev/null).
  const copyBytes = DOMAINS.reduce(
    (n, d) =>
      n +
      Number(
        psql(
          `SELECT sum(octet_length(row_to_json(t)::text) + 1) FROM ${schema}.${d} t JOIN ${schema}.trace_ids c ON c.cid = t."CONTAINERID"`,
        ),
      ),
    0,
  );
  const PSQL = "psql COPY (SELECT row_to_json(t) ...)";
  const psqlRecord = (x, round) => ({
    secs: x.secs,
    rssMB: x.rssMB,
    sizeMB: copyBytes / 1048576,
    code: x.code,
    err: x.err,
    load: x.load,
    round,
  });
  record(PSQL, psqlRecord(p, 0));
  // More rounds of the two the wall-time target compares, taking turns.
  for (let round = 1; round < ROUNDS; round++) {
    note(`scale ${scale}: round ${round + 1} of sluice and psql (load ${load().toFixed(2)}) ...`);
    const again = await sluiceFlow(dir, db, MALLOC_ENV);
    record(SLUICE, { ...again.events, round });
    record(PSQL, psqlRecord(psqlCopy(), round));
  }
  scales.push({
    scale,
    station: STATION,
    admission,
    schema,
    prepared,
    lots: seeds.lots,
    seedContainers: seeds.count,
    containers: containers.length,
    rows,
  });
  if (!KEEP) psql(`DROP SCHEMA ${schema} CASCADE`);
}

const pad = (s, w) => String(s).padStart(w);
const f = (n, d = 1) => (n == null || Number.isNaN(n) ? "-" : n.toFixed(d));
console.log(
  `\nbench/trace on ${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${ROUNDS} round(s); load average at the start ${loadsAtStart}, at the end ${loads()}`,
);
console.log(
  `${"scale".padEnd(5)} ${"round".padEnd(5)} ${pad("containers", 10)} ${pad("rows: upstream / defect", 23)}  ${"contender".padEnd(42)} ${pad("wall s", 7)} ${pad("peak RSS MB", 11)} ${pad("output MB", 9)} ${pad("load", 5)}  note`,
);
for (const r of results) {
  const notes = [];
  if (r.code !== 0) notes.push(`FAILED: ${r.err ?? r.code}`);
  if (r.got && DOMAINS.some((d) => r.got[d] !== r.rows[d])) {
    notes.push(`rows differ: ${DOMAINS.map((d) => fmt(r.got[d])).join(" / ")}`);
  }
  if (r.rssBeforeMB !== undefined) notes.push(`RSS before the request ${f(r.rssBeforeMB)} MB`);
  if (r.peaksMB) notes.push(`peak per process ${r.peaksMB.map((x) => f(x)).join(" + ")} MB`);
  console.log(
    `${String(r.scale).padEnd(5)} ${String(r.round + 1).padEnd(5)} ${pad(fmt(r.containers), 10)} ${pad(`${fmt(r.rows.upstream_history)} / ${fmt(r.rows.defect_records)}`, 23)}  ${r.contender.padEnd(42)} ${pad(f(r.secs, 2), 7)} ${pad(f(r.rssMB), 11)} ${pad(f(r.sizeMB), 9)} ${pad(f(r.load, 2), 5)}  ${notes.join("; ")}`,
  );
}

// The issue's targets.
const of = (scale, prefix) =>
  results.find((r) => r.scale === scale && r.contender.startsWith(prefix));
const targets = [];
console.log("");
for (const scale of SCALES) {
  const s = of(scale, "sluice POST");
  const all = (prefix) =>
    results.filter((r) => r.scale === scale && r.contender.startsWith(prefix));
  const ratios = all("sluice POST")
    .map((x) => [x, all("psql").find((y) => y.round === x.round)])
    .filter(([, y]) => y)
    .map(([x, y]) => x.secs / y.secs);
  const rss = { scale, what: "sluice peak RSS < 150 MB", value: s.rssMB, met: s.rssMB < 150 };
  // Issue 18's goal (the first round's was 2x).
  const wall = { scale, what: "sluice wall / psql wall <= 1.3", value: median(ratios) };
  wall.met = wall.value <= 1.3;
  targets.push(rss, wall);
  console.log(
    `scale ${scale}: sluice peak RSS ${f(s.rssMB)} MB (target < 150 MB: ${rss.met ? "met" : "NOT met"}); sluice wall / psql wall ${f(wall.value, 2)}x (median of ${ratios.length} round(s): ${ratios.map((x) => f(x, 2)).join(", ")}; target <= 1.3x: ${wall.met ? "met" : "NOT met"})`,
  );
}
const big = Math.max(...SCALES);
const small = big / 10;
if (SCALES.includes(small) || SCALES.some((x) => Math.abs(x - small) < 1e-9)) {
  const hi = of(big, "sluice POST");
  const lo = results.find(
    (r) => Math.abs(r.scale - small) < 1e-9 && r.contender.startsWith("sluice POST"),
  );
  const pct = ((hi.rssMB - lo.rssMB) / lo.rssMB) * 100;
  targets.push({
    what: `sluice peak RSS at scale ${big} vs ${small}, percent`,
    value: pct,
    met: pct <= 10,
  });
  console.log(
    `sluice peak RSS at scale ${big} vs ${small}: ${f(hi.rssMB)} MB vs ${f(lo.rssMB)} MB (${pct >= 0 ? "+" : ""}${f(pct)}%; target: no more than 10% above: ${pct <= 10 ? "met" : "NOT met"})`,
  );
  const ahi = of(big, "sluice, glibc");
  const alo = results.find(
    (r) => Math.abs(r.scale - small) < 1e-9 && r.contender.startsWith("sluice, glibc"),
  );
  if (ahi && alo) {
    const apct = ((ahi.rssMB - alo.rssMB) / alo.rssMB) * 100;
    console.log(
      `  with glibc's adaptive mmap threshold (MALLOC_MMAP_THRESHOLD_ unset): ${f(ahi.rssMB)} MB vs ${f(alo.rssMB)} MB (${apct >= 0 ? "+" : ""}${f(apct)}%)`,
    );
  }
  console.log(
    `  over the RSS just before the request: +${f(hi.rssMB - hi.rssBeforeMB)} MB at scale ${big}, +${f(lo.rssMB - lo.rssBeforeMB)} MB at ${small}; before: ${f(hi.rssBeforeMB)} vs ${f(lo.rssBeforeMB)} MB`,
  );
}
for (const s of scales) {
  if (s.admission) {
    console.log(
      `scale ${s.scale}: query_tool with ${fmt(s.admission.containers)} containers: HTTP ${s.admission.status} in ${f(s.admission.ms, 0)} ms, before any event query (${s.admission.body?.message})`,
    );
  }
}
mkdirSync(join(OUT, ".."), { recursive: true });
writeFileSync(
  join(OUT, "..", "trace-results.json"),
  `${JSON.stringify({ date: new Date().toISOString(), node: process.version, pg: PG, scales, results, targets }, null, 2)}\n`,
);

// bench/worker: the Worker's archive and cleanup of one day on local D1 and R2, in real workerd
// (Miniflare), beside the seed's two Worker archive paths on the same rows, in one run.
//
//   npm run bench:worker                    # 1M events
//   node bench/worker.mjs --sizes=100000,1000000 --baseline-limit=100000 [--fetch=1000]
//   node bench/worker.mjs --format=parquet  # the Worker writes Parquet parts (SLUICE_FORMAT)
//   (--fetch sets the Worker's DB_SLOW_FETCHMANY_SIZE; --baseline-limit skips the seed's paths
//   above that size: its OFFSET pages take ~85 s at 1M)
//
// Per size, in bench/out/worker/n<N> (made anew):
// 1. the Worker creates its tables on local D1; then the day's events are written straight
//    into the D1 database file (better-sqlite3, generated as `prepare-data` does), so that the
//    seeding is not what is measured;
// 2. each scenario runs in a fresh workerd process: its VmRSS is read once idle (after
//    /healthz), its VmHWM (peak RSS) after the run, and its RssAnon sampled every 50 ms. That
//    process also hosts local D1 (SQLite over a 1M-row file) and local R2, so its RSS is more
//    than the Worker's own memory (storing a 20 MiB multipart object in local R2 and reading
//    it back three times raised workerd's RSS by ~440 MB here). So the "floor" scenario does
//    the same D1 reads, R2 writes, R2 reads and gunzip (the runtime's DecompressionStream) as
//    the archive + verify, keeping nothing, and each scenario's "peak over the floor" is its
//    peak RSS minus the floor's;
// 3. the isolate's heap cannot be sampled inside workerd (its inspector answers only between
//    the isolate's turns: one or two samples per run), so the Worker's code path (D1Source,
//    R2Store, web CompressionStream, portable sha256, as src/worker wires them) also runs in
//    this Node process over the same local bindings (Miniflare's proxies), with a full GC
//    before each sample every 100 ms: its live set. An upper bound: the proxies copy every
//    part and page, and Node's DecompressionStream reads ahead more than workerd's;
// 4. scenarios: the seed's old path (/old: all rows in one array, one string, gzip, put), the
//    seed's fix (/fix: OFFSET pages into gzip, compressed chunks held, one put), both in
//    bench/worker-seed.js; then sluice: POST /admin/trigger-archive (archive + verify), the
//    floor, the live set, and the cleanup by the scheduled handler in one invocation.
// Every scenario is timed the same way, by this process's clock over the whole request or
// invocation: from sending it to its answer (the seed's paths, the floor: the Worker answers
// when done; the cleanup: the scheduled handler returns), or, for the archive, which runs in
// the background of its 202, from sending POST /admin/trigger-archive until GET
// /admin/archive-status, asked every 50 ms, says the job ended (so up to ~50 ms late). The
// job's own clock (its startedAt to finishedAt) is printed beside it. Checks made after the
// work (rows left, the stored object's size) are not timed.
// Results: a table on stdout, JSON in bench/out/worker-results.json. Figures, not pass/fail.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import Database from "better-sqlite3";
import { build } from "esbuild";
import { Miniflare } from "miniflare";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const OUT = join(ROOT, "bench", "out", "worker");
const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const SIZES = (arg("sizes") ?? "1000000").split(",").map(Number);
const BASELINE_LIMIT = Number(arg("baseline-limit") ?? Number.POSITIVE_INFINITY);
const TOKEN = "bench-admin-token-0123456789";
const DATE = "2026-10-01";
const NOW = new Date("2026-11-20T03:30:00Z");
const SAMPLE_MS = 50;
const FETCH = arg("fetch");
const FORMAT = arg("format") ?? "jsonl";
if (!["jsonl", "parquet"].includes(FORMAT)) throw new Error("--format is jsonl or parquet");
const SLUICE_VARS = { SLUICE_FORMAT: FORMAT, ...(FETCH ? { DB_SLOW_FETCHMANY_SIZE: FETCH } : {}) };
const { generateTrafficDay } = await import(join(ROOT, "dist/workloads/traffic/generate.js"));
const { TRAFFIC_COLUMNS } = await import(join(ROOT, "dist/core/ingest/event.js"));

const { D1Source } = await import(join(ROOT, "dist/adapters/d1/source.js"));
const { R2Store } = await import(join(ROOT, "dist/adapters/r2/store.js"));
const { Ledger } = await import(join(ROOT, "dist/core/archive/ledger/ledger.js"));
const { archiveDate } = await import(join(ROOT, "dist/core/archive/jobs.js"));
const { DEFAULT_SPEC } = await import(join(ROOT, "dist/core/archive/partition.js"));
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mb = (kb) => kb / 1024;

async function bundle(entry) {
  const r = await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    // Node's built-ins are the runtime's own under nodejs_compat (wrangler.toml).
    external: ["node:*"],
    write: false,
    logLevel: "warning",
  });
  return r.outputFiles[0].text;
}

function start(dir, script, vars = {}) {
  return new Miniflare({
    name: "bench",
    modules: true,
    script,
    compatibilityDate: "2026-04-01",
    compatibilityFlags: ["nodejs_compat"],
    d1Databases: { DB: "sluice-hot" },
    r2Buckets: { ARCHIVE: "sluice-archive" },
    d1Persist: join(dir, "d1"),
    r2Persist: join(dir, "r2"),
    bindings: { ADMIN_TOKEN: TOKEN, ...vars },
    handleRuntimeStdio(stdout, stderr) {
      stdout.resume();
      stderr.resume();
    },
  });
}

function workerdPid() {
  const kids = execFileSync("pgrep", ["-P", String(process.pid)], { encoding: "utf8" })
    .trim()
    .split("\n");
  const pid = kids.find((p) => readFileSync(`/proc/${p}/comm`, "utf8").trim() === "workerd");
  if (!pid) throw new Error("no workerd child process found");
  return pid;
}

const status = (pid, field) =>
  Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);

/**
 * One scenario in a fresh workerd: RSS idle (after /healthz), then `run`, timed by this
 * process's clock, then `check` (not timed); peak RSS is the process's VmHWM, and its
 * anonymous (non-file) RSS is sampled every 50 ms.
 */
async function scenario(dir, script, vars, run, check) {
  const mf = start(dir, script, vars);
  await (await mf.dispatchFetch("http://bench/healthz")).text();
  await sleep(300);
  const pid = workerdPid();
  const idleRss = status(pid, "VmRSS");
  let peakAnon = status(pid, "RssAnon");
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peakAnon = Math.max(peakAnon, status(pid, "RssAnon"));
      await sleep(SAMPLE_MS);
    }
  })();
  const load = loadavg()[0];
  const t0 = performance.now();
  let info;
  try {
    info = await run(mf);
  } finally {
    sampling = false;
    await sampler;
  }
  const secs = (performance.now() - t0) / 1000;
  const peakRss = status(pid, "VmHWM");
  if (check && !info?.error) Object.assign(info, await check(mf, info));
  await mf.dispose();
  return {
    secs,
    load,
    idleRssMB: mb(idleRss),
    peakRssMB: mb(peakRss),
    peakAnonMB: mb(peakAnon),
    ...info,
  };
}

/**
 * The Worker's archive + verify code path (D1Source, R2Store, web CompressionStream, portable
 * sha256: what src/worker wires), run in this Node process over the same local D1 and R2
 * bindings (Miniflare's proxies to workerd), with a full GC before every sample: the live set
 * of that code, which workerd's inspector cannot sample while the job runs. The proxies'
 * own buffers count in it too, so it is an upper bound.
 */
async function liveSet(dir, script) {
  const mf = start(dir, script);
  await (await mf.dispatchFetch("http://bench/healthz")).text();
  const source = new D1Source(await mf.getD1Database("DB"));
  // The Worker's own prefix (none): the archive this run records replaces the ledger's record
  // of the Worker's, so the cleanup scenario after it must be able to read it.
  const store = new R2Store(await mf.getR2Bucket("ARCHIVE"), { name: "ARCHIVE" });
  const ledger = new Ledger(source, { leaseMs: 120_000 });
  await ledger.migrate();
  await source.execute("DELETE FROM archive_parts WHERE date = ?", [DATE]);
  await source.execute("DELETE FROM archive_metadata WHERE date = ?", [DATE]);
  const used = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  gc();
  const before = used();
  let peak = before;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      gc();
      peak = Math.max(peak, used());
      await sleep(100);
    }
  })();
  const t0 = performance.now();
  try {
    const ctx = {
      source,
      store,
      ledger,
      spec: { ...DEFAULT_SPEC, format: FORMAT },
      fetchSize: FETCH ? Number(FETCH) : undefined,
    };
    const out = await archiveDate(ctx, "bench", DATE);
    return {
      secs: (performance.now() - t0) / 1000,
      rows: out.parts.reduce((n, p) => n + p.eventCount, 0),
      liveBeforeMB: before / 2 ** 20,
      liveOverMB: (peak - before) / 2 ** 20,
    };
  } finally {
    sampling = false;
    await sampler;
    await mf.dispose();
  }
}

async function admin(mf, path) {
  const res = await mf.dispatchFetch(`http://bench${path}`, {
    method: path.startsWith("/admin/trigger") ? "POST" : "GET",
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  return { status: res.status, body: await res.json() };
}

async function seed(dir, script, n) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const mf = start(dir, script);
  await (await mf.dispatchFetch("http://bench/healthz")).text();
  await mf.dispose();
  const d1dir = join(dir, "d1", "miniflare-D1DatabaseObject");
  const file = readdirSync(d1dir).find((f) => f.endsWith(".sqlite"));
  const db = new Database(join(d1dir, file));
  const cols = TRAFFIC_COLUMNS;
  const per = Math.floor(999 / cols.length);
  const stmt = db.prepare(
    `INSERT INTO traffic_events (${cols.join(", ")}) VALUES ${Array(per)
      .fill(`(${cols.map(() => "?").join(", ")})`)
      .join(", ")}`,
  );
  const one = db.prepare(
    `INSERT INTO traffic_events (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`,
  );
  const insert = db.transaction((rows) => {
    let i = 0;
    for (; i + per <= rows.length; i += per) {
      stmt.run(rows.slice(i, i + per).flatMap((r) => cols.map((c) => r[c])));
    }
    for (; i < rows.length; i++) one.run(cols.map((c) => rows[i][c]));
  });
  for (const batch of generateTrafficDay(DATE, n)) insert(batch);
  const count = db.prepare("SELECT COUNT(*) AS n FROM traffic_events").get().n;
  db.close();
  return count;
}

const results = [];
const floorPeak = new Map();
const sluice = await bundle(join(ROOT, "src", "worker", "index.ts"));
const seedWorker = readFileSync(join(ROOT, "bench", "worker-seed.js"), "utf8");
for (const n of SIZES) {
  const dir = join(OUT, `n${n}`);
  const t = performance.now();
  const rows = await seed(dir, sluice, n);
  console.error(`seeded ${rows} events in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const seedRun = (path) => async (mf) => {
    const res = await mf.dispatchFetch(
      `http://bench/${path}${path.includes("?") ? "&" : "?"}date=${DATE}`,
    );
    const text = await res.text();
    if (res.status !== 200) return { error: `${res.status} ${text.slice(0, 120).split("\n")[0]}` };
    return JSON.parse(text);
  };
  if (n <= BASELINE_LIMIT) {
    for (const path of ["old", "fix"]) {
      const r = await scenario(dir, seedWorker, {}, seedRun(path));
      results.push({
        n,
        what: `seed's ${path === "old" ? "old code (day in one array)" : "fix (OFFSET pages, chunks held)"}`,
        ...r,
      });
      console.error(JSON.stringify(results.at(-1)));
    }
  }

  const archiveRun = async (mf) => {
    const started = await admin(mf, `/admin/trigger-archive?date=${DATE}`);
    if (started.status !== 202) return { error: JSON.stringify(started.body) };
    for (;;) {
      await sleep(50);
      const s = (await admin(mf, `/admin/archive-status?date=${DATE}`)).body;
      if (s.job?.state === "running") continue;
      if (s.job?.state !== "succeeded") return { error: s.job?.error };
      return {
        jobSecs: (Date.parse(s.job.finishedAt) - Date.parse(s.job.startedAt)) / 1000,
        rows: s.record.eventCount,
        key: s.parts.at(-1).objectKey,
        state: s.record.state,
      };
    }
  };
  const archiveCheck = async (mf, info) => {
    const head = await (await mf.getR2Bucket("ARCHIVE")).head(info.key);
    return { bytes: head.size, r2Parts: Number(/-(\d+)$/.exec(head.etag)?.[1] ?? 1) };
  };
  const archive = await scenario(dir, sluice, SLUICE_VARS, archiveRun, archiveCheck);
  results.push({ n, what: "sluice archive + verify", ...archive });
  console.error(JSON.stringify(results.at(-1)));
  // The floor: the same D1 reads and R2 bytes as the archive + verify, with no work between.
  const floor = await scenario(
    dir,
    seedWorker,
    {},
    seedRun(`floor?bytes=${archive.bytes}&key=${encodeURIComponent(archive.key)}`),
  );
  results.push({
    n,
    what: `floor: the same D1 reads, R2 bytes and ${FORMAT === "jsonl" ? "gunzip" : "two reads back"}, nothing kept`,
    ...floor,
  });
  console.error(JSON.stringify(results.at(-1)));
  floorPeak.set(n, floor.peakRssMB);
  const live = await liveSet(dir, sluice);
  results.push({
    n,
    what: "sluice archive + verify code path in Node over the same bindings: live set",
    ...live,
  });
  console.error(JSON.stringify(results.at(-1)));
  const cleanup = await scenario(
    dir,
    sluice,
    { ...SLUICE_VARS, SLUICE_CLEANUP_BUDGET_MS: "840000" },
    async (mf) => {
      const worker = await mf.getWorker();
      const r = await worker.scheduled({ cron: "30 3 * * *", scheduledTime: NOW });
      return { outcome: r.outcome };
    },
    async (mf) => {
      const db = await mf.getD1Database("DB");
      const left = (await db.prepare("SELECT COUNT(*) AS n FROM traffic_events").all()).results[0]
        .n;
      const led = (
        await db
          .prepare("SELECT state, cleaned_count FROM archive_metadata WHERE date = ?")
          .bind(DATE)
          .all()
      ).results[0];
      return {
        rowsLeft: left,
        state: led?.state,
        deleted: led?.cleaned_count,
      };
    },
  );
  results.push({ n, what: "sluice cleanup (scheduled)", ...cleanup });
  console.error(JSON.stringify(results.at(-1)));
}

const f = (x, d = 1) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(d) : "-");
console.log(
  `load average at the end: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`,
);
console.log(
  "| events | what | wall s | rows/s | R2 parts | workerd RSS idle -> peak MB | peak over the floor MB | peak anon RSS MB | load | note |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const r of results) {
  const rows = r.rows ?? r.deleted;
  console.log(
    `| ${r.n} | ${r.what} | ${f(r.secs, 2)} | ${rows ? Math.round(rows / r.secs) : "-"} | ${r.r2Parts ?? "-"} | ${f(r.idleRssMB)} -> ${f(r.peakRssMB)} | ${f(r.peakRssMB - floorPeak.get(r.n))} | ${f(r.peakAnonMB)} | ${f(r.load, 2)} | ${r.error ?? [r.jobSecs !== undefined ? `job's own clock ${f(r.jobSecs, 2)} s` : "", r.liveOverMB !== undefined ? `live set after GC: +${f(r.liveOverMB)} MB over ${f(r.liveBeforeMB)}` : "", r.bytes ? `${f(r.bytes / 2 ** 20)} MiB ${FORMAT === "jsonl" ? "gz" : "Parquet"}` : "", r.state ?? "", r.rowsLeft !== undefined ? `${r.rowsLeft} left` : ""].filter(Boolean).join(", ")} |`,
  );
}
// Issue 18's goal: the Worker's archive + verify within 1.3x of its floor's wall time.
for (const n of new Set(results.map((r) => r.n))) {
  const a = results.find((r) => r.n === n && r.what === "sluice archive + verify");
  const fl = results.find((r) => r.n === n && r.what.startsWith("floor"));
  if (a?.secs && fl?.secs) {
    const x = a.secs / fl.secs;
    console.log(
      `${n} events: sluice archive + verify / its floor = ${f(x, 2)}x (${f(a.secs, 2)} s vs ${f(fl.secs, 2)} s); goal at most 1.3x: ${x <= 1.3 ? "met" : "NOT met"}`,
    );
  }
}
mkdirSync(OUT, { recursive: true });
writeFileSync(join(ROOT, "bench", "out", "worker-results.json"), JSON.stringify(results, null, 2));

// bench/service: the HTTP service's figures, in one run.
//
//   npm run bench:service                      # 30 s of ingest; a 1M-row archive over HTTP
//   node bench/service.mjs --rows=100000 --seconds=5   # a quick look
//
// 1. ingest: autocannon POSTs batches of 100 events to /api/events for --seconds (10
//    connections, loopback); events/s, p99 latency, and the service's peak RSS.
// 2. archive: the same day of --rows rows archived (write + verify) by `sluice archive` on
//    the command line (the baseline), then by the service via POST /admin/trigger-archive
//    while ingest goes on, flat out and at 10,000 events/s; wall seconds and the service's
//    peak RSS beside its idle RSS.
// One service process (WEB_CONCURRENCY=1), SQLite + a folder. RSS is read from
// /proc/PID/status (VmRSS every 100 ms, VmHWM at the end). Figures, not pass/fail.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { spawnServe } from "./serve.mjs";
import { timed } from "./timed.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "dist", "cli", "main.js");
const OUT = join(ROOT, "bench", "out", "service");
const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const ROWS = Number(arg("rows") ?? 1_000_000);
const SECONDS = Number(arg("seconds") ?? 30);
const DATE = "2025-10-13";
const TOKEN = "bench-admin-token-0123456789";
if (!existsSync(CLI)) throw new Error("run 'npm run build' first (npm run bench:service does)");
const note = (msg) => process.stderr.write(`${msg}\n`);
const mb = (kb) => kb / 1024;

rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
note(`generating ${ROWS.toLocaleString()} rows for ${DATE} ...`);
const template = join(OUT, "template.db");
execFileSync(process.execPath, [
  CLI,
  "prepare-data",
  `--count=${ROWS}`,
  `--date=${DATE}`,
  `--db=sqlite:${template}`,
]);
execFileSync("sqlite3", [template, "PRAGMA wal_checkpoint(TRUNCATE)"]);

function status(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? Number.NaN);
    return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
  } catch {
    return { rss: Number.NaN, hwm: Number.NaN };
  }
}

async function startService(dir) {
  const { child, url } = await spawnServe(CLI, dir, { ADMIN_TOKEN: TOKEN });
  // Peak RSS over a phase: VmHWM is the process's all-time peak, so sample VmRSS as well.
  let peak = 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, status(child.pid).rss);
  }, 100);
  return {
    url,
    pid: child.pid,
    resetPeak: () => {
      peak = status(child.pid).rss;
    },
    peakMB: () => mb(Math.max(peak, status(child.pid).rss)),
    rssMB: () => mb(status(child.pid).rss),
    async stop() {
      clearInterval(timer);
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

let tsNext = Date.parse("2025-10-20T00:00:00Z");
const batch = () =>
  JSON.stringify(
    Array.from({ length: 100 }, (_, i) => ({
      ts: tsNext++,
      path: `/bench/${i % 50}`,
      referrer: i % 3 ? null : "https://www.google.com/",
      country: "DE",
      user_agent: "autocannon",
      status: 200,
      duration_ms: i,
    })),
  );

function ingest(url, seconds, overallRate) {
  return autocannon({
    ...(overallRate ? { overallRate } : {}),
    url: `${url}/api/events`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: batch(),
    connections: 10,
    duration: seconds,
  });
}

const results = [];

// 1. ingest alone
{
  const dir = join(OUT, "ingest");
  mkdirSync(dir, { recursive: true });
  copyFileSync(template, join(dir, "hot.db"));
  const svc = await startService(dir);
  const idle = svc.rssMB();
  svc.resetPeak();
  note(`ingest: ${SECONDS} s of autocannon, 10 connections, 100 events per request ...`);
  const r = await ingest(svc.url, SECONDS);
  results.push({
    what: `ingest, ${SECONDS} s, 100 events/request`,
    events: r.requests.average * 100,
    p99: r.latency.p99,
    non2xx: r.non2xx,
    idle,
    peak: svc.peakMB(),
  });
  await svc.stop();
}

// 2. the same day archived by the CLI, then by the service while ingest goes on
{
  const dir = join(OUT, "cli");
  mkdirSync(dir, { recursive: true });
  copyFileSync(template, join(dir, "hot.db"));
  note("archive: sluice archive on the command line ...");
  const t = timed(process.execPath, [CLI, "archive", `--date=${DATE}`], {
    SLUICE_DB: `sqlite:${join(dir, "hot.db")}`,
    SLUICE_STORE: `file:${join(dir, "archive")}`,
  });
  results.push({
    what: `sluice archive (CLI), ${ROWS.toLocaleString()} rows`,
    wall: t.secs,
    peak: t.rssMB,
    code: t.code,
  });
}
// Ingest flat out (saturating the process), then at a steady 10,000 events/s.
for (const rate of [undefined, 100]) {
  const dir = join(OUT, `http-${rate ?? "max"}`);
  mkdirSync(dir, { recursive: true });
  copyFileSync(template, join(dir, "hot.db"));
  const svc = await startService(dir);
  const idle = svc.rssMB();
  svc.resetPeak();
  note("archive: POST /admin/trigger-archive while ingest goes on ...");
  const load = ingest(svc.url, 3600, rate);
  await new Promise((r) => setTimeout(r, 2000));
  const t0 = Date.now();
  const auth = { Authorization: `Bearer ${TOKEN}` };
  const started = await fetch(`${svc.url}/admin/trigger-archive?date=${DATE}`, {
    method: "POST",
    headers: auth,
  });
  if (started.status !== 202)
    throw new Error(`trigger-archive: ${started.status} ${await started.text()}`);
  let job;
  for (;;) {
    const s = await (
      await fetch(`${svc.url}/admin/archive-status?date=${DATE}`, { headers: auth })
    ).json();
    job = s.job;
    if (job && job.state !== "running") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const wall = (Date.now() - t0) / 1000;
  load.stop();
  const r = await load;
  results.push({
    what: `service archive, ${ROWS.toLocaleString()} rows, during ingest ${rate ? `at ${rate * 100} events/s` : "flat out"}`,
    wall,
    idle,
    peak: svc.peakMB(),
    events: r.requests.average * 100,
    p99: r.latency.p99,
    code: job.state === "succeeded" ? 0 : `${job.state}: ${job.error}`,
  });
  await svc.stop();
}

const f = (n, d = 1) => (n === undefined || Number.isNaN(n) ? "-" : n.toFixed(d));
console.log(`\nbench/service on ${new Date().toISOString().slice(0, 10)}, node ${process.version}`);
console.log(
  `${"what".padEnd(66)} ${"wall s".padStart(7)} ${"events/s".padStart(9)} ${"p99 ms".padStart(7)} ${"idle RSS MB".padStart(12)} ${"peak RSS MB".padStart(12)}  note`,
);
for (const r of results) {
  console.log(
    `${r.what.padEnd(66)} ${f(r.wall, 2).padStart(7)} ${r.events === undefined ? "-".padStart(9) : Math.round(r.events).toLocaleString().padStart(9)} ${f(r.p99, 0).padStart(7)} ${f(r.idle).padStart(12)} ${f(r.peak).padStart(12)}  ${r.code && r.code !== 0 ? `FAILED ${r.code}` : r.non2xx ? `${r.non2xx} non-2xx` : ""}`,
  );
}

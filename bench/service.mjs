// bench/service: the HTTP service's figures, in one run.
//
//   npm run bench:service                      # 30 s of ingest; a 1M-row archive over HTTP
//   node bench/service.mjs --rows=100000 --seconds=5   # a quick look
//   --rates=max                                # the archive beside ingest flat out only
//
// 1. ingest: autocannon POSTs batches of 100 events to /api/events for --seconds (10
//    connections, loopback); accepted events/s, p99 latency, and the service's peak RSS.
// 2. archive: the same day of --rows rows archived (write + verify) by `sluice archive` on
//    the command line (the baseline), then by the service via POST /admin/trigger-archive
//    while ingest goes on, flat out and at 10,000 events/s, each with the jobs on their own
//    thread (the default) and on the event loop (SLUICE_JOBS_THREAD=false); wall seconds (from the trigger
//    until archive-status, asked every 100 ms, says the job ended), the events accepted
//    meanwhile, and the service's peak RSS beside its idle RSS.
// Events are counted only when accepted: from each 2xx answer's own count (`inserted`), over
// the phase's window by this process's clock; answers that are not 2xx are counted apart by
// status, with the events they carried, as are connection errors and timeouts. p99 is over
// every answer. One service process (WEB_CONCURRENCY=1), SQLite + a folder. Peak RSS: the
// service's VmHWM, reset at the start of the phase (/proc/PID/clear_refs) and read at its
// end; the CLI's from /usr/bin/time -v. Figures, not pass/fail.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { resetPeak, spawnServe, vmRss } from "./serve.mjs";
import { loads, timed } from "./timed.mjs";

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
const PER_REQUEST = 100;
const loadsAtStart = loads();

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

async function startService(dir, env = {}) {
  const { child, url } = await spawnServe(CLI, dir, { ADMIN_TOKEN: TOKEN, ...env });
  return {
    url,
    pid: child.pid,
    // The peak over a phase: VmHWM reset to the RSS now, then read at the phase's end.
    resetPeak: () => resetPeak(child.pid),
    peakMB: () => vmRss(child.pid).hwm,
    rssMB: () => vmRss(child.pid).rss,
    async stop() {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

let tsNext = Date.parse("2025-10-20T00:00:00Z");
const batch = () =>
  JSON.stringify(
    Array.from({ length: PER_REQUEST }, (_, i) => ({
      ts: tsNext++,
      path: `/bench/${i % 50}`,
      referrer: i % 3 ? null : "https://www.google.com/",
      country: "DE",
      user_agent: "autocannon",
      status: 200,
      duration_ms: i,
    })),
  );

/**
 * autocannon POSTing batches to /api/events; `tally` counts, as answers arrive, the events
 * accepted (each 2xx answer's `inserted`) and the answers refused, by status.
 */
function ingest(url, seconds, overallRate) {
  const tally = { accepted: 0, ok: 0, refused: {}, refusedEvents: 0 };
  const run = autocannon({
    ...(overallRate ? { overallRate } : {}),
    url,
    connections: 10,
    duration: seconds,
    requests: [
      {
        method: "POST",
        path: "/api/events",
        headers: { "content-type": "application/json" },
        body: batch(),
        onResponse: (status, body) => {
          if (status >= 200 && status < 300) {
            tally.ok++;
            tally.accepted += JSON.parse(body).inserted;
          } else {
            tally.refused[status] = (tally.refused[status] ?? 0) + 1;
            tally.refusedEvents += PER_REQUEST;
          }
        },
      },
    ],
  });
  const snapshot = () => ({ ...tally, refused: { ...tally.refused }, t: performance.now() });
  return { run, snapshot };
}

/** What was accepted and refused between two snapshots: events/s over that window. */
function between(a, b) {
  const secs = (b.t - a.t) / 1000;
  const refused = {};
  for (const [k, n] of Object.entries(b.refused)) {
    const d = n - (a.refused[k] ?? 0);
    if (d) refused[k] = d;
  }
  return {
    windowSecs: secs,
    events: (b.accepted - a.accepted) / secs,
    accepted: b.accepted - a.accepted,
    refused,
    refusedEvents: b.refusedEvents - a.refusedEvents,
  };
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
  const load = loadavg()[0];
  const ing = ingest(svc.url, SECONDS);
  const s0 = ing.snapshot();
  const r = await ing.run;
  results.push({
    what: `ingest, ${SECONDS} s, 100 events/request`,
    ...between(s0, ing.snapshot()),
    p99: r.latency.p99,
    errors: r.errors,
    timeouts: r.timeouts,
    idle,
    peak: svc.peakMB(),
    load,
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
    load: t.load,
  });
}
// Ingest flat out (saturating the process), then at a steady 10,000 events/s; each with the
// jobs on their own thread (the default) and on the event loop (SLUICE_JOBS_THREAD=false).
// --rates=max (flat out only) or --rates=max,100 (the default).
const RATES = (arg("rates") ?? "max,100")
  .split(",")
  .map((r) => (r === "max" ? undefined : Number(r)));
for (const [rate, thread] of RATES.flatMap((r) => [
  [r, true],
  [r, false],
])) {
  const dir = join(OUT, `http-${rate ?? "max"}-${thread ? "thread" : "loop"}`);
  mkdirSync(dir, { recursive: true });
  copyFileSync(template, join(dir, "hot.db"));
  const svc = await startService(dir, { SLUICE_JOBS_THREAD: String(thread) });
  const idle = svc.rssMB();
  svc.resetPeak();
  note("archive: POST /admin/trigger-archive while ingest goes on ...");
  const ing = ingest(svc.url, 3600, rate);
  await new Promise((r) => setTimeout(r, 2000));
  const load = loadavg()[0];
  const s0 = ing.snapshot();
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
  const during = between(s0, ing.snapshot());
  const peak = svc.peakMB();
  ing.run.stop();
  const r = await ing.run;
  results.push({
    what: `service archive (jobs ${thread ? "thread" : "on the event loop"}), ${ROWS.toLocaleString()} rows, ingest ${rate ? `at ${rate * PER_REQUEST} events/s` : "flat out"}`,
    flatOut: rate === undefined,
    thread,
    wall,
    idle,
    peak,
    ...during,
    p99: r.latency.p99,
    errors: r.errors,
    timeouts: r.timeouts,
    load,
    code: job.state === "succeeded" ? 0 : `${job.state}: ${job.error}`,
  });
  await svc.stop();
}

const f = (n, d = 1) => (n === undefined || Number.isNaN(n) ? "-" : n.toFixed(d));
console.log(
  `\nbench/service on ${new Date().toISOString().slice(0, 10)}, node ${process.version}; load average at the start ${loadsAtStart}, at the end ${loads()}`,
);
console.log(
  `${"what".padEnd(66)} ${"wall s".padStart(7)} ${"accepted ev/s".padStart(13)} ${"p99 ms".padStart(7)} ${"idle RSS MB".padStart(12)} ${"peak RSS MB".padStart(12)} ${"load".padStart(5)}  refused / note`,
);
for (const r of results) {
  const refused = Object.entries(r.refused ?? {}).map(([k, n]) => `${n} x ${k}`);
  const notes = [
    r.code && r.code !== 0 ? `FAILED ${r.code}` : "",
    r.accepted !== undefined
      ? `${r.accepted.toLocaleString()} events accepted in ${f(r.windowSecs, 2)} s; refused: ${refused.length ? `${refused.join(", ")} answers (${r.refusedEvents.toLocaleString()} events)` : "none"}`
      : "",
    r.errors ? `${r.errors} connection errors` : "",
    r.timeouts ? `${r.timeouts} timeouts` : "",
  ].filter(Boolean);
  console.log(
    `${r.what.padEnd(66)} ${f(r.wall, 2).padStart(7)} ${r.events === undefined ? "-".padStart(13) : Math.round(r.events).toLocaleString().padStart(13)} ${f(r.p99, 0).padStart(7)} ${f(r.idle).padStart(12)} ${f(r.peak).padStart(12)} ${f(r.load, 2).padStart(5)}  ${notes.join("; ")}`,
  );
}

// Issue 18's goals for jobs beside ingest: the archive within 2x its CLI time, ingest keeping
// at least 80% of the rate it has alone (both while ingest runs flat out).
const alone = results[0];
const cli = results[1];
for (const r of results.filter((x) => x.flatOut)) {
  const mode = r.thread ? "jobs thread" : "jobs on the event loop";
  console.log(
    `${mode}: archive ${f(r.wall / cli.wall, 2)}x its CLI time (goal at most 2x); ingest kept ${f((100 * r.events) / alone.events, 0)}% of its rate alone (goal at least 80%)`,
  );
}

// bench/console: the console's weight, and the MSD trace drawn in Chromium beside the same
// request read by curl.
//
//   npm run bench:console                   # scale 1 (~114K containers), generated if absent
//   node bench/console.mjs --scale=0.1      # a smaller factory
//   node bench/console.mjs --station=TMTT   # seeds from another station (default PACK)
//
// 1. Page weight: each file of dist/console gzipped (zlib's default level, as a server or CDN
//    would send it), and the total.
// 2. In a PostgreSQL schema sluice_trace_s<scale> (SLUICE_BENCH_PG_URL, default
//    postgres://postgres@127.0.0.1:5432/test; reused when it holds the factory, else made with
//    `sluice prepare-data --workload=mes`, as bench/trace.mjs does), one `sluice serve`.
// 3. Chromium (SLUICE_CHROMIUM or /usr/bin/chromium, driven by playwright-core) opens the
//    trace page, fills PACK / all dates / mid_section_defect and presses Trace. The page's own
//    performance marks give, from the moment the events request left: its first row drawn,
//    the first pareto bar drawn (the pareto is the response's trailer, so it is drawn whole)
//    and the end. The tab's JS heap (CDP Runtime.getHeapUsage) is sampled every 250 ms while
//    the rows stream (peak) and read at the end, after the page dropped what it does not keep.
// 4. curl: the same events request (the containers the page sent, NDJSON, gzip as a browser
//    asks), time to first byte and to the last.
// Figures, not pass/fail.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { spawnServe } from "./serve.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "dist", "cli", "main.js");
const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const SCALE = Number(arg("scale") ?? 1);
const STATION = arg("station") ?? "PACK";
const PG = process.env.SLUICE_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const BROWSER = process.env.SLUICE_CHROMIUM ?? "/usr/bin/chromium";
if (!existsSync(CLI)) throw new Error("run 'npm run build' first (npm run bench:console does)");
const note = (msg) => process.stderr.write(`${msg}\n`);
const fmt = (n) => Math.round(n).toLocaleString("en-US");
const MB = (b) => (b / 1048576).toFixed(1);

// 1. Weight.
const files = ["index.html", "console.js", "console.css"];
let total = 0;
console.log("page weight (gzip, zlib default level):");
for (const f of files) {
  const raw = readFileSync(join(ROOT, "dist", "console", f));
  const gz = gzipSync(raw).length;
  total += gz;
  console.log(
    `  ${f.padEnd(12)} ${fmt(raw.length).padStart(7)} B raw  ${fmt(gz).padStart(6)} B gzip`,
  );
}
console.log(`  total${" ".repeat(27)}${fmt(total).padStart(6)} B gzip`);

// 2. The factory and the service.
const schema = `sluice_trace_s${String(SCALE).replace(".", "_")}`;
const psql = (sql) =>
  execFileSync("psql", [PG, "-qtAc", sql], {
    encoding: "utf8",
    env: { ...process.env, PGOPTIONS: "-c client_min_messages=warning" },
  }).trim();
const db = `${PG}${PG.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
const have =
  psql(
    `SELECT count(*) FROM pg_tables WHERE schemaname = '${schema}' AND tablename = 'defect_records'`,
  ) === "1" && Number(psql(`SELECT count(*) FROM ${schema}.defect_records`)) > 0;
if (!have) {
  note(`generating the factory at scale ${SCALE} in ${schema} ...`);
  psql(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`);
  execFileSync(
    process.execPath,
    [CLI, "prepare-data", "--workload=mes", `--scale=${SCALE}`, "--replace", `--db=${db}`],
    {
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
}
psql(
  `ANALYZE ${["upstream_history", "defect_records", "lot_moves", "container_lineage"].map((t) => `${schema}.${t}`).join(", ")}`,
);
const dir = mkdtempSync(join(tmpdir(), "sluice-bench-console-"));
const { child, url, exited } = await spawnServe(CLI, dir, {
  TRACE_DB: db,
  TRACE_MEMORY_LIMIT_MB: "0",
});

let body = null;
try {
  // 3. Chromium.
  const browser = await chromium.launch({
    executablePath: BROWSER,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const cdp = await page.context().newCDPSession(page);
  // The events request's body, kept for curl to send the same.
  page.on("request", (r) => {
    if (r.url().endsWith("/api/trace/events")) body = r.postData();
  });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${url}/#trace`);
  await page.check("input[name=profile][value=mid_section_defect]");
  await page.fill("#trace-wc", STATION);
  await page.fill("#trace-from", "2000-01-01");
  await page.fill("#trace-to", "2100-01-01");
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const h = await cdp.send("Runtime.getHeapUsage").catch(() => null);
      if (h) peak = Math.max(peak, h.usedSize);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  const t0 = performance.now();
  await page.click(".trace-form button[type=submit]");
  await page.waitForSelector("[data-testid=events-state][data-state=complete]", {
    timeout: 1_800_000,
  });
  const wall = (performance.now() - t0) / 1000;
  sampling = false;
  await sampler;
  const marks = await page.evaluate(() => {
    const at = (n) => performance.getEntriesByName(n)[0]?.startTime ?? Number.NaN;
    const start = at("sluice:events-start");
    return {
      firstRow: at("sluice:first-row") - start,
      pareto: at("sluice:pareto-drawn") - start,
      end: at("sluice:events-end") - start,
    };
  });
  const counts = await page.textContent("[data-testid=events-state]");
  const lineage = await page.textContent("[data-testid=lineage]");
  const bars = await page.$$eval("g.pareto-bar", (g) => g.length);
  const atEnd = await cdp.send("Runtime.getHeapUsage");
  await cdp.send("HeapProfiler.collectGarbage");
  const afterGc = await cdp.send("Runtime.getHeapUsage");
  await browser.close();

  // 4. curl, the same request.
  const bodyFile = join(dir, "events.json");
  writeFileSync(bodyFile, body ?? "");
  const curl = execFileSync(
    "curl",
    [
      "-sS",
      "--compressed",
      "-o",
      "/dev/null",
      "-w",
      "%{time_starttransfer} %{time_total} %{size_download}",
      "-H",
      "content-type: application/json",
      "-H",
      "accept: application/x-ndjson",
      "--data-binary",
      `@${bodyFile}`,
      `${url}/api/trace/events`,
    ],
    { encoding: "utf8" },
  )
    .split(" ")
    .map(Number);

  console.log(
    `\nMSD trace, scale ${SCALE}, station ${STATION}, ${new Date().toISOString()}, load ${loadavg()[0].toFixed(1)}`,
  );
  console.log(`  lineage: ${lineage}`);
  console.log(`  events:  ${counts}; ${bars} pareto bars`);
  console.log(
    `  Chromium (from the events request leaving; the whole page flow took ${wall.toFixed(1)} s):`,
  );
  console.log(`    first row drawn        ${(marks.firstRow / 1000).toFixed(2)} s`);
  console.log(
    `    first pareto bar drawn ${(marks.pareto / 1000).toFixed(2)} s (the whole pareto: it is the trailer)`,
  );
  console.log(`    last row read          ${(marks.end / 1000).toFixed(2)} s`);
  console.log(
    `    JS heap: peak ${MB(peak)} MB while streaming (250 ms samples), ${MB(atEnd.usedSize)} MB at the end, ${MB(afterGc.usedSize)} MB after a GC`,
  );
  console.log(
    `  curl, same request (NDJSON, gzip): first byte ${curl[0].toFixed(2)} s, last ${curl[1].toFixed(2)} s (${MB(curl[2])} MB compressed)`,
  );
  if (errors.length) console.log(`  page errors: ${errors.join("; ")}`);
} finally {
  child.kill("SIGTERM");
  await exited;
  rmSync(dir, { recursive: true, force: true });
}

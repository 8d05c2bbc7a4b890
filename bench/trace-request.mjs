// bench/trace-request: one POST /api/trace/events (mid_section_defect, both domains) at a time,
// on a fresh `sluice serve` each, and where its time goes: the server's CPU beside
// PostgreSQL's. With --vs, another build's server takes turns with this one (A B A B ...).
//
//   node bench/trace.mjs --scales=1 --keep      # first: the schema sluice_trace_s1
//   node bench/trace-request.mjs --rounds=3
//   node bench/trace-request.mjs --rounds=3 --vs=/path/to/other/checkout/dist/cli/main.js
//
// Each run: seed-resolve (PACK) and lineage as the front end asks them, then the events
// request read to its last byte; wall seconds of the request, the server's user+system CPU
// over it (/proc/PID/stat), all PostgreSQL processes' CPU over it (ps, whole seconds), and
// the server's exact peak RSS over it (VmHWM reset by /proc/PID/clear_refs just before).
// The servers run as deployed (glibc's mmap threshold fixed, as bench/trace's first contender);
// the environment (SLUICE_BENCH_PG_URL, TRACE_GC_EVERY_ROWS, ...) passes to them.
import { execSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { MALLOC_ENV } from "../dist/node/cluster.js";
import { msdContainers, postEvents, resetPeak, spawnServe, vmRss } from "./serve.mjs";
import { median } from "./timed.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const A = join(ROOT, "dist", "cli", "main.js");
const B = arg("vs");
const ROUNDS = Number(arg("rounds") ?? 1);
const SCHEMA = arg("schema") ?? "sluice_trace_s1";
const PG = process.env.SLUICE_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const traceDb = `${PG}${PG.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${SCHEMA}`)}`;

/** User + system seconds of a process so far. */
const cpuOf = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
};
/** CPU seconds of every PostgreSQL process so far (ps counts whole seconds). */
const pgCpu = () =>
  execSync("ps -C postgres -o cputimes=")
    .toString()
    .trim()
    .split(/\s+/)
    .map(Number)
    .reduce((a, b) => a + b, 0);

async function once(cli) {
  const dir = mkdtempSync(join(tmpdir(), "sluice-trace-request-"));
  const { child, url, exited } = await spawnServe(cli, dir, {
    // As deployed (deploy/sluice.service, every cluster worker): glibc's mmap threshold fixed.
    ...MALLOC_ENV,
    TRACE_DB: traceDb,
    TRACE_MEMORY_LIMIT_MB: "0",
  });
  try {
    const { lineage } = await msdContainers(url, "PACK");
    resetPeak(child.pid);
    const cpu0 = cpuOf(child.pid);
    const pg0 = pgCpu();
    const t0 = performance.now();
    const res = await postEvents(url, "mid_section_defect", lineage.containers);
    let bytes = 0;
    for await (const b of res.body) bytes += b.byteLength;
    return {
      wall: (performance.now() - t0) / 1000,
      cpu: cpuOf(child.pid) - cpu0,
      pg: pgCpu() - pg0,
      peak: vmRss(child.pid).hwm,
      bytes,
    };
  } finally {
    child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

const builds = B
  ? [
      ["A (this checkout)", A],
      [`B (${B})`, B],
    ]
  : [["this checkout", A]];
const runs = new Map(builds.map(([name]) => [name, []]));
for (let round = 1; round <= ROUNDS; round++) {
  for (const [name, cli] of builds) {
    const r = await once(cli);
    runs.get(name).push(r);
    console.log(
      `round ${round} ${name}: wall ${r.wall.toFixed(2)} s, server CPU ${r.cpu.toFixed(2)} s, PostgreSQL CPU ${r.pg.toFixed(0)} s, peak RSS ${r.peak.toFixed(1)} MB, ${r.bytes} bytes`,
    );
  }
}
for (const [name, rs] of runs) {
  const m = (k) => median(rs.map((r) => r[k]));
  console.log(
    `${name}: median wall ${m("wall").toFixed(2)} s, server CPU ${m("cpu").toFixed(2)} s, peak ${m("peak").toFixed(1)} MB`,
  );
}
if (B) {
  const [a, b] = [...runs.values()];
  const ratios = a.map((r, i) => r.wall / b[i].wall);
  console.log(
    `A/B wall: median ${median(ratios).toFixed(3)} (${ratios.map((x) => x.toFixed(3)).join(", ")})`,
  );
}

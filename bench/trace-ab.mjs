// bench/trace-ab: the MSD events request (both domains) on a fresh `sluice serve` per run, with
// one server setting changed at a time, the variants taking turns; to see what a setting is
// worth in wall seconds and peak RSS, run to run, without the rest of bench/trace.
//
//   node bench/trace-ab.mjs                          # the variants below, 2 rounds, scale 1
//   node bench/trace-ab.mjs --scale=0.1 --rounds=3
//   node bench/trace-ab.mjs --variant='{"TRACE_FETCHMANY_SIZE":"5000"}' --variant='{}'
//
// Needs bench/trace's schema (node bench/trace.mjs --keep). The containers come from
// seed-resolve (PACK, all dates) and lineage on a server of their own, which is then stopped,
// so each measured server serves only the events request. Peak RSS: the server's VmHWM, reset
// just before the request (/proc/PID/clear_refs) and read once its last byte arrived.
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { MALLOC_ENV } from "../dist/node/cluster.js";
import { envLabel, msdContainers, postEvents, resetPeak, spawnServe, vmRss } from "./serve.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "dist", "cli", "main.js");
const args = process.argv.slice(2);
const arg = (name) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const SCALE = arg("scale") ?? "1";
const ROUNDS = Number(arg("rounds") ?? 2);
const PG = process.env.SLUICE_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `sluice_trace_s${SCALE.replace(".", "_")}`;
const TRACE_DB = `${PG}${PG.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
const given = args.filter((a) => a.startsWith("--variant=")).map((a) => JSON.parse(a.slice(10)));
// Undefined: the server runs without the variable.
const VARIANTS = given.length
  ? given
  : [
      { ...MALLOC_ENV },
      { MALLOC_MMAP_THRESHOLD_: undefined },
      { ...MALLOC_ENV, TRACE_GC_EVERY_ROWS: "0" },
      { MALLOC_MMAP_THRESHOLD_: undefined, TRACE_GC_EVERY_ROWS: "0" },
    ];

const dir = mkdtempSync(join(tmpdir(), "sluice-trace-ab-"));
const base = { TRACE_DB, TRACE_MEMORY_LIMIT_MB: "0" };
async function withServer(env, fn) {
  const s = await spawnServe(CLI, dir, { ...base, ...env });
  try {
    return await fn(s);
  } finally {
    s.child.kill("SIGTERM");
    await s.exited;
  }
}

const containers = await withServer(
  {},
  async ({ url }) => (await msdContainers(url, "PACK")).lineage.containers,
);
process.stderr.write(`scale ${SCALE}: ${containers.length} containers\n`);

const runs = VARIANTS.map(() => []);
for (let round = 0; round < ROUNDS; round++) {
  for (const [i, env] of VARIANTS.entries()) {
    const r = await withServer(env, async ({ url, child }) => {
      const before = resetPeak(child.pid);
      const t0 = performance.now();
      let bytes = 0;
      const res = await postEvents(url, "mid_section_defect", containers);
      if (!res.ok) throw new Error(`events: ${res.status} ${await res.text()}`);
      for await (const chunk of res.body) bytes += chunk.length;
      const secs = (performance.now() - t0) / 1000;
      return { secs, before, peak: vmRss(child.pid).hwm, mb: bytes / 1048576 };
    });
    runs[i].push(r);
    process.stderr.write(
      `round ${round + 1}: ${envLabel(env)}: ${r.secs.toFixed(2)} s, peak ${r.peak.toFixed(1)} MB (before ${r.before.toFixed(1)}; load ${loadavg()[0].toFixed(2)})\n`,
    );
  }
}
rmSync(dir, { recursive: true, force: true });

const f = (xs, d = 1) => xs.map((x) => x.toFixed(d)).join(" / ");
console.log(
  `\nbench/trace-ab on ${new Date().toISOString().slice(0, 10)}, scale ${SCALE}, ${containers.length} containers, ${ROUNDS} rounds, node ${process.version}, load average at the end ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`,
);
console.log(`${"server setting".padEnd(60)} ${"wall s".padEnd(22)} peak RSS MB`);
for (const [i, env] of VARIANTS.entries()) {
  const rs = runs[i];
  console.log(
    `${envLabel(env).padEnd(60)} ${f(
      rs.map((r) => r.secs),
      2,
    ).padEnd(22)} ${f(rs.map((r) => r.peak))}`,
  );
}

// Shared by the bench scripts: start `sluice serve` as one process on a free port, and talk to it.
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * One service process (WEB_CONCURRENCY=1, no schedule, quiet logs) on SQLite + a folder in
 * `dir`, with `env` on top; resolves once it prints its URL.
 */
export async function spawnServe(cli, dir, env = {}) {
  const full = {
    ...process.env,
    SLUICE_DB: `sqlite:${join(dir, "hot.db")}`,
    SLUICE_STORE: `file:${join(dir, "archive")}`,
    PORT: "0",
    WEB_CONCURRENCY: "1",
    ARCHIVE_CRON: "off",
    LOG_LEVEL: "warn",
    ...env,
  };
  // A name given as undefined is left out: the server runs without it.
  for (const [k, v] of Object.entries(full)) if (v === undefined) delete full[k];
  const child = spawn(process.execPath, [cli, "serve"], {
    env: full,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((r) => child.once("exit", r));
  const url = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once("exit", (code) => reject(new Error(`serve exited ${code}`)));
  });
  return { child, url, exited };
}

/** VmRSS and VmHWM of a process, in MB (NaN once it is gone). */
export function vmRss(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? Number.NaN);
    return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
  } catch {
    return { rss: Number.NaN, hwm: Number.NaN };
  }
}

/**
 * Reset a process's peak RSS (VmHWM) to its RSS now (Linux >= 4.0: `5` written to
 * /proc/PID/clear_refs; allowed for one's own processes): its VmHWM read later is then the
 * exact peak since this call, which no sampling can promise. Returns the RSS now, in MB.
 */
export function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
  } catch (e) {
    throw new Error(
      `cannot reset the peak RSS of process ${pid} (/proc/${pid}/clear_refs: ${e.code ?? e.message}); Linux >= 4.0 and a process of one's own are needed`,
    );
  }
  return vmRss(pid).hwm;
}

/** POST a JSON body; the parsed JSON answer, or an error with the status and the body. */
export async function postJson(url, body) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** The front end's MSD containers: seed-resolve (`station`, all dates), then lineage backward. */
export async function msdContainers(url, station) {
  const seeds = await postJson(`${url}/api/trace/seed-resolve`, {
    profile: "mid_section_defect",
    filter: { workcenter: station, from: "2000-01-01", to: "2100-01-01" },
  });
  const lineage = await postJson(`${url}/api/trace/lineage`, {
    profile: "mid_section_defect",
    containers: seeds.containers,
  });
  return { seeds, lineage };
}

/** POST /api/trace/events over both domains; the response, unread. */
export const postEvents = (url, profile, containers) =>
  fetch(`${url}/api/trace/events`, {
    method: "POST",
    // Uncompressed, as the baselines it is measured against write it.
    headers: { "content-type": "application/json", "accept-encoding": "identity" },
    body: JSON.stringify({ profile, containers, domains: ["upstream_history", "defect_records"] }),
  });

/** `K=v K2=(unset)` for a server's extra environment, as the benches print it. */
export const envLabel = (env) =>
  Object.entries(env)
    .map(([k, v]) => `${k}=${v ?? "(unset)"}`)
    .join(" ") || "(defaults)";

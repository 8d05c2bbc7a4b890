// Shared by the bench scripts: start `sluice serve` as one process on a free port.
import { spawn } from "node:child_process";
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

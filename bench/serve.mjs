// Shared by the bench scripts: start `sluice serve` as one process on a free port.
import { spawn } from "node:child_process";
import { join } from "node:path";

/**
 * One service process (WEB_CONCURRENCY=1, no schedule, quiet logs) on SQLite + a folder in
 * `dir`, with `env` on top; resolves once it prints its URL.
 */
export async function spawnServe(cli, dir, env = {}) {
  const child = spawn(process.execPath, [cli, "serve"], {
    env: {
      ...process.env,
      SLUICE_DB: `sqlite:${join(dir, "hot.db")}`,
      SLUICE_STORE: `file:${join(dir, "archive")}`,
      PORT: "0",
      WEB_CONCURRENCY: "1",
      ARCHIVE_CRON: "off",
      LOG_LEVEL: "warn",
      ...env,
    },
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

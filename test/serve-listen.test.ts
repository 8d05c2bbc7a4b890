import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { type Server, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";

/**
 * A service that cannot take its port exits non-zero with the reason, with one worker or
 * several: it must not stay up without a port, looking healthy to systemd, with its cron armed.
 */
const CLI = join(import.meta.dirname, "..", "dist", "cli", "main.js");
const dir = mkdtempSync(join(tmpdir(), "sluice-listen-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

for (const workers of ["1", "2"]) {
  it(`exits 2 naming the address when the port is in use (WEB_CONCURRENCY=${workers})`, async () => {
    const holder: Server = createServer();
    await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
    const port = (holder.address() as { port: number }).port;
    try {
      const child = spawn(process.execPath, [CLI, "serve"], {
        env: {
          ...process.env,
          SLUICE_DB: `sqlite:${join(dir, `hot-${workers}.db`)}`,
          SLUICE_STORE: `file:${join(dir, "archive")}`,
          PORT: String(port),
          WEB_CONCURRENCY: workers,
          LOG_LEVEL: "warn",
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let err = "";
      child.stderr?.on("data", (d: Buffer) => {
        err += d.toString();
      });
      // A deadline, not a measurement: it should be gone at once.
      const code = await Promise.race([
        new Promise((r) => child.once("exit", r)),
        new Promise((r) => setTimeout(() => r("still running after 30 s"), 30_000)),
      ]);
      child.kill("SIGKILL");
      expect(code, err).toBe(2);
      expect(err).toContain(`cannot listen on 127.0.0.1:${port} (EADDRINUSE`);
    } finally {
      holder.close();
    }
  }, 60_000);
}

/** `sluice serve` with two workers until it listens; its stdout then, and how it exited. */
async function twoWorkers(env: Record<string, string>): Promise<{ out: string; code: unknown }> {
  const holder: Server = createServer();
  await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
  const port = (holder.address() as { port: number }).port;
  await new Promise<void>((r) => holder.close(() => r()));
  const child = spawn(process.execPath, [CLI, "serve"], {
    env: {
      ...process.env,
      SLUICE_DB: `sqlite:${join(dir, "logs.db")}`,
      SLUICE_STORE: `file:${join(dir, "archive")}`,
      PORT: String(port),
      WEB_CONCURRENCY: "2",
      ARCHIVE_CRON: "off",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  // Both workers up: each answers /healthz once it listens; then a request to log.
  for (let i = 0; i < 300; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok && (out.match(/GET|"request"/g) ?? []).length > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 500));
  child.kill("SIGTERM");
  const code = await new Promise((r) => child.once("exit", r));
  return { out, code };
}

it("two workers print one listening line and one set of start-up notices; logs are JSON off a terminal", async () => {
  const { out, code } = await twoWorkers({});
  expect(code).toBe(0);
  expect(out.match(/listening on http:\/\//g)).toHaveLength(1);
  expect(out.match(/ADMIN_TOKEN is not set/g)).toHaveLength(1);
  const logLines = out.split("\n").filter((l) => l.startsWith("{"));
  expect(logLines.length).toBeGreaterThan(0);
  for (const l of logLines) expect(JSON.parse(l)).toHaveProperty("level");
}, 60_000);

it("LOG_FORMAT=pretty (what a terminal gets): human lines with the time and level, no JSON", async () => {
  const { out, code } = await twoWorkers({ LOG_FORMAT: "pretty" });
  expect(code).toBe(0);
  expect(out).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ADMIN_TOKEN is not set/m);
  expect(out.split("\n").filter((l) => l.startsWith("{"))).toEqual([]);
}, 60_000);

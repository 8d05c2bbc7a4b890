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

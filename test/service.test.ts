import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { JobRunner } from "../src/core/archive/runner.js";
import { daysBefore } from "../src/core/dates.js";
import { loadConfig } from "../src/node/config.js";
import { openContext } from "../src/node/context.js";
import { openSource } from "../src/node/open.js";
import { startScheduler } from "../src/node/scheduler.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";
import { partNames, partPath } from "./helpers.js";

/** `sluice serve` as real processes: two on one database, shutdown, the schedule. */
const CLI = join(import.meta.dirname, "..", "dist", "cli", "main.js");
const DAY = "2025-10-13";
const TOKEN = "test-admin-token-0123456789";
const root = mkdtempSync(join(tmpdir(), "sluice-service-"));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(root, { recursive: true, force: true });
});

async function hotDb(name: string, days: { date: string; count: number }[]): Promise<string> {
  const dir = join(root, name);
  const source = await openSource(`sqlite:${join(dir, "hot.db")}`, { create: true });
  for (const d of days) await prepareTrafficData(source, d);
  await source.close();
  return dir;
}

interface Served {
  url: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

function serve(dir: string, workers = 1): Promise<Served> {
  const child = spawn(process.execPath, [CLI, "serve"], {
    env: {
      ...process.env,
      SLUICE_DB: `sqlite:${join(dir, "hot.db")}`,
      SLUICE_STORE: `file:${join(dir, "archive")}`,
      ADMIN_TOKEN: TOKEN,
      PORT: "0",
      WEB_CONCURRENCY: String(workers),
      ARCHIVE_CRON: "off",
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve({ url: m[1] as string, child, exited });
    });
    let err = "";
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.once("exit", (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
}

const admin = (url: string, path: string, method = "POST") =>
  fetch(`${url}${path}`, { method, headers: { Authorization: `Bearer ${TOKEN}` } });

async function waitForJob(url: string, date: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 600; i++) {
    const s = (await (await admin(url, `/admin/archive-status?date=${date}`, "GET")).json()) as {
      job: { state: string } | null;
    };
    if (s.job && s.job.state !== "running") return s as Record<string, unknown>;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("job did not finish");
}

function ledger(dir: string, date: string): Record<string, unknown> | undefined {
  const db = new Database(join(dir, "hot.db"), { readonly: true });
  try {
    return db.prepare("SELECT * FROM archive_metadata WHERE date = ?").get(date) as
      | Record<string, unknown>
      | undefined;
  } finally {
    db.close();
  }
}

function hotRows(dir: string, date: string): number {
  const db = new Database(join(dir, "hot.db"), { readonly: true });
  try {
    return (
      db.prepare("SELECT COUNT(*) AS n FROM traffic_events WHERE event_date = ?").get(date) as {
        n: number;
      }
    ).n;
  } finally {
    db.close();
  }
}

describe("sluice serve", () => {
  it("two service processes on one database: one archives the date, the other answers 409", async () => {
    const dir = await hotDb("two", [{ date: DAY, count: 150_000 }]);
    const [a, b] = await Promise.all([serve(dir), serve(dir)]);
    const answers = await Promise.all(
      [a, b].map((s) => admin(s.url, `/admin/trigger-archive?date=${DAY}`)),
    );
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([202, 409]);
    const refused = answers.find((r) => r.status === 409);
    expect(await refused?.json()).toMatchObject({ error: "locked", holder: expect.any(String) });
    const winner = answers[0]?.status === 202 ? a : b;
    const done = await waitForJob(winner.url, DAY);
    expect(done).toMatchObject({ job: { state: "succeeded" }, record: { state: "verified" } });
    expect(partNames(join(dir, "archive", "traffic_events", `date=${DAY}`))).toEqual([
      "part-0000-*.jsonl.gz",
      "part-0000-*.manifest.json",
    ]);
    expect(ledger(dir, DAY)).toMatchObject({ part_count: 1, event_count: 150_000 });
    a.child.kill("SIGTERM");
    b.child.kill("SIGTERM");
    expect(await a.exited).toBe(0);
    expect(await b.exited).toBe(0);
  });

  it("on SIGTERM stops a running cleanup at a batch boundary, exits 0, and the next start finishes it", async () => {
    const dir = await hotDb("shutdown", [{ date: DAY, count: 300_000 }]);
    const first = await serve(dir);
    expect((await admin(first.url, `/admin/trigger-archive?date=${DAY}`)).status).toBe(202);
    await waitForJob(first.url, DAY);
    expect((await admin(first.url, `/admin/trigger-cleanup?date=${DAY}`)).status).toBe(202);
    // Let it delete some rows, then ask it to stop.
    while (hotRows(dir, DAY) === 300_000) await new Promise((r) => setTimeout(r, 20));
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    const left = hotRows(dir, DAY);
    const rec = ledger(dir, DAY);
    // Stopped part-way: not failed, its progress saved, the lease let go, marked interrupted.
    expect(rec).toMatchObject({
      state: "cleaning",
      lease_owner: null,
      last_error: "interrupted; progress saved, run the command again to resume",
    });
    expect(left).toBeGreaterThan(0);
    expect(rec?.cleaned_count).toBe(300_000 - left);

    const second = await serve(dir);
    expect((await admin(second.url, `/admin/trigger-cleanup?date=${DAY}`)).status).toBe(202);
    expect(await waitForJob(second.url, DAY)).toMatchObject({ job: { state: "succeeded" } });
    expect(hotRows(dir, DAY)).toBe(0);
    expect(ledger(dir, DAY)).toMatchObject({
      state: "cleaned",
      d1_cleaned: 1,
      cleaned_count: 300_000,
    });
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  });

  it("on SIGTERM also stops the threads that answered stats queries, and exits 0", async () => {
    const dir = await hotDb("stats", [{ date: DAY, count: 2_000 }]);
    const s = await serve(dir);
    for (const path of ["/api/stats/top-paths", "/api/stats/path-daily?path=/&"]) {
      const sep = path.includes("?") ? "" : "?";
      const res = await fetch(`${s.url}${path}${sep}from=${DAY}&to=${DAY}`);
      expect(res.status, await res.text()).toBe(200);
    }
    s.child.kill("SIGTERM");
    // A thread left running would keep the process alive: give it a deadline, not forever.
    const late = new Promise((r) => setTimeout(() => r("still running after 30 s"), 30_000));
    expect(await Promise.race([s.exited, late])).toBe(0);
  });

  it("a second signal exits at once, when the first is still waiting for a request", async () => {
    const dir = await hotDb("twice", [{ date: DAY, count: 10 }]);
    const s = await serve(dir);
    // A client that never finishes its body: a graceful stop waits for it.
    const req = request(`${s.url}/api/events`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Content-Length": "1000" },
    });
    req.on("error", () => undefined);
    req.write("[");
    await new Promise((r) => setTimeout(r, 200));
    s.child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 500));
    expect(s.child.exitCode).toBeNull();
    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(130);
    req.destroy();
  });
});

/** A GET on a connection of its own, so that the cluster may give it to either worker. */
function freshGet(url: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { agent: false, headers: { Authorization: `Bearer ${TOKEN}`, Connection: "close" } },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => {
          text += d.toString();
        });
        res.on("end", () => resolve(JSON.parse(text) as Record<string, unknown>));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("job state over two workers", () => {
  it("every worker shows the same job: running while it runs, then how it ended, its error too", async () => {
    const dir = await hotDb("shared-jobs", [{ date: DAY, count: 300_000 }]);
    const s = await serve(dir, 2);
    const status = () => freshGet(`${s.url}/admin/archive-status?date=${DAY}`);
    type Job = { state: string; kind: string; error: string | null } | null;
    expect((await admin(s.url, `/admin/trigger-archive?date=${DAY}`)).status).toBe(202);
    // Until it ends, every answer, from either worker, has the job running.
    const seen: Job[] = [];
    for (let i = 0; i < 600; i++) {
      const job = (await status()).job as Job;
      seen.push(job);
      if (job && job.state !== "running") break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(seen.filter((j) => j === null)).toEqual([]);
    expect(seen.filter((j) => j?.state === "running").length).toBeGreaterThan(1);
    // Ended: every worker says so, the same way.
    for (let i = 0; i < 6; i++) {
      expect((await status()).job).toMatchObject({ state: "succeeded", kind: "archive" });
    }
    // A cleanup that fails (its archive was damaged): its error on every worker.
    writeFileSync(
      partPath(join(dir, "archive", "traffic_events", `date=${DAY}`)),
      Buffer.from("not the archived bytes"),
    );
    expect((await admin(s.url, `/admin/trigger-cleanup?date=${DAY}`)).status).toBe(202);
    let failed: Job = null;
    for (let i = 0; i < 600 && failed?.state !== "failed"; i++) {
      failed = (await status()).job as Job;
      await new Promise((r) => setTimeout(r, 20));
    }
    for (let i = 0; i < 6; i++) {
      const job = (await status()).job as Job;
      expect(job).toMatchObject({ state: "failed", kind: "cleanup" });
      expect(job?.error).toMatch(/sha256|bytes|gzip|header|verif/i);
    }
    expect(hotRows(dir, DAY)).toBe(300_000);
    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);
  }, 120_000);
});

describe("GET /metrics", () => {
  it("counts ingest, jobs, rows archived and deleted, and hot rows by date, over two workers", async () => {
    const OTHER = "2025-10-14";
    const dir = await hotDb("metrics", [{ date: OTHER, count: 500 }]);
    const s = await serve(dir, 2);
    const events = Array.from({ length: 300 }, (_, i) => ({
      ts: Date.parse(`${DAY}T12:00:00Z`) + i,
      path: `/m/${i % 7}`,
      status: 200,
      duration_ms: i,
    }));
    // Ten batches: the cluster spreads connections over both workers.
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`${s.url}/api/events`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Connection: "close" },
        body: JSON.stringify(events.slice(i * 30, i * 30 + 30)),
      });
      expect(r.status).toBe(201);
    }
    expect((await admin(s.url, `/admin/trigger-archive?date=${DAY}`)).status).toBe(202);
    await waitForJob(s.url, DAY);
    expect((await admin(s.url, `/admin/trigger-cleanup?date=${DAY}`)).status).toBe(202);
    const metric = async (name: string) => {
      const text = await (await fetch(`${s.url}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith(`${name} `));
      return line === undefined ? undefined : Number(line.split(" ")[1]);
    };
    // The cleanup job may answer archive-status from either worker: wait on the ledger.
    for (let i = 0; i < 300 && ledger(dir, DAY)?.state !== "cleaned"; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await metric("sluice_ingested_events_total")).toBe(300);
    expect(await metric('sluice_jobs_total{kind="archive",outcome="ok"}')).toBe(1);
    expect(await metric('sluice_jobs_total{kind="cleanup",outcome="ok"}')).toBe(1);
    expect(await metric("sluice_archived_rows_total")).toBe(300);
    expect(await metric("sluice_deleted_rows_total")).toBe(300);
    expect(await metric(`sluice_cleanup_remaining_rows{date="${DAY}"}`)).toBe(0);
    expect(await metric(`sluice_hot_rows{date="${OTHER}"}`)).toBe(500);
    expect(await metric("sluice_process_resident_memory_bytes")).toBeGreaterThan(0);
    // Each worker runs with a fixed glibc mmap threshold (the operator's own, if set).
    const pid = s.child.pid as number;
    const workers = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/);
    expect(workers).toHaveLength(2);
    for (const w of workers) {
      const env = readFileSync(`/proc/${w}/environ`, "utf8").split("\0");
      expect(env).toContain(
        `MALLOC_MMAP_THRESHOLD_=${process.env.MALLOC_MMAP_THRESHOLD_ ?? "131072"}`,
      );
    }
    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);
  });
});

describe("the archive schedule", () => {
  it("archives, verifies and cleans every date older than the hot retention, and no newer one", async () => {
    const today = new Date();
    const days = [5, 4, 3, 2, 1, 0].map((n) => daysBefore(today, n));
    const dir = await hotDb(
      "schedule",
      days.map((date) => ({ date, count: 2_000 })),
    );
    const c = await openContext(
      loadConfig({
        SLUICE_DB: `sqlite:${join(dir, "hot.db")}`,
        SLUICE_STORE: `file:${join(dir, "archive")}`,
      }),
    );
    try {
      const runner = new JobRunner(c.ctx, c.owner);
      const scheduler = startScheduler({
        pattern: "0 0 1 1 *",
        ctx: c.ctx,
        runner,
        retentionDays: 3,
        log: () => undefined,
      });
      const outcomes = await scheduler.runOnce();
      scheduler.stop();
      // HOT_RETENTION_DAYS=3 keeps today and the two days before it.
      expect(outcomes).toEqual(days.slice(0, 3).map((date) => ({ date, outcome: "succeeded" })));
      for (const date of days.slice(0, 3)) {
        expect(hotRows(dir, date)).toBe(0);
        expect(ledger(dir, date)).toMatchObject({ state: "cleaned", d1_cleaned: 1 });
      }
      for (const date of days.slice(3)) {
        expect(hotRows(dir, date)).toBe(2_000);
        expect(ledger(dir, date)).toBeUndefined();
      }
      expect(existsSync(join(dir, "archive", "traffic_events", `date=${days[3]}`))).toBe(false);
    } finally {
      await c.close();
    }
  });
});

import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import {
  BadInputError,
  CleanupIncompleteError,
  LeaseHeldError,
  NotFoundError,
  SluiceError,
} from "../src/core/errors.js";
import { httpError } from "../src/http/status.js";
import { loadConfig } from "../src/node/config.js";
import { openSource } from "../src/node/open.js";
import { startService } from "../src/node/serve.js";
import { fromWire, toWire } from "../src/node/thread-errors.js";
import { lazyJobsThread, startJobsThread } from "../src/node/thread-jobs.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";
import { TOKEN, bearer, call, startServer, waitForJob } from "./http-helpers.js";

/** The nice value of each thread of this process (field 19 of /proc/self/task/TID/stat). */
function niceOfThreads(): number[] {
  return readdirSync("/proc/self/task").map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[16]);
  });
}

/** What crosses from the jobs thread: the error a route maps, through a structured clone. */
const across = (err: unknown) => fromWire(structuredClone(toWire(err)));

describe("errors from the jobs thread", () => {
  it("keep their class, their figures and so their HTTP answer", () => {
    const held = new LeaseHeldError("traffic_events", "2025-10-13", "host:1:job2", 1_700_000_000);
    const back = across(held);
    expect(back).toBeInstanceOf(LeaseHeldError);
    expect(back).toBeInstanceOf(SluiceError);
    expect(back).toMatchObject({
      name: "LeaseHeldError",
      kind: "conflict",
      table: "traffic_events",
      date: "2025-10-13",
      holder: "host:1:job2",
      expiresAt: 1_700_000_000,
      message: held.message,
    });
    expect(httpError(back)).toEqual(httpError(held));

    const partial = new CleanupIncompleteError("t", "2025-10-13", 900, 100);
    expect(across(partial)).toBeInstanceOf(CleanupIncompleteError);
    expect(across(partial)).toMatchObject({ deleted: 900, remaining: 100 });
    expect(httpError(across(partial))).toEqual(httpError(partial));
  });

  it("any other error comes back as an Error with its name and message (a 500)", () => {
    const back = across(new TypeError("x is not a function"));
    expect(back).toBeInstanceOf(Error);
    expect(back).not.toBeInstanceOf(SluiceError);
    expect(back).toMatchObject({ name: "TypeError", message: "x is not a function" });
    expect(httpError(back).status).toBe(500);
    expect(across("a string thrown")).toMatchObject({ message: "a string thrown" });
  });
});

describe("the jobs thread", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-jobs-thread-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const silent = pino({ level: "silent" });

  it("that cannot open its table fails to start with the typed error, and leaves nothing running", async () => {
    const db = join(dir, "empty.db");
    const source = await openSource(`sqlite:${db}`, { create: true });
    await source.close();
    const config = loadConfig({
      SLUICE_DB: `sqlite:${db}`,
      SLUICE_STORE: `file:${join(dir, "archive")}`,
      SLUICE_TABLE: "no_such_table",
    });
    const started = startJobsThread({ configs: [config], logger: silent });
    await expect(started).rejects.toBeInstanceOf(BadInputError);
    await expect(started).rejects.toThrow(/table 'no_such_table' does not exist/);
  });

  it("runs a table's archive there; its end reaches done() and onFinish, its refusals the caller", async () => {
    const db = join(dir, "hot.db");
    const source = await openSource(`sqlite:${db}`, { create: true });
    try {
      await prepareTrafficData(source, { date: "2025-10-13", count: 2_000 });
    } finally {
      await source.close();
    }
    const config = loadConfig({
      SLUICE_DB: `sqlite:${db}`,
      SLUICE_STORE: `file:${join(dir, "archive")}`,
      SLUICE_JOBS_NICE: "7",
    });
    const finished: string[] = [];
    const thread = await startJobsThread({
      configs: [config],
      logger: silent,
      onFinish: (job) => finished.push(`${job.id} ${job.state}`),
    });
    try {
      // Linux: the jobs thread runs at SLUICE_JOBS_NICE, this one still at 0.
      if (existsSync("/proc/self/task")) {
        expect(niceOfThreads()).toContain(7);
        expect(niceOfThreads().filter((n) => n === 7)).toHaveLength(1);
      } else console.warn("SKIP the nice check: no /proc/self/task on this system");
      const jobs = thread.jobs("traffic_events");
      const view = await jobs.start("archive-and-cleanup", "2025-10-13");
      expect(view).toMatchObject({ kind: "archive-and-cleanup", date: "2025-10-13" });
      await jobs.done("2025-10-13");
      const ended = jobs.view("2025-10-13", null);
      expect(ended?.state, ended?.error ?? "").toBe("succeeded");
      expect(ended?.result?.cleanup).toMatchObject({ complete: true, deleted: 2_000 });
      expect(finished).toEqual([`${view.id} succeeded`]);
      // A cleanup of a date never archived is refused by the runner there, typed here.
      const refused = jobs.start("cleanup", "2025-10-14");
      await expect(refused).rejects.toBeInstanceOf(NotFoundError);
      await expect(refused).rejects.toThrow(/no archive of traffic_events for 2025-10-14/);
      expect(await thread.schedule()).toMatchObject({ archiveNext: expect.any(Date) });
    } finally {
      await thread.stop();
    }
    // Stopped: nothing more starts.
    await expect(thread.jobs("traffic_events").start("archive", "2025-10-13")).rejects.toThrow(
      /jobs thread has ended/,
    );
  });
});

describe("a jobs thread started lazily", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-lazy-thread-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const silent = pino({ level: "silent" });
  /** How many threads of this process run at `nice` (the jobs thread's SLUICE_JOBS_NICE). */
  const threadsAt = (nice: number) => niceOfThreads().filter((n) => n === nice).length;

  it("starts with the first job, once; before it a date's job is the ledger's; a failed start is tried again", async () => {
    const db = join(dir, "hot.db");
    const source = await openSource(`sqlite:${db}`, { create: true });
    try {
      await prepareTrafficData(source, { date: "2025-10-13", count: 500 });
    } finally {
      await source.close();
    }
    const env = { SLUICE_DB: `sqlite:${db}`, SLUICE_STORE: `file:${join(dir, "archive")}` };
    const missing = lazyJobsThread(() =>
      startJobsThread({
        configs: [loadConfig({ ...env, SLUICE_TABLE: "no_such_table" })],
        logger: silent,
      }),
    );
    for (let i = 0; i < 2; i++) {
      await expect(missing.jobs("no_such_table").start("archive", "2025-10-13")).rejects.toThrow(
        /table 'no_such_table' does not exist/,
      );
      expect(missing.started).toBe(false);
    }
    await missing.stop();

    let starts = 0;
    const lazy = lazyJobsThread(() => {
      starts++;
      return startJobsThread({
        configs: [loadConfig({ ...env, SLUICE_JOBS_NICE: "9" })],
        logger: silent,
      });
    });
    try {
      const jobs = lazy.jobs("traffic_events");
      expect(jobs.view("2025-10-13", null)).toBeNull();
      await jobs.done("2025-10-13");
      expect([lazy.started, starts]).toEqual([false, 0]);
      if (existsSync("/proc/self/task")) expect(threadsAt(9)).toBe(0);
      const [a, b] = await Promise.all([
        jobs.start("archive", "2025-10-13"),
        lazy.jobs("traffic_events").start("archive", "2025-10-14"),
      ]);
      expect([a.date, b.date, starts]).toEqual(["2025-10-13", "2025-10-14", 1]);
      if (existsSync("/proc/self/task")) expect(threadsAt(9)).toBe(1);
      await jobs.done("2025-10-13");
      expect(jobs.view("2025-10-13", null)?.state).toBe("succeeded");
      await jobs.start("cleanup", "2025-10-13");
      await jobs.done("2025-10-13");
      expect(jobs.view("2025-10-13", null)?.result?.cleanup).toMatchObject({ deleted: 500 });
      expect(starts).toBe(1);
    } finally {
      await lazy.stop();
    }
    if (existsSync("/proc/self/task")) expect(threadsAt(9)).toBe(0);
  });

  for (const [name, options] of [
    ["a cluster worker that runs no schedule", { scheduler: false }],
    ["a service whose crons are both off", { env: { ARCHIVE_CRON: "off", VERIFY_CRON: "off" } }],
  ] as const) {
    it(`is what ${name} runs: no thread until an admin route starts a job`, async () => {
      const srv = await startServer({
        seed: [{ date: "2025-10-13", count: 800 }],
        ...options,
        env: { SLUICE_JOBS_NICE: "11", ...("env" in options ? options.env : {}) },
      });
      try {
        const hasProc = existsSync("/proc/self/task");
        const status = await call(`${srv.url}/admin/archive-status?date=2025-10-13`, {
          headers: bearer(),
        });
        expect(status.status, status.text).toBe(200);
        expect(status.body).toMatchObject({ job: null, hotRows: 800 });
        if (hasProc) expect(threadsAt(11)).toBe(0);
        const res = await call(`${srv.url}/admin/trigger-archive?date=2025-10-13`, {
          method: "POST",
          headers: bearer(),
        });
        expect(res.status, res.text).toBe(202);
        if (hasProc) expect(threadsAt(11)).toBe(1);
        const done = await waitForJob(srv.url, "2025-10-13");
        expect(done.job?.state, done.job?.error ?? "").toBe("succeeded");
        expect(done.record).toMatchObject({ eventCount: 800 });
      } finally {
        await srv.stop();
      }
      if (existsSync("/proc/self/task")) expect(threadsAt(11)).toBe(0);
    });
  }

  it("starts with the service where a cron runs", async () => {
    const srv = await startServer({
      env: { SLUICE_JOBS_NICE: "11", ARCHIVE_CRON: "30 3 * * *" },
    });
    try {
      if (existsSync("/proc/self/task")) expect(threadsAt(11)).toBe(1);
    } finally {
      await srv.stop();
    }
  });
});

describe("SLUICE_JOBS_THREAD=false", () => {
  it("runs the service's jobs on its event loop, with the same answers", async () => {
    const srv = await startServer({
      seed: [{ date: "2025-10-13", count: 1_500 }],
      env: { SLUICE_JOBS_THREAD: "false" },
    });
    try {
      for (const kind of ["archive", "cleanup"]) {
        const res = await call(`${srv.url}/admin/trigger-${kind}?date=2025-10-13`, {
          method: "POST",
          headers: bearer(),
        });
        expect(res.status, res.text).toBe(202);
        const status = await waitForJob(srv.url, "2025-10-13");
        expect(status.job?.state, status.job?.error ?? "").toBe("succeeded");
      }
      const status = await waitForJob(srv.url, "2025-10-13");
      expect(status.record).toMatchObject({ state: "cleaned", eventCount: 1_500 });
      expect(status.hotRows).toBe(0);
      const again = await call(`${srv.url}/admin/trigger-cleanup?date=2025-10-14`, {
        method: "POST",
        headers: bearer(),
      });
      expect(again.status).toBe(404);
    } finally {
      await srv.stop();
    }
  });
});

/**
 * A jobs thread that says it is ready, shows a job of 2025-10-13 running, and then dies on the
 * first job it is asked to start: the end of a thread no one asked for (a bug, out of memory).
 */
const FAILING_THREAD = `
import { parentPort } from "node:worker_threads";
parentPort.postMessage({ type: "ready", tables: ["traffic_events"] });
parentPort.postMessage({ type: "job", table: "traffic_events", view: {
  id: "2025-10-13-1-0000abcd", kind: "archive", table: "traffic_events", date: "2025-10-13",
  state: "running", startedAt: new Date().toISOString(), finishedAt: null, progress: null,
  result: null, error: null } });
parentPort.on("message", (m) => {
  if (m.type === "schedule") parentPort.postMessage({ type: "scheduled", archiveNext: null, verifyNext: null });
  if (m.type === "start") throw new Error("boom in the jobs thread");
});
`;

describe("a jobs thread that ends on its own", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-jobs-thread-ends-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, "failing-thread.mjs");
  writeFileSync(script, FAILING_THREAD);
  const db = join(dir, "hot.db");

  it("fails the job it was running and every start after, and says so once", async () => {
    const source = await openSource(`sqlite:${db}`, { create: true });
    try {
      await prepareTrafficData(source, { date: "2025-10-13", count: 500 });
    } finally {
      await source.close();
    }
    const ended: string[] = [];
    const thread = await startJobsThread({
      configs: [loadConfig({ SLUICE_DB: `sqlite:${db}`, SLUICE_STORE: `file:${dir}/a` })],
      logger: pino({ level: "silent" }),
      entry: pathToFileURL(script),
      onEnded: (err) => ended.push(err.message),
    });
    try {
      const jobs = thread.jobs("traffic_events");
      await new Promise((r) => setTimeout(r, 100));
      expect(jobs.view("2025-10-13", null)?.state).toBe("running");
      await expect(jobs.start("archive", "2025-10-14")).rejects.toThrow(
        /jobs thread has ended \(boom in the jobs thread\): restart the service/,
      );
      const view = jobs.view("2025-10-13", null);
      expect(view?.state).toBe("failed");
      expect(view?.error).toMatch(/the jobs thread failed: boom in the jobs thread/);
      await jobs.done("2025-10-13");
      await expect(jobs.start("cleanup", "2025-10-13")).rejects.toThrow(/jobs thread has ended/);
      expect(ended).toEqual([
        "the jobs thread has ended (boom in the jobs thread): restart the service",
      ]);
    } finally {
      await thread.stop();
    }
  });

  it("stops the service, failing (its supervisor starts another), after answering 500", async () => {
    const abort = new AbortController();
    const svc = await startService(
      loadConfig({
        SLUICE_DB: `sqlite:${db}`,
        SLUICE_STORE: `file:${join(dir, "archive")}`,
        PORT: "0",
        ADMIN_TOKEN: TOKEN,
        ARCHIVE_CRON: "off",
        LOG_LEVEL: "silent",
      }),
      abort.signal,
      { jobsThreadEntry: pathToFileURL(script), logger: pino({ level: "silent" }) },
    );
    const failed = svc.closed.then(
      () => "closed without an error",
      (err: Error) => err.message,
    );
    try {
      const res = await call(`${svc.url}/admin/trigger-archive?date=2025-10-13`, {
        method: "POST",
        headers: bearer(),
      });
      expect(res.status, res.text).toBe(500);
      expect(await failed).toMatch(/jobs thread has ended \(boom in the jobs thread\)/);
    } finally {
      abort.abort();
      await failed;
    }
    const s = await openSource(`sqlite:${db}`);
    try {
      const rows = await s.query("SELECT COUNT(*) AS n FROM traffic_events");
      expect(Number(rows[0]?.n)).toBe(500);
    } finally {
      await s.close();
    }
  });
});

import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FsStore } from "../src/adapters/fs/store.js";
import { TooManyJobsError } from "../src/core/errors.js";
import type { TraceJobWork } from "../src/core/trace/job-files.js";
import { TraceJobs } from "../src/core/trace/trace-jobs.js";
import { zlibCodec } from "../src/node/codec.js";

// Background trace jobs on a real folder store: what a status read says when the process
// running the job is gone, when the service stops it, and when its heartbeat races its end.

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function store(): FsStore {
  const dir = mkdtempSync(join(tmpdir(), "sluice-tjobs-"));
  dirs.push(dir);
  return new FsStore(dir);
}

const meta = { profile: "mid_section_defect", containers: 3, domains: ["defect_records"] };

/** Work that waits for a slot until its signal aborts (a job queued behind busy slots). */
const neverSlot: TraceJobWork = {
  acquire: (signal) =>
    new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))),
  body: async () => new ReadableStream(),
};

/** Work that writes `text` in `chunks` pieces, telling of one row per piece. */
function writes(text: string, chunks: number): TraceJobWork {
  return {
    acquire: async () => () => undefined,
    body: async (_signal, wrote) => {
      let i = 0;
      const cut = (k: number) => Math.floor((k * text.length) / chunks);
      return new ReadableStream<Uint8Array>({
        async pull(c) {
          await new Promise((r) => setTimeout(r, 2));
          if (i === chunks) return c.close();
          c.enqueue(new TextEncoder().encode(text.slice(cut(i), cut(i + 1))));
          i++;
          wrote("defect_records", 1);
        },
      });
    },
    summary: () => ({ msd: { pareto: [] } }),
  };
}

describe("trace jobs", () => {
  it("a job whose process died reads back as lost, from another process's view of the store", async () => {
    const s = store();
    const dying = new TraceJobs(s, zlibCodec, { heartbeatMs: 60_000 });
    const job = await dying.start(meta, neverSlot);
    const other = new TraceJobs(s, zlibCodec, { lostAfterMs: 1000 });
    expect((await other.status(job.id))?.state).toBe("queued");
    await new Promise((r) => setTimeout(r, 1300));
    const lost = await other.status(job.id);
    expect(lost?.state).toBe("lost");
    expect(lost?.error).toMatch(/submit it again/);
    expect(await other.result(job.id)).toBeNull();
    await dying.stop();
  });

  it("stopped by the service, a job records why; its slot wait ends", async () => {
    const jobs = new TraceJobs(store(), zlibCodec);
    const job = await jobs.start(meta, neverSlot);
    await jobs.stop();
    expect(await jobs.status(job.id)).toMatchObject({
      state: "failed",
      error: "stopped: the service stopped; submit it again",
    });
  });

  it("a job failed by the database shows only our words; the driver's go to the log", async () => {
    const logged: unknown[] = [];
    const jobs = new TraceJobs(store(), zlibCodec, { onFailure: (_id, err) => logged.push(err) });
    const failing: TraceJobWork = {
      acquire: async () => () => undefined,
      body: async () => {
        throw new Error('relation "secret_schema.lot_moves" does not exist');
      },
    };
    const job = await jobs.start(meta, failing);
    for (let i = 0; i < 100 && (await jobs.status(job.id))?.state !== "failed"; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const status = await jobs.status(job.id);
    expect(status).toMatchObject({
      state: "failed",
      error: "it failed on the server (see the log)",
    });
    expect(JSON.stringify(status)).not.toContain("secret_schema");
    expect(String(logged[0])).toContain("secret_schema");
    await jobs.stop();
  });

  it("the last status written is the last state, though heartbeats race it; the result round-trips", async () => {
    const jobs = new TraceJobs(store(), zlibCodec, { heartbeatMs: 1 });
    const text = JSON.stringify({ results: { defect_records: { data: [], count: 0 } } });
    const started = await Promise.all(
      Array.from({ length: 8 }, () => jobs.start(meta, writes(text, 20))),
    );
    for (const job of started) {
      let st = await jobs.status(job.id);
      for (let i = 0; i < 200 && st?.finishedAt === null; i++) {
        await new Promise((r) => setTimeout(r, 10));
        st = await jobs.status(job.id);
      }
      // Read again after the job's own end: no heartbeat written after it says otherwise.
      await new Promise((r) => setTimeout(r, 20));
      expect(await jobs.status(job.id)).toMatchObject({
        state: "succeeded",
        rows: { defect_records: 20 },
        msd: { pareto: [] },
      });
      const gz = await jobs.result(job.id);
      expect(await new Response(gz?.pipeThrough(zlibCodec.gunzip())).text()).toBe(text);
    }
    // Every job's last write done before the folder goes.
    await jobs.stop();
  });

  it("queued and running jobs are capped per process: one more is refused and records nothing", async () => {
    const s = store();
    const jobs = new TraceJobs(s, zlibCodec, { maxJobs: 3 });
    const started = [];
    for (let i = 0; i < 3; i++) started.push(await jobs.start(meta, neverSlot));
    const objects = () => readdirSync(join(s.root, "trace-jobs")).length;
    const before = objects();
    const refused = await jobs.start(meta, neverSlot).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(TooManyJobsError);
    expect((refused as TooManyJobsError).limit).toBe(3);
    expect((refused as Error).message).toMatch(/3 .*TRACE_JOBS_MAX/);
    expect(objects()).toBe(before);
    // A finished (here: deleted) job frees its place.
    await jobs.remove((started[0] as { id: string }).id);
    const again = await jobs.start(meta, neverSlot);
    expect(again.state).toBe("queued");
    await jobs.stop();
  });

  /** The job's objects in the store's folder (status, result). */
  function objectsOf(s: FsStore, id: string): string[] {
    try {
      return readdirSync(join(s.root, "trace-jobs")).filter((f) => f.startsWith(id));
    } catch {
      return [];
    }
  }

  /** Poll `check` every 20 ms until it holds, or 5 s. */
  async function until(check: () => boolean | Promise<boolean>): Promise<boolean> {
    for (let i = 0; i < 250; i++) {
      if (await check()) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return check();
  }

  it("TRACE_JOB_TTL: a finished job's status and result are swept after it; a live job is not", async () => {
    const s = store();
    const jobs = new TraceJobs(s, zlibCodec, { ttlMs: 300, heartbeatMs: 50 });
    const done = await jobs.start(meta, writes('{"results":{}}', 3));
    const live = await jobs.start(meta, neverSlot);
    expect(await until(async () => (await jobs.status(done.id))?.state === "succeeded")).toBe(true);
    expect(objectsOf(s, done.id).sort()).toEqual([`${done.id}.json.gz`, `${done.id}.status.json`]);
    await jobs.startSweeping(100);
    // Swept from the store itself, not only hidden from reads.
    expect(await until(() => objectsOf(s, done.id).length === 0)).toBe(true);
    expect(await jobs.status(done.id)).toBeNull();
    expect(await jobs.result(done.id)).toBeNull();
    // Queued all along, its heartbeat fresh: kept through several sweeps.
    await new Promise((r) => setTimeout(r, 500));
    expect((await jobs.status(live.id))?.state).toBe("queued");
    await jobs.stop();
  });

  it("on start, a sweep removes jobs that expired while no process ran", async () => {
    const s = store();
    const before = new TraceJobs(s, zlibCodec);
    const job = await before.start(meta, writes('{"results":{}}', 2));
    expect(await until(async () => (await before.status(job.id))?.state === "succeeded")).toBe(
      true,
    );
    await before.stop();
    await new Promise((r) => setTimeout(r, 400));
    const after = new TraceJobs(s, zlibCodec, { ttlMs: 300 });
    // Expired is gone for a reader at once, and from the store after the start's sweep.
    expect(await after.status(job.id)).toBeNull();
    expect(objectsOf(s, job.id).length).toBe(2);
    await after.startSweeping(60_000);
    expect(objectsOf(s, job.id)).toEqual([]);
    await after.stop();
  });

  it("DELETE in another process (a second worker on the same store) stops the job and it stays deleted", async () => {
    const s = store();
    const running = new TraceJobs(s, zlibCodec, { heartbeatMs: 50 });
    const other = new TraceJobs(s, zlibCodec, { heartbeatMs: 50 });
    const seen = { chunks: 0, stopped: false };
    const CHUNKS = 300;
    const slow: TraceJobWork = {
      acquire: async () => () => undefined,
      body: async (signal, wrote) => {
        signal.addEventListener("abort", () => {
          seen.stopped = true;
        });
        return new ReadableStream<Uint8Array>({
          async pull(c) {
            await new Promise((r) => setTimeout(r, 10));
            if (signal.aborted) return c.error(signal.reason);
            if (seen.chunks === CHUNKS) return c.close();
            seen.chunks++;
            c.enqueue(new TextEncoder().encode(" "));
            wrote("defect_records", 1);
          },
        });
      },
    };
    const job = await running.start(meta, slow);
    expect(await until(async () => (await other.status(job.id))?.state === "running")).toBe(true);
    expect(await other.remove(job.id)).toBe(true);
    // The worker running it finds out by itself, between batches, and stops it.
    expect(await until(() => seen.stopped)).toBe(true);
    expect(seen.chunks).toBeLessThan(CHUNKS);
    // Its last writes (heartbeats, the final status) do not bring it back.
    await new Promise((r) => setTimeout(r, 300));
    expect(objectsOf(s, job.id).filter((f) => !f.includes(".deleted"))).toEqual([]);
    expect(await other.status(job.id)).toBeNull();
    expect(await running.status(job.id)).toBeNull();
    expect(await running.result(job.id)).toBeNull();
    // Deleted twice: no longer there.
    expect(await other.remove(job.id)).toBe(false);
    await running.stop();
    // The marker outlives it by a TTL, then a sweep takes it too.
    expect(objectsOf(s, job.id)).toEqual([`${job.id}.deleted.json`]);
    await new Promise((r) => setTimeout(r, 60));
    await new TraceJobs(s, zlibCodec, { ttlMs: 50 }).sweep();
    expect(objectsOf(s, job.id)).toEqual([]);
  });
});

import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import type { VerifyResult } from "../core/archive/jobs.js";
import type { PartitionRecord } from "../core/archive/ledger/records.js";
import { type JobKind, type JobView, type Jobs, latestJob } from "../core/archive/runner.js";
import type { Config } from "./config.js";
import type { FromJobs, JobsThreadData, ToJobs } from "./jobs-thread.js";
import { fromWire } from "./thread-errors.js";

/** The service's jobs, run on their own thread (jobs-thread.ts). */
export interface JobsThread {
  /** A table's jobs as the admin routes use them. */
  jobs(table: string): Jobs;
  /** Start the archive schedules (every table's) and the verify schedule; when they run next. */
  schedule(): Promise<{ archiveNext: Date | null; verifyNext: Date | null }>;
  /** Running jobs stop at their next batch; resolves once the thread has closed everything. */
  stop(): Promise<void>;
}

/**
 * The compiled thread entry. Under the TypeScript sources (the tests) it is the built one in
 * dist/: a worker thread cannot load TypeScript.
 */
function threadEntry(): URL {
  const here = new URL("./jobs-thread.js", import.meta.url);
  if (!import.meta.url.endsWith(".ts")) return here;
  const built = new URL("../../dist/node/jobs-thread.js", import.meta.url);
  if (!existsSync(fileURLToPath(built))) {
    throw new Error(`${fileURLToPath(built)} is missing: run 'npm run build' first`);
  }
  return built;
}

/**
 * Start the jobs thread for `configs` (the service's table first) and wait until it has
 * opened its connections. `onFinish` hears of every job of the first table once it ended,
 * `verified` of every scheduled verification; the thread's log lines go to `logger`.
 */
export async function startJobsThread(o: {
  configs: Config[];
  logger: Logger;
  onFinish?: (job: JobView) => void;
  verified?: (results: VerifyResult[]) => void;
  /** The thread ended on its own (an error, out of memory): no job can run in this process now. */
  onEnded?: (err: Error) => void;
  /** The thread's script (default: jobs-thread.js); a test gives one that fails. */
  entry?: URL;
}): Promise<JobsThread> {
  const data: JobsThreadData = { configs: o.configs };
  const worker = new Worker(o.entry ?? threadEntry(), { workerData: data });
  // The service's own table, as the thread named it once ready (undefined until then).
  let own: string | undefined;
  let scheduled: (m: FromJobs & { type: "scheduled" }) => void = () => undefined;
  const tables = new Map<string, ThreadTableJobs>();
  const replies = new Map<number, { resolve(v: JobView): void; reject(e: Error): void }>();
  let seq = 0;
  // Set once the thread has ended: a job can then no longer be started.
  let dead: Error | null = null;
  let stopping = false;
  let stopped: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => {
    stopped = resolve;
  });
  const send = (m: ToJobs) => worker.postMessage(m);
  const table = (name: string): ThreadTableJobs => {
    let t = tables.get(name);
    if (!t) {
      t = new ThreadTableJobs((kind, date) => {
        const id = ++seq;
        if (dead) return Promise.reject(gone(dead));
        return new Promise<JobView>((resolve, reject) => {
          replies.set(id, { resolve, reject });
          send({ type: "start", id, table: name, kind, date });
        });
      });
      tables.set(name, t);
    }
    return t;
  };

  const ready = new Promise<void>((resolve, reject) => {
    worker.on("message", (m: FromJobs) => {
      switch (m.type) {
        case "ready":
          own = m.tables[0];
          resolve();
          break;
        case "scheduled":
          scheduled(m);
          break;
        case "failed":
          reject(fromWire(m.error));
          break;
        case "reply": {
          const r = replies.get(m.id);
          replies.delete(m.id);
          if ("error" in m) r?.reject(fromWire(m.error));
          else r?.resolve(m.view);
          break;
        }
        case "job": {
          const ended = table(m.table).update(m.view);
          if (ended && m.table === own) o.onFinish?.(m.view);
          break;
        }
        case "verified":
          o.verified?.(m.results);
          break;
        case "log":
          o.logger[m.level](m.fields, m.message);
          break;
        case "stopped":
          stopped();
          break;
      }
    });
    // The thread ended: on stop() (expected), or by an error or an exit no one asked for.
    const ended = (err: Error) => {
      if (dead) return;
      dead = err;
      for (const r of replies.values()) r.reject(gone(err));
      replies.clear();
      for (const t of tables.values()) t.abandon(err.message);
      scheduled({ type: "scheduled", archiveNext: null, verifyNext: null });
      reject(err);
      stopped();
      // Ended after it was ready (it named its tables), and not by stop(): the service must know.
      if (!stopping && own !== undefined) {
        o.logger.error({ error: err.message }, "the jobs thread ended");
        o.onEnded?.(gone(err));
      }
    };
    worker.once("error", ended);
    worker.once("exit", (code) => ended(new Error(`it exited with code ${code}`)));
  });
  try {
    await ready;
  } catch (err) {
    await worker.terminate();
    throw err;
  }
  return {
    jobs: table,
    async schedule() {
      const m = await new Promise<FromJobs & { type: "scheduled" }>((resolve) => {
        scheduled = resolve;
        send({ type: "schedule" });
      });
      const at = (iso: string | null) => (iso ? new Date(iso) : null);
      return { archiveNext: at(m.archiveNext), verifyNext: at(m.verifyNext) };
    },
    async stop() {
      stopping = true;
      send({ type: "stop" });
      await closed;
      await worker.terminate();
    },
  };
}

/**
 * A jobs thread started by the first job or schedule asked of it, not before: a cluster
 * worker that runs no schedule then costs no thread (~15 MB) until an admin route starts a
 * job. Until then a date's job is the ledger's, and nothing is waited for. A start that fails
 * is tried again by the next.
 */
export function lazyJobsThread(start: () => Promise<JobsThread>): JobsThread & {
  /** Whether the thread has been asked for. */
  readonly started: boolean;
} {
  let starting: Promise<JobsThread> | null = null;
  let thread: JobsThread | null = null;
  const get = (): Promise<JobsThread> => {
    starting ??= start().then(
      (t) => {
        thread = t;
        return t;
      },
      (err: unknown) => {
        starting = null;
        throw err;
      },
    );
    return starting;
  };
  return {
    get started() {
      return starting !== null;
    },
    jobs: (table) => ({
      start: async (kind, date) => (await get()).jobs(table).start(kind, date),
      done: async (date) => {
        const t = await starting?.catch(() => null);
        await t?.jobs(table).done(date);
      },
      view: (date, rec) =>
        thread ? thread.jobs(table).view(date, rec) : latestJob(undefined, rec),
    }),
    schedule: async () => (await get()).schedule(),
    async stop() {
      const t = await starting?.catch(() => null);
      await t?.stop();
    },
  };
}

/** Why no job can start: the thread is gone, and only a restart of the service brings it back. */
function gone(cause: Error): Error {
  return new Error(`the jobs thread has ended (${cause.message}): restart the service`);
}

/** One table's jobs seen from the service: started on the thread, mirrored here as they go. */
class ThreadTableJobs implements Jobs {
  private readonly latest = new Map<string, JobView>();
  private readonly waiting = new Map<string, { promise: Promise<void>; resolve(): void }>();

  constructor(private readonly begin: (kind: JobKind, date: string) => Promise<JobView>) {}

  async start(kind: JobKind, date: string): Promise<JobView> {
    const view = await this.begin(kind, date);
    this.update(view);
    return this.latest.get(date) ?? view;
  }

  /** A job as the thread last sent it; true when that is its end. */
  update(view: JobView): boolean {
    const known = this.latest.get(view.date);
    // A reply that crossed the job's own end keeps the end (same job, older picture).
    if (known?.id === view.id && known.state !== "running" && view.state === "running")
      return false;
    this.latest.set(view.date, view);
    if (view.state === "running") return false;
    this.waiting.get(view.id)?.resolve();
    this.waiting.delete(view.id);
    return true;
  }

  done(date: string): Promise<void> {
    const view = this.latest.get(date);
    if (!view || view.state !== "running") return Promise.resolve();
    let w = this.waiting.get(view.id);
    if (!w) {
      let resolve: () => void = () => undefined;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      w = { promise, resolve };
      this.waiting.set(view.id, w);
    }
    return w.promise;
  }

  view(date: string, rec: PartitionRecord | null): JobView | null {
    return latestJob(this.latest.get(date), rec);
  }

  /** The thread is gone: its running jobs are failed here (their leases expire in the ledger). */
  abandon(reason: string): void {
    for (const view of this.latest.values()) {
      if (view.state === "running") {
        this.update({ ...view, state: "failed", error: `the jobs thread failed: ${reason}` });
      }
    }
  }
}

import type { Codec } from "../bytes/codec.js";
import { SluiceError, TooManyJobsError, describeError } from "../errors.js";
import type { ObjectStore } from "../store.js";
import { JOB_ID, JobFiles, type TraceJobStatus, type TraceJobWork } from "./job-files.js";

/**
 * Trace requests run in the background (large MSD requests): the
 * response a client would have streamed is gzipped into the object store, and its status
 * (state, rows so far, the pareto when done) is an object beside it, so that any process of
 * the service, or a later one, can answer for it. A process that dies mid-job leaves a status
 * whose heartbeat goes stale: read back, it is `lost`, to be submitted again.
 */
export class TraceJobs {
  private readonly running = new Map<string, { stop: AbortController; done: Promise<void> }>();
  private readonly files: JobFiles;
  private readonly heartbeatMs: number;
  private readonly lostAfterMs: number;
  private readonly maxJobs: number;
  /** Jobs admitted whose first status write is still under way. */
  private starting = 0;
  private readonly ttlMs: number;
  private sweeper: ReturnType<typeof setInterval> | undefined;
  private readonly onFailure: ((id: string, err: unknown) => void) | undefined;

  constructor(
    private readonly store: ObjectStore,
    private readonly codec: Codec,
    options: {
      prefix?: string;
      heartbeatMs?: number;
      lostAfterMs?: number;
      /**
       * TRACE_JOBS_MAX: jobs queued or running in this process at once; one more is refused
       * (each holds its request's container ids until it ends).
       */
      maxJobs?: number;
      /**
       * TRACE_JOB_TTL: how long a job's status and result are kept after it ended (or, for a
       * lost one, after its last heartbeat); then reads no longer find them and a sweep
       * deletes them. Default 24 h.
       */
      ttlMs?: number;
      /** Told of a job's failure with the error itself; its status shows only our words. */
      onFailure?: (id: string, err: unknown) => void;
    } = {},
  ) {
    this.onFailure = options.onFailure;
    this.files = new JobFiles(store, options.prefix ?? "trace-jobs");
    this.heartbeatMs = options.heartbeatMs ?? 5000;
    this.lostAfterMs = options.lostAfterMs ?? Math.max(30_000, 6 * this.heartbeatMs);
    this.maxJobs = options.maxJobs ?? 8;
    this.ttlMs = options.ttlMs ?? 86_400_000;
  }

  /**
   * Record the job (so that a status read right after finds it) and start it; a
   * TooManyJobsError, and nothing recorded, when `maxJobs` are queued or running here.
   */
  async start(
    meta: { profile: string; containers: number; domains: string[] },
    work: TraceJobWork,
  ): Promise<TraceJobStatus> {
    // Counted before the first await: jobs submitted at once cannot all pass the check.
    if (this.running.size + this.starting >= this.maxJobs) {
      throw new TooManyJobsError(this.maxJobs);
    }
    this.starting++;
    const now = new Date().toISOString();
    const status: TraceJobStatus = {
      id: crypto.randomUUID(),
      ...meta,
      state: "queued",
      createdAt: now,
      startedAt: null,
      finishedAt: null,
      heartbeatAt: now,
      rows: Object.fromEntries(meta.domains.map((d) => [d, 0])),
      bytes: null,
      error: null,
    };
    try {
      await this.put(status);
    } finally {
      this.starting--;
    }
    const stop = new AbortController();
    const done = this.run(status, work, stop);
    this.running.set(status.id, { stop, done });
    return { ...status };
  }

  private async run(status: TraceJobStatus, work: TraceJobWork, stop: AbortController) {
    const signal = stop.signal;
    const deleted = () => stop.abort(new Error("the job was deleted"));
    // Status writes go one after another, each a snapshot taken when its turn comes, so the
    // last one written is the last state.
    let writes = Promise.resolve();
    const write = () => {
      writes = writes.then(() => this.save(status, deleted)).catch(() => undefined);
      return writes;
    };
    const beat = setInterval(() => void write(), this.heartbeatMs);
    let release: (() => void) | null = null;
    try {
      release = await work.acquire(signal);
      status.state = "running";
      status.startedAt = new Date().toISOString();
      await write();
      const body = await work.body(signal, (domain, n) => {
        status.rows[domain] = (status.rows[domain] ?? 0) + n;
      });
      const stored = await this.store.put(
        this.files.resultKey(status.id),
        body.pipeThrough(this.codec.gzip()),
      );
      // Deleted while the result was being stored: the result goes too.
      if (await this.files.isDeleted(status.id)) {
        await this.store.delete(this.files.resultKey(status.id));
        deleted();
        throw signal.reason;
      }
      Object.assign(status, work.summary?.() ?? {});
      status.bytes = stored.bytes;
      status.state = "succeeded";
    } catch (err) {
      status.state = "failed";
      // Anyone with the job id reads its status: a driver's words (tables, paths) stay in
      // the log; our own errors, and why we stopped it, say what happened.
      status.error = signal.aborted
        ? `stopped: ${describeError(signal.reason)}`
        : err instanceof SluiceError
          ? describeError(err)
          : "it failed on the server (see the log)";
      if (!signal.aborted && !(err instanceof SluiceError)) this.onFailure?.(status.id, err);
    } finally {
      clearInterval(beat);
      release?.();
      status.finishedAt = new Date().toISOString();
      await write();
      this.running.delete(status.id);
    }
  }

  private async put(status: TraceJobStatus): Promise<void> {
    status.heartbeatAt = new Date().toISOString();
    await this.files.putStatus(status);
  }

  /**
   * Write a running job's status, unless it was deleted (by any process): then `deleted` is
   * called and nothing stays written. The marker is written before a delete removes the
   * status, so a write that lands after that removal sees the marker when it checks again.
   */
  private async save(status: TraceJobStatus, deleted: () => void): Promise<void> {
    if (await this.files.isDeleted(status.id)) return deleted();
    await this.put(status);
    if (await this.files.isDeleted(status.id)) {
      await this.store.delete(this.files.statusKey(status.id));
      deleted();
    }
  }

  /**
   * The job's status, or null for an id that was never a job here, was deleted, or expired
   * (TRACE_JOB_TTL after it ended).
   */
  async status(id: string): Promise<TraceJobStatus | null> {
    if (!JOB_ID.test(id)) return null;
    const status = await this.read(id);
    if (status === null || this.expired(status) || (await this.files.isDeleted(id))) return null;
    return status;
  }

  /**
   * The newest `limit` jobs (by creation) that status() would find, newest first; null when
   * the store cannot list.
   */
  async list(limit: number): Promise<TraceJobStatus[] | null> {
    const listed = await this.files.list();
    if (!listed) return null;
    const found: TraceJobStatus[] = [];
    for (const id of listed.statuses) {
      const status = await this.status(id).catch(() => null);
      if (status) found.push(status);
    }
    found.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
    return found.slice(0, limit);
  }

  /** The status as stored, a job that stopped heartbeating read as lost. */
  private async read(id: string): Promise<TraceJobStatus | null> {
    const status = await this.files.getStatus(id);
    if (status === null) return null;
    const idle = Date.now() - Date.parse(status.heartbeatAt);
    if ((status.state === "queued" || status.state === "running") && idle > this.lostAfterMs) {
      status.state = "lost";
      status.error = `the process running it stopped (no heartbeat for ${Math.round(idle / 1000)} s): submit it again`;
    }
    return status;
  }

  /** Ended (or lost) longer than the TTL ago; a job that still heartbeats never is. */
  private expired(status: TraceJobStatus): boolean {
    if (status.state === "queued" || status.state === "running") return false;
    const ended = Date.parse(status.finishedAt ?? status.heartbeatAt);
    return Date.now() - ended > this.ttlMs;
  }

  /** The stored result (gzip bytes) of a job that succeeded and has not expired; else null. */
  async result(id: string): Promise<ReadableStream<Uint8Array> | null> {
    if (!JOB_ID.test(id)) return null;
    if ((await this.status(id)) === null) return null;
    return this.store.get(this.files.resultKey(id));
  }

  /**
   * Delete the status and result of every expired job, and results whose status is gone;
   * the number of jobs deleted. Every process of the service sweeps: deleting twice is
   * harmless. A store that cannot list is not swept (reads still hide what expired).
   */
  async sweep(): Promise<number> {
    const listed = await this.files.list();
    if (!listed) return 0;
    const { statuses, results, markers } = listed;
    let swept = 0;
    for (const id of statuses) {
      if (this.running.has(id)) continue;
      const status = await this.read(id).catch(() => null);
      if (status === null || !this.expired(status)) continue;
      await this.store.delete(this.files.resultKey(id));
      await this.store.delete(this.files.statusKey(id));
      swept++;
    }
    // A result is stored only after its status: one without a status was deleted or swept
    // halfway (a process stopped between the two deletes).
    for (const id of results) {
      if (statuses.has(id) || this.running.has(id)) continue;
      if ((await this.store.head(this.files.statusKey(id))) === null) {
        await this.store.delete(this.files.resultKey(id));
      }
    }
    // A deleted job's marker is kept a TTL, long past the moment its process stopped it.
    for (const id of markers) {
      if (Date.now() - (await this.files.deletedAt(id)) > this.ttlMs) {
        await this.store.delete(this.files.deletedKey(id));
      }
    }
    return swept;
  }

  /**
   * Sweep now (resolves when done; what expired while no process ran goes first) and then
   * every `everyMs` (default: the TTL, at most an hour) until stop().
   */
  async startSweeping(everyMs = Math.min(this.ttlMs, 3_600_000)): Promise<void> {
    clearInterval(this.sweeper);
    this.sweeper = setInterval(() => void this.sweep().catch(() => undefined), everyMs);
    await this.sweep();
  }

  /**
   * Delete the job's status and result, and stop it: here at once, in another process (a
   * second worker) at its next heartbeat, through the marker written first. False for a job
   * that does not exist (or no longer: deleted or expired).
   */
  async remove(id: string): Promise<boolean> {
    if (!JOB_ID.test(id)) return false;
    const existed = (await this.status(id)) !== null;
    if (existed) {
      await this.files.markDeleted(id);
    }
    const job = this.running.get(id);
    if (job) {
      job.stop.abort(new Error("the job was deleted"));
      await job.done;
    }
    await this.store.delete(this.files.resultKey(id));
    await this.store.delete(this.files.statusKey(id));
    return existed;
  }

  /** Stop every job running here (service shutdown), and the sweeps; each records why it stopped. */
  async stop(reason = "the service stopped; submit it again"): Promise<void> {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    const jobs = [...this.running.values()];
    for (const j of jobs) j.stop.abort(new Error(reason));
    await Promise.all(jobs.map((j) => j.done));
  }
}

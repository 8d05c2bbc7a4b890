import type { Codec } from "../bytes/codec.js";
import { SluiceError, TooManyJobsError, describeError } from "../errors.js";
import { type ObjectStore, getText, putBytes } from "../store.js";

export type TraceJobState = "queued" | "running" | "succeeded" | "failed" | "lost";

/** What GET /api/trace/jobs/:id answers; kept as an object in the store beside the result. */
export interface TraceJobStatus {
  id: string;
  profile: string;
  containers: number;
  domains: string[];
  state: TraceJobState;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** When the process running it last wrote this; stale while queued or running = it died. */
  heartbeatAt: string;
  /** Rows written so far, per domain. */
  rows: Record<string, number>;
  /** Compressed bytes of the stored result, once it is complete. */
  bytes: number | null;
  error: string | null;
  /** Fields the work adds once it is done (mid_section_defect: `msd`, the pareto). */
  [summary: string]: unknown;
}

/** The work of one job, as the trace routes define it. */
export interface TraceJobWork {
  /** Wait for a database slot (the job is queued until then); resolves with its release. */
  acquire(signal: AbortSignal): Promise<() => void>;
  /** The result body (the /events response); `wrote` is told of rows as they go out. */
  body(
    signal: AbortSignal,
    wrote: (domain: string, rows: number) => void,
  ): Promise<ReadableStream<Uint8Array>>;
  /** Added to the status once the body is stored (e.g. the pareto). */
  summary?(): Record<string, unknown>;
}

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Trace requests run in the background (the seed's "async job" for large MSD requests): the
 * response a client would have streamed is gzipped into the object store, and its status
 * (state, rows so far, the pareto when done) is an object beside it, so that any process of
 * the service, or a later one, can answer for it. A process that dies mid-job leaves a status
 * whose heartbeat goes stale: read back, it is `lost`, to be submitted again.
 */
export class TraceJobs {
  private readonly running = new Map<string, { stop: AbortController; done: Promise<void> }>();
  private readonly prefix: string;
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
    this.prefix = options.prefix ?? "trace-jobs";
    this.heartbeatMs = options.heartbeatMs ?? 5000;
    this.lostAfterMs = options.lostAfterMs ?? Math.max(30_000, 6 * this.heartbeatMs);
    this.maxJobs = options.maxJobs ?? 8;
    this.ttlMs = options.ttlMs ?? 86_400_000;
  }

  private statusKey(id: string): string {
    return `${this.prefix}/${id}.status.json`;
  }

  /**
   * A deleted job's marker. Any process may receive the DELETE, and the one running the job
   * finds the marker at its next status write (a heartbeat), stops the job, and writes
   * nothing more of it; no write of its can bring the job back.
   */
  private deletedKey(id: string): string {
    return `${this.prefix}/${id}.deleted.json`;
  }

  /** When the job was deleted (ms since the epoch); 0 for a marker that cannot be read. */
  private async deletedAt(id: string): Promise<number> {
    try {
      const text = await getText(this.store, this.deletedKey(id));
      const at = Date.parse((JSON.parse(text ?? "{}") as { deletedAt?: string }).deletedAt ?? "");
      return Number.isNaN(at) ? 0 : at;
    } catch {
      return 0;
    }
  }

  private async isDeleted(id: string): Promise<boolean> {
    return (await this.store.head(this.deletedKey(id))) !== null;
  }

  /** Where a finished job's result is: the /events response, gzipped. */
  resultKey(id: string): string {
    return `${this.prefix}/${id}.json.gz`;
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
        this.resultKey(status.id),
        body.pipeThrough(this.codec.gzip()),
      );
      // Deleted while the result was being stored: the result goes too.
      if (await this.isDeleted(status.id)) {
        await this.store.delete(this.resultKey(status.id));
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
    await putBytes(
      this.store,
      this.statusKey(status.id),
      new TextEncoder().encode(JSON.stringify(status)),
    );
  }

  /**
   * Write a running job's status, unless it was deleted (by any process): then `deleted` is
   * called and nothing stays written. The marker is written before a delete removes the
   * status, so a write that lands after that removal sees the marker when it checks again.
   */
  private async save(status: TraceJobStatus, deleted: () => void): Promise<void> {
    if (await this.isDeleted(status.id)) return deleted();
    await this.put(status);
    if (await this.isDeleted(status.id)) {
      await this.store.delete(this.statusKey(status.id));
      deleted();
    }
  }

  /**
   * The job's status, or null for an id that was never a job here, was deleted, or expired
   * (TRACE_JOB_TTL after it ended).
   */
  async status(id: string): Promise<TraceJobStatus | null> {
    if (!ID.test(id)) return null;
    const status = await this.read(id);
    if (status === null || this.expired(status) || (await this.isDeleted(id))) return null;
    return status;
  }

  /** The status as stored, a job that stopped heartbeating read as lost. */
  private async read(id: string): Promise<TraceJobStatus | null> {
    const text = await getText(this.store, this.statusKey(id));
    if (text === null) return null;
    const status = JSON.parse(text) as TraceJobStatus;
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
    if (!ID.test(id)) return null;
    if ((await this.status(id)) === null) return null;
    return this.store.get(this.resultKey(id));
  }

  /**
   * Delete the status and result of every expired job, and results whose status is gone;
   * the number of jobs deleted. Every process of the service sweeps: deleting twice is
   * harmless. A store that cannot list is not swept (reads still hide what expired).
   */
  async sweep(): Promise<number> {
    if (!this.store.list) return 0;
    const statuses = new Set<string>();
    const results: string[] = [];
    const markers: string[] = [];
    for await (const o of this.store.list(`${this.prefix}/`)) {
      const name = o.key.slice(this.prefix.length + 1);
      const id = name.slice(0, 36);
      if (!ID.test(id)) continue;
      if (name === `${id}.status.json`) statuses.add(id);
      else if (name === `${id}.json.gz`) results.push(id);
      else if (name === `${id}.deleted.json`) markers.push(id);
    }
    let swept = 0;
    for (const id of statuses) {
      if (this.running.has(id)) continue;
      const status = await this.read(id).catch(() => null);
      if (status === null || !this.expired(status)) continue;
      await this.store.delete(this.resultKey(id));
      await this.store.delete(this.statusKey(id));
      swept++;
    }
    // A result is stored only after its status: one without a status was deleted or swept
    // halfway (a process stopped between the two deletes).
    for (const id of results) {
      if (statuses.has(id) || this.running.has(id)) continue;
      if ((await this.store.head(this.statusKey(id))) === null) {
        await this.store.delete(this.resultKey(id));
      }
    }
    // A deleted job's marker is kept a TTL, long past the moment its process stopped it.
    for (const id of markers) {
      if (Date.now() - (await this.deletedAt(id)) > this.ttlMs) {
        await this.store.delete(this.deletedKey(id));
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
    if (!ID.test(id)) return false;
    const existed = (await this.status(id)) !== null;
    if (existed) {
      const marker = JSON.stringify({ id, deletedAt: new Date().toISOString() });
      await putBytes(this.store, this.deletedKey(id), new TextEncoder().encode(marker));
    }
    const job = this.running.get(id);
    if (job) {
      job.stop.abort(new Error("the job was deleted"));
      await job.done;
    }
    await this.store.delete(this.resultKey(id));
    await this.store.delete(this.statusKey(id));
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

import {
  InterruptedError,
  LeaseHeldError,
  NotFoundError,
  NotVerifiedError,
  describeError,
} from "../errors.js";
import type { Progress } from "../progress.js";
import { type CleanupOptions, type CleanupOutcome, cleanupPartition } from "./cleanup.js";
import type { JobContext } from "./context.js";
import { archiveUnderLease, runLeased } from "./jobs.js";
import type { Lease } from "./ledger/lease.js";
import type { PartitionRecord } from "./ledger/records.js";
import { cleanupBlock } from "./ledger/states.js";

export type JobKind = "archive" | "cleanup" | "archive-and-cleanup";

/** A job the service started, as archive-status shows it. */
export interface JobView {
  id: string;
  kind: JobKind;
  table: string;
  date: string;
  state: "running" | "succeeded" | "failed" | "interrupted";
  startedAt: string;
  finishedAt: string | null;
  progress: Progress | null;
  result: JobResult | null;
  error: string | null;
}

export interface JobResult {
  archived: {
    partWritten: number | null;
    rowsWritten: number;
    /** Compressed bytes of the part this job wrote. */
    bytesWritten: number;
    parts: number;
    rows: number;
    note: string | null;
  } | null;
  cleanup: CleanupOutcome | null;
}

/**
 * What the admin routes ask of a table's jobs: a JobRunner in the same process, or (Node's
 * service) a client of the runner on the jobs thread.
 */
export interface Jobs {
  /** Take the lease of `date` and run `kind` under it; throws LeaseHeldError when held. */
  start(kind: JobKind, date: string): Promise<JobView>;
  /** Resolves when the latest job of `date` started here has finished. */
  done(date: string): Promise<void>;
  /** The latest job of `date`, this process's own or the one the ledger's record holds. */
  view(date: string, rec: PartitionRecord | null): JobView | null;
}

/**
 * The job archive-status shows for a date: `local` (this process's latest) while it runs or
 * when the ledger holds the same job (its progress is the freshest), else the ledger's.
 */
export function latestJob(local: JobView | undefined, rec: PartitionRecord | null): JobView | null {
  const shared = parseJob(rec?.job ?? null);
  if (local && (local.state === "running" || local.id === shared?.id)) return local;
  return shared ?? local ?? null;
}

/**
 * Starts jobs in the background for the service: the lease is taken before `start` returns,
 * so that a partition someone else holds is refused at once, and the job then runs on while
 * its progress and outcome stay readable here. One job per partition in this process, too.
 */
export class JobRunner implements Jobs {
  private readonly jobs = new Map<string, { view: JobView; done: Promise<void> }>();
  /** Dates whose job is between its start and its lease. */
  private readonly reserved = new Set<string>();
  private seq = 0;

  constructor(
    private readonly ctx: JobContext,
    private readonly owner: string,
    private readonly cleanup: CleanupOptions = {},
    /** Told of every job once it has finished (metrics, logs). */
    private readonly onFinish?: (job: JobView) => void,
  ) {}

  /** Take the lease of `date` and run `kind` under it; throws LeaseHeldError when held. */
  async start(kind: JobKind, date: string): Promise<JobView> {
    const { table } = this.ctx.spec;
    const current = this.jobs.get(date);
    if (current?.view.state === "running") {
      throw new LeaseHeldError(table, date, `${this.owner} (job ${current.view.id})`, Date.now());
    }
    if (this.reserved.has(date)) {
      throw new LeaseHeldError(table, date, `${this.owner} (a job starting)`, Date.now());
    }
    // Reserved before the first await, so that a second start of the date in this process
    // is refused here instead of racing this one for the lease.
    this.reserved.add(date);
    const seq = ++this.seq;
    const id = `${date}-${seq}`;
    let lease: Lease;
    try {
      // Each job leases under an owner of its own: two jobs never share a lease.
      lease = await this.ctx.ledger.acquire(table, date, `${this.owner}:job${seq}`);
    } catch (err) {
      this.reserved.delete(date);
      throw err;
    }
    if (kind === "cleanup") {
      // Refused now, with the reason, rather than accepted and failed in the background.
      const refusal = await this.cleanupRefusal(date);
      if (refusal) {
        this.reserved.delete(date);
        await lease.release();
        throw refusal;
      }
    }
    const view: JobView = {
      id: `${id}-${randomTag()}`,
      kind,
      table,
      date,
      state: "running",
      startedAt: new Date().toISOString(),
      finishedAt: null,
      progress: null,
      result: null,
      error: null,
    };
    // The job as every process reads it: in the ledger at its start, as it goes (at most once
    // a second, one write at a time) and at its end, all under its lease.
    let shared: Promise<void> | null = null;
    let sharedAt = 0;
    const share = () => {
      sharedAt = Date.now();
      shared = this.ctx.ledger
        .recordJob(lease, JSON.stringify(view))
        .catch(() => undefined)
        .finally(() => {
          shared = null;
        });
      return shared;
    };
    await share();
    const ctx: JobContext = {
      ...this.ctx,
      onProgress: (p) => {
        view.progress = p;
        this.ctx.onProgress?.(p);
        if (shared === null && Date.now() - sharedAt >= 1000) void share();
      },
    };
    const ended = async (
      state: JobView["state"],
      result: JobResult | null,
      error: string | null,
    ) => {
      await shared;
      Object.assign(view, { state, result, error, finishedAt: new Date().toISOString() });
      await share();
    };
    const done = runLeased(ctx, lease, async (l): Promise<JobResult> => {
      let result: JobResult;
      try {
        result = await this.work(ctx, l, kind, date);
      } catch (err) {
        await ended(endState(err, ctx), null, describeError(err));
        throw err;
      }
      await ended("succeeded", result, null);
      return result;
    }).then(
      (result) => {
        view.state = "succeeded";
        view.result = result;
      },
      (err: unknown) => {
        view.state = endState(err, ctx);
        view.error = describeError(err);
      },
    );
    const settled = done.finally(() => {
      view.finishedAt ??= new Date().toISOString();
      this.onFinish?.(view);
    });
    this.jobs.set(date, { view, done: settled });
    this.reserved.delete(date);
    return view;
  }

  /** The work of a job of `kind`, under its lease. */
  private async work(ctx: JobContext, l: Lease, kind: JobKind, date: string): Promise<JobResult> {
    const archive = kind === "cleanup" ? null : await archiveUnderLease(ctx, l, date);
    const cleanup = kind === "archive" ? null : await cleanupPartition(ctx, l, date, this.cleanup);
    return {
      archived: archive && {
        partWritten: archive.written?.part ?? null,
        rowsWritten: archive.written?.eventCount ?? 0,
        bytesWritten: archive.written?.fileSize ?? 0,
        parts: archive.parts.length,
        rows: archive.parts.reduce((n, p) => n + p.eventCount, 0),
        note: archive.note ?? null,
      },
      cleanup,
    };
  }

  /** Why a cleanup of `date` would refuse to start (no archive, or not verified), or null. */
  private async cleanupRefusal(date: string): Promise<Error | null> {
    const { ledger, spec } = this.ctx;
    const [rec, parts] = await Promise.all([
      ledger.get(spec.table, date),
      ledger.parts(spec.table, date),
    ]);
    const block = cleanupBlock(rec, parts);
    if (!block) return null;
    if (block.noArchive) {
      return new NotFoundError(`no archive of ${spec.table} for ${date}: archive it first`);
    }
    return new NotVerifiedError(spec.table, date, block.state);
  }

  /** The latest job of `date` started by this process, running or finished. */
  get(date: string): JobView | undefined {
    return this.jobs.get(date)?.view;
  }

  /**
   * The latest job of `date` as any process of the service sees it: this process's own while
   * it runs here (its progress is the freshest), else the one the ledger's record holds.
   */
  view(date: string, rec: PartitionRecord | null): JobView | null {
    return latestJob(this.get(date), rec);
  }

  /** Resolves when the latest job of `date` has finished (at once if there is none). */
  async done(date: string): Promise<void> {
    await this.jobs.get(date)?.done;
  }

  /** Jobs still running. */
  running(): JobView[] {
    return [...this.jobs.values()].filter((j) => j.view.state === "running").map((j) => j.view);
  }

  /** Resolves when every job started so far has finished (graceful shutdown). */
  async drain(): Promise<void> {
    await Promise.all([...this.jobs.values()].map((j) => j.done));
  }
}

/** How a job that threw ended: stopped on request (Ctrl-C, a shutdown), or failed. */
function endState(err: unknown, ctx: JobContext): "interrupted" | "failed" {
  const stopped = err instanceof InterruptedError || ctx.signal?.reason instanceof InterruptedError;
  return stopped ? "interrupted" : "failed";
}

/** A job as the ledger holds it; null for none or for text that is not one. */
function parseJob(text: string | null): JobView | null {
  if (text === null) return null;
  try {
    const job = JSON.parse(text) as JobView;
    return typeof job?.id === "string" && typeof job.state === "string" ? job : null;
  } catch {
    return null;
  }
}

/** Eight hex digits: job ids of different processes never meet. */
function randomTag(): string {
  return Math.floor(Math.random() * 0x100000000)
    .toString(16)
    .padStart(8, "0");
}

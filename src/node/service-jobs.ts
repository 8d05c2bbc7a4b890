import type { Logger } from "pino";
import type { JobContext } from "../core/archive/context.js";
import type { VerifyResult } from "../core/archive/jobs.js";
import type { JobView, Jobs } from "../core/archive/runner.js";
import type { Config } from "./config.js";
import { type NodeContext, openContext } from "./context.js";
import { type TableJobs, serveTable, serviceSchedules, tableJobs } from "./table-schedules.js";
import { lazyJobsThread, startJobsThread } from "./thread-jobs.js";

/** The service's jobs, every table's: what the admin routes start and the schedules run. */
export interface ServiceJobs {
  own: Jobs;
  /** The config file's other tables: a context here (for the routes' reads) and their jobs. */
  others: { ctx: JobContext; runner: Jobs }[];
  /** Start the archive schedules and the verify schedule; when they run next. */
  schedule(): Promise<{ archiveNext: Date | null; verifyNext: Date | null }>;
  /** Running jobs stop at their next batch (resumable); then the jobs' connections close. */
  stop(): Promise<void>;
}

export interface ServiceJobsOptions {
  config: Config;
  others: Config[];
  /** The service's own context (its table). */
  c: NodeContext;
  signal: AbortSignal;
  logger: Logger;
  onFinish: (job: JobView) => void;
  verified: (results: VerifyResult[]) => void;
  /** The jobs thread ended on its own: no job can run in this process any more. */
  onFailure: (err: Error) => void;
  /** The jobs thread's script (default: jobs-thread.js). */
  entry?: URL;
  /**
   * Start the jobs thread with the first job instead of now: for a process that runs no
   * schedule (a cluster worker but the first, or both crons off). The service opens the same
   * tables at start-up, so a table that cannot be opened still stops it there.
   */
  lazy?: boolean;
}

/**
 * The jobs on a thread of their own (SLUICE_JOBS_THREAD, the default): an archive reads,
 * compresses and verifies without taking the event loop from ingest and the routes. Or, with
 * it off, on this thread, as the Worker runs them.
 */
export function serviceJobs(o: ServiceJobsOptions): Promise<ServiceJobs> {
  return o.config.SLUICE_JOBS_THREAD ? threadJobs(o) : localJobs(o);
}

async function threadJobs(o: ServiceJobsOptions): Promise<ServiceJobs> {
  const opened: NodeContext[] = [];
  try {
    for (const other of o.others) {
      opened.push(
        await openContext(other, { signal: o.signal, onWarning: (m) => o.logger.warn(m) }),
      );
    }
    const start = () =>
      startJobsThread({
        configs: [o.config, ...o.others],
        logger: o.logger,
        onFinish: o.onFinish,
        verified: o.verified,
        onEnded: o.onFailure,
        entry: o.entry,
      });
    const thread = o.lazy ? lazyJobsThread(start) : await start();
    return {
      own: thread.jobs(o.c.ctx.spec.table),
      others: opened.map((c) => ({ ctx: c.ctx, runner: thread.jobs(c.ctx.spec.table) })),
      schedule: () => thread.schedule(),
      async stop() {
        await thread.stop();
        await Promise.all(opened.map((c) => c.close()));
      },
    };
  } catch (err) {
    await Promise.allSettled(opened.map((c) => c.close()));
    throw err;
  }
}

async function localJobs(o: ServiceJobsOptions): Promise<ServiceJobs> {
  const own = tableJobs(o.c, o.config, o.logger, o.onFinish);
  const others: TableJobs[] = await Promise.all(
    o.others.map((other) => serveTable(other, o.signal, o.logger)),
  );
  const schedules = serviceSchedules({
    tables: [own, ...others],
    config: o.config,
    owner: o.c.owner,
    verified: o.verified,
    log: o.logger,
  });
  return {
    own: own.runner,
    others,
    schedule: async () => schedules.start(),
    async stop() {
      schedules.stop();
      await Promise.all([own, ...others].map((t) => t.stop()));
    },
  };
}

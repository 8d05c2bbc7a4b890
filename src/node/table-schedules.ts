import type { JobContext } from "../core/archive/context.js";
import type { VerifyResult } from "../core/archive/jobs.js";
import { JobRunner, type JobView } from "../core/archive/runner.js";
import { type Config, cleanupOptions } from "./config.js";
import { type NodeContext, openContext } from "./context.js";
import {
  type Scheduler,
  type VerifySchedule,
  startScheduler,
  startVerifySchedule,
} from "./scheduler.js";

/** Where a table's jobs log: the service's logger, or the jobs thread's messages to it. */
export interface JobLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

/** A table's jobs in the service: its runner (admin triggers) and its archive schedule. */
export interface TableJobs {
  table: string;
  ctx: JobContext;
  runner: JobRunner;
  /** Archive it on ARCHIVE_CRON, with its own retention (once; later calls return the same). */
  schedule(): Scheduler;
  /** Stops the schedule and lets a running job reach a safe point. */
  stop(): Promise<void>;
}

/** The jobs of the table of `c`, each logged when it ends (and told to `onFinish`). */
export function tableJobs(
  c: NodeContext,
  config: Config,
  logger: JobLog,
  onFinish?: (job: JobView) => void,
): TableJobs {
  const table = c.ctx.spec.table;
  const runner = new JobRunner(c.ctx, c.owner, cleanupOptions(config), (job) => {
    onFinish?.(job);
    const fields = { table, job: job.id, kind: job.kind, date: job.date, result: job.result };
    if (job.state === "succeeded") logger.info(fields, "job done");
    else logger.error({ ...fields, error: job.error }, "job failed");
  });
  let scheduler: Scheduler | null = null;
  return {
    table,
    ctx: c.ctx,
    runner,
    schedule() {
      scheduler ??= startScheduler({
        pattern: config.ARCHIVE_CRON,
        ctx: c.ctx,
        runner,
        retentionDays: config.HOT_RETENTION_DAYS,
        log: (fields, message) => logger.info({ table, ...fields }, message),
      });
      return scheduler;
    },
    async stop() {
      scheduler?.stop();
      await runner.drain();
    },
  };
}

/** A table beside the service's own (another table of the config file), in a context of its own. */
export async function serveTable(
  config: Config,
  signal: AbortSignal,
  logger: JobLog,
): Promise<TableJobs> {
  const c = await openContext(config, { signal, onWarning: (m) => logger.warn({}, m) });
  const jobs = tableJobs(c, config, logger);
  return {
    ...jobs,
    async stop() {
      await jobs.stop();
      await c.close();
    },
  };
}

/** The service's schedules, started once: what {@link serviceSchedules} gives. */
export interface ServiceSchedules {
  /** Start them (again: nothing more); when each runs next, null where it is off. */
  start(): { archiveNext: Date | null; verifyNext: Date | null };
  /** Stops the verify schedule (each table's own stop() stops its archive schedule). */
  stop(): void;
}

/** Whether `config` starts any schedule: its ARCHIVE_CRON or its VERIFY_CRON is on. */
export function hasSchedules(config: Config): boolean {
  return config.ARCHIVE_CRON !== "off" || config.VERIFY_CRON !== "off";
}

/**
 * Every table's archive schedule, when the service's own ARCHIVE_CRON is on, and the verify
 * schedule of the first table (the service's own), whose context and owner it reads with.
 * The same on the jobs thread and, with SLUICE_JOBS_THREAD=false, on the event loop.
 */
export function serviceSchedules(o: {
  tables: readonly TableJobs[];
  config: Config;
  owner: string;
  verified: (results: VerifyResult[]) => void;
  log: JobLog;
}): ServiceSchedules {
  let verify: VerifySchedule | null = null;
  return {
    start() {
      const [own] = o.tables;
      const archive = own && o.config.ARCHIVE_CRON !== "off" ? own.schedule() : null;
      if (archive) for (const t of o.tables) t.schedule();
      if (own && o.config.VERIFY_CRON !== "off") {
        verify ??= startVerifySchedule({
          pattern: o.config.VERIFY_CRON,
          ctx: own.ctx,
          owner: o.owner,
          verified: o.verified,
          log: (fields, message) => o.log.warn(fields, message),
        });
      }
      return { archiveNext: archive?.next() ?? null, verifyNext: verify?.next() ?? null };
    },
    stop: () => verify?.stop(),
  };
}

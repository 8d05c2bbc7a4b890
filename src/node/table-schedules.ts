import type { JobContext } from "../core/archive/context.js";
import { JobRunner, type JobView } from "../core/archive/runner.js";
import { type Config, cleanupOptions } from "./config.js";
import { type NodeContext, openContext } from "./context.js";
import { type Scheduler, startScheduler } from "./scheduler.js";

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

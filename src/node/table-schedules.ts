import type { Logger } from "pino";
import { JobRunner } from "../core/archive/runner.js";
import { type Config, cleanupOptions } from "./config.js";
import { openContext } from "./context.js";
import { startScheduler } from "./scheduler.js";

/**
 * The archive schedule of a table beside the service's own (another table of the config
 * file): a context and a job runner of its own, run on ARCHIVE_CRON with the table's own
 * retention. `stop` lets its running job reach a safe point, then closes it.
 */
export async function scheduleTable(
  config: Config,
  signal: AbortSignal,
  logger: Logger,
): Promise<{ table: string; stop(): Promise<void> }> {
  const c = await openContext(config, { signal });
  const table = c.ctx.spec.table;
  const runner = new JobRunner(c.ctx, c.owner, cleanupOptions(config), (job) => {
    const fields = { table, job: job.id, kind: job.kind, date: job.date, result: job.result };
    if (job.state === "succeeded") logger.info(fields, "job done");
    else logger.error({ ...fields, error: job.error }, "job failed");
  });
  const scheduler = startScheduler({
    pattern: config.ARCHIVE_CRON,
    ctx: c.ctx,
    runner,
    retentionDays: config.HOT_RETENTION_DAYS,
    log: (fields, message) => logger.info({ table, ...fields }, message),
  });
  return {
    table,
    async stop() {
      scheduler.stop();
      await runner.drain();
      await c.close();
    },
  };
}

import type { Logger } from "pino";
import type { JobContext } from "../core/archive/context.js";
import { JobRunner } from "../core/archive/runner.js";
import { type Config, cleanupOptions } from "./config.js";
import { openContext } from "./context.js";
import { startScheduler } from "./scheduler.js";

/** Another table of the service, for the admin routes (`?table=`) and its schedule. */
export interface ServedTable {
  table: string;
  ctx: JobContext;
  runner: JobRunner;
  /** Archive it on ARCHIVE_CRON, with its own retention. */
  schedule(): void;
  /** Lets its running job reach a safe point, then closes it. */
  stop(): Promise<void>;
}

/** A table beside the service's own (another table of the config file): its own context and job runner. */
export async function serveTable(
  config: Config,
  signal: AbortSignal,
  logger: Logger,
): Promise<ServedTable> {
  const c = await openContext(config, { signal });
  const table = c.ctx.spec.table;
  const runner = new JobRunner(c.ctx, c.owner, cleanupOptions(config), (job) => {
    const fields = { table, job: job.id, kind: job.kind, date: job.date, result: job.result };
    if (job.state === "succeeded") logger.info(fields, "job done");
    else logger.error({ ...fields, error: job.error }, "job failed");
  });
  let scheduler: ReturnType<typeof startScheduler> | null = null;
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
    },
    async stop() {
      scheduler?.stop();
      await runner.drain();
      await c.close();
    },
  };
}

import { Cron } from "croner";
import type { JobContext } from "../core/archive.js";
import { retentionCutoff } from "../core/dates.js";
import { BadInputError, LeaseHeldError, describeError } from "../core/errors.js";
import { datesNeedingWork } from "../core/jobs.js";
import type { JobRunner } from "../core/runner.js";

export interface Scheduler {
  /** When the next run starts, or null when stopped. */
  next(): Date | null;
  /** Run once now, as the schedule would (also what a test calls). */
  runOnce(): Promise<{ date: string; outcome: string }[]>;
  stop(): void;
}

/** Check a cron pattern at start-up, so that a typo stops the service with a message. */
export function checkCron(pattern: string): void {
  try {
    new Cron(pattern, { paused: true, timezone: "Etc/UTC" }).stop();
  } catch (err) {
    throw new BadInputError(`ARCHIVE_CRON '${pattern}': ${(err as Error).message}`);
  }
}

/**
 * On `pattern` (UTC), archive, verify and clean every date older than the hot retention, one
 * date after another. Several instances on one database may all fire: the partition's lease
 * lets one work on a date, and the others skip it. A run still going when the next is due
 * is not doubled.
 */
export function startScheduler(o: {
  pattern: string;
  ctx: JobContext;
  runner: JobRunner;
  retentionDays: number;
  log: (fields: Record<string, unknown>, message: string) => void;
}): Scheduler {
  const runOnce = async () => {
    const cutoff = retentionCutoff(new Date(), o.retentionDays);
    const dates = await datesNeedingWork(o.ctx, cutoff);
    o.log({ cutoff, dates: dates.length }, "scheduled archive run");
    const outcomes: { date: string; outcome: string }[] = [];
    for (const date of dates) {
      if (o.ctx.signal?.aborted) break;
      try {
        await o.runner.start("archive-and-cleanup", date);
        await o.runner.done(date);
        const job = o.runner.get(date);
        outcomes.push({ date, outcome: job?.state ?? "unknown" });
        o.log({ date, state: job?.state, error: job?.error }, "scheduled date done");
      } catch (err) {
        const outcome = err instanceof LeaseHeldError ? "skipped: held elsewhere" : "failed";
        outcomes.push({ date, outcome });
        o.log({ date, outcome, error: describeError(err) }, "scheduled date not run");
      }
    }
    return outcomes;
  };
  const cron = new Cron(o.pattern, { protect: true, timezone: "Etc/UTC" }, async () => {
    await runOnce().catch((err: unknown) =>
      o.log({ error: describeError(err) }, "scheduled archive run failed"),
    );
  });
  return { next: () => cron.nextRun(), runOnce, stop: () => cron.stop() };
}

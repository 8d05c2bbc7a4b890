import { retentionCutoff } from "../dates.js";
import { LeaseHeldError, describeError } from "../errors.js";
import type { JobContext } from "./context.js";
import { datesNeedingWork } from "./partition-status.js";
import type { JobRunner } from "./runner.js";

export interface ScheduledOutcome {
  date: string;
  outcome: string;
}

export interface ScheduledRunOptions {
  ctx: JobContext;
  runner: JobRunner;
  retentionDays: number;
  now?: Date;
  /** Start no new date after this many ms; the rest wait for the next run. 0: no limit. */
  budgetMs?: number;
  log: (fields: Record<string, unknown>, message: string) => void;
}

/**
 * One scheduled run: archive, verify and clean every date older than the hot retention, one
 * date after another. A date whose lease another instance holds is skipped, not waited for.
 */
export async function runScheduled(o: ScheduledRunOptions): Promise<ScheduledOutcome[]> {
  const started = Date.now();
  const cutoff = retentionCutoff(o.now ?? new Date(), o.retentionDays);
  const dates = await datesNeedingWork(o.ctx, cutoff);
  o.log({ cutoff, dates: dates.length }, "scheduled archive run");
  const outcomes: ScheduledOutcome[] = [];
  for (const date of dates) {
    if (o.ctx.signal?.aborted) break;
    if (o.budgetMs && Date.now() - started >= o.budgetMs) {
      outcomes.push({ date, outcome: "deferred: run budget spent" });
      continue;
    }
    try {
      await o.runner.start("archive-and-cleanup", date);
      await o.runner.done(date);
      const job = o.runner.get(date);
      const partial = job?.result?.cleanup?.complete === false;
      const outcome = partial ? "partial: cleanup budget spent" : (job?.state ?? "unknown");
      outcomes.push({ date, outcome });
      o.log({ date, state: job?.state, outcome, error: job?.error }, "scheduled date done");
    } catch (err) {
      const outcome = err instanceof LeaseHeldError ? "skipped: held elsewhere" : "failed";
      outcomes.push({ date, outcome });
      o.log({ date, outcome, error: describeError(err) }, "scheduled date not run");
    }
  }
  return outcomes;
}

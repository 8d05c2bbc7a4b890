import { Cron } from "croner";
import type { JobContext } from "../core/archive/context.js";
import { type VerifyResult, verifyAll } from "../core/archive/jobs.js";
import type { JobRunner } from "../core/archive/runner.js";
import { type ScheduledOutcome, runScheduled } from "../core/archive/schedule.js";
import { BadInputError, describeError } from "../core/errors.js";

export interface Scheduler {
  /** When the next run starts, or null when stopped. */
  next(): Date | null;
  /** Run once now, as the schedule would (also what a test calls). */
  runOnce(): Promise<ScheduledOutcome[]>;
  stop(): void;
}

/** Check a cron pattern at start-up, so that a typo stops the service with a message. */
export function checkCron(pattern: string, setting = "ARCHIVE_CRON"): void {
  try {
    new Cron(pattern, { paused: true, timezone: "Etc/UTC" }).stop();
  } catch (err) {
    throw new BadInputError(`${setting} '${pattern}': ${(err as Error).message}`);
  }
}

/** The periodic re-verification's scheduler. */
export interface VerifySchedule {
  next(): Date | null;
  /** Verify every archived partition now, as the schedule would. */
  runOnce(): Promise<VerifyResult[]>;
  stop(): void;
}

/**
 * On `pattern` (UTC), read every stored part of every archived partition back (verifyAll): a
 * corrupted or deleted archive is recorded in the ledger (state `failed`, `last_error`) and
 * handed to `verified`, which counts it for an alert.
 */
export function startVerifySchedule(o: {
  pattern: string;
  ctx: JobContext;
  owner: string;
  verified: (results: VerifyResult[]) => void;
  log: (fields: Record<string, unknown>, message: string) => void;
}): VerifySchedule {
  let runs = 0;
  const runOnce = async () => {
    const results = await verifyAll(o.ctx, `${o.owner}:verify${++runs}`);
    o.verified(results);
    for (const r of results.filter((x) => !x.ok)) {
      o.log({ date: r.date, error: r.error }, "scheduled verification found a damaged archive");
    }
    return results;
  };
  const cron = new Cron(o.pattern, { protect: true, timezone: "Etc/UTC" }, async () => {
    await runOnce().catch((err: unknown) =>
      o.log({ error: describeError(err) }, "scheduled verification failed to run"),
    );
  });
  return { next: () => cron.nextRun(), runOnce, stop: () => cron.stop() };
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
  const runOnce = () =>
    runScheduled({ ctx: o.ctx, runner: o.runner, retentionDays: o.retentionDays, log: o.log });
  const cron = new Cron(o.pattern, { protect: true, timezone: "Etc/UTC" }, async () => {
    await runOnce().catch((err: unknown) =>
      o.log({ error: describeError(err) }, "scheduled archive run failed"),
    );
  });
  return { next: () => cron.nextRun(), runOnce, stop: () => cron.stop() };
}

import { rmSync } from "node:fs";
import { planArchive } from "../../core/archive/dry-run.js";
import { archiveAndCleanDate } from "../../core/archive/jobs.js";
import { datesNeedingWork } from "../../core/archive/partition-status.js";
import { parsePartitionDate, retentionCutoff } from "../../core/dates.js";
import { SluiceError, describeError } from "../../core/errors.js";
import { type Config, cleanupOptions } from "../../node/config.js";
import { describeArchivePlan, describeBacklogDate, describeList } from "../format.js";
import { type Io, PrintedFailure, print, withContext } from "../io.js";
import {
  type BacklogOptions,
  type DemoOptions,
  type GlobalOptions,
  configFrom,
  configsFrom,
} from "../options.js";
import { prepareData } from "./prepare.js";

/** What backlog did (or, dry, would do) for one table: its --json shape, one per table. */
interface TableBacklog {
  table: string;
  cutoff: string;
  dates: unknown[];
  /** Why the table could not be worked on at all (its other dates carry their own errors). */
  error?: string;
}

/**
 * backlog: archive, verify and clean every date older than the retention. With --json, one
 * object when it ends: `{ok, dryRun?, tables: [{table, cutoff, dates: [...]}]}`.
 */
export async function backlog(opts: BacklogOptions, io: Io): Promise<void> {
  const today =
    opts.today === undefined ? new Date() : new Date(`${parsePartitionDate(opts.today)}T00:00:00Z`);
  // Every table of the config file in turn, each with its own retention; one that fails does
  // not stop the others, and the exit code says one did.
  const configs = configsFrom(opts);
  // Every table checked (it exists, its columns do) before any is worked on: a config
  // mistake stops the run with exit 2, not half-way through.
  if (configs.length > 1) {
    for (const config of configs) await withContext(config, io, async () => {}, { readOnly: true });
  }
  const tables: TableBacklog[] = [];
  for (const config of configs) {
    const cutoff = retentionCutoff(today, config.HOT_RETENTION_DAYS);
    const label = configs.length > 1 ? `${config.SLUICE_TABLE} ` : "";
    try {
      tables.push(
        opts.dryRun
          ? await planBacklog(config, io, opts, cutoff)
          : await runBacklog(config, io, opts, cutoff, label),
      );
    } catch (err) {
      if (configs.length === 1 || io.signal.aborted) throw err;
      process.stderr.write(`${config.SLUICE_TABLE}: ${describeError(err)}\n`);
      tables.push({ table: config.SLUICE_TABLE, cutoff, dates: [], error: describeError(err) });
    }
  }
  const failed = tables.filter(
    (t) => t.error || t.dates.some((d) => (d as { ok?: boolean }).ok === false),
  );
  if (opts.json) {
    print(opts, "", { ok: failed.length === 0, ...(opts.dryRun ? { dryRun: true } : {}), tables });
  }
  if (failed.length) {
    const which = failed.map((t) => t.table).join(", ");
    const message = `the backlog of ${which} did not finish; see above, and sluice status`;
    throw opts.json ? new PrintedFailure(message) : new SluiceError("failed", message);
  }
}

/** backlog --dry-run: each date it would work on, and what archive would write for it. */
async function planBacklog(
  config: Config,
  io: Io,
  opts: GlobalOptions,
  cutoff: string,
): Promise<TableBacklog> {
  return withContext(
    config,
    io,
    async ({ ctx, ledgerReady }) => {
      const dates = await datesNeedingWork(ctx, cutoff, { ledger: ledgerReady });
      const plans = [];
      for (const date of dates) plans.push(await planArchive(ctx, date, { ledger: ledgerReady }));
      const lines = plans.map(
        (p) =>
          `${describeArchivePlan(ctx.spec.table, p)}; then cleanup would delete every archived row of ${p.date} that is as archived`,
      );
      if (!opts.json) {
        print(
          opts,
          dates.length ? lines.join("\n") : `dry run: nothing older than ${cutoff} to archive`,
          null,
        );
      }
      return { table: ctx.spec.table, cutoff, dates: plans };
    },
    { readOnly: true },
  );
}

/** demo: generated days in ./data/demo, the old ones archived, verified and cleaned. */
export async function demo(opts: DemoOptions, io: Io): Promise<void> {
  const dir = "./data/demo";
  const config = configFrom(
    opts,
    { SLUICE_DB: `sqlite:${dir}/sluice.db`, SLUICE_STORE: `file:${dir}/archive` },
    true,
  );
  if (!opts.db && !process.env.SLUICE_DB) rmSync(dir, { recursive: true, force: true });
  const today = new Date().toISOString().slice(0, 10);
  await prepareData({ ...opts, db: config.SLUICE_DB, date: today, workload: "traffic" }, io);
  const done = await runBacklog(
    config,
    io,
    opts,
    retentionCutoff(new Date(), config.HOT_RETENTION_DAYS),
  );
  const failed = done.dates.filter((d) => (d as { ok: boolean }).ok === false).length;
  if (failed)
    throw new SluiceError("failed", `${failed} of ${done.dates.length} dates failed; see above`);
  await withContext(config, io, async ({ ctx }) => {
    const list = await ctx.ledger.list(ctx.spec.table);
    const next = `next: sluice status --date ${list[0]?.date ?? today} --db ${config.SLUICE_DB}`;
    print(opts, `\n${describeList(list)}\n\n${next}`, {
      ok: true,
      backlog: done,
      partitions: list,
    });
  });
}

/** Each date before `cutoff` archived, verified and cleaned; a date that fails lets the rest go on. */
async function runBacklog(
  config: Config,
  io: Io,
  opts: GlobalOptions,
  cutoff: string,
  label = "",
): Promise<TableBacklog> {
  return withContext(config, io, async ({ ctx, owner }) => {
    const table = ctx.spec.table;
    const dates = await datesNeedingWork(ctx, cutoff);
    const results: unknown[] = [];
    for (const date of dates) {
      try {
        const r = await archiveAndCleanDate(ctx, owner, date, cleanupOptions(config));
        io.bar.done();
        const rows = r.archive.parts.reduce((n, p) => n + p.eventCount, 0);
        const { complete, deleted } = r.cleanup;
        results.push({ ok: true, date, complete, rows, deleted });
        if (!opts.json) {
          print(
            opts,
            label + describeBacklogDate(date, complete, rows, r.archive.parts.length, deleted),
            null,
          );
        }
      } catch (err) {
        io.bar.done();
        if (io.signal.aborted) throw err;
        results.push({ ok: false, date, error: describeError(err) });
        process.stderr.write(`${label}${date}: ${describeError(err)}\n`);
      }
    }
    if (dates.length === 0 && !opts.json) {
      print(opts, `${label}nothing older than ${cutoff} to archive`, null);
    }
    return { table, cutoff, dates: results };
  });
}

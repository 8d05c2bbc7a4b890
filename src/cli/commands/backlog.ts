import { rmSync } from "node:fs";
import { planArchive } from "../../core/archive/dry-run.js";
import { archiveAndCleanDate, datesNeedingWork } from "../../core/archive/jobs.js";
import { parsePartitionDate, retentionCutoff } from "../../core/dates.js";
import { SluiceError, describeError } from "../../core/errors.js";
import { type Config, cleanupOptions } from "../../node/config.js";
import { describeArchivePlan, describeBacklogDate, describeList } from "../format.js";
import { type Io, print, withContext } from "../io.js";
import {
  type BacklogOptions,
  type DemoOptions,
  type GlobalOptions,
  configFrom,
  configsFrom,
} from "../options.js";
import { prepareData } from "./prepare.js";

/** backlog: archive, verify and clean every date older than the retention. */
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
  let failed: unknown = null;
  for (const config of configs) {
    const cutoff = retentionCutoff(today, config.HOT_RETENTION_DAYS);
    const label = configs.length > 1 ? `${config.SLUICE_TABLE} ` : "";
    try {
      if (opts.dryRun) await planBacklog(config, io, opts, cutoff);
      else await runBacklog(config, io, opts, cutoff, label);
    } catch (err) {
      if (configs.length === 1 || io.signal.aborted) throw err;
      process.stderr.write(`${config.SLUICE_TABLE}: ${describeError(err)}\n`);
      failed ??= err;
    }
  }
  if (failed) {
    throw new SluiceError("failed", "a table's backlog failed; see above, and sluice status");
  }
}

/** backlog --dry-run: each date it would work on, and what archive would write for it. */
async function planBacklog(
  config: Config,
  io: Io,
  opts: GlobalOptions,
  cutoff: string,
): Promise<void> {
  await withContext(
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
      const human = dates.length
        ? lines.join("\n")
        : `dry run: nothing older than ${cutoff} to archive`;
      print(opts, human, { ok: true, dryRun: true, cutoff, dates: plans });
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
  await runBacklog(config, io, opts, retentionCutoff(new Date(), config.HOT_RETENTION_DAYS));
  await withContext(config, io, async ({ ctx }) => {
    const list = await ctx.ledger.list(ctx.spec.table);
    const next = `next: sluice status --date ${list[0]?.date ?? today} --db ${config.SLUICE_DB}`;
    print(opts, `\n${describeList(list)}\n\n${next}`, { ok: true, partitions: list });
  });
}

async function runBacklog(
  config: Config,
  io: Io,
  opts: GlobalOptions,
  cutoff: string,
  label = "",
): Promise<void> {
  await withContext(config, io, async ({ ctx, owner }) => {
    const dates = await datesNeedingWork(ctx, cutoff);
    let failed = 0;
    for (const date of dates) {
      try {
        const r = await archiveAndCleanDate(ctx, owner, date, cleanupOptions(config));
        io.bar.done();
        const rows = r.archive.parts.reduce((n, p) => n + p.eventCount, 0);
        const { complete, deleted } = r.cleanup;
        print(
          opts,
          label + describeBacklogDate(date, complete, rows, r.archive.parts.length, deleted),
          {
            ok: true,
            table: ctx.spec.table,
            date,
            complete,
            rows,
            deleted,
          },
        );
      } catch (err) {
        io.bar.done();
        if (io.signal.aborted) throw err;
        failed++;
        process.stderr.write(`${date}: ${describeError(err)}\n`);
      }
    }
    if (dates.length === 0) {
      print(opts, `${label}nothing older than ${cutoff} to archive`, {
        ok: true,
        table: ctx.spec.table,
        dates: [],
      });
    }
    if (failed) {
      throw new SluiceError(
        "failed",
        `${failed} of ${dates.length} dates failed; see above, and sluice status`,
      );
    }
  });
}

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
} from "../options.js";
import { prepareData } from "./prepare.js";

/** backlog: archive, verify and clean every date older than the retention. */
export async function backlog(opts: BacklogOptions, io: Io): Promise<void> {
  const config = configFrom(opts);
  const today =
    opts.today === undefined ? new Date() : new Date(`${parsePartitionDate(opts.today)}T00:00:00Z`);
  const cutoff = retentionCutoff(today, config.HOT_RETENTION_DAYS);
  if (opts.dryRun) {
    await planBacklog(config, io, opts, cutoff);
    return;
  }
  await runBacklog(config, io, opts, cutoff);
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
  const config = configFrom(opts, {
    SLUICE_DB: `sqlite:${dir}/sluice.db`,
    SLUICE_STORE: `file:${dir}/archive`,
  });
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
        print(opts, describeBacklogDate(date, complete, rows, r.archive.parts.length, deleted), {
          ok: true,
          date,
          complete,
          rows,
          deleted,
        });
      } catch (err) {
        io.bar.done();
        if (io.signal.aborted) throw err;
        failed++;
        process.stderr.write(`${date}: ${describeError(err)}\n`);
      }
    }
    if (dates.length === 0) {
      print(opts, `nothing older than ${cutoff} to archive`, { ok: true, dates: [] });
    }
    if (failed) {
      throw new SluiceError(
        "failed",
        `${failed} of ${dates.length} dates failed; see above, and sluice status`,
      );
    }
  });
}

import type { JobContext } from "../../core/archive/context.js";
import { planArchive, planCleanup } from "../../core/archive/dry-run.js";
import {
  type VerifyResult,
  archiveDate,
  cleanupDate,
  convertDate,
  restoreDate,
  rollupAll,
  rollupDate,
  verifyAll,
  verifyDate,
} from "../../core/archive/jobs.js";
import { partitionStatus } from "../../core/archive/partition-status.js";
import { parsePartitionDate } from "../../core/dates.js";
import { BadInputError } from "../../core/errors.js";
import { cleanupOptions } from "../../node/config.js";
import {
  describeArchivePlan,
  describeArchived,
  describeCleaned,
  describeCleanupPlan,
  describeConverted,
  describeList,
  describeRestored,
  describeRolledUp,
  describeRolledUpAll,
  describeStatus,
  describeVerified,
  describeVerifiedAll,
} from "../format.js";
import { type Io, PrintedFailure, print, withContext } from "../io.js";
import {
  type CleanupCliOptions,
  type ConvertCliOptions,
  type DateOptions,
  type RestoreCliOptions,
  type StatusOptions,
  type VerifyOptions,
  configFrom,
} from "../options.js";

/** archive: write the date's rows not yet archived as a part, then verify it. */
export async function archive(opts: DateOptions, io: Io): Promise<void> {
  if (opts.dryRun) return printPlan(opts, io, planArchive, describeArchivePlan);
  const config = configFrom(opts);
  const date = parsePartitionDate(opts.date);
  await withContext(config, io, async ({ ctx, owner }) => {
    const started = Date.now();
    const out = await archiveDate(ctx, owner, date);
    io.bar.done();
    const secs = (Date.now() - started) / 1000;
    print(opts, describeArchived(ctx.spec.table, date, ctx.store.describe(), out, secs), {
      ok: true,
      date,
      written: out.written,
      parts: out.parts,
      note: out.note,
      seconds: secs,
    });
  });
}

/** verify: read every part of the date (or of every archived date) back and prove it. */
export function verify(opts: VerifyOptions, io: Io): Promise<void> {
  return dateOrAll(opts, io, {
    all: verifyAll,
    describeAll: describeVerifiedAll,
    failed: "failed verification",
    one: async (ctx, owner, date) => {
      const parts = await verifyDate(ctx, owner, date);
      return [describeVerified(ctx.spec.table, date, parts), { ok: true, date, parts }];
    },
  });
}

/** rollup: rebuild a date's stats counts from its stored archive (every date lacking them with --all). */
export function rollup(opts: VerifyOptions, io: Io): Promise<void> {
  return dateOrAll(opts, io, {
    all: rollupAll,
    describeAll: describeRolledUpAll,
    failed: "could not have their rollups rebuilt",
    one: async (ctx, owner, date) => {
      const parts = await rollupDate(ctx, owner, date);
      const json = parts.map((p) => ({
        part: p.part,
        rows: p.eventCount,
        rollupRows: p.rollupRows,
      }));
      return [describeRolledUp(ctx.spec.table, date, parts), { ok: true, date, parts: json }];
    },
  });
}

/**
 * A command on one --date, or with --all on many partitions: each reported, and the exit code
 * and one line say when any failed (each failure is recorded in the ledger).
 */
async function dateOrAll(
  opts: VerifyOptions,
  io: Io,
  run: {
    all(ctx: JobContext, owner: string, signal: AbortSignal): Promise<VerifyResult[]>;
    describeAll(table: string, results: readonly VerifyResult[]): string;
    failed: string;
    one(ctx: JobContext, owner: string, date: string): Promise<[string, unknown]>;
  },
): Promise<void> {
  if ((opts.date === undefined) === !opts.all) {
    throw new BadInputError("give either --date YYYY-MM-DD or --all");
  }
  const config = configFrom(opts);
  const date = opts.all ? null : parsePartitionDate(opts.date);
  await withContext(config, io, async ({ ctx, owner }) => {
    if (date !== null) {
      const [human, json] = await run.one(ctx, owner, date);
      io.bar.done();
      print(opts, human, json);
      return;
    }
    const results = await run.all(ctx, owner, io.signal);
    io.bar.done();
    const failed = results.filter((r) => !r.ok);
    print(opts, run.describeAll(ctx.spec.table, results), {
      ok: failed.length === 0,
      partitions: results,
    });
    if (failed.length) {
      // Already printed in full; the exit code and one line say it failed.
      throw new PrintedFailure(
        `${failed.length} of ${results.length} partitions ${run.failed} (${failed.map((r) => r.date).join(", ")}); each is recorded in the ledger`,
      );
    }
  });
}

/** status: one date's ledger and hot rows, or every partition. */
export async function status(opts: StatusOptions, io: Io): Promise<void> {
  const config = configFrom(opts);
  const date = opts.date === undefined ? undefined : parsePartitionDate(opts.date);
  // A look only: the ledger is read as it is, never created or upgraded.
  await withContext(
    config,
    io,
    async ({ ctx, ledgerReady }) => {
      if (date === undefined) {
        const list = ledgerReady ? await ctx.ledger.list(ctx.spec.table) : [];
        print(opts, describeList(list), { ok: true, partitions: list });
        return;
      }
      const s = await partitionStatus(ctx, date, { ledger: ledgerReady });
      print(opts, describeStatus(s), { ok: true, ...s });
    },
    { readOnly: true },
  );
}

/** cleanup: delete the date's archived rows from the hot store. */
export async function cleanup(opts: CleanupCliOptions, io: Io): Promise<void> {
  if (opts.dryRun) return printPlan(opts, io, planCleanup, describeCleanupPlan);
  const config = configFrom(opts);
  const date = parsePartitionDate(opts.date);
  await withContext(config, io, async ({ ctx, owner }) => {
    const out = await cleanupDate(ctx, owner, date, cleanupOptions(config));
    io.bar.done();
    print(opts, describeCleaned(ctx.spec.table, date, out), { ok: true, date, ...out });
  });
}

/** restore: put the date's verified archive back into the table, or into --into. */
export async function restore(opts: RestoreCliOptions, io: Io): Promise<void> {
  const config = configFrom(opts);
  const date = parsePartitionDate(opts.date);
  await withContext(config, io, async ({ ctx, owner }) => {
    const out = await restoreDate(ctx, owner, date, { into: opts.into });
    io.bar.done();
    print(opts, describeRestored(ctx.spec.table, out), { ok: true, ...out });
  });
}

/** convert: rewrite a date's parts in another format, each verified before it replaces the old. */
export async function convert(opts: ConvertCliOptions, io: Io): Promise<void> {
  const config = configFrom(opts);
  const date = parsePartitionDate(opts.date);
  await withContext(config, io, async ({ ctx, owner }) => {
    const out = await convertDate(ctx, owner, date, opts.to);
    io.bar.done();
    print(opts, describeConverted(ctx.spec.table, out), { ok: true, ...out });
  });
}

/** A dry run: the date's plan read in a read-only context (no lease, no ledger created), printed. */
async function printPlan<P extends object>(
  opts: DateOptions,
  io: Io,
  plan: (ctx: JobContext, date: string, options: { ledger: boolean }) => Promise<P>,
  describe: (table: string, plan: P) => string,
): Promise<void> {
  const config = configFrom(opts);
  const date = parsePartitionDate(opts.date);
  await withContext(
    config,
    io,
    async ({ ctx, ledgerReady }) => {
      const found = await plan(ctx, date, { ledger: ledgerReady });
      print(opts, describe(ctx.spec.table, found), { ok: true, dryRun: true, ...found });
    },
    { readOnly: true },
  );
}

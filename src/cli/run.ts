import cluster from "node:cluster";
import { rmSync } from "node:fs";
import {
  archiveAndCleanDate,
  archiveDate,
  cleanupDate,
  datesNeedingWork,
  partitionStatus,
  verifyDate,
} from "../core/archive/jobs.js";
import { parsePartitionDate, retentionCutoff } from "../core/dates.js";
import { BadInputError, type ErrorKind, SluiceError, describeError } from "../core/errors.js";
import { checkIdentifier } from "../core/sql/ident.js";
import { MES_TABLES } from "../core/trace/tables.js";
import { runCluster } from "../node/cluster.js";
import { type Config, cleanupOptions, loadConfig } from "../node/config.js";
import { openContext } from "../node/context.js";
import { openSource } from "../node/open.js";
import { checkCron } from "../node/scheduler.js";
import { startService } from "../node/serve.js";
import { checkMesScale, prepareMesData } from "../workloads/mes/prepare.js";
import { prepareTrafficData } from "../workloads/traffic/prepare.js";
import { bytes, describeList, describeStatus, fmt } from "./format.js";
import { progressLine } from "./progress.js";

/**
 * Exit codes: 0 done, 1 the job failed, 2 bad input (fix the command), 75 busy or the database
 * unreachable (retry later).
 */
const EXIT: Record<ErrorKind, number> = {
  bad_input: 2,
  not_found: 2,
  failed: 1,
  conflict: 75,
  unavailable: 75,
};

type Opts = Record<string, unknown> & { json?: boolean };

function configFrom(opts: Opts, defaults: Partial<Record<keyof Config, string>> = {}): Config {
  return loadConfig(process.env, {
    SLUICE_DB:
      (opts.db as string | undefined) ?? (process.env.SLUICE_DB ? undefined : defaults.SLUICE_DB),
    SLUICE_STORE:
      (opts.store as string | undefined) ??
      (process.env.SLUICE_STORE ? undefined : defaults.SLUICE_STORE),
    SLUICE_TABLE: opts.table as string | undefined,
    SLUICE_DELETE_BATCH: opts.batch as number | undefined,
    SLUICE_CLEANUP_BUDGET_MS: opts.budgetMs as number | undefined,
    HOT_RETENTION_DAYS: opts.retentionDays as number | undefined,
    PORT: opts.port as number | undefined,
    HOST: opts.host as string | undefined,
  });
}

function print(opts: Opts, human: string, json: unknown): void {
  process.stdout.write(opts.json ? `${JSON.stringify(json)}\n` : `${human}\n`);
}

/** Run one command; prints one clear line and sets the exit code on failure. */
export async function runCli(command: string, opts: Opts): Promise<void> {
  const bar = progressLine(Boolean(process.stderr.isTTY) && !opts.json);
  const abort = new AbortController();
  let interrupted = 0;
  const onSignal = () => {
    // First Ctrl-C: stop at the next batch boundary (progress is saved). Second: now.
    if (++interrupted > 1) process.exit(130);
    abort.abort(
      new SluiceError("failed", "interrupted; progress saved, run the command again to resume"),
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    await commands[command]?.(opts, { bar, signal: abort.signal });
  } catch (err) {
    bar.done();
    const kind: ErrorKind = err instanceof SluiceError ? err.kind : "failed";
    const message = describeError(abort.signal.aborted ? abort.signal.reason : err);
    if (opts.json) process.stdout.write(`${JSON.stringify({ ok: false, error: kind, message })}\n`);
    process.stderr.write(`sluice ${command}: ${message}\n`);
    if (!(err instanceof SluiceError) && process.env.SLUICE_DEBUG) console.error(err);
    process.exitCode = EXIT[kind];
  } finally {
    bar.done();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

interface Io {
  bar: ReturnType<typeof progressLine>;
  signal: AbortSignal;
}

async function withContext<T>(
  config: Config,
  io: Io,
  fn: (c: Awaited<ReturnType<typeof openContext>>) => Promise<T>,
): Promise<T> {
  const c = await openContext(config, { onProgress: io.bar.update, signal: io.signal });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

const commands: Record<string, (opts: Opts, io: Io) => Promise<void>> = {
  async "prepare-data"(opts, io) {
    const config = configFrom(opts);
    if (opts.workload === "mes") return prepareMes(config, opts, io);
    for (const flag of ["scale", "replace"] as const) {
      if (opts[flag] !== undefined) {
        throw new BadInputError(
          `--${flag} is for --workload=mes (traffic takes --count, --date, --days)`,
        );
      }
    }
    if (opts.date === undefined) {
      throw new BadInputError(
        "required option '--date <YYYY-MM-DD>' not specified (the day to generate for --workload=traffic)",
      );
    }
    const date = parsePartitionDate(opts.date);
    // Before the database file is created: a bad name leaves nothing behind.
    checkIdentifier("table", config.SLUICE_TABLE);
    const source = openSource(config.SLUICE_DB, { create: true });
    const started = Date.now();
    try {
      const n = await prepareTrafficData(source, {
        count: opts.count as number,
        date,
        days: opts.days as number,
        table: config.SLUICE_TABLE,
        onProgress: (done, total) =>
          io.bar.update({ phase: "prepare", table: config.SLUICE_TABLE, date, done, total }),
      });
      io.bar.done();
      const secs = (Date.now() - started) / 1000;
      print(
        opts,
        `inserted ${fmt(n)} rows into ${config.SLUICE_TABLE} (${source.describe()}) in ${secs.toFixed(1)} s`,
        { ok: true, inserted: n, seconds: secs },
      );
    } finally {
      await source.close();
    }
  },

  async archive(opts, io) {
    const config = configFrom(opts);
    const date = parsePartitionDate(opts.date);
    await withContext(config, io, async ({ ctx, owner }) => {
      const started = Date.now();
      const out = await archiveDate(ctx, owner, date);
      io.bar.done();
      const secs = (Date.now() - started) / 1000;
      const w = out.written;
      const human = w
        ? `archived ${fmt(w.eventCount)} rows of ${ctx.spec.table} ${date} to ${ctx.store.describe()}/${w.objectKey}\n  ${bytes(w.fileSize)} gzip (${bytes(w.rawSize)} raw), sha256 ${w.sha256}, keys ${w.minId}..${w.maxId}\n  verified; ${(w.eventCount / Math.max(secs, 0.001)).toFixed(0)} rows/s, ${secs.toFixed(1)} s`
        : `nothing new to archive for ${ctx.spec.table} ${date}${out.note ? `: ${out.note}` : ` (${out.parts.length} verified part${out.parts.length === 1 ? "" : "s"} already)`}`;
      print(opts, human, {
        ok: true,
        date,
        written: w,
        parts: out.parts,
        note: out.note,
        seconds: secs,
      });
    });
  },

  async verify(opts, io) {
    const config = configFrom(opts);
    const date = parsePartitionDate(opts.date);
    await withContext(config, io, async ({ ctx, owner }) => {
      const parts = await verifyDate(ctx, owner, date);
      io.bar.done();
      const rows = parts.reduce((n, p) => n + p.eventCount, 0);
      print(
        opts,
        `verified ${parts.length} part${parts.length === 1 ? "" : "s"} of ${ctx.spec.table} ${date}: ${fmt(rows)} rows, bytes and sha256 match`,
        { ok: true, date, parts },
      );
    });
  },

  async status(opts, io) {
    const config = configFrom(opts);
    await withContext(config, io, async ({ ctx }) => {
      if (opts.date === undefined) {
        const list = await ctx.ledger.list(ctx.spec.table);
        print(opts, describeList(list), { ok: true, partitions: list });
        return;
      }
      const s = await partitionStatus(ctx, parsePartitionDate(opts.date));
      print(opts, describeStatus(s), { ok: true, ...s });
    });
  },

  async cleanup(opts, io) {
    const config = configFrom(opts);
    const date = parsePartitionDate(opts.date);
    await withContext(config, io, async ({ ctx, owner }) => {
      const out = await cleanupDate(ctx, owner, date, cleanupOptions(config));
      io.bar.done();
      const how =
        out.method === "drop-partition"
          ? `dropped its table partition with ${fmt(out.deleted)} rows`
          : `deleted ${fmt(out.deleted)} rows`;
      const human = out.complete
        ? `cleaned ${ctx.spec.table} ${date}: ${how} (${fmt(out.deletedTotal)} in all), 0 archived rows remain; d1_cleaned=1`
        : `stopped at the time budget: deleted ${fmt(out.deleted)} rows this run, ${fmt(out.remaining)} archived rows remain; progress saved, run cleanup again to resume`;
      print(opts, human, { ok: true, date, ...out });
    });
  },

  async serve(opts, io) {
    const config = configFrom(opts);
    if (config.ARCHIVE_CRON !== "off") checkCron(config.ARCHIVE_CRON);
    if (config.WEB_CONCURRENCY > 1 && cluster.isPrimary) {
      print(opts, `sluice serve: starting ${config.WEB_CONCURRENCY} workers`, {
        ok: true,
        workers: config.WEB_CONCURRENCY,
      });
      await runCluster(config.WEB_CONCURRENCY, io.signal, (line) =>
        process.stderr.write(`sluice serve: ${line}\n`),
      );
      return;
    }
    // A worker stops on its primary's message as on a signal; two signals still mean "now".
    const stop = new AbortController();
    io.signal.addEventListener("abort", () => stop.abort(), { once: true });
    process.on("message", (m: { cmd?: string }) => {
      if (m?.cmd === "shutdown") stop.abort();
    });
    // One worker keeps the schedule; the lease would keep the others off each date anyway.
    const index = Number(process.env.SLUICE_WORKER_INDEX ?? 0);
    const service = await startService(config, stop.signal, { scheduler: index === 0 });
    print(opts, `sluice serve: listening on ${service.url}`, { ok: true, url: service.url });
    await service.closed;
    if (cluster.isWorker) process.disconnect();
  },

  async backlog(opts, io) {
    const config = configFrom(opts);
    const today =
      opts.today === undefined
        ? new Date()
        : new Date(`${parsePartitionDate(opts.today)}T00:00:00Z`);
    await runBacklog(config, io, opts, retentionCutoff(today, config.HOT_RETENTION_DAYS));
  },

  async demo(opts, io) {
    const dir = "./data/demo";
    const config = configFrom(opts, {
      SLUICE_DB: `sqlite:${dir}/sluice.db`,
      SLUICE_STORE: `file:${dir}/archive`,
    });
    if (!opts.db && !process.env.SLUICE_DB) rmSync(dir, { recursive: true, force: true });
    const today = new Date().toISOString().slice(0, 10);
    await commands["prepare-data"]?.(
      { ...opts, db: config.SLUICE_DB, date: today, count: opts.count, days: opts.days },
      io,
    );
    await runBacklog(config, io, opts, retentionCutoff(new Date(), config.HOT_RETENTION_DAYS));
    await withContext(config, io, async ({ ctx }) => {
      const list = await ctx.ledger.list(ctx.spec.table);
      print(
        opts,
        `\n${describeList(list)}\n\nnext: sluice status --date ${list[0]?.date ?? today} --db ${config.SLUICE_DB}`,
        {
          ok: true,
          partitions: list,
        },
      );
    });
  },
};

/** prepare-data --workload=mes: the MES trace tables, generated at --scale. */
async function prepareMes(config: Config, opts: Opts, io: Io): Promise<void> {
  const scale = checkMesScale(opts.scale ?? 1);
  const source = openSource(config.SLUICE_DB, { create: true });
  const started = Date.now();
  try {
    const s = await prepareMesData(source, {
      scale,
      replace: opts.replace === true,
      onProgress: (done, total) =>
        io.bar.update({ phase: "prepare", table: "mes", date: `scale=${scale}`, done, total }),
    });
    io.bar.done();
    const secs = (Date.now() - started) / 1000;
    const tables = MES_TABLES.map((t) => `${t} ${fmt(s[t])}`).join(", ");
    print(
      opts,
      `inserted ${fmt(s.rows)} MES rows at scale ${scale} (${fmt(s.lots)} lots, ${fmt(s.containers)} containers): ${tables} into ${source.describe()} in ${secs.toFixed(1)} s`,
      { ok: true, workload: "mes", ...s, seconds: secs },
    );
  } finally {
    await source.close();
  }
}

async function runBacklog(config: Config, io: Io, opts: Opts, cutoff: string): Promise<void> {
  await withContext(config, io, async ({ ctx, owner }) => {
    const dates = await datesNeedingWork(ctx, cutoff);
    const results: unknown[] = [];
    let failed = 0;
    for (const date of dates) {
      try {
        const r = await archiveAndCleanDate(ctx, owner, date, cleanupOptions(config));
        io.bar.done();
        const rows = r.archive.parts.reduce((n, p) => n + p.eventCount, 0);
        print(
          opts,
          `${date}: ${r.cleanup.complete ? "cleaned" : "cleaning (budget reached, resumes next run)"}; archived ${fmt(rows)} rows in ${r.archive.parts.length} part(s), deleted ${fmt(r.cleanup.deleted)} this run`,
          { ok: true, date, complete: r.cleanup.complete, rows, deleted: r.cleanup.deleted },
        );
        results.push(r);
      } catch (err) {
        io.bar.done();
        if (io.signal.aborted) throw err;
        failed++;
        process.stderr.write(`${date}: ${describeError(err)}\n`);
      }
    }
    if (dates.length === 0)
      print(opts, `nothing older than ${cutoff} to archive`, { ok: true, dates: [] });
    if (failed)
      throw new SluiceError(
        "failed",
        `${failed} of ${dates.length} dates failed; see above, and sluice status`,
      );
  });
}

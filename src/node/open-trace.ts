import type { Logger } from "pino";
import { BadInputError, BusyError, describeError } from "../core/errors.js";
import { Semaphore } from "../core/semaphore.js";
import type { SqlSource } from "../core/sql/source.js";
import type { ObjectStore } from "../core/store.js";
import { TraceJobs } from "../core/trace/trace-jobs.js";
import type { TraceOptions } from "../http/routes/trace.js";
import { zlibCodec } from "./codec.js";
import type { Config } from "./config.js";
import { gcPacer } from "./gc-pacer.js";
import { traceMemoryLimit } from "./memory-limit.js";
import { openSource } from "./open.js";

/**
 * The trace database, with a pool of its own: TRACE_DB, or SLUICE_DB when it holds the MES
 * tables. Without either, the trace routes are off.
 */
export async function openTrace(
  config: Config,
  logger: Logger,
  log: (line: string) => void,
  store: ObjectStore,
  stopping: AbortSignal,
): Promise<{ source: SqlSource; options: TraceOptions } | null> {
  const url = config.TRACE_DB ?? config.SLUICE_DB;
  const source = await openSource(url, {
    statementTimeoutMs: config.SLUICE_STATEMENT_TIMEOUT_MS || undefined,
    poolSize: config.DB_SLOW_MAX_CONCURRENT * config.TRACE_WORKERS_PER_DOMAIN + 1,
  });
  if ((await source.tableColumns("lot_moves")) === null) {
    await source.close();
    if (config.TRACE_DB) {
      throw new BadInputError(
        `TRACE_DB ${source.describe()} has no lot_moves table (sluice prepare-data --workload=mes creates one)`,
      );
    }
    log("trace routes off: SLUICE_DB has no lot_moves table (set TRACE_DB)");
    return null;
  }
  const { mb: limitMb, from } = traceMemoryLimit(
    config.TRACE_MEMORY_LIMIT_MB,
    config.WEB_CONCURRENCY,
  );
  log(
    limitMb > 0
      ? `trace requests refused above ${limitMb} MB of resident memory (${from})`
      : "trace memory guard off (TRACE_MEMORY_LIMIT_MB=0)",
  );
  const jobs = new TraceJobs(store, zlibCodec, {
    maxJobs: config.TRACE_JOBS_MAX,
    ttlMs: config.TRACE_JOB_TTL,
    onFailure: (id, err) => logger.error({ job: id, err: describeError(err) }, "trace job failed"),
  });
  // Expired jobs go now (those that expired while no process ran) and then periodically.
  jobs
    .startSweeping()
    .catch((err) => logger.warn({ err: describeError(err) }, "sweeping trace jobs failed"));
  return {
    source,
    options: {
      source,
      slots: new Semaphore(config.DB_SLOW_MAX_CONCURRENT, {
        maxQueued: config.TRACE_MAX_QUEUED,
        refuse: () =>
          new BusyError(
            `${config.DB_SLOW_MAX_CONCURRENT} trace requests reading and ${config.TRACE_MAX_QUEUED} waiting (DB_SLOW_MAX_CONCURRENT, TRACE_MAX_QUEUED); try again shortly`,
            5,
          ),
      }),
      cidLimit: config.TRACE_EVENTS_CID_LIMIT,
      workersPerDomain: config.TRACE_WORKERS_PER_DOMAIN,
      fetchSize: config.TRACE_FETCHMANY_SIZE,
      maxBodyBytes: config.TRACE_MAX_BODY_BYTES,
      idleTimeoutMs: config.TRACE_IDLE_TIMEOUT_MS,
      stopping,
      gc: gcPacer(config.TRACE_GC_EVERY_ROWS),
      jobs,
      codec: zlibCodec,
      memoryGuard:
        limitMb > 0
          ? () => {
              const rss = process.memoryUsage.rss() / 1048576;
              return rss > limitMb
                ? `resident memory ${rss.toFixed(0)} MB is over TRACE_MEMORY_LIMIT_MB=${limitMb}`
                : null;
            }
          : undefined,
    },
  };
}

import { STATUS_CODES } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { serve } from "@hono/node-server";
import type { Logger } from "pino";
import { SqliteSource } from "../adapters/sqlite/source.js";
import { BadInputError, SluiceError } from "../core/errors.js";
import type { SqlSource } from "../core/sql/source.js";
import { type StatsQuery, admitQueries } from "../core/stats/admission.js";
import { createApp } from "../http/app.js";
import { ensureTrafficTable } from "../workloads/traffic/prepare.js";
import type { Config } from "./config.js";
import { builtConsole } from "./console-files.js";
import { openContext } from "./context.js";
import { createLogger } from "./logger.js";
import { createMetrics } from "./metrics.js";
import { openTrace } from "./open-trace.js";
import { openSource } from "./open.js";
import { SqliteReadThreads } from "./read-threads.js";
import { serviceJobs } from "./service-jobs.js";
import { hasSchedules } from "./table-schedules.js";

export interface Service {
  url: string;
  /** Resolves once the server has stopped, its jobs have reached a safe point, and all closed. */
  closed: Promise<void>;
}

/**
 * Serve the HTTP API until `signal` aborts. Then: stop taking connections, let running jobs
 * stop at their next batch boundary (their progress is saved; the next start resumes), close.
 */
export async function startService(
  config: Config,
  signal: AbortSignal,
  options: {
    scheduler?: boolean;
    logger?: Logger;
    /** The config file's other tables: each archived on the same schedule, by its own settings. */
    others?: Config[];
    /** Log the start-up notices (open routes, admin off); one worker of several does. */
    announce?: boolean;
    /** The jobs thread's script (default: jobs-thread.js); a test gives one that fails. */
    jobsThreadEntry?: URL;
  } = {},
): Promise<Service> {
  const logger = options.logger ?? (await createLogger(config.LOG_LEVEL, config.LOG_FORMAT));
  const log = (line: string) => {
    if (options.announce !== false) logger.info(line);
  };
  // An empty embedded default becomes a working service: the table ingest writes to.
  if (config.SLUICE_TABLE === "traffic_events") {
    const source = await openSource(config.SLUICE_DB, { create: true });
    try {
      await ensureTrafficTable(source, config.SLUICE_TABLE);
    } finally {
      await source.close();
    }
  }
  const c = await openContext(config, { signal, onWarning: (m) => logger.warn(m) });
  const stats = statsReads(config, c.ctx.source);
  const metrics = createMetrics(c.ctx, stats.read);
  const trace = await openTrace(config, logger, log, c.ctx.store, signal);
  // A jobs thread that ends on its own leaves a process that can no longer archive or clean:
  // it stops, failing, so that its supervisor (systemd, the cluster's primary) starts another.
  const failed = new AbortController();
  // The schedules this process runs: none in a cluster worker but the first, nor with both off.
  const scheduling = options.scheduler !== false && hasSchedules(config);
  // Last of what may fail to open: its thread would keep a process that failed to start alive.
  const jobs = await serviceJobs({
    config,
    others: options.others ?? [],
    c,
    signal,
    logger,
    onFinish: metrics.jobFinished,
    verified: metrics.verified,
    entry: options.jobsThreadEntry,
    // A process that runs no schedule starts its jobs thread only when a job is asked of it.
    lazy: !scheduling,
    onFailure: (err) => {
      logger.fatal({ error: err.message }, "no job can run in this process any more: stopping it");
      failed.abort(new SluiceError("failed", err.message));
    },
  });
  const page = builtConsole();
  if (!page) log("the console is not built (npm run build): / answers 404");
  const app = createApp({
    console: page,
    others: jobs.others,
    trace: trace?.options,
    ctx: c.ctx,
    runner: jobs.own,
    corsOrigins: config.CORS_ORIGINS,
    adminToken: config.ADMIN_TOKEN,
    ingestToken: config.INGEST_TOKEN,
    statsToken: config.STATS_TOKEN,
    traceToken: config.TRACE_TOKEN,
    maxBodyBytes: config.INGEST_MAX_BYTES,
    maxEvents: config.INGEST_MAX_EVENTS,
    statsQuery: stats.query,
    statsProbe: stats.read,
    pathColumn: config.SLUICE_PATH_COLUMN,
    metrics: metrics.render,
    onIngest: metrics.ingested,
    log: logger,
  });
  if (!config.ADMIN_TOKEN) log("ADMIN_TOKEN is not set: the /admin routes are off");
  const open = [
    ["INGEST_TOKEN", "POST /api/events"],
    ["STATS_TOKEN", "/api/stats/*"],
    ["TRACE_TOKEN", "/api/trace/*"],
  ].filter(([name]) => !config[name as "INGEST_TOKEN" | "STATS_TOKEN" | "TRACE_TOKEN"]);
  if (open.length) {
    log(
      `open to anyone (no token set): ${open.map(([name, route]) => `${route} (${name})`).join(", ")}`,
    );
  }
  const server = serve({ fetch: app.fetch, port: config.PORT, hostname: config.HOST });
  // Requests Node's HTTP parser refuses (oversized headers, malformed framing) never reach
  // the app; answer them in the API's JSON shape too.
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : 400;
    const body = JSON.stringify({
      error: status === 431 ? "headers_too_large" : "bad_request",
      message: `the request could not be parsed (${err.code ?? "bad request"})`,
    });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("listening", resolve);
      server.once("error", reject);
    });
  } catch (err) {
    // Nothing may stay behind to keep the process alive (and looking healthy) without a port.
    await jobs.stop();
    await trace?.source.close();
    await stats.close();
    await c.close();
    const e = err as NodeJS.ErrnoException;
    if (e.code === "EADDRINUSE" || e.code === "EACCES" || e.code === "EADDRNOTAVAIL") {
      throw new BadInputError(
        `cannot listen on ${config.HOST}:${config.PORT} (${e.code}: ${e.message}); set PORT or HOST`,
      );
    }
    throw err;
  }
  // Schedules start only once the service listens.
  if (scheduling) {
    const next = await jobs.schedule();
    if (next.archiveNext) {
      log(
        `archive schedule '${config.ARCHIVE_CRON}' (UTC); next run ${next.archiveNext.toISOString()}`,
      );
      const others = jobs.others.map((o) => o.ctx.spec.table);
      if (others.length) log(`also scheduled: ${others.join(", ")}`);
    }
    if (next.verifyNext) {
      log(
        `verify schedule '${config.VERIFY_CRON}' (UTC); next run ${next.verifyNext.toISOString()}`,
      );
    }
  }

  const { port } = server.address() as AddressInfo;
  const url = `http://${config.HOST.includes(":") ? `[${config.HOST}]` : config.HOST}:${port}`;
  const closed = new Promise<void>((resolve, reject) => {
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      log("stopping: no new connections; running jobs stop at their next batch");
      // A background trace job cannot resume: it records that it stopped, to be resubmitted.
      await trace?.options.jobs?.stop();
      await new Promise<void>((r) => server.close(() => r()));
      await jobs.stop();
      await stats.close();
      await trace?.source.close();
      await c.close();
      if (failed.signal.aborted) reject(failed.signal.reason);
      else resolve();
    };
    for (const s of [signal, failed.signal]) {
      if (s.aborted) void stop();
      else s.addEventListener("abort", () => void stop(), { once: true });
    }
  });
  return { url, closed };
}

/**
 * Where the stats routes' queries run: on SQLite, worker threads with read-only connections of
 * their own (better-sqlite3 is synchronous: a GROUP BY over a large table would hold the event
 * loop, health checks included); elsewhere the pool. Either way at most STATS_MAX_CONCURRENT
 * at once and STATS_MAX_QUEUED waiting, beyond which a request gets 503 + Retry-After.
 */
function statsReads(
  config: Config,
  source: SqlSource,
): {
  /** For the stats routes: admitted, or refused with BusyError. */
  query: StatsQuery;
  /** For /metrics' hot rows (one query per scrape interval at most): the same place, unadmitted. */
  read: StatsQuery;
  close(): Promise<void>;
} {
  const admission = {
    concurrent: config.STATS_MAX_CONCURRENT,
    maxQueued: config.STATS_MAX_QUEUED,
    retryAfterSeconds: 1,
  };
  if (source instanceof SqliteSource && source.path !== ":memory:") {
    const threads = new SqliteReadThreads(
      source.path,
      config.STATS_MAX_CONCURRENT,
      config.SLUICE_STATEMENT_TIMEOUT_MS,
    );
    return {
      query: admitQueries(threads.query, admission),
      read: threads.query,
      close: () => threads.close(),
    };
  }
  const read: StatsQuery = (sql, params) => source.query(sql, params);
  return { query: admitQueries(read, admission), read, close: async () => undefined };
}

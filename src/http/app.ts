import { Hono } from "hono";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { requestId } from "hono/request-id";
import type { JobContext } from "../core/archive/archive.js";
import { partitionStatus } from "../core/archive/jobs.js";
import type { JobKind, JobRunner } from "../core/archive/runner.js";
import { daysBefore, parsePartitionDate } from "../core/dates.js";
import { BadInputError, describeError } from "../core/errors.js";
import { splitEventBatch } from "../core/ingest/batch.js";
import { BadEventError, TRAFFIC_COLUMNS, parseTrafficEvent } from "../core/ingest/event.js";
import { insertAtomically } from "../core/sql/insert.js";
import { toCount } from "../core/sql/source.js";
import type { StatsQuery } from "../core/stats/admission.js";
import { hasBearer, optionalBearer, unauthorized } from "./bearer.js";
import { refuseNulInQuery } from "./query-nul.js";
import { type TraceOptions, traceRoutes } from "./routes/trace.js";
import { httpError } from "./status.js";

export interface AppOptions {
  ctx: JobContext;
  runner: JobRunner;
  /** Bearer token for /admin/*; without one the admin routes are off. */
  adminToken?: string;
  /** Bearer token for POST /api/events (INGEST_TOKEN); without one, ingest is open. */
  ingestToken?: string;
  /** Bearer token for /api/stats/* (STATS_TOKEN); without one, stats are open. */
  statsToken?: string;
  /** Bearer token for /api/trace/* (TRACE_TOKEN); without one, the trace routes are open. */
  traceToken?: string;
  /** Largest ingest body in bytes (413 above). */
  maxBodyBytes: number;
  /** Most events in one ingest batch (413 above). */
  maxEvents: number;
  /** Longest stats range in days. */
  maxStatsDays?: number;
  /**
   * Where the stats routes' queries run, admitted or refused (admitQueries); by default on the
   * hot store's own connection. Node gives SQLite's to worker threads.
   */
  statsQuery?: StatsQuery;
  /** GET /metrics: the runtime's metrics text (Prometheus exposition), when it has some. */
  metrics?: () => Promise<{ contentType: string; body: string }>;
  /** Told of every accepted ingest batch. */
  onIngest?: (events: number) => void;
  /** A structured logger (pino's shape); one line per request, with its id. */
  log?: RequestLog;
  /** The MES trace routes under /api/trace, when a trace database is configured. */
  trace?: TraceOptions;
  /**
   * Keep the runtime alive for a job that runs on after its 202 (a Worker's waitUntil; Node
   * needs nothing).
   */
  waitUntil?: (c: Context<AppEnv>, work: Promise<void>) => void;
}

export interface RequestLog {
  info(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export type AppEnv = { Variables: { requestId: string } };

/** The sluice HTTP API: ingest, stats and admin, on any runtime Hono runs on. */
export function createApp(o: AppOptions): Hono<AppEnv> {
  const { ctx, runner } = o;
  const { source, spec } = ctx;
  const q = source.dialect.quote;
  const maxDays = o.maxStatsDays ?? 366;
  const statsQuery: StatsQuery = o.statsQuery ?? ((sql, params) => source.query(sql, params));
  const app = new Hono<AppEnv>();

  app.use(requestId());
  if (o.log) {
    const log = o.log;
    app.use(async (c, next) => {
      const started = performance.now();
      await next();
      log.info(
        {
          reqId: c.get("requestId"),
          method: c.req.method,
          path: c.req.path,
          status: c.res.status,
          ms: Math.round(performance.now() - started),
        },
        "request",
      );
    });
  }
  app.onError((err, c) => {
    const { status, body, detail, headers } = httpError(err);
    if (detail !== undefined) {
      o.log?.error({ reqId: c.get("requestId"), status, err: detail }, "request failed");
    }
    return c.json({ ...body, requestId: c.get("requestId") }, status, headers);
  });
  // Each group's token before anything else reads the request (the ingest body included).
  app.use("/api/events", optionalBearer(o.ingestToken, "INGEST_TOKEN", "ingest"));
  app.use("/api/stats/*", optionalBearer(o.statsToken, "STATS_TOKEN", "stats"));
  app.use("/api/trace/*", optionalBearer(o.traceToken, "TRACE_TOKEN", "trace"));
  app.use(refuseNulInQuery);
  app.notFound((c) =>
    c.json({ error: "not_found", message: `no route ${c.req.method} ${c.req.path}` }, 404),
  );

  // Open to anyone, so it says ok or not and nothing of where the database or store is.
  app.get("/healthz", async (c) => {
    try {
      await source.query("SELECT 1 AS one");
      return c.json({ ok: true });
    } catch (err) {
      const reqId = c.get("requestId");
      o.log?.error({ reqId, status: 503, err: describeError(err) }, "health check failed");
      return c.json(
        {
          ok: false,
          error: "unavailable",
          message: "the database does not answer",
          requestId: reqId,
        },
        503,
      );
    }
  });

  app.get("/metrics", async (c) => {
    if (!o.metrics) return c.json({ error: "not_found", message: "no metrics here" }, 404);
    const { contentType, body } = await o.metrics();
    return c.body(body, 200, { "Content-Type": contentType });
  });

  app.post(
    "/api/events",
    bodyLimit({
      maxSize: o.maxBodyBytes,
      onError: (c) =>
        c.json(
          {
            error: "too_large",
            message: `body over ${o.maxBodyBytes} bytes; send smaller batches`,
            limit: o.maxBodyBytes,
          },
          413,
        ),
    }),
    async (c) => {
      const type = (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
      const ndjson = type === "application/x-ndjson" || type === "application/ndjson";
      if (!ndjson && type !== "application/json") {
        return c.json(
          {
            error: "unsupported_media_type",
            message:
              "send a JSON array of events (Content-Type: application/json) or one event per line (application/x-ndjson)",
          },
          415,
        );
      }
      const parts = splitEventBatch(await c.req.text(), ndjson, o.maxEvents);
      if (parts.length === 0) throw new BadInputError("no events in the batch");
      // In order, so that the index a 400 names is the first bad event's.
      const rows = parts.map((part, i) =>
        parseTrafficEvent(ndjson ? parseLine(part as string, i) : part, i),
      );
      const inserted = await insertAtomically(source, spec.table, TRAFFIC_COLUMNS, rows);
      const dates: Record<string, number> = {};
      for (const r of rows)
        dates[r.event_date as string] = (dates[r.event_date as string] ?? 0) + 1;
      o.onIngest?.(inserted);
      return c.json({ inserted, dates }, 201);
    },
  );

  if (o.trace) app.route("/api/trace", traceRoutes({ ...o.trace, log: o.trace.log ?? o.log }));

  app.get("/api/stats/top-paths", async (c) => {
    const { from, to } = dateRange(c, maxDays);
    const limit = intParam(c, "limit", 10, 1, 1000);
    const rows = await statsQuery(
      `SELECT path, COUNT(*) AS views FROM ${q(spec.table)}
       WHERE ${q(spec.partitionColumn)} BETWEEN ? AND ?
       GROUP BY path ORDER BY views DESC, path LIMIT ?`,
      [from, to, limit],
      c.req.raw.signal,
    );
    return c.json({
      from,
      to,
      paths: rows.map((r) => ({ path: r.path, views: toCount(r.views) })),
    });
  });

  app.get("/api/stats/path-daily", async (c) => {
    const path = c.req.query("path");
    if (!path || path.length > 512 || !path.startsWith("/")) {
      throw new BadInputError("path must be given, start with '/' and be at most 512 characters");
    }
    const { from, to } = dateRange(c, maxDays);
    const rows = await statsQuery(
      `SELECT ${q(spec.partitionColumn)} AS d, COUNT(*) AS views FROM ${q(spec.table)}
       WHERE ${q(spec.partitionColumn)} BETWEEN ? AND ? AND path = ?
       GROUP BY ${q(spec.partitionColumn)} ORDER BY ${q(spec.partitionColumn)}`,
      [from, to, path],
      c.req.raw.signal,
    );
    return c.json({
      path,
      from,
      to,
      days: rows.map((r) => ({ date: String(r.d), views: toCount(r.views) })),
    });
  });

  // Admin: the seed's route names, GET allowed on the triggers for its curl runbook.
  app.use("/admin/*", async (c, next) => {
    if (!o.adminToken) {
      return c.json(
        {
          error: "admin_disabled",
          message: "admin routes are off: set ADMIN_TOKEN to turn them on",
        },
        403,
      );
    }
    if (!(await hasBearer(c, o.adminToken))) return unauthorized(c, "ADMIN_TOKEN", "admin");
    await next();
  });

  const trigger = (kind: JobKind) => async (c: Context<AppEnv>) => {
    const date = parsePartitionDate(c.req.query("date"));
    const job = await runner.start(kind, date);
    o.waitUntil?.(c, runner.done(date));
    return c.json({ accepted: true, job, status: `/admin/archive-status?date=${date}` }, 202);
  };
  app.on(["GET", "POST"], "/admin/trigger-archive", trigger("archive"));
  app.on(["GET", "POST"], "/admin/trigger-cleanup", trigger("cleanup"));

  app.get("/admin/archive-status", async (c) => {
    const date = parsePartitionDate(c.req.query("date"));
    const status = await partitionStatus(ctx, date);
    return c.json({ ...status, job: runner.get(date) ?? null });
  });

  app.get("/admin/partitions", async (c) => {
    const records = await ctx.ledger.list(spec.table);
    const partitions = [];
    for (const r of records) {
      const s = await partitionStatus(ctx, r.date);
      partitions.push({
        date: r.date,
        state: r.state,
        rows: r.eventCount,
        parts: r.partCount,
        bytes: r.fileSize,
        rawBytes: r.rawSize,
        verifiedAt: r.verifiedAt,
        cleaned: r.d1Cleaned === 1,
        cleanedCount: r.cleanedCount,
        hotRows: s.hotRows,
        lateRows: s.lateRows,
        lastError: r.lastError,
        leaseOwner: r.leaseOwner,
        job: runner.get(r.date) ?? null,
      });
    }
    return c.json({ table: spec.table, partitions });
  });

  return app;
}

function parseLine(line: string, index: number): unknown {
  try {
    return JSON.parse(line);
  } catch (err) {
    throw new BadEventError(index, `not JSON: ${(err as Error).message}`);
  }
}

function intParam(c: Context, name: string, def: number, min: number, max: number): number {
  const raw = c.req.query(name);
  if (raw === undefined || raw === "") return def;
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new BadInputError(`${name} must be a whole number from ${min} to ${max}`);
  }
  return Number(raw);
}

/** `from`/`to` (YYYY-MM-DD, inclusive); by default the last 7 days up to today (UTC). */
function dateRange(c: Context, maxDays: number): { from: string; to: string } {
  const toRaw = c.req.query("to");
  const fromRaw = c.req.query("from");
  const to = toRaw === undefined ? daysBefore(new Date(), 0) : parsePartitionDate(toRaw);
  const from =
    fromRaw === undefined
      ? daysBefore(new Date(`${to}T00:00:00Z`), 6)
      : parsePartitionDate(fromRaw);
  if (from > to) throw new BadInputError(`from ${from} is after to ${to}`);
  if (from < daysBefore(new Date(`${to}T00:00:00Z`), maxDays - 1)) {
    throw new BadInputError(`from..to spans more than ${maxDays} days`);
  }
  return { from, to };
}

import { Hono } from "hono";
import type { Context } from "hono";
import { cors } from "hono/cors";
import { requestId } from "hono/request-id";
import type { JobContext } from "../core/archive/context.js";
import type { Jobs } from "../core/archive/runner.js";
import { describeError } from "../core/errors.js";
import type { StatsQuery } from "../core/stats/admission.js";
import { statsReader } from "../core/stats/queries.js";
import { optionalBearer } from "./bearer.js";
import type { AppEnv, RequestLog } from "./env.js";
import { refuseNulInQuery } from "./query-nul.js";
import { adminRoutes } from "./routes/admin.js";
import { type ConsoleAssets, consoleRoutes } from "./routes/console.js";
import { ingestRoutes } from "./routes/ingest.js";
import { statsRoutes } from "./routes/stats.js";
import { type TraceOptions, traceRoutes } from "./routes/trace.js";
import { httpError } from "./status.js";
import { ingestTableOnly, statsTableOnly } from "./traffic-only.js";

export interface AppOptions {
  ctx: JobContext;
  runner: Jobs;
  /** Other tables the admin routes answer for (`?table=`), each with its own runner. */
  others?: readonly { ctx: JobContext; runner: Jobs }[];
  /** Origins whose pages may call the API from a browser (CORS_ORIGINS); none by default. */
  corsOrigins?: readonly string[];
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
  /** The column the stats routes count views by (SLUICE_PATH_COLUMN, default `path`). */
  pathColumn?: string;
  /** Longest stats range in days. */
  maxStatsDays?: number;
  /**
   * Where the stats routes' queries run, admitted or refused (admitQueries); by default on the
   * hot store's own connection. Node gives SQLite's to worker threads.
   */
  statsQuery?: StatsQuery;
  /** The stats' small reads (coverage: index probes, the ledger), beside the admitted ones. */
  statsProbe?: StatsQuery;
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
  /** The console's built files, served at `/` and `/console/*`; without them, no page. */
  console?: ConsoleAssets;
}

/** The sluice HTTP API: ingest, stats and admin, on any runtime Hono runs on. */
export function createApp(o: AppOptions): Hono<AppEnv> {
  const { ctx } = o;
  const { source, spec } = ctx;
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
  // A browser's preflight carries no token: CORS answers it before the tokens are asked for.
  if (o.corsOrigins?.length) {
    const origins = [...o.corsOrigins];
    app.use(
      cors({
        origin: origins.includes("*") ? "*" : origins,
        allowMethods: ["GET", "POST", "DELETE", "OPTIONS"],
        allowHeaders: ["Authorization", "Content-Type"],
        exposeHeaders: ["Retry-After", "X-Request-Id", "Content-Disposition"],
        maxAge: 600,
      }),
    );
  }
  // Each group's token before anything else reads the request (the ingest body included).
  app.use("/api/events", optionalBearer(o.ingestToken, "INGEST_TOKEN", "ingest"));
  app.use("/api/stats/*", optionalBearer(o.statsToken, "STATS_TOKEN", "stats"));
  app.use("/api/trace/*", optionalBearer(o.traceToken, "TRACE_TOKEN", "trace"));
  const pathColumn = o.pathColumn ?? "path";
  app.use("/api/events", ingestTableOnly(ctx));
  app.use("/api/stats/*", statsTableOnly(ctx, pathColumn));
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

  app.route(
    "/api/events",
    ingestRoutes({
      source,
      table: spec.table,
      maxBodyBytes: o.maxBodyBytes,
      maxEvents: o.maxEvents,
      onIngest: o.onIngest,
    }),
  );
  if (o.trace) app.route("/api/trace", traceRoutes({ ...o.trace, log: o.trace.log ?? o.log }));
  const query = o.statsQuery ?? ((sql, params) => source.query(sql, params));
  app.route(
    "/api/stats",
    statsRoutes({
      stats: statsReader(
        query,
        source.dialect,
        spec,
        pathColumn,
        // Cleanup counts spec.rollupColumn: only that column's stats can be read from the
        // counts; for another, a day with rows deleted says it is unanswered. An app over
        // tables with no ledger (the trace routes alone) answers from the hot table.
        ctx.ledger
          ? {
              ...ctx.ledger.tables,
              counted: spec.rollupColumn?.toLowerCase() === pathColumn.toLowerCase(),
            }
          : null,
        o.statsProbe ?? query,
      ),
      maxDays: o.maxStatsDays ?? 366,
    }),
  );
  if (o.console) app.route("/", consoleRoutes(o.console));
  app.route(
    "/admin",
    adminRoutes({
      ctx,
      runner: o.runner,
      others: o.others,
      adminToken: o.adminToken,
      waitUntil: o.waitUntil,
    }),
  );
  return app;
}

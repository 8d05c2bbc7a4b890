import { type Context, Hono } from "hono";
import type { JobContext } from "../../core/archive/context.js";
import { partitionStatus } from "../../core/archive/partition-status.js";
import type { JobKind, Jobs } from "../../core/archive/runner.js";
import { parsePartitionDate } from "../../core/dates.js";
import { NotFoundError } from "../../core/errors.js";
import { hasBearer, unauthorized } from "../bearer.js";
import type { AppEnv } from "../env.js";

export interface AdminOptions {
  ctx: JobContext;
  runner: Jobs;
  /** Other tables, chosen with `?table=`; without it the routes answer for `ctx`'s. */
  others?: readonly { ctx: JobContext; runner: Jobs }[];
  /** Bearer token for every route here; without one they answer 403. */
  adminToken?: string;
  /** Keep the runtime alive for a job that runs on after its 202 (a Worker's waitUntil). */
  waitUntil?: (c: Context<AppEnv>, work: Promise<void>) => void;
}

/**
 * The admin routes (mounted at /admin), under the names the archive's runbook uses; GET is
 * allowed on the triggers for curl.
 */
export function adminRoutes(o: AdminOptions): Hono<AppEnv> {
  const tables = [{ ctx: o.ctx, runner: o.runner }, ...(o.others ?? [])];
  const names = tables.map((t) => t.ctx.spec.table);
  /** The table a request names (`?table=`), or the service's own. */
  const pick = (c: Context<AppEnv>) => {
    const name = c.req.query("table");
    const found = name === undefined ? tables[0] : tables.find((t) => t.ctx.spec.table === name);
    if (!found) {
      throw new NotFoundError(`no table '${name}' here: this service archives ${names.join(", ")}`);
    }
    return found;
  };
  const app = new Hono<AppEnv>();

  app.use("*", async (c, next) => {
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
    const { ctx, runner } = pick(c);
    const date = parsePartitionDate(c.req.query("date"));
    const job = await runner.start(kind, date);
    o.waitUntil?.(c, runner.done(date));
    const table = ctx === o.ctx ? "" : `&table=${encodeURIComponent(ctx.spec.table)}`;
    return c.json(
      { accepted: true, job, status: `/admin/archive-status?date=${date}${table}` },
      202,
    );
  };
  app.on(["GET", "POST"], "/trigger-archive", trigger("archive"));
  app.on(["GET", "POST"], "/trigger-cleanup", trigger("cleanup"));

  app.get("/archive-status", async (c) => {
    const { ctx, runner } = pick(c);
    const date = parsePartitionDate(c.req.query("date"));
    const status = await partitionStatus(ctx, date);
    return c.json({
      ...status,
      record: withoutJob(status.record),
      job: runner.view(date, status.record),
    });
  });

  app.get("/partitions", async (c) => {
    const { ctx, runner } = pick(c);
    const records = await ctx.ledger.list(ctx.spec.table);
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
        cleaned: r.cleaned,
        cleanedCount: r.cleanedCount,
        hotRows: s.hotRows,
        lateRows: s.lateRows,
        // Rows the verified parts' rollups count (what cleanup checks before it deletes);
        // null when the table keeps no rollups.
        rollupRows: ctx.spec.rollupColumn
          ? s.parts.reduce((n, p) => n + (p.rollupRows ?? 0), 0)
          : null,
        rollupParts: s.parts.map((p) => ({
          part: p.part,
          rows: p.eventCount,
          rollupRows: p.rollupRows,
          // Rows cleanup deleted and counted for the stats; below cleanedCount: some uncounted.
          deletedRollupRows: p.deletedRollupRows,
          cleanedCount: p.cleanedCount,
        })),
        lastError: r.lastError,
        leaseOwner: r.leaseOwner,
        job: runner.view(r.date, r),
      });
    }
    return c.json({ table: ctx.spec.table, tables: names, partitions });
  });

  return app;
}

/** The record as the API shows it: its job is the answer's own member, parsed. */
function withoutJob<R extends { job: string | null }>(record: R | null): Omit<R, "job"> | null {
  if (!record) return null;
  const { job: _, ...rest } = record;
  return rest;
}

import { type Context, Hono } from "hono";
import { daysBefore, parseDateField } from "../../core/dates.js";
import { BadInputError } from "../../core/errors.js";
import type { StatsReader } from "../../core/stats/queries.js";
import type { AppEnv } from "../env.js";

export interface StatsOptions {
  stats: StatsReader;
  /** Longest range in days. */
  maxDays: number;
}

/** GET /top-paths and /path-daily (mounted at /api/stats). */
export function statsRoutes(o: StatsOptions): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/top-paths", async (c) => {
    const { from, to } = dateRange(c, o.maxDays);
    const limit = intParam(c, "limit", 10, 1, 1000);
    const { paths, coverage } = await o.stats.topPaths(from, to, limit, c.req.raw.signal);
    return c.json({ from, to, paths, coverage });
  });

  app.get("/path-daily", async (c) => {
    const path = c.req.query("path");
    if (!path || path.length > 512 || !path.startsWith("/")) {
      throw new BadInputError("path must be given, start with '/' and be at most 512 characters");
    }
    const { from, to } = dateRange(c, o.maxDays);
    const days = await o.stats.pathDaily(path, from, to, c.req.raw.signal);
    return c.json({ path, from, to, days });
  });

  return app;
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
  const to = toRaw === undefined ? daysBefore(new Date(), 0) : parseDateField("to", toRaw);
  const from =
    fromRaw === undefined
      ? daysBefore(new Date(`${to}T00:00:00Z`), 6)
      : parseDateField("from", fromRaw);
  if (from > to) throw new BadInputError(`from ${from} is after to ${to}`);
  if (from < daysBefore(new Date(`${to}T00:00:00Z`), maxDays - 1)) {
    throw new BadInputError(`from..to spans more than ${maxDays} days`);
  }
  return { from, to };
}

import type { MiddlewareHandler } from "hono";
import type { JobContext } from "../core/archive/context.js";
import { dayColumn } from "../core/archive/partition.js";
import { NotFoundError } from "../core/errors.js";
import { TRAFFIC_COLUMNS } from "../core/ingest/event.js";

const HOW =
  'Point SLUICE_TABLE at such a table (sluice prepare-data makes one), or mark it in the config file with "api": true, to enable it';

/**
 * Ingest writes the page-view table's columns. On a table of another shape it is a 404 that
 * says what it needs, not a database error.
 */
export function ingestTableOnly(ctx: JobContext): MiddlewareHandler {
  return refuseUnless(
    ctx,
    (columns) => {
      const missing = TRAFFIC_COLUMNS.filter((c) => !columns.has(c));
      if (missing.length) return `'${ctx.spec.table}' has no ${missing.join(", ")}`;
      return partitionedByDate(ctx);
    },
    `serves a page-view table (${TRAFFIC_COLUMNS.join(", ")}, by event_date)`,
  );
}

/** The stats routes count a table's rows per day and `pathColumn`: a 404 on a table without. */
export function statsTableOnly(ctx: JobContext, pathColumn: string): MiddlewareHandler {
  return refuseUnless(
    ctx,
    (columns) => {
      if (!columns.has(pathColumn.toLowerCase())) {
        return `'${ctx.spec.table}' has no ${pathColumn} (name the column to count by with SLUICE_PATH_COLUMN, or "pathColumn" in the config file)`;
      }
      return partitionedByDate(ctx);
    },
    "counts views per day and path of a table partitioned by date",
  );
}

function partitionedByDate(ctx: JobContext): string | null {
  const { spec } = ctx;
  return dayColumn(spec).kind === "date"
    ? null
    : `'${spec.table}' is partitioned by the timestamp '${spec.partitionColumn}', not by a date`;
}

/** A middleware that answers 404 when `why` finds a reason in the table's (lower-cased) columns. */
function refuseUnless(
  ctx: JobContext,
  why: (columns: Set<string>) => string | null,
  serves: string,
): MiddlewareHandler {
  let reason: Promise<string | null> | null = null;
  const check = async () =>
    why(new Set((await ctx.source.columnInfo(ctx.spec.table))?.map((c) => c.name.toLowerCase())));
  return async (c, next) => {
    reason ??= check().catch((err) => {
      reason = null; // a database that did not answer is asked again next time
      throw err;
    });
    const found = await reason;
    if (found !== null) throw new NotFoundError(`${c.req.path} ${serves}; ${found}. ${HOW}`);
    await next();
  };
}

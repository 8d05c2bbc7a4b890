import type { MiddlewareHandler } from "hono";
import type { JobContext } from "../core/archive/context.js";
import { dayColumn } from "../core/archive/partition.js";
import { NotFoundError } from "../core/errors.js";
import { TRAFFIC_COLUMNS } from "../core/ingest/event.js";

/**
 * Ingest and the stats routes read and write the page-view table's columns. On a table of
 * another shape they are 404s that say what they need, not a database error.
 */
export function trafficOnly(ctx: JobContext): MiddlewareHandler {
  let why: Promise<string | null> | null = null;
  const check = async (): Promise<string | null> => {
    const { spec, source } = ctx;
    const columns = new Set(
      (await source.columnInfo(spec.table))?.map((c) => c.name.toLowerCase()),
    );
    const missing = TRAFFIC_COLUMNS.filter((c) => !columns.has(c));
    if (missing.length) return `'${spec.table}' has no ${missing.join(", ")}`;
    if (dayColumn(spec).kind !== "date") {
      return `'${spec.table}' is partitioned by the timestamp '${spec.partitionColumn}', not by a date`;
    }
    return null;
  };
  return async (c, next) => {
    why ??= check().catch((err) => {
      why = null; // a database that did not answer is asked again next time
      throw err;
    });
    const reason = await why;
    if (reason !== null) {
      throw new NotFoundError(
        `${c.req.path} serves a page-view table (${TRAFFIC_COLUMNS.join(", ")}, by event_date); ${reason}. Point SLUICE_TABLE at such a table (sluice prepare-data makes one) to enable it`,
      );
    }
    await next();
  };
}

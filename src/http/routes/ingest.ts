import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { BadInputError } from "../../core/errors.js";
import { splitEventBatch } from "../../core/ingest/batch.js";
import { BadEventError, TRAFFIC_COLUMNS, parseTrafficEvent } from "../../core/ingest/event.js";
import { insertAtomically } from "../../core/sql/insert.js";
import type { SqlSource } from "../../core/sql/source.js";
import type { AppEnv } from "../env.js";

export interface IngestOptions {
  source: SqlSource;
  table: string;
  /** Largest body in bytes (413 above). */
  maxBodyBytes: number;
  /** Most events in one batch (413 above). */
  maxEvents: number;
  /** Told of every accepted batch. */
  onIngest?: (events: number) => void;
}

/** POST / (mounted at /api/events): a batch of page views, all inserted or none. */
export function ingestRoutes(o: IngestOptions): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.post(
    "/",
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
      const inserted = await insertAtomically(o.source, o.table, TRAFFIC_COLUMNS, rows);
      const dates: Record<string, number> = {};
      for (const r of rows)
        dates[r.event_date as string] = (dates[r.event_date as string] ?? 0) + 1;
      o.onIngest?.(inserted);
      return c.json({ inserted, dates }, 201);
    },
  );
  return app;
}

function parseLine(line: string, index: number): unknown {
  try {
    return JSON.parse(line);
  } catch (err) {
    throw new BadEventError(index, `not JSON: ${(err as Error).message}`);
  }
}

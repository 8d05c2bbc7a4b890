import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { BadInputError, NotFoundError } from "../../core/errors.js";
import { StreamedArray, jsonObjectStream } from "../../core/json/object-stream.js";
import { ContainerIds } from "../../core/trace/container-ids.js";
import {
  type Direction,
  type LineageEdge,
  type LineageEnd,
  walkLineage,
} from "../../core/trace/lineage.js";
import { computeMsdPareto } from "../../core/trace/msd-reads.js";
import { idBatches } from "../../core/trace/readers.js";
import { checkSeedFilter, resolveSeeds } from "../../core/trace/seed-resolve.js";
import type { AppEnv } from "../env.js";
import { admit, containersOf, eventsBody, eventsRequest } from "../trace/events.js";
import type { TraceOptions } from "../trace/options.js";
import { checkProfile, jsonBody } from "../trace/request.js";
import { requestStop, slotted, streamed } from "../trace/response.js";
import { traceJobRoutes } from "./trace-jobs.js";

export type { TraceOptions };

/**
 * The MES trace stages (seed-resolve -> lineage -> events) as routes. Events are written to
 * the socket as rows arrive, in the API's response shape; a client that goes away cancels the
 * stream, which stops the statements still running. Each request reads holding one of the
 * DB_SLOW_MAX_CONCURRENT slots (trace/response.ts).
 */
export function traceRoutes(o: TraceOptions): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use(
    "*",
    bodyLimit({
      maxSize: o.maxBodyBytes,
      onError: (c) =>
        c.json(
          {
            error: "too_large",
            message: `body over ${o.maxBodyBytes} bytes`,
            limit: o.maxBodyBytes,
          },
          413,
        ),
    }),
  );
  app.use("*", async (c, next) => {
    const full = o.memoryGuard?.();
    if (full) {
      c.header("Retry-After", "30");
      return c.json({ error: "busy", message: `refused to protect the process: ${full}` }, 503);
    }
    await next();
  });

  app.post("/seed-resolve", async (c) => {
    const body = await jsonBody(c);
    const profile = checkProfile(body.profile);
    const filter = checkSeedFilter(body.filter);
    return slotted(o, c, async () => {
      const seeds = await resolveSeeds(o.source, filter, {
        fetchSize: o.fetchSize,
        signal: c.req.raw.signal,
      });
      return c.json({
        profile,
        lots: seeds.lots.length,
        moves: seeds.moves,
        count: seeds.containers.length,
        containers: seeds.containers,
      });
    });
  });

  app.post("/lineage", async (c) => {
    const body = await jsonBody(c);
    const profile = checkProfile(body.profile);
    const seeds = containersOf(o, body.containers);
    const direction: Direction = profile === "query_tool" ? "forward" : "backward";
    return slotted(o, c, async (keep) => {
      // Streamed as the walk finds edges (114K containers make 54 MB of JSON): edges first,
      // then the containers reached, which only the end of the walk knows.
      const stop = requestStop(c);
      let end: LineageEnd | null = null;
      const walk = walkLineage(o.source, seeds, direction, { signal: stop.signal });
      // The first statement runs before the status is sent: a failure there is a proper error.
      const first = await walk.next();
      const edges = async function* (): AsyncGenerator<LineageEdge[]> {
        try {
          for (let step = first; ; step = await walk.next()) {
            if (step.done) {
              end = step.value;
              return;
            }
            o.gc?.count(step.value.length);
            yield step.value;
          }
        } finally {
          await walk.return({ containers: new ContainerIds(), depth: 0 });
        }
      };
      const reached = () => (end as LineageEnd).containers;
      const stream = jsonObjectStream([
        ["profile", profile],
        ["direction", direction],
        ["edges", new StreamedArray(edges)],
        ["containers", new StreamedArray(() => idBatches(reached(), 5000))],
        ["count", () => reached().size],
        ["depth", () => (end as LineageEnd).depth],
      ]);
      return streamed(o, c, stream, stop, keep(), "application/json");
    });
  });

  // The MSD pareto alone: the same reads as /events with its trailer, but no rows sent.
  app.post("/pareto", async (c) => {
    const body = await jsonBody(c);
    if (body.profile !== undefined && body.profile !== "mid_section_defect") {
      throw new BadInputError("the pareto is mid_section_defect's: profile must be that or absent");
    }
    const cids = containersOf(o, body.containers);
    admit(o, c, "mid_section_defect", cids.size);
    return slotted(o, c, async () => {
      const { rows, msd } = await computeMsdPareto(o.source, cids, {
        workers: o.workersPerDomain,
        fetchSize: o.fetchSize,
        signal: c.req.raw.signal,
        gc: o.gc,
      });
      return c.json({ profile: "mid_section_defect", containers: cids.size, rows, msd });
    });
  });

  app.post("/events", async (c) => {
    const r = await eventsRequest(o, c);
    const ndjson = (c.req.header("accept") ?? "").includes("application/x-ndjson");
    return slotted(o, c, async (keep) => {
      const stop = requestStop(c);
      const { stream } = await eventsBody(o, r, stop.signal, ndjson);
      c.header("X-Trace-Containers", String(r.cids.size));
      const type = ndjson ? "application/x-ndjson" : "application/json";
      return streamed(o, c, stream, stop, keep(), type);
    });
  });

  if (o.jobs) {
    app.route("/jobs", traceJobRoutes(o, o.jobs));
  } else {
    app.all("/jobs/*", () => {
      throw new NotFoundError("trace jobs need an object store (SLUICE_STORE)");
    });
  }

  return app;
}

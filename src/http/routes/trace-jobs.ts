import { Hono } from "hono";
import { webCodec } from "../../core/bytes/codec.js";
import { BadInputError, JobNotReadyError, NotFoundError } from "../../core/errors.js";
import type { TraceJobs } from "../../core/trace/trace-jobs.js";
import type { AppEnv } from "../env.js";
import { eventsBody, eventsRequest } from "../trace/events.js";
import type { TraceOptions } from "../trace/options.js";
import { acceptsGzip, requestStop } from "../trace/response.js";
import { watchedBody } from "../watched-body.js";

/**
 * Trace jobs (mounted at /api/trace/jobs): the same request as /events, run in the background,
 * 202 now and the result in the object store; its status, its result, and DELETE.
 */
export function traceJobRoutes(o: TraceOptions, jobs: TraceJobs): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post("/", async (c) => {
    const r = await eventsRequest(o, c, false);
    let summary: () => Record<string, unknown> = () => ({});
    const job = await jobs.start(
      { profile: r.profile, containers: r.cids.size, domains: r.domains },
      {
        // Jobs wait for a slot however many requests queue: TRACE_JOBS_MAX bounds them.
        acquire: (signal) => o.slots.acquire(signal, true),
        body: async (signal, wrote) => {
          const b = await eventsBody(o, r, signal, false, wrote);
          summary = b.summary;
          return b.stream;
        },
        summary: () => summary(),
      },
    );
    o.log?.info(
      { reqId: c.get("requestId"), job: job.id, profile: r.profile, containers: r.cids.size },
      "trace job started",
    );
    return c.json(
      { ...job, status: `/api/trace/jobs/${job.id}`, result: `/api/trace/jobs/${job.id}/result` },
      202,
    );
  });

  app.get("/", async (c) => {
    const raw = c.req.query("limit") ?? "50";
    if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > 1000) {
      throw new BadInputError("limit must be a whole number from 1 to 1000");
    }
    const listed = await jobs.list(Number(raw));
    if (!listed) throw new NotFoundError("this object store cannot list, so jobs cannot be listed");
    const now = Date.now();
    return c.json({
      jobs: listed.map((s) => ({
        id: s.id,
        state: s.state,
        profile: s.profile,
        containers: s.containers,
        createdAt: s.createdAt,
        finishedAt: s.finishedAt,
        ageSeconds: Math.max(0, Math.round((now - Date.parse(s.createdAt)) / 1000)),
        error: s.error,
        status: `/api/trace/jobs/${s.id}`,
      })),
    });
  });

  const jobStatus = async (id: string) => {
    const status = await jobs.status(id);
    if (!status) throw new NotFoundError(`no trace job ${id}`);
    return status;
  };

  app.get("/:id", async (c) => c.json(await jobStatus(c.req.param("id"))));

  app.get("/:id/result", async (c) => {
    const id = c.req.param("id");
    const status = await jobStatus(id);
    if (status.state !== "succeeded") {
      throw new JobNotReadyError(id, status.state, status.error);
    }
    const gz = await jobs.result(id);
    if (!gz) throw new NotFoundError(`trace job ${id} has no stored result`);
    // Stored gzipped: sent as is to a client that takes gzip, else decompressed on the way.
    const gzip = acceptsGzip(c);
    const body = gzip ? gz : gz.pipeThrough(o.codec?.gunzip() ?? webCodec.gunzip());
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    if (gzip) headers["Content-Encoding"] = "gzip";
    // No slot is held, but a client that does not read would hold the stored object open.
    const watched = watchedBody(body, {
      idleMs: o.idleTimeoutMs ?? 30_000,
      stop: requestStop(c),
      stopping: o.stopping,
      ended: () => undefined,
    });
    return c.body(watched, 200, headers);
  });

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    if (!(await jobs.remove(id))) throw new NotFoundError(`no trace job ${id}`);
    return c.body(null, 204);
  });

  return app;
}

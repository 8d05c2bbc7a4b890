import { Hono } from "hono";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { type Codec, webCodec } from "../../core/bytes/codec.js";
import {
  BadInputError,
  JobNotReadyError,
  NotFoundError,
  TooManyContainersError,
  describeError,
} from "../../core/errors.js";
import { StreamedArray, jsonObjectStream } from "../../core/json/object-stream.js";
import { traceJsonStream, traceNdjsonStream } from "../../core/json/trace-stream.js";
import type { Semaphore } from "../../core/semaphore.js";
import type { Row, SqlSource } from "../../core/sql/source.js";
import { ContainerIds } from "../../core/trace/container-ids.js";
import {
  EVENT_DOMAINS,
  type EventDomain,
  domainEvents,
  isEventDomain,
} from "../../core/trace/events.js";
import {
  type Direction,
  type LineageEdge,
  type LineageEnd,
  walkLineage,
} from "../../core/trace/lineage.js";
import {
  MSD_DOMAIN_ORDER,
  MsdPareto,
  type MsdResult,
  computeMsdPareto,
  feedMsdLineage,
} from "../../core/trace/msd.js";
import type { RowPacer } from "../../core/trace/pacer.js";
import { idBatches } from "../../core/trace/readers.js";
import { MES_ID, checkSeedFilter, resolveSeeds } from "../../core/trace/seed-resolve.js";
import type { TraceJobs } from "../../core/trace/trace-jobs.js";
import type { AppEnv, RequestLog } from "../env.js";
import { IdleClientError, watchedBody } from "../watched-body.js";

export const PROFILES = ["query_tool", "query_tool_reverse", "mid_section_defect"] as const;
export type Profile = (typeof PROFILES)[number];

export interface TraceOptions {
  /** The MES database, with a pool of its own so slow trace queries never starve the rest. */
  source: SqlSource;
  /** DB_SLOW_MAX_CONCURRENT: trace requests reading the database at once. */
  slots: Semaphore;
  /** TRACE_EVENTS_CID_LIMIT: containers allowed for query_tool / query_tool_reverse. */
  cidLimit: number;
  /** Statements in flight per domain (the seed's two workers). */
  workersPerDomain: number;
  fetchSize: number;
  maxBodyBytes: number;
  /** Full collections every so many rows streamed, by all trace requests (TRACE_GC_EVERY_ROWS). */
  gc?: RowPacer;
  /**
   * TRACE_IDLE_TIMEOUT_MS: longest a streamed response may wait for its client to take the
   * next chunk before it is cut and its statements stopped (default 30 s).
   */
  idleTimeoutMs?: number;
  /** Aborted when the service stops: a client that is not reading is not waited for. */
  stopping?: AbortSignal;
  /** Why the process is too full to take a trace request now, or null. */
  memoryGuard?: () => string | null;
  /** Background trace jobs (POST /api/trace/jobs): results and statuses in the object store. */
  jobs?: TraceJobs;
  /** Decompresses a stored job result for a client that does not take gzip. */
  codec?: Codec;
  log?: RequestLog;
}

function checkProfile(value: unknown): Profile {
  if (!PROFILES.includes(value as Profile)) {
    throw new BadInputError(`profile must be one of ${PROFILES.join(", ")}`);
  }
  return value as Profile;
}

/**
 * The request's container ids, checked and packed (each once). The parsed body is not kept
 * (see jsonBody), so its 100K+ strings die before the events are read.
 */
function checkContainers(value: unknown, max = 2_000_000): ContainerIds {
  if (!Array.isArray(value) || value.length === 0 || value.length > max) {
    throw new BadInputError(`containers must be an array of 1 to ${max} container ids`);
  }
  let chars = 0;
  for (const id of value) if (typeof id === "string") chars += id.length;
  const ids = new ContainerIds({ ids: value.length, chars });
  for (const [i, id] of value.entries()) {
    if (typeof id !== "string" || !MES_ID.test(id)) {
      throw new BadInputError(
        `containers[${i}] is not a container id (letters, digits, _.:-; 1-64)`,
      );
    }
    ids.add(id);
  }
  return ids;
}

/**
 * The body as an object, read from the raw request: Hono's c.req.json() would keep it cached
 * for as long as the response streams.
 */
async function jsonBody(c: Context): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    body = await c.req.raw.json();
  } catch (err) {
    throw new BadInputError(`body is not JSON: ${(err as Error).message}`);
  }
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw new BadInputError("body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

/**
 * The MES trace stages (seed-resolve -> lineage -> events) as routes. Events are written to
 * the socket as rows arrive, in the seed's response shape; a client that goes away cancels
 * the stream, which stops the statements still running.
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

  /** The body's containers, counted toward a collection: a long id list leaves MBs behind. */
  const containersOf = (value: unknown): ContainerIds => {
    const ids = checkContainers(value);
    o.gc?.count(ids.size);
    return ids;
  };
  /**
   * What a streamed request's statements read with: aborted when its client goes away, or
   * when its body stops early (watchedBody).
   */
  const requestStop = (c: Context): AbortController => {
    const stop = new AbortController();
    const gone = c.req.raw.signal;
    if (gone.aborted) stop.abort(gone.reason);
    else gone.addEventListener("abort", () => stop.abort(gone.reason), { once: true });
    return stop;
  };

  /**
   * A streamed 200 that a client cannot hold by not reading (TRACE_IDLE_TIMEOUT_MS). Its slot
   * is given back once the body has ended, failed, or been stopped and its statements with
   * it; what it left is then collected (the pacer decides whether it was large enough).
   */
  const streamed = (
    c: Context<AppEnv>,
    stream: ReadableStream<Uint8Array>,
    stop: AbortController,
    release: () => void,
    type: string,
  ): Response => {
    const body = watchedBody(stream, {
      idleMs: o.idleTimeoutMs ?? 30_000,
      stop,
      stopping: o.stopping,
      ended: (how, reason) => {
        release();
        o.gc?.end();
        const reqId = c.get("requestId");
        if (reason instanceof IdleClientError) {
          o.log?.info(
            { reqId, idleMs: reason.idleMs },
            "trace response cut: the client stopped reading",
          );
        } else if (how === "failed") {
          o.log?.error({ reqId, err: describeError(reason) }, "trace response failed mid-way");
        }
      },
    });
    return c.body(body, 200, { "Content-Type": type });
  };

  /** Run `fn` holding one of the slow-query slots; a client gone while waiting frees its place. */
  const withSlot = async <T>(c: Context, fn: () => Promise<T>): Promise<T> => {
    const release = await o.slots.acquire(c.req.raw.signal);
    try {
      return await fn();
    } finally {
      release();
    }
  };

  app.post("/seed-resolve", async (c) => {
    const body = await jsonBody(c);
    const profile = checkProfile(body.profile);
    const filter = checkSeedFilter(body.filter);
    const seeds = await withSlot(c, () =>
      resolveSeeds(o.source, filter, { fetchSize: o.fetchSize, signal: c.req.raw.signal }),
    );
    return c.json({
      profile,
      lots: seeds.lots.length,
      moves: seeds.moves,
      count: seeds.containers.length,
      containers: seeds.containers,
    });
  });

  app.post("/lineage", async (c) => {
    const body = await jsonBody(c);
    const profile = checkProfile(body.profile);
    const seeds = containersOf(body.containers);
    const direction: Direction = profile === "query_tool" ? "forward" : "backward";
    // Streamed as the walk finds edges (the seed's 114K containers made 54 MB of JSON): edges
    // first, then the containers reached, which only the end of the walk knows.
    const release = await o.slots.acquire(c.req.raw.signal);
    const stop = requestStop(c);
    let end: LineageEnd | null = null;
    const walk = walkLineage(o.source, seeds, direction, { signal: stop.signal });
    let first: IteratorResult<LineageEdge[], LineageEnd>;
    try {
      // The first statement runs before the status is sent: a failure there is a proper error.
      first = await walk.next();
    } catch (err) {
      release();
      throw err;
    }
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
    return streamed(c, stream, stop, release, "application/json");
  });

  /**
   * D1 of the seed: interactive profiles are refused over the limit before any event query;
   * MSD is not (a missing container would make its statistics wrong), it warns and goes on.
   */
  const admit = (c: Context<AppEnv>, profile: Profile, count: number) => {
    if (count <= o.cidLimit) return;
    if (profile !== "mid_section_defect") {
      throw new TooManyContainersError(profile, count, o.cidLimit);
    }
    o.log?.info(
      { reqId: c.get("requestId"), profile, containers: count, limit: o.cidLimit },
      "mid_section_defect over TRACE_EVENTS_CID_LIMIT: going on",
    );
  };

  // The MSD pareto alone: the same reads as /events with its trailer, but no rows sent.
  app.post("/pareto", async (c) => {
    const body = await jsonBody(c);
    if (body.profile !== undefined && body.profile !== "mid_section_defect") {
      throw new BadInputError("the pareto is mid_section_defect's: profile must be that or absent");
    }
    const cids = containersOf(body.containers);
    admit(c, "mid_section_defect", cids.size);
    const { rows, msd } = await withSlot(c, () =>
      computeMsdPareto(o.source, cids, {
        workers: o.workersPerDomain,
        fetchSize: o.fetchSize,
        signal: c.req.raw.signal,
        gc: o.gc,
      }),
    );
    return c.json({ profile: "mid_section_defect", containers: cids.size, rows, msd });
  });

  /** An events request (the body of /events and /jobs), checked and admitted. */
  const eventsRequest = async (c: Context<AppEnv>) => {
    const body = await jsonBody(c);
    const profile = checkProfile(body.profile);
    const cids = containersOf(body.containers);
    const requested = body.domains ?? Object.keys(EVENT_DOMAINS);
    if (!Array.isArray(requested) || requested.length === 0 || !requested.every(isEventDomain)) {
      throw new BadInputError(`domains must be a list of ${Object.keys(EVENT_DOMAINS).join(", ")}`);
    }
    admit(c, profile, cids.size);
    const domains = [...new Set(requested as EventDomain[])];
    if (profile === "mid_section_defect") {
      domains.sort((a, b) => MSD_DOMAIN_ORDER.indexOf(a) - MSD_DOMAIN_ORDER.indexOf(b));
    }
    return { profile, cids, domains };
  };

  /**
   * The events response for a request, written as rows arrive; MSD first loads the lineage
   * among the containers (a container's history includes its ancestors'). Call with a slot.
   */
  const eventsBody = async (
    r: { profile: Profile; cids: ContainerIds; domains: EventDomain[] },
    signal: AbortSignal,
    ndjson: boolean,
    wrote?: (domain: string, rows: number) => void,
  ) => {
    const pareto = r.profile === "mid_section_defect" ? new MsdPareto(r.cids) : null;
    if (pareto) await feedMsdLineage(o.source, pareto, r.cids, { signal });
    const feed = async function* (domain: EventDomain): AsyncGenerator<Row[]> {
      for await (const batch of domainEvents(o.source, domain, r.cids, {
        workers: o.workersPerDomain,
        fetchSize: o.fetchSize,
        signal,
        gc: o.gc,
      })) {
        pareto?.add(domain, batch);
        yield batch;
        wrote?.(domain, batch.length);
      }
    };
    const sources = r.domains.map((d) => [d, feed(d)] as const);
    // Computed once, after the last row: the response's trailer and a job's status share it.
    let msd: MsdResult | undefined;
    const summary = (): { msd?: MsdResult } => {
      if (!pareto) return {};
      msd ??= pareto.result();
      return { msd };
    };
    const trailer = pareto ? summary : undefined;
    const stream = (ndjson ? traceNdjsonStream : traceJsonStream)(sources, { trailer });
    return { stream, summary };
  };

  app.post("/events", async (c) => {
    const r = await eventsRequest(c);
    const ndjson = (c.req.header("accept") ?? "").includes("application/x-ndjson");
    const release = await o.slots.acquire(c.req.raw.signal);
    const stop = requestStop(c);
    let stream: ReadableStream<Uint8Array>;
    try {
      ({ stream } = await eventsBody(r, stop.signal, ndjson));
    } catch (err) {
      release();
      throw err;
    }
    c.header("X-Trace-Containers", String(r.cids.size));
    return streamed(c, stream, stop, release, ndjson ? "application/x-ndjson" : "application/json");
  });

  // The same request as /events, run in the background: 202 now, the result in the store.
  app.post("/jobs", async (c) => {
    const jobs = o.jobs;
    if (!jobs) throw new NotFoundError("trace jobs need an object store (SLUICE_STORE)");
    const r = await eventsRequest(c);
    let summary: () => Record<string, unknown> = () => ({});
    const job = await jobs.start(
      { profile: r.profile, containers: r.cids.size, domains: r.domains },
      {
        // Jobs wait for a slot however many requests queue: TRACE_JOBS_MAX bounds them.
        acquire: (signal) => o.slots.acquire(signal, true),
        body: async (signal, wrote) => {
          const b = await eventsBody(r, signal, false, wrote);
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

  const jobStatus = async (id: string) => {
    const status = await o.jobs?.status(id);
    if (!status) throw new NotFoundError(`no trace job ${id}`);
    return status;
  };

  app.get("/jobs/:id", async (c) => c.json(await jobStatus(c.req.param("id"))));

  app.get("/jobs/:id/result", async (c) => {
    const id = c.req.param("id");
    const status = await jobStatus(id);
    if (status.state !== "succeeded") {
      throw new JobNotReadyError(id, status.state, status.error);
    }
    const gz = await o.jobs?.result(id);
    if (!gz) throw new NotFoundError(`trace job ${id} has no stored result`);
    // Stored gzipped: sent as is to a client that takes gzip, else decompressed on the way.
    const gzip = /\bgzip\b/.test(c.req.header("accept-encoding") ?? "");
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

  app.delete("/jobs/:id", async (c) => {
    const id = c.req.param("id");
    if (!(await o.jobs?.remove(id))) throw new NotFoundError(`no trace job ${id}`);
    return c.body(null, 204);
  });

  return app;
}

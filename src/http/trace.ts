import { Hono } from "hono";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { BadInputError, TooManyContainersError } from "../core/errors.js";
import {
  StreamedArray,
  jsonObjectStream,
  traceJsonStream,
  traceNdjsonStream,
} from "../core/json.js";
import type { Semaphore } from "../core/semaphore.js";
import type { Row, SqlSource } from "../core/source.js";
import {
  EVENT_DOMAINS,
  type EventDomain,
  domainEvents,
  isEventDomain,
} from "../core/trace/events.js";
import {
  type Direction,
  type LineageEdge,
  type LineageEnd,
  walkLineage,
} from "../core/trace/lineage.js";
import { MsdPareto, computeMsdPareto, feedMsdLineage } from "../core/trace/msd.js";
import { MES_ID, checkSeedFilter, resolveSeeds } from "../core/trace/seed-resolve.js";
import type { AppEnv, RequestLog } from "./app.js";

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
  /** Why the process is too full to take a trace request now, or null. */
  memoryGuard?: () => string | null;
  log?: RequestLog;
}

function checkProfile(value: unknown): Profile {
  if (!PROFILES.includes(value as Profile)) {
    throw new BadInputError(`profile must be one of ${PROFILES.join(", ")}`);
  }
  return value as Profile;
}

function checkContainers(value: unknown, max = 2_000_000): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > max) {
    throw new BadInputError(`containers must be an array of 1 to ${max} container ids`);
  }
  for (const [i, id] of value.entries()) {
    if (typeof id !== "string" || !MES_ID.test(id)) {
      throw new BadInputError(
        `containers[${i}] is not a container id (letters, digits, _.:-; 1-64)`,
      );
    }
  }
  return [...new Set(value as string[])];
}

async function jsonBody(c: Context): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch (err) {
    throw new BadInputError(`body is not JSON: ${(err as Error).message}`);
  }
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw new BadInputError("body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

/** A streamed 200 whose slot is given back when the body ends, fails, or the client leaves. */
function streamed(
  c: Context,
  stream: ReadableStream<Uint8Array>,
  release: () => void,
  type: string,
): Response {
  const body = stream.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({ flush: release }));
  c.req.raw.signal.addEventListener("abort", release, { once: true });
  return c.body(body, 200, { "Content-Type": type });
}

/** A set's items in arrays of at most `size`. */
function* slices<T>(items: Iterable<T>, size: number): Generator<T[]> {
  let batch: T[] = [];
  for (const item of items) {
    batch.push(item);
    if (batch.length === size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
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
    const seeds = checkContainers(body.containers);
    const direction: Direction = profile === "query_tool" ? "forward" : "backward";
    // Streamed as the walk finds edges (the seed's 114K containers made 54 MB of JSON): edges
    // first, then the containers reached, which only the end of the walk knows.
    const release = await o.slots.acquire(c.req.raw.signal);
    let end: LineageEnd | null = null;
    const walk = walkLineage(o.source, seeds, direction, { signal: c.req.raw.signal });
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
          yield step.value;
        }
      } finally {
        await walk.return({ containers: new Set(), depth: 0 });
      }
    };
    const reached = () => (end as LineageEnd).containers;
    const stream = jsonObjectStream([
      ["profile", profile],
      ["direction", direction],
      ["edges", new StreamedArray(edges)],
      ["containers", new StreamedArray(() => slices(reached(), 5000))],
      ["count", () => reached().size],
      ["depth", () => (end as LineageEnd).depth],
    ]);
    return streamed(c, stream, release, "application/json");
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
    const cids = checkContainers(body.containers);
    admit(c, "mid_section_defect", cids.length);
    const { rows, msd } = await withSlot(c, () =>
      computeMsdPareto(o.source, cids, {
        workers: o.workersPerDomain,
        fetchSize: o.fetchSize,
        signal: c.req.raw.signal,
      }),
    );
    return c.json({ profile: "mid_section_defect", containers: cids.length, rows, msd });
  });

  app.post("/events", async (c) => {
    const body = await jsonBody(c);
    const profile = checkProfile(body.profile);
    const cids = checkContainers(body.containers);
    const msd = profile === "mid_section_defect";
    const requested = body.domains ?? Object.keys(EVENT_DOMAINS);
    if (!Array.isArray(requested) || requested.length === 0 || !requested.every(isEventDomain)) {
      throw new BadInputError(`domains must be a list of ${Object.keys(EVENT_DOMAINS).join(", ")}`);
    }
    admit(c, profile, cids.length);
    // MSD reads defects first: the pareto credits each defective container's quantity to the
    // upstream stations as upstream_history streams by.
    const domains = [...new Set(requested as EventDomain[])];
    if (msd) {
      domains.sort((a, b) => (a === "defect_records" ? -1 : b === "defect_records" ? 1 : 0));
    }
    const pareto = msd ? new MsdPareto(cids) : null;
    const release = await o.slots.acquire(c.req.raw.signal);
    if (pareto) {
      // The edges among the containers: a container's history includes its ancestors'.
      try {
        await feedMsdLineage(o.source, pareto, cids, { signal: c.req.raw.signal });
      } catch (err) {
        release();
        throw err;
      }
    }
    const feed = async function* (domain: EventDomain): AsyncGenerator<Row[]> {
      for await (const batch of domainEvents(o.source, domain, cids, {
        workers: o.workersPerDomain,
        fetchSize: o.fetchSize,
        signal: c.req.raw.signal,
      })) {
        if (pareto && domain === "defect_records") pareto.addDefects(batch);
        if (pareto && domain === "upstream_history") pareto.addUpstream(batch);
        yield batch;
      }
    };
    const sources = domains.map((d) => [d, feed(d)] as const);
    const trailer = pareto ? () => ({ msd: pareto.result() }) : undefined;
    const ndjson = (c.req.header("accept") ?? "").includes("application/x-ndjson");
    const stream = (ndjson ? traceNdjsonStream : traceJsonStream)(sources, { trailer });
    c.header("X-Trace-Containers", String(cids.length));
    return streamed(c, stream, release, ndjson ? "application/x-ndjson" : "application/json");
  });

  return app;
}

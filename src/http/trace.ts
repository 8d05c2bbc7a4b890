import { Hono } from "hono";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { BadInputError, TooManyContainersError } from "../core/errors.js";
import { traceJsonStream, traceNdjsonStream } from "../core/json.js";
import type { Semaphore } from "../core/semaphore.js";
import type { Row, SqlSource } from "../core/source.js";
import {
  EVENT_DOMAINS,
  type EventDomain,
  domainEvents,
  isEventDomain,
} from "../core/trace/events.js";
import { type Direction, traceLineage } from "../core/trace/lineage.js";
import { MsdPareto } from "../core/trace/msd.js";
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
    const lineage = await withSlot(c, () =>
      traceLineage(o.source, seeds, direction, { signal: c.req.raw.signal }),
    );
    return c.json({ profile, direction, count: lineage.containers.length, ...lineage });
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
    // D1 of the seed: interactive profiles are refused over the limit before any event query;
    // MSD is not (a missing container would make its statistics wrong), it warns and goes on.
    if (cids.length > o.cidLimit) {
      if (!msd) throw new TooManyContainersError(profile, cids.length, o.cidLimit);
      o.log?.info(
        { reqId: c.get("requestId"), profile, containers: cids.length, limit: o.cidLimit },
        "mid_section_defect over TRACE_EVENTS_CID_LIMIT: going on",
      );
    }
    // MSD reads defects first: the pareto credits each defective container's quantity to the
    // upstream stations as upstream_history streams by.
    const domains = [...new Set(requested as EventDomain[])];
    if (msd) {
      domains.sort((a, b) => (a === "defect_records" ? -1 : b === "defect_records" ? 1 : 0));
    }
    const pareto = msd ? new MsdPareto() : null;
    const release = await o.slots.acquire(c.req.raw.signal);
    if (pareto) {
      // The edges among the containers: a container's history includes its ancestors'.
      try {
        const lineage = await traceLineage(o.source, cids, "backward", {
          signal: c.req.raw.signal,
        });
        pareto.addLineage(lineage.edges);
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
    // Give the slot back when the body ends, fails, or the client cancels it.
    const body$ = stream.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        flush: () => release(),
      }),
    );
    c.req.raw.signal.addEventListener("abort", () => release(), { once: true });
    return c.body(body$, 200, {
      "Content-Type": ndjson ? "application/x-ndjson" : "application/json",
      "X-Trace-Containers": String(cids.length),
    });
  });

  return app;
}

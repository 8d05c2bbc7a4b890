import type { Context } from "hono";
import { BadInputError, TooManyContainersError } from "../../core/errors.js";
import { type RowBatch, rowsOf } from "../../core/json/json-rows.js";
import { traceJsonStream, traceNdjsonStream } from "../../core/json/trace-stream.js";
import type { ContainerIds } from "../../core/trace/container-ids.js";
import {
  EVENT_DOMAINS,
  type EventDomain,
  domainEvents,
  isEventDomain,
} from "../../core/trace/events.js";
import { feedMsdLineage } from "../../core/trace/msd-reads.js";
import { MSD_DOMAIN_ORDER, MsdPareto, type MsdResult } from "../../core/trace/msd.js";
import type { AppEnv } from "../env.js";
import type { TraceOptions } from "./options.js";
import { type Profile, checkContainers, checkProfile, jsonBody } from "./request.js";

/** The body's containers, counted toward a collection: a long id list leaves MBs behind. */
export function containersOf(o: TraceOptions, value: unknown): ContainerIds {
  const ids = checkContainers(value);
  o.gc?.count(ids.size);
  return ids;
}

/**
 * Interactive profiles are refused over TRACE_EVENTS_CID_LIMIT before any event query; MSD is
 * not (a missing container would make its statistics wrong): it warns and goes on.
 */
export function admit(o: TraceOptions, c: Context<AppEnv>, profile: Profile, count: number): void {
  if (count <= o.cidLimit) return;
  if (profile !== "mid_section_defect") {
    throw new TooManyContainersError(profile, count, o.cidLimit);
  }
  o.log?.info(
    { reqId: c.get("requestId"), profile, containers: count, limit: o.cidLimit },
    // Stryker disable next-line StringLiteral: a log line's words, not a decision
    "mid_section_defect over TRACE_EVENTS_CID_LIMIT: going on",
  );
}

/** An events request: what /events and /jobs read from their body. */
export interface EventsRequest {
  profile: Profile;
  cids: ContainerIds;
  domains: EventDomain[];
}

/**
 * An events request's body, checked and admitted. `interactive: false` (a background job) skips
 * TRACE_EVENTS_CID_LIMIT: that limit keeps a streamed answer short for someone waiting on it,
 * and a job is what a 413 offers instead; jobs are bounded by TRACE_JOBS_MAX, by the slots
 * they wait for, and by the ids a body may hold.
 */
export async function eventsRequest(
  o: TraceOptions,
  c: Context<AppEnv>,
  interactive = true,
): Promise<EventsRequest> {
  const body = await jsonBody(c);
  const profile = checkProfile(body.profile);
  const cids = containersOf(o, body.containers);
  const requested = body.domains ?? Object.keys(EVENT_DOMAINS);
  if (!Array.isArray(requested) || requested.length === 0 || !requested.every(isEventDomain)) {
    throw new BadInputError(`domains must be a list of ${Object.keys(EVENT_DOMAINS).join(", ")}`);
  }
  if (interactive) admit(o, c, profile, cids.size);
  const domains = [...new Set(requested as EventDomain[])];
  if (profile === "mid_section_defect") {
    domains.sort((a, b) => MSD_DOMAIN_ORDER.indexOf(a) - MSD_DOMAIN_ORDER.indexOf(b));
  }
  return { profile, cids, domains };
}

/**
 * The events response for a request, written as rows arrive; MSD first loads the lineage
 * among the containers (a container's history includes its ancestors'). Call with a slot.
 */
export async function eventsBody(
  o: TraceOptions,
  r: EventsRequest,
  signal: AbortSignal,
  ndjson: boolean,
  wrote?: (domain: string, rows: number) => void,
): Promise<{ stream: ReadableStream<Uint8Array>; summary: () => { msd?: MsdResult } }> {
  const pareto = r.profile === "mid_section_defect" ? new MsdPareto(r.cids) : null;
  if (pareto) await feedMsdLineage(o.source, pareto, r.cids, { signal });
  const feed = async function* (domain: EventDomain): AsyncGenerator<RowBatch> {
    for await (const batch of domainEvents(o.source, domain, r.cids, {
      workers: o.workersPerDomain,
      fetchSize: o.fetchSize,
      signal,
      gc: o.gc,
    })) {
      if (pareto) pareto.add(domain, rowsOf(batch));
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
}

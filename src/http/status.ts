import type { ContentfulStatusCode } from "hono/utils/http-status";
import { RollupMismatchError } from "../core/archive/rollup.js";
import {
  BusyError,
  CleanupIncompleteError,
  JobNotReadyError,
  LeaseHeldError,
  NotVerifiedError,
  SluiceError,
  TooManyContainersError,
  TooManyJobsError,
  UnavailableError,
  describeError,
} from "../core/errors.js";
import { TooManyEventsError } from "../core/ingest/batch.js";
import { BadEventError } from "../core/ingest/event.js";

/** An error as the HTTP API answers it: `{ error, message, ...figures }`. */
export interface ErrorBody {
  error: string;
  message: string;
  [figure: string]: unknown;
}

/** What a client reads of a server-side failure; the detail goes to the log only. */
export const SERVER_FAILED =
  "the request failed on the server; its log has the details under this requestId";

interface HttpError {
  status: ContentfulStatusCode;
  body: ErrorBody;
  /** The error's own message, for the log, when the body does not carry it. */
  detail?: string;
  headers?: Record<string, string>;
}

/**
 * The one place where errors become HTTP statuses (and the headers that go with them). A 5xx
 * never carries the error's own words (a driver's message names tables, encodings, paths):
 * its body is the error code and SERVER_FAILED, and `detail` holds the message for the log.
 * Refusals whose message is ours and says when to come back (busy, unavailable) keep it.
 */
export function httpError(err: unknown): HttpError {
  if (err instanceof BusyError) {
    return {
      status: 503,
      body: { error: "busy", message: describeError(err) },
      headers: { "Retry-After": String(err.retryAfterSeconds) },
    };
  }
  const c = classify(err);
  if (c.status < 500 || err instanceof UnavailableError) return c;
  return {
    status: c.status,
    body: { error: c.body.error, message: SERVER_FAILED },
    detail: c.body.message,
    headers: c.headers,
  };
}

function classify(err: unknown): HttpError {
  const message = describeError(err);
  if (err instanceof BadEventError) {
    return {
      status: 400,
      body: { error: "bad_event", message, index: err.index, reason: err.reason },
    };
  }
  if (err instanceof TooManyEventsError) {
    return { status: 413, body: { error: "too_many_events", message, limit: err.limit } };
  }
  if (err instanceof TooManyContainersError) {
    return {
      status: 413,
      body: { error: "too_many_containers", message, limit: err.limit, count: err.count },
    };
  }
  if (err instanceof TooManyJobsError) {
    return {
      status: 429,
      body: { error: "too_many_jobs", message, limit: err.limit },
      headers: { "Retry-After": String(err.retryAfter) },
    };
  }
  if (err instanceof LeaseHeldError) {
    return {
      status: 409,
      body: {
        error: "locked",
        message,
        holder: err.holder,
        leaseExpiresAt: new Date(err.expiresAt).toISOString(),
      },
    };
  }
  if (err instanceof JobNotReadyError) {
    return { status: 409, body: { error: "not_ready", message, state: err.state } };
  }
  // Refusing to delete from an unverified partition is about its state, not a crash.
  if (err instanceof NotVerifiedError) {
    return { status: 409, body: { error: "not_verified", message, state: err.state } };
  }
  if (err instanceof RollupMismatchError) {
    return {
      status: 409,
      body: {
        error: "rollup_mismatch",
        message,
        part: err.part,
        rows: err.rows,
        counted: err.counted,
      },
    };
  }
  if (err instanceof CleanupIncompleteError) {
    return {
      status: 500,
      body: {
        error: "cleanup_incomplete",
        message,
        deleted: err.deleted,
        remaining: err.remaining,
      },
    };
  }
  if (err instanceof UnavailableError) {
    return {
      status: 503,
      body: { error: "unavailable", message },
      headers: { "Retry-After": "5" },
    };
  }
  if (err instanceof SluiceError) {
    const status = (
      {
        bad_input: 400,
        not_found: 404,
        conflict: 409,
        unavailable: 503,
        interrupted: 503,
        failed: 500,
      } as const
    )[err.kind];
    return { status, body: { error: err.kind, message } };
  }
  return { status: 500, body: { error: "internal", message } };
}

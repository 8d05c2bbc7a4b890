import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
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
import { BadEventError } from "../core/traffic/event.js";

/** An error as the HTTP API answers it: `{ error, message, ...figures }`. */
export interface ErrorBody {
  error: string;
  message: string;
  [figure: string]: unknown;
}

/** The one place where errors become HTTP statuses (and the headers that go with them). */
export function httpError(err: unknown): {
  status: ContentfulStatusCode;
  body: ErrorBody;
  headers?: Record<string, string>;
} {
  const message = describeError(err);
  if (err instanceof BadEventError) {
    return {
      status: 400,
      body: { error: "bad_event", message, index: err.index, reason: err.reason },
    };
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
      { bad_input: 400, not_found: 404, conflict: 409, unavailable: 503, failed: 500 } as const
    )[err.kind];
    return { status, body: { error: err.kind, message } };
  }
  return { status: 500, body: { error: "internal", message } };
}

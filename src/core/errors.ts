/**
 * Typed errors. Each carries the figures a person needs to act, and a `kind` that the
 * CLI maps to an exit code and the HTTP layer to a status, each in one place.
 */
export type ErrorKind =
  | "bad_input" // the caller must change what they asked for
  | "not_found" // the thing asked about does not exist
  | "conflict" // someone else holds the partition; try again later
  | "unavailable" // a system we depend on (the database) cannot be reached now; try again
  | "interrupted" // stopped on request (Ctrl-C, shutdown) at a safe point; a rerun resumes
  | "failed"; // the job ran and could not finish; the ledger says why

export class SluiceError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string) {
    super(message);
    this.kind = kind;
    this.name = new.target.name;
  }
}

export class BadInputError extends SluiceError {
  constructor(message: string) {
    super("bad_input", message);
  }
}

export class NotFoundError extends SluiceError {
  constructor(message: string) {
    super("not_found", message);
  }
}

/** Another process holds the partition's lease. */
export class LeaseHeldError extends SluiceError {
  constructor(
    readonly table: string,
    readonly date: string,
    readonly holder: string,
    readonly expiresAt: number,
  ) {
    super(
      "conflict",
      `${table} ${date} is being worked on by ${holder} (lease until ${new Date(expiresAt).toISOString()}); try again later`,
    );
  }
}

/**
 * A job stopped on request (Ctrl-C, a service shutting down) at a safe point. The ledger keeps
 * the state it reached with this message as `last_error`: resumable, and not a failure.
 */
export class InterruptedError extends SluiceError {
  static readonly MESSAGE = "interrupted; progress saved, run the command again to resume";
  constructor() {
    super("interrupted", InterruptedError.MESSAGE);
  }
}

/** Whether a partition's `last_error` says its last job was interrupted (not failed). */
export const wasInterrupted = (lastError: string | null): boolean =>
  lastError === InterruptedError.MESSAGE;

/** Our lease was taken over (we stalled past its expiry); stop before touching anything. */
export class LeaseLostError extends SluiceError {
  constructor(
    readonly table: string,
    readonly date: string,
  ) {
    super("failed", `lost the lease on ${table} ${date}; another process took over; stopped`);
  }
}

/** The stored archive does not match what was written or what the source holds. */
export class VerificationError extends SluiceError {
  constructor(
    readonly objectKey: string,
    readonly problems: string[],
  ) {
    super("failed", `archive ${objectKey} failed verification: ${problems.join("; ")}`);
  }
}

/** Cleanup asked of a partition whose archive is not verified. Nothing was deleted. */
export class NotVerifiedError extends SluiceError {
  constructor(
    readonly table: string,
    readonly date: string,
    readonly state: string,
  ) {
    super(
      "failed",
      `${table} ${date} is '${state}', not verified: refusing to delete any row. Run archive (it verifies) first`,
    );
  }
}

/** A cleanup that stopped short, made loud: archived rows are still in the hot store. */
export class CleanupIncompleteError extends SluiceError {
  constructor(
    readonly table: string,
    readonly date: string,
    readonly deleted: number,
    readonly remaining: number,
  ) {
    super(
      "failed",
      `cleanup of ${table} ${date} incomplete: deleted ${deleted} rows, ${remaining} archived rows remain; partition not marked cleaned`,
    );
  }
}

/**
 * Archived rows whose content in the hot table is no longer what was archived (updated, or
 * deleted and written again under the same key). Cleanup left them where they are; the next
 * archive writes their current content as a new part.
 */
export class RowsChangedError extends SluiceError {
  constructor(
    readonly table: string,
    readonly date: string,
    readonly changed: number,
    readonly keys: readonly string[],
    readonly deleted: number,
  ) {
    super(
      "failed",
      `cleanup of ${table} ${date}: ${changed} row(s) changed since it was archived (keys ${keys.join(", ")}${changed > keys.length ? ", ..." : ""}): left in the hot table, not deleted; deleted ${deleted} rows. Run archive again: it writes their current content as a new part`,
    );
  }
}

/** Too many containers for an interactive trace profile: refused before any event query. */
export class TooManyContainersError extends SluiceError {
  constructor(
    readonly profile: string,
    readonly count: number,
    readonly limit: number,
  ) {
    super(
      "bad_input",
      `${count} containers for profile ${profile}; the limit is ${limit} (TRACE_EVENTS_CID_LIMIT): narrow the seeds`,
    );
  }
}

/**
 * Refused to protect the service: too much of one kind of work is running or waiting. Nothing
 * was done; the same request may succeed after `retryAfterSeconds`.
 */
export class BusyError extends SluiceError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super("conflict", message);
  }
}

/**
 * The database went away under a request (its connection was terminated, the server restarts
 * or fails over, or refuses connections): nothing the caller did, and worth retrying. The
 * message names what happened in our words, never the driver's text.
 */
export class UnavailableError extends SluiceError {
  constructor(readonly what: string) {
    super("unavailable", `the database is unavailable (${what}); try again shortly`);
  }
}

/** As many trace jobs as allowed are queued or running in this process: one more is refused. */
export class TooManyJobsError extends SluiceError {
  constructor(
    readonly limit: number,
    /** When to try again, in seconds. */
    readonly retryAfter = 30,
  ) {
    super(
      "conflict",
      `${limit} trace jobs are queued or running here, the most allowed (TRACE_JOBS_MAX): submit it again once one has finished`,
    );
  }
}

/** A background trace job's result was asked for before the job succeeded. */
export class JobNotReadyError extends SluiceError {
  constructor(
    readonly id: string,
    readonly state: string,
    readonly reason: string | null,
  ) {
    super(
      "conflict",
      state === "queued" || state === "running"
        ? `trace job ${id} is ${state}: ask again once GET /api/trace/jobs/${id} says succeeded`
        : `trace job ${id} ${state}${reason ? `: ${reason}` : ""}; it has no result`,
    );
  }
}

/** Turn anything thrown into a one-line message, without a stack for our own errors. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

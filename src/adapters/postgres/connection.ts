import type pg from "pg";
import { SluiceError, UnavailableError } from "../../core/errors.js";

/** What a connection error means to a caller, by SQLSTATE or socket error code. */
const GONE: Record<string, string> = {
  "57P01": "the server terminated the connection",
  "57P02": "the server is shutting down",
  "57P03": "the server is starting up or shutting down",
  "53300": "the server has no connection left",
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EPIPE: "connection closed",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host not found",
};

/**
 * An error that means the connection or the server went away, not that the statement failed,
 * as an UnavailableError (a 503, in words of ours); null for anything else. `lost` is what
 * the client reported while checked out, if anything.
 */
export function unavailable(err: unknown, lost: Error | null = null): UnavailableError | null {
  if (err instanceof UnavailableError) return err;
  // Our own errors (a lost lease, say) say more than the connection that went with them.
  if (err instanceof SluiceError) return null;
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === "string" ? e.code : "";
  const known = GONE[code];
  if (known) return new UnavailableError(known);
  if (code.startsWith("08")) return new UnavailableError(`connection failure ${code}`);
  const message = typeof e?.message === "string" ? e.message : "";
  if (lost !== null || message.startsWith("Connection terminated")) {
    return new UnavailableError("its connection was closed");
  }
  return null;
}

/**
 * A checked-out client's 'error' and 'end', for as long as it is checked out. pg emits 'error'
 * on a client whose connection dies (pg_terminate_backend, a restart, a failover); the pool
 * listens only while the client is idle, and an 'error' nobody listens to ends the process.
 */
export function watch(client: pg.PoolClient) {
  let lost: Error | null = null;
  let wake: () => void = () => undefined;
  const gone = new Promise<void>((resolve) => {
    wake = resolve;
  });
  const onError = (err: Error) => {
    lost ??= err;
    wake();
  };
  const onEnd = () => onError(new Error("Connection terminated"));
  client.on("error", onError);
  client.on("end", onEnd);
  return {
    lost: () => lost,
    /** Resolves once the connection is gone. */
    gone,
    /** Called right before release(), which puts the pool's own listener back. */
    stop() {
      client.off("error", onError);
      client.off("end", onEnd);
    },
  };
}

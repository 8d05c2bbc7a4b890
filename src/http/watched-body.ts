import { SluiceError } from "../core/errors.js";

/** A client took no chunk of a streamed response for too long: it is cut. */
export class IdleClientError extends Error {
  constructor(readonly idleMs: number) {
    super(`the client took nothing of the response for ${idleMs} ms: response stopped`);
    this.name = "IdleClientError";
  }
}

export interface WatchOptions {
  /** Longest a written chunk may wait for the client to take it (TRACE_IDLE_TIMEOUT_MS). */
  idleMs: number;
  /** Aborted when the body stops early: what the source reads with (its statements) stops. */
  stop: AbortController;
  /** The service is stopping: a client that does not read is then waited for `stoppingMs`. */
  stopping?: AbortSignal;
  stoppingMs?: number;
  /**
   * Called once, when the source has stopped for good: it was read to its end ("done"), it
   * threw ("failed"), or it was stopped and then closed, its reads stopped first ("stopped":
   * the client went away or did not read, or `stop` was aborted elsewhere).
   */
  ended(how: "done" | "failed" | "stopped", reason?: unknown): void;
}

/**
 * A streamed response body that a client cannot hold open by not reading. The chunks of
 * `source` are handed on one at a time, when the server's writer asks for the next (which it
 * does once the last write drained): a chunk not taken within `idleMs` stops the source and
 * errors the body, which makes the server cut the connection. Whatever way the body ends
 * (done, failed, cut, or the client gone), `ended` is told once the source has stopped, so
 * that what the request holds (a database slot) is given back only after its statements are.
 *
 * A source that fails mid-way errors the body with a message of ours: a 200 has gone out by
 * then, and only the cut connection tells the client, but no internal text goes with it.
 */
export function watchedBody(
  source: ReadableStream<Uint8Array>,
  o: WatchOptions,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let limit = o.stopping?.aborted ? Math.min(o.idleMs, o.stoppingMs ?? 1000) : o.idleMs;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let since = 0;
  let over = false;
  let body: ReadableStreamDefaultController<Uint8Array>;

  const clear = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
  const finish = (how: "done" | "failed" | "stopped", reason?: unknown) => {
    if (over) return;
    over = true;
    clear();
    o.stopping?.removeEventListener("abort", onStopping);
    o.stop.signal.removeEventListener("abort", onStop);
    o.ended(how, reason);
  };
  let stopped: Promise<void> | null = null;
  /** Stop the source's reads (cancelled, not left running), close it, then finish. */
  const stop = (reason: unknown): Promise<void> => {
    if (stopped) return stopped;
    let done: () => void = () => undefined;
    stopped = new Promise<void>((resolve) => {
      done = resolve;
    });
    o.stop.abort(reason);
    void reader
      .cancel(reason)
      .catch(() => undefined)
      .then(() => {
        finish("stopped", reason);
        done();
      });
    return stopped;
  };
  // Aborted elsewhere (the request's client gone): the body stops the same way.
  function onStop() {
    void stop(o.stop.signal.reason);
  }
  o.stop.signal.addEventListener("abort", onStop, { once: true });
  const expire = () => {
    timer = undefined;
    const err = new IdleClientError(limit);
    body.error(err);
    void stop(err);
  };
  const arm = () => {
    clear();
    timer = setTimeout(expire, Math.max(0, since + limit - Date.now()));
  };
  function onStopping() {
    limit = Math.min(limit, o.stoppingMs ?? 1000);
    if (timer !== undefined) arm();
  }
  o.stopping?.addEventListener("abort", onStopping, { once: true });

  const watched = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        body = controller;
      },
      async pull(controller) {
        clear();
        let step: Awaited<ReturnType<typeof reader.read>>;
        try {
          step = await reader.read();
        } catch (err) {
          // A failed source has closed what it read (json.ts): nothing is left to stop.
          finish("failed", err);
          controller.error(
            err instanceof SluiceError ? err : new Error("the response failed mid-way"),
          );
          return;
        }
        if (over) return;
        if (step.done) {
          finish("done");
          controller.close();
          return;
        }
        controller.enqueue(step.value);
        since = Date.now();
        arm();
      },
      async cancel(reason) {
        clear();
        await stop(reason ?? new Error("the client went away"));
      },
    },
    { highWaterMark: 0 },
  );
  if (o.stop.signal.aborted) onStop();
  return watched;
}

import type { Context } from "hono";
import { webCodec } from "../../core/bytes/codec.js";
import { describeError } from "../../core/errors.js";
import type { AppEnv } from "../env.js";
import { IdleClientError, watchedBody } from "../watched-body.js";
import type { TraceOptions } from "./options.js";

/**
 * What a streamed request's statements read with: aborted when its client goes away, or when
 * its body stops early (watchedBody).
 */
export function requestStop(c: Context): AbortController {
  const stop = new AbortController();
  const gone = c.req.raw.signal;
  if (gone.aborted) stop.abort(gone.reason);
  else gone.addEventListener("abort", () => stop.abort(gone.reason), { once: true });
  return stop;
}

/**
 * The one way a trace request holds a slow-query slot: `work` runs holding one (a client gone
 * while waiting frees its place), and it goes back when `work` returns or throws, unless
 * `work` hands it to a streamed body (`keep()`), which gives it back when the body has ended.
 */
export async function slotted(
  o: TraceOptions,
  c: Context<AppEnv>,
  work: (keep: () => () => void) => Promise<Response>,
): Promise<Response> {
  const release = await o.slots.acquire(c.req.raw.signal);
  let kept = false;
  try {
    return await work(() => {
      kept = true;
      return release;
    });
  } finally {
    if (!kept) release();
  }
}

/**
 * A streamed 200 that a client cannot hold by not reading (TRACE_IDLE_TIMEOUT_MS). Its slot
 * is given back once the body has ended, failed, or been stopped and its statements with it;
 * what it left is then collected (the pacer decides whether it was large enough).
 */
export function streamed(
  o: TraceOptions,
  c: Context<AppEnv>,
  stream: ReadableStream<Uint8Array>,
  stop: AbortController,
  release: () => void,
  type: string,
): Response {
  // Compressed inside the watch, so that a client that stops reading is still seen as one.
  const gzip = acceptsGzip(c);
  const codec = o.codec ?? webCodec;
  const sent = gzip ? stream.pipeThrough((codec.gzipFlushed ?? codec.gzip)()) : stream;
  const body = watchedBody(sent, {
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
  const headers: Record<string, string> = { "Content-Type": type, Vary: "Accept-Encoding" };
  if (gzip) headers["Content-Encoding"] = "gzip";
  return c.body(body, 200, headers);
}

/** Whether the request's Accept-Encoding takes gzip (and does not refuse it with q=0). */
export function acceptsGzip(c: Context): boolean {
  const header = c.req.header("accept-encoding") ?? "";
  return header.split(",").some((part) => {
    const [name, ...params] = part.trim().toLowerCase().split(";");
    if (name !== "gzip" && name !== "x-gzip") return false;
    return !params.some((p) => /^\s*q=0(\.0*)?\s*$/.test(p));
  });
}

import { describe, expect, it } from "vitest";
import { IdleClientError, watchedBody } from "../src/http/watched-body.js";

/** A source of `n` chunks (endless without n) that records being cancelled, after a pause. */
function source(n = Number.POSITIVE_INFINITY) {
  const log: string[] = [];
  let i = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (i++ === n) return c.close();
      c.enqueue(new Uint8Array(1024));
    },
    async cancel() {
      // Stopping takes a while (statements being cancelled): `ended` must wait for it.
      await new Promise((r) => setTimeout(r, 50));
      log.push("source closed");
    },
  });
  return { stream, log };
}

describe("watchedBody", () => {
  it("a consumer that stops taking chunks: the body errors after idleMs, the source is stopped first, then ended", async () => {
    const { stream, log } = source();
    const stop = new AbortController();
    stop.signal.addEventListener("abort", () => log.push("reads stopped"));
    const ended: string[] = [];
    const body = watchedBody(stream, {
      idleMs: 100,
      stop,
      ended: (how, reason) => {
        ended.push(how);
        log.push(`ended ${how} ${reason instanceof IdleClientError}`);
      },
    });
    const reader = body.getReader();
    await reader.read();
    await reader.read();
    // The consumer takes nothing more: its next read, much later, finds the body cut.
    await new Promise((r) => setTimeout(r, 400));
    await expect(reader.read()).rejects.toBeInstanceOf(IdleClientError);
    expect(log).toEqual(["reads stopped", "source closed", "ended stopped true"]);
    expect(ended).toEqual(["stopped"]);
  });

  it("a consumer that keeps reading is never cut, however long the whole body takes", async () => {
    const { stream } = source(30);
    const ended: string[] = [];
    const body = watchedBody(stream, {
      idleMs: 50,
      stop: new AbortController(),
      ended: (how) => ended.push(how),
    });
    let chunks = 0;
    const reader = body.getReader();
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
      chunks++;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(chunks).toBe(30);
    expect(ended).toEqual(["done"]);
  });

  it("a stopping service cuts a consumer that is not reading without waiting idleMs", async () => {
    const { stream, log } = source();
    const stopping = new AbortController();
    const body = watchedBody(stream, {
      idleMs: 60_000,
      stop: new AbortController(),
      stopping: stopping.signal,
      stoppingMs: 0,
      ended: (how) => log.push(`ended ${how}`),
    });
    const reader = body.getReader();
    await reader.read();
    stopping.abort();
    await new Promise((r) => setTimeout(r, 100));
    expect(log).toEqual(["source closed", "ended stopped"]);
    await expect(reader.read()).rejects.toBeInstanceOf(IdleClientError);
  });
});

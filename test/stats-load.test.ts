import type Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TestServer, call, startServer } from "./http-helpers.js";

/**
 * Stats queries over a large SQLite table must not hold the event loop (invariant 10): while
 * several run, /healthz answers as it does idle; beyond STATS_MAX_QUEUED waiting, a stats
 * request gets 503 + Retry-After instead of joining an ever longer queue.
 */
const LAST = "2025-06-03";
const FIRST = "2025-06-01";
const PER_DAY = 100_000;
const TOP = `/api/stats/top-paths?from=${FIRST}&to=${LAST}&limit=5`;

let srv: TestServer;
let capped: TestServer;
let hasty: TestServer;
let sql: Database.Database;

beforeAll(async () => {
  srv = await startServer({ seed: [{ date: LAST, count: PER_DAY, days: 3 }] });
  // The same file, served with room for one running and two waiting stats queries.
  capped = await startServer({
    env: { SLUICE_DB: `sqlite:${srv.db}`, STATS_MAX_CONCURRENT: "1", STATS_MAX_QUEUED: "2" },
  });
  // And with a time limit shorter than a top-paths over the whole file.
  hasty = await startServer({
    env: { SLUICE_DB: `sqlite:${srv.db}`, SLUICE_STATEMENT_TIMEOUT_MS: "100" },
  });
  sql = srv.sql();
});
afterAll(async () => {
  await hasty?.stop();
  await capped?.stop();
  await srv?.stop();
});

async function timed(url: string): Promise<{ ms: number; status: number; body: unknown }> {
  const started = performance.now();
  const res = await call(url);
  return { ms: performance.now() - started, status: res.status, body: res.body };
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** The top paths straight from the file. */
function expectedTop(): { path: string; views: number }[] {
  return sql
    .prepare(
      "SELECT path, COUNT(*) AS views FROM traffic_events WHERE event_date BETWEEN ? AND ? GROUP BY path ORDER BY views DESC, path LIMIT 5",
    )
    .all(FIRST, LAST) as { path: string; views: number }[];
}

describe("stats under load", () => {
  it("/healthz answers during 8 parallel top-paths as it does idle, not after them", async () => {
    await timed(`${srv.url}${TOP}`); // warm: page cache, threads, prepared statements
    const idle: number[] = [];
    for (let i = 0; i < 15; i++) idle.push((await timed(`${srv.url}/healthz`)).ms);
    const alone: number[] = [];
    for (let i = 0; i < 3; i++) alone.push((await timed(`${srv.url}${TOP}`)).ms);
    const query = Math.min(...alone);
    // The comparison means something only if one query takes far longer than a health check.
    expect(query, `one top-paths ${query.toFixed(0)} ms`).toBeGreaterThan(10 * median(idle));

    let running = 8;
    const load = Array.from({ length: 8 }, () =>
      timed(`${srv.url}${TOP}`).finally(() => {
        running--;
      }),
    );
    const busy: number[] = [];
    while (running > 0) {
      busy.push((await timed(`${srv.url}/healthz`)).ms);
      // A health checker's pace, not a busy loop: the client shares this process's CPU.
      await new Promise((r) => setTimeout(r, 25));
    }
    const answers = await Promise.all(load);

    const expected = expectedTop();
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect((a.body as { paths: unknown }).paths).toEqual(expected);
    }
    // On the event loop, a health check waited for every query queued before it (7 s for 8
    // over 900K rows); off it, it takes about what it takes idle.
    const what = `healthz idle ${median(idle).toFixed(1)} ms, during ${busy.map((b) => b.toFixed(0)).join(",")} ms; one query ${query.toFixed(0)} ms`;
    expect(median(busy), what).toBeLessThan(query / 4);
  });

  it("beyond STATS_MAX_QUEUED waiting, a stats request is refused with 503 and Retry-After", async () => {
    const answers = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const res = await fetch(`${capped.url}${TOP}`);
        return {
          status: res.status,
          retry: res.headers.get("retry-after"),
          body: await res.json(),
        };
      }),
    );
    const refused = answers.filter((a) => a.status === 503);
    const served = answers.filter((a) => a.status === 200);
    expect(refused.length + served.length).toBe(8);
    expect(served.length).toBeGreaterThanOrEqual(1);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const r of refused) {
      expect(r.retry).toMatch(/^\d+$/);
      expect(r.body).toMatchObject({
        error: "busy",
        message: expect.stringMatching(/stats/),
        requestId: expect.any(String),
      });
    }
    const expected = expectedTop();
    for (const s of served) expect((s.body as { paths: unknown }).paths).toEqual(expected);
    // Once the queue has drained, the next one is served.
    expect((await timed(`${capped.url}${TOP}`)).status).toBe(200);
  });
});

describe("a stats query past SLUICE_STATEMENT_TIMEOUT_MS", () => {
  it("fails with a generic 500 (its thread stopped), and the next query gets a new thread", async () => {
    const slow = await timed(`${hasty.url}${TOP}`);
    expect(slow.status).toBe(500);
    expect(slow.body).toMatchObject({ error: "internal", requestId: expect.any(String) });
    expect((await timed(`${hasty.url}/healthz`)).status).toBe(200);
    const quick = await timed(
      `${hasty.url}/api/stats/path-daily?path=/nowhere&from=2030-01-01&to=2030-01-02`,
    );
    expect(quick.status).toBe(200);
    expect(quick.body).toMatchObject({ days: [] });
  });
});

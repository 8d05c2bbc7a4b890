import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import type Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  MAX_BYTES,
  MAX_EVENTS,
  type StatusBody,
  TOKEN,
  type TestServer,
  WRONG_TOKEN,
  bearer,
  call,
  event,
  filesUnder,
  postJson,
  postRaw,
  qs,
  startServer,
  tableCount,
  waitForJob,
} from "./http-helpers.js";

/** Three days for the stats routes. */
const STATS_DAYS = ["2025-06-01", "2025-06-02", "2025-06-03"];
const STATS_PER_DAY = 2_000;
/** The date archived and cleaned through the admin routes. */
const D = "2025-05-20";
const D_ROWS = 5_000;
/** A date big enough that its archive is still running when a second trigger arrives. */
const BIG = "2025-05-10";
const BIG_ROWS = 200_000;
/** A date with rows that is never archived: cleanup must refuse it. */
const NEVER_ARCHIVED = "2025-05-15";

let srv: TestServer;
let sql: Database.Database;
/** Events this file's ingest calls were told were inserted (for /metrics). */
let ingested = 0;

beforeAll(async () => {
  srv = await startServer({
    seed: [
      { date: STATS_DAYS[2] as string, count: STATS_PER_DAY, days: 3 },
      { date: D, count: D_ROWS },
      { date: NEVER_ARCHIVED, count: 1_000 },
      { date: BIG, count: BIG_ROWS },
    ],
  });
  sql = srv.sql();
});

afterAll(async () => {
  await srv?.stop();
});

const countOn = (date: string): number =>
  (
    sql.prepare("SELECT COUNT(*) AS n FROM traffic_events WHERE event_date = ?").get(date) as {
      n: number;
    }
  ).n;

function ledgerRow(date: string): Record<string, unknown> | undefined {
  const exists = sql
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'archive_metadata'")
    .get();
  if (!exists) return undefined;
  return sql.prepare("SELECT * FROM archive_metadata WHERE date = ?").get(date) as
    | Record<string, unknown>
    | undefined;
}

const partPath = (date: string) => {
  const folder = join(srv.store, "traffic_events", `date=${date}`);
  const names = existsSync(folder) ? readdirSync(folder) : [];
  return join(folder, names.find((n) => /^part-0000-[0-9a-f]{8}\.jsonl\.gz$/.test(n)) ?? "none");
};

describe("GET /healthz", () => {
  it("answers 200 { ok: true } and nothing else (no database path, no store)", async () => {
    const res = await call(`${srv.url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.body).toEqual({ ok: true });
  });
});

describe("POST /api/events", () => {
  type Stored = {
    id: number;
    event_date: string;
    ts: number;
    path: string;
    referrer: string | null;
    country: string | null;
    user_agent: string | null;
    status: number;
    duration_ms: number;
  };
  const stored = (prefix: string): Stored[] =>
    sql
      .prepare(
        "SELECT id, event_date, ts, path, referrer, country, user_agent, status, duration_ms FROM traffic_events WHERE path LIKE ? ORDER BY id",
      )
      .all(`${prefix}%`) as Stored[];

  it("takes a JSON array: 201 { inserted, dates }, every field stored, event_date the UTC day of ts", async () => {
    // Either side of midnight UTC: the day must not follow any local time zone.
    const times = [
      Date.UTC(2025, 2, 10, 23, 59, 59, 999),
      Date.UTC(2025, 2, 10, 0, 0, 0, 0),
      Date.UTC(2025, 2, 11, 0, 0, 0, 0),
      Date.UTC(2025, 2, 11, 12, 30, 0, 0),
      Date.UTC(2025, 2, 11, 23, 59, 59, 999),
    ];
    const events = times.map((ts, i) =>
      event(ts, {
        path: `/ingest/json/${i}`,
        referrer: i === 0 ? null : `https://ref.example/${i}`,
        country: i === 1 ? null : "JP",
        user_agent: `agent ${i} ✓`,
        status: 200 + i,
        duration_ms: i * 1000,
      }),
    );
    const before = tableCount(sql);
    const res = await postJson(srv.url, events);
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ inserted: 5, dates: { "2025-03-10": 2, "2025-03-11": 3 } });
    ingested += 5;
    expect(tableCount(sql)).toBe(before + 5);

    const rows = stored("/ingest/json/");
    expect(rows).toHaveLength(5);
    rows.forEach((r, i) => {
      const e = events[i] as Record<string, unknown>;
      expect(r).toEqual({
        id: expect.any(Number),
        event_date: new Date(times[i] as number).toISOString().slice(0, 10),
        ts: e.ts,
        path: e.path,
        referrer: e.referrer,
        country: e.country,
        user_agent: e.user_agent,
        status: e.status,
        duration_ms: e.duration_ms,
      });
    });
    expect(rows.map((r) => r.event_date)).toEqual([
      "2025-03-10",
      "2025-03-10",
      "2025-03-11",
      "2025-03-11",
      "2025-03-11",
    ]);
  });

  it("takes NDJSON (both media types, blank lines and CRLF tolerated); optional fields become NULL", async () => {
    const ts = Date.UTC(2025, 2, 12, 8, 0, 0);
    const lines = [
      JSON.stringify({ ts, path: "/ingest/nd/0", status: 404, duration_ms: 3 }),
      "",
      `${JSON.stringify({ ts: ts + 1, event_date: "2025-03-12", path: "/ingest/nd/1", status: 301, duration_ms: 4 })}\r`,
      JSON.stringify(event(ts + 2, { path: "/ingest/nd/2" })),
    ];
    const before = tableCount(sql);
    const res = await postRaw(srv.url, `${lines.join("\n")}\n`, "application/x-ndjson");
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ inserted: 3, dates: { "2025-03-12": 3 } });

    const other = await postRaw(
      srv.url,
      JSON.stringify(event(ts + 3, { path: "/ingest/nd/3" })),
      "application/ndjson; charset=utf-8",
    );
    expect(other.status).toBe(201);
    expect(other.body).toEqual({ inserted: 1, dates: { "2025-03-12": 1 } });
    ingested += 4;
    expect(tableCount(sql)).toBe(before + 4);

    const rows = stored("/ingest/nd/");
    expect(rows.map((r) => r.path)).toEqual([
      "/ingest/nd/0",
      "/ingest/nd/1",
      "/ingest/nd/2",
      "/ingest/nd/3",
    ]);
    expect(rows[0]).toMatchObject({
      event_date: "2025-03-12",
      ts,
      referrer: null,
      country: null,
      user_agent: null,
      status: 404,
      duration_ms: 3,
    });
    expect(rows[1]).toMatchObject({ ts: ts + 1, status: 301, duration_ms: 4, referrer: null });
  });

  it("rejects a whole batch for one bad event: 400 bad_event naming its index, nothing written", async () => {
    const base = Date.UTC(2025, 2, 13, 10, 0, 0);
    const events = [0, 1, 2, 3, 4].map((i) => event(base + i, { path: `/ingest/bad/${i}` }));
    (events[3] as Record<string, unknown>).status = "200";
    const before = tableCount(sql);
    const res = await postJson(srv.url, events);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: "bad_event", index: 3 });
    expect((res.body as { reason: string }).reason).toMatch(/status/);
    expect(tableCount(sql)).toBe(before);
    expect(stored("/ingest/bad/")).toEqual([]);

    // The same through NDJSON: the line that is not JSON is named, the good ones before it dropped.
    const nd = [
      JSON.stringify(events[0]),
      JSON.stringify(events[1]),
      "{not json",
      JSON.stringify(events[4]),
    ].join("\n");
    const ndRes = await postRaw(srv.url, nd, "application/x-ndjson");
    expect(ndRes.status).toBe(400);
    expect(ndRes.body).toMatchObject({ error: "bad_event", index: 2 });
    expect(tableCount(sql)).toBe(before);

    // An event_date that is not the UTC day of ts is refused, not silently corrected.
    const wrongDay = await postJson(srv.url, [
      event(base, { path: "/ingest/bad/day", event_date: "2025-03-14" }),
    ]);
    expect(wrongDay.status).toBe(400);
    expect(wrongDay.body).toMatchObject({ error: "bad_event", index: 0 });
    expect(tableCount(sql)).toBe(before);
  });

  it("answers 413 JSON for a body over INGEST_MAX_BYTES, and writes nothing", async () => {
    const before = tableCount(sql);
    const big = JSON.stringify([
      event(Date.UTC(2025, 2, 14), { path: "/ingest/big", user_agent: "x".repeat(500) }),
    ]).replace("[", `[${" ".repeat(MAX_BYTES)}`);
    expect(Buffer.byteLength(big)).toBeGreaterThan(MAX_BYTES);
    const res = await postRaw(srv.url, big, "application/json");
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ error: "too_large", limit: MAX_BYTES });
    expect(tableCount(sql)).toBe(before);
  });

  it("takes exactly INGEST_MAX_EVENTS events, and answers 413 { limit } for one more", async () => {
    const ts = Date.UTC(2025, 2, 15, 1, 0, 0);
    const tiny = (i: number) => ({ ts: ts + i, path: "/ingest/many", status: 200, duration_ms: 1 });
    const before = tableCount(sql);
    const over = Array.from({ length: MAX_EVENTS + 1 }, (_, i) => tiny(i));
    expect(Buffer.byteLength(JSON.stringify(over))).toBeLessThan(MAX_BYTES);
    const res = await postJson(srv.url, over);
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({
      error: "too_many_events",
      message: `more than ${MAX_EVENTS} events in one batch; send at most ${MAX_EVENTS} per request`,
      limit: MAX_EVENTS,
    });
    expect(tableCount(sql)).toBe(before);

    const ok = await postJson(srv.url, over.slice(0, MAX_EVENTS));
    expect(ok.status).toBe(201);
    expect(ok.body).toEqual({ inserted: MAX_EVENTS, dates: { "2025-03-15": MAX_EVENTS } });
    ingested += MAX_EVENTS;
    expect(tableCount(sql)).toBe(before + MAX_EVENTS);
  });

  it("answers 415 JSON for any other content type, and writes nothing", async () => {
    const before = tableCount(sql);
    const body = JSON.stringify([event(Date.UTC(2025, 2, 16), { path: "/ingest/415" })]);
    for (const type of [
      "text/plain",
      "application/xml",
      "multipart/form-data",
      "application/jsonl",
    ]) {
      const res = await postRaw(srv.url, body, type);
      expect(res.status, type).toBe(415);
      expect(res.body, type).toMatchObject({ error: "unsupported_media_type" });
    }
    // No Content-Type at all.
    const none = await call(`${srv.url}/api/events`, {
      method: "POST",
      body: new TextEncoder().encode(body),
    });
    expect(none.status).toBe(415);
    expect(tableCount(sql)).toBe(before);
  });
});

describe("POST /api/events: a body of many tiny events", () => {
  // Big enough that splitting the whole body shows: 3M lines of `1`.
  const BYTES = 6 << 20;
  let big: TestServer;
  beforeAll(async () => {
    big = await startServer({ env: { INGEST_MAX_BYTES: String(BYTES + 1024) } });
  });
  afterAll(async () => {
    await big?.stop();
  });

  /** Wall time of one post of `body`, which must be answered with `status`. */
  async function timedPost(body: string, type: string, status: number): Promise<number> {
    const started = performance.now();
    const res = await postRaw(big.url, body, type);
    const ms = performance.now() - started;
    expect(res.status, res.text.slice(0, 200)).toBe(status);
    if (status === 413) {
      expect(res.body).toMatchObject({
        error: "too_many_events",
        message: `more than ${MAX_EVENTS} events in one batch; send at most ${MAX_EVENTS} per request`,
        limit: MAX_EVENTS,
      });
    }
    return ms;
  }

  it("answers 413 once the count passes INGEST_MAX_EVENTS, without splitting the rest of the body", async () => {
    const before = tableCount(sql);
    // The yardstick: a body of the same size that is one event (a 6 MB JSON string), refused
    // with 400 after one parse. Reading 6 MB off the socket is in both.
    const one = JSON.stringify("x".repeat(BYTES - 2));
    const cases: [string, string, string][] = [
      ["NDJSON lines of 1", "application/x-ndjson", "1\n".repeat(BYTES / 2)],
      ["a JSON array of {}", "application/json", `[${"{},".repeat(BYTES / 3 - 1)}{}]`],
    ];
    for (const [what, type, body] of cases) {
      // Taken in turns, the fastest of each: noise from the machine only ever adds time.
      let yardstick = Number.POSITIVE_INFINITY;
      let tooMany = Number.POSITIVE_INFINITY;
      for (let i = 0; i < 5; i++) {
        yardstick = Math.min(yardstick, await timedPost(one, type, 400));
        tooMany = Math.min(tooMany, await timedPost(body, type, 413));
      }
      // Splitting 2-3M items first took 6-10x the yardstick here; counting as it scans, ~1x.
      expect(
        tooMany,
        `${what}: ${tooMany.toFixed(0)} ms vs ${yardstick.toFixed(0)} ms`,
      ).toBeLessThan(3 * yardstick);
    }
    expect(tableCount(big.sql())).toBe(0);
    expect(tableCount(sql)).toBe(before);
  });
});

describe("GET /api/stats", () => {
  type PathViews = { path: string; views: number };
  const [FIRST, MIDDLE, LAST] = STATS_DAYS as [string, string, string];

  /** Per-path counts of the range, straight from the file, in no particular order. */
  function groupBy(from: string, to: string): Map<string, number> {
    const rows = sql
      .prepare(
        "SELECT path, COUNT(*) AS n FROM traffic_events WHERE event_date >= ? AND event_date <= ? GROUP BY path",
      )
      .all(from, to) as { path: string; n: number }[];
    return new Map(rows.map((r) => [r.path, r.n]));
  }

  function checkTop(paths: PathViews[], expected: Map<string, number>, limit: number) {
    expect(paths).toHaveLength(Math.min(limit, expected.size));
    for (const p of paths) expect(p.views, p.path).toBe(expected.get(p.path));
    // Sorted by views, most first; and they are the top `limit` counts (ties in any order).
    const views = paths.map((p) => p.views);
    expect(views).toEqual([...views].sort((a, b) => b - a));
    const top = [...expected.values()].sort((a, b) => b - a).slice(0, limit);
    expect(views).toEqual(top);
    expect(new Set(paths.map((p) => p.path)).size).toBe(paths.length);
  }

  it("top-paths: counts equal a GROUP BY on the file, most viewed first, limit respected", async () => {
    const expected = groupBy(FIRST, LAST);
    expect(expected.size).toBeGreaterThan(20);
    for (const limit of [1, 5, 20]) {
      const res = await call(
        `${srv.url}/api/stats/top-paths${qs([
          ["from", FIRST],
          ["to", LAST],
          ["limit", String(limit)],
        ])}`,
      );
      expect(res.status).toBe(200);
      const body = res.body as { from: string; to: string; paths: PathViews[] };
      expect(body.from).toBe(FIRST);
      expect(body.to).toBe(LAST);
      checkTop(body.paths, expected, limit);
    }
  });

  it("top-paths: default limit 10; limit=1000 gives every path, summing to the range's rows", async () => {
    const expected = groupBy(MIDDLE, MIDDLE);
    const dflt = await call(
      `${srv.url}/api/stats/top-paths${qs([
        ["from", MIDDLE],
        ["to", MIDDLE],
      ])}`,
    );
    expect(dflt.status).toBe(200);
    checkTop((dflt.body as { paths: PathViews[] }).paths, expected, 10);

    const all = await call(
      `${srv.url}/api/stats/top-paths${qs([
        ["from", MIDDLE],
        ["to", MIDDLE],
        ["limit", "1000"],
      ])}`,
    );
    expect(all.status).toBe(200);
    const paths = (all.body as { paths: PathViews[] }).paths;
    checkTop(paths, expected, 1000);
    expect(paths.reduce((n, p) => n + p.views, 0)).toBe(STATS_PER_DAY);
    expect(countOn(MIDDLE)).toBe(STATS_PER_DAY);
  });

  it("top-paths: a range with no rows answers 200 with no paths", async () => {
    const res = await call(
      `${srv.url}/api/stats/top-paths${qs([
        ["from", "2031-01-01"],
        ["to", "2031-01-07"],
      ])}`,
    );
    expect(res.status).toBe(200);
    const week = ["01", "02", "03", "04", "05", "06", "07"].map((d) => `2031-01-${d}`);
    expect(res.body).toEqual({
      from: "2031-01-01",
      to: "2031-01-07",
      paths: [],
      coverage: { hot: [], archive: [], both: [], unanswered: [], missing: week },
    });
  });

  it("path-daily: per-day counts equal SQL, in date order, only days with views", async () => {
    const from = "2025-05-31";
    const to = "2025-06-04";
    const top = [...groupBy(FIRST, LAST).entries()].sort((a, b) => b[1] - a[1]);
    // The most viewed path, and one from the tail (fewer views, maybe missing on some days).
    for (const [path] of [top[0], top.at(-1)] as [string, number][]) {
      const expected = sql
        .prepare(
          "SELECT event_date AS date, COUNT(*) AS views FROM traffic_events WHERE path = ? AND event_date >= ? AND event_date <= ? GROUP BY event_date ORDER BY event_date",
        )
        .all(path, from, to) as { date: string; views: number }[];
      expect(expected.length).toBeGreaterThan(0);
      const res = await call(
        `${srv.url}/api/stats/path-daily${qs([
          ["path", path],
          ["from", from],
          ["to", to],
        ])}`,
      );
      expect(res.status).toBe(200);
      const days = expected.map((d) => ({ ...d, tier: "hot" }));
      expect(res.body).toEqual({ path, from, to, days });
    }
  });

  it("path-daily: a path never viewed answers 200 with no days", async () => {
    const res = await call(
      `${srv.url}/api/stats/path-daily${qs([
        ["path", "/never/viewed?x=1&y=2"],
        ["from", FIRST],
        ["to", LAST],
      ])}`,
    );
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ path: "/never/viewed?x=1&y=2", from: FIRST, to: LAST, days: [] });
  });

  it("allows a range of exactly 366 days, and refuses 367 with 400", async () => {
    const ok = await call(
      `${srv.url}/api/stats/top-paths${qs([
        ["from", "2024-06-03"],
        ["to", LAST],
      ])}`,
    );
    expect(ok.status).toBe(200);
    const tooLong = await call(
      `${srv.url}/api/stats/top-paths${qs([
        ["from", "2024-06-02"],
        ["to", LAST],
      ])}`,
    );
    expect(tooLong.status).toBe(400);
    expect(tooLong.body).toMatchObject({ error: "bad_input" });
  });

  // Date.UTC(y, m, d) reads years 0-99 as 1900-1999: range bounds computed that way for year
  // 50 land in 1950 and a 3-day range is refused as too long. Two things keep it right: dates
  // before the year 1000 are refused as dates, and daysBefore() counts in days, not Date.UTC.
  it("never calls a 3-day range too long or reversed, whatever the year (0050 included)", async () => {
    // Either the early year is served like any other, or refused as a date; never as a range.
    for (const [query, from] of [
      [
        qs([
          ["from", "0050-05-30"],
          ["to", "0050-06-01"],
        ]),
        "0050-05-30",
      ],
      [qs([["to", "0050-06-01"]]), "0050-05-26"],
      [
        qs([
          ["from", "0099-12-30"],
          ["to", "0100-01-01"],
        ]),
        "0099-12-30",
      ],
    ] as const) {
      const res = await call(`${srv.url}/api/stats/top-paths${query}`);
      const message = (res.body as { message?: string }).message ?? "";
      if (res.status === 400) {
        expect(message, query).not.toMatch(/spans|after/);
        expect(message, query).toMatch(/date/);
      } else {
        expect(res.status, `${query} -> ${res.text}`).toBe(200);
        expect(res.body, query).toMatchObject({ from, paths: [] });
      }
    }
  });
});

describe("/admin", () => {
  it("refuses a missing or wrong token with 401 JSON and WWW-Authenticate, and runs nothing", async () => {
    const attempts: [string, RequestInit][] = [
      [`/admin/trigger-archive?date=${D}`, { method: "POST" }],
      [`/admin/trigger-archive?date=${D}`, { method: "POST", headers: bearer(WRONG_TOKEN) }],
      [`/admin/trigger-archive?date=${D}`, { method: "GET", headers: bearer(`${TOKEN}x`) }],
      [`/admin/trigger-cleanup?date=${D}`, { method: "POST", headers: bearer(TOKEN.slice(1)) }],
      [`/admin/trigger-cleanup?date=${D}`, { method: "GET", headers: { authorization: TOKEN } }],
      [
        `/admin/trigger-archive?date=${D}`,
        { method: "POST", headers: { authorization: `Basic ${btoa(`admin:${TOKEN}`)}` } },
      ],
      [`/admin/archive-status?date=${D}`, { headers: { authorization: `bearer ${TOKEN}` } }],
      ["/admin/partitions", {}],
    ];
    for (const [path, init] of attempts) {
      const res = await call(`${srv.url}${path}`, init);
      const what = `${init.method ?? "GET"} ${path} ${JSON.stringify(init.headers ?? {})}`;
      expect(res.status, what).toBe(401);
      expect(res.headers.get("www-authenticate"), what).toMatch(/^Bearer /);
      expect(res.body, what).toMatchObject({ error: "unauthorized" });
    }
    // Give a wrongly started job time to show; then: no ledger row, no archive file, rows intact.
    await new Promise((r) => setTimeout(r, 200));
    expect(ledgerRow(D)).toBeUndefined();
    expect(filesUnder(srv.store)).toEqual([]);
    expect(countOn(D)).toBe(D_ROWS);
  });

  it("archives a date: 202 { job }, then the job succeeds, the part is verified and on disk", async () => {
    const res = await call(`${srv.url}/admin/trigger-archive?date=${D}`, {
      method: "POST",
      headers: bearer(),
    });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({
      accepted: true,
      job: { kind: "archive", date: D, table: "traffic_events", id: expect.any(String) },
      status: `/admin/archive-status?date=${D}`,
    });

    const status = await waitForJob(srv.url, D);
    expect(status.job?.state, status.job?.error ?? "").toBe("succeeded");
    expect(status.job?.id).toBe((res.body as { job: { id: string } }).job.id);
    expect(status.record).toMatchObject({ state: "verified", eventCount: D_ROWS, cleaned: false });
    expect(status.hotRows).toBe(D_ROWS);
    expect(status.lateRows).toBe(0);

    // The file holds exactly the date's rows, in key order.
    expect(existsSync(partPath(D))).toBe(true);
    const lines = gunzipSync(readFileSync(partPath(D)))
      .toString("utf8")
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as { id: number; event_date: string });
    const ids = (
      sql.prepare("SELECT id FROM traffic_events WHERE event_date = ? ORDER BY id").all(D) as {
        id: number;
      }[]
    ).map((r) => r.id);
    expect(lines.map((l) => l.id)).toEqual(ids);
    expect(lines.every((l) => l.event_date === D)).toBe(true);
    expect(ledgerRow(D)).toMatchObject({ state: "verified", lease_owner: null });
  });

  it("re-triggering the archive by GET is accepted and writes nothing new", async () => {
    const before = readFileSync(partPath(D));
    const res = await call(`${srv.url}/admin/trigger-archive?date=${D}`, { headers: bearer() });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ job: { kind: "archive", date: D } });
    const status = await waitForJob(srv.url, D);
    expect(status.job?.state, status.job?.error ?? "").toBe("succeeded");
    expect(status.job?.result).toMatchObject({ archived: { rowsWritten: 0, rows: D_ROWS } });
    expect(status.record).toMatchObject({ state: "verified", partCount: 1 });
    expect(readFileSync(partPath(D)).equals(before)).toBe(true);
  });

  it("refuses a cleanup of a date with no archive or an unverified one before accepting it, leaving no ledger row", async () => {
    const none = STATS_DAYS.find((d) => !ledgerRow(d)) as string;
    const res = await call(`${srv.url}/admin/trigger-cleanup?date=${none}`, {
      method: "POST",
      headers: bearer(),
    });
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ error: "not_found" });
    expect((res.body as { message: string }).message).toMatch(
      new RegExp(`no archive of traffic_events for ${none}: archive it first`),
    );
    expect(ledgerRow(none)).toBeUndefined();
    // An archived date whose part lost its verified mark: 409 with its state.
    sql.prepare("UPDATE archive_parts SET verified_at = NULL WHERE date = ?").run(D);
    try {
      const unverified = await call(`${srv.url}/admin/trigger-cleanup?date=${D}`, {
        method: "POST",
        headers: bearer(),
      });
      expect(unverified.status).toBe(409);
      expect(unverified.body).toMatchObject({ error: "not_verified" });
      expect(ledgerRow(D)).toMatchObject({ state: "verified", lease_owner: null });
    } finally {
      sql.prepare("UPDATE archive_parts SET verified_at = archived_at WHERE date = ?").run(D);
    }
  });

  it("cleans the date: 202, the job succeeds, its rows are gone and the ledger says cleaned", async () => {
    const others = STATS_DAYS.map(countOn);
    const res = await call(`${srv.url}/admin/trigger-cleanup?date=${D}`, {
      method: "POST",
      headers: bearer(),
    });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ accepted: true, job: { kind: "cleanup", date: D } });

    const status = await waitForJob(srv.url, D);
    expect(status.job?.state, status.job?.error ?? "").toBe("succeeded");
    expect(status.job?.result).toMatchObject({
      cleanup: { complete: true, deleted: D_ROWS, remaining: 0 },
    });
    expect(status.record).toMatchObject({ state: "cleaned", cleaned: true });
    expect(status.hotRows).toBe(0);
    expect(countOn(D)).toBe(0);
    // Other dates are untouched, and the archive is still there.
    expect(STATS_DAYS.map(countOn)).toEqual(others);
    expect(existsSync(partPath(D))).toBe(true);

    const list = await call(`${srv.url}/admin/partitions`, { headers: bearer() });
    expect(list.status).toBe(200);
    const partitions = (list.body as { table: string; partitions: Record<string, unknown>[] })
      .partitions;
    expect((list.body as { table: string }).table).toBe("traffic_events");
    expect(partitions.find((p) => p.date === D)).toMatchObject({
      date: D,
      state: "cleaned",
      cleaned: true,
      rows: D_ROWS,
      cleanedCount: D_ROWS,
      hotRows: 0,
      lateRows: 0,
      parts: 1,
      // The day's stats outlive its rows: the rollup counts every one of them.
      rollupRows: D_ROWS,
      rollupParts: [{ part: 0, rows: D_ROWS, rollupRows: D_ROWS }],
    });
  });

  it("a second trigger while the date's job runs answers 409 { error: locked, holder }", async () => {
    const first = await call(`${srv.url}/admin/trigger-archive?date=${BIG}`, {
      method: "POST",
      headers: bearer(),
    });
    const second = await call(`${srv.url}/admin/trigger-archive?date=${BIG}`, {
      method: "POST",
      headers: bearer(),
    });
    const cleanup = await call(`${srv.url}/admin/trigger-cleanup?date=${BIG}`, {
      headers: bearer(),
    });
    expect(first.status).toBe(202);
    expect(second.status, second.text).toBe(409);
    expect(second.body).toMatchObject({ error: "locked", holder: expect.any(String) });
    expect((second.body as { holder: string }).holder).toContain(
      (first.body as { job: { id: string } }).job.id,
    );
    expect(cleanup.status, cleanup.text).toBe(409);
    expect(cleanup.body).toMatchObject({ error: "locked" });

    const status = await waitForJob(srv.url, BIG, 90_000);
    expect(status.job?.id).toBe((first.body as { job: { id: string } }).job.id);
    expect(status.job?.state, status.job?.error ?? "").toBe("succeeded");
    expect(status.record).toMatchObject({ state: "verified", eventCount: BIG_ROWS });
    expect(countOn(BIG)).toBe(BIG_ROWS);
  });

  it("cleanup of a date never archived is refused before any job; an archive of a day with no rows is accepted, then fails saying so", async () => {
    const res = await call(`${srv.url}/admin/trigger-cleanup?date=${NEVER_ARCHIVED}`, {
      method: "POST",
      headers: bearer(),
    });
    expect(res.status).toBe(404);
    const status = await call(`${srv.url}/admin/archive-status?date=${NEVER_ARCHIVED}`, {
      headers: bearer(),
    });
    expect(status.body).toMatchObject({ record: null, job: null });
    expect(countOn(NEVER_ARCHIVED)).toBe(1_000);
    expect(filesUnder(join(srv.store, "traffic_events", `date=${NEVER_ARCHIVED}`))).toEqual([]);

    const empty = "2031-01-01";
    const archive = await call(`${srv.url}/admin/trigger-archive?date=${empty}`, {
      method: "POST",
      headers: bearer(),
    });
    expect(archive.status).toBe(202);
    const job = await waitForJob(srv.url, empty);
    expect(job.job?.state).toBe("failed");
    expect(job.job?.error).toMatch(/nothing to archive/);
  });

  it("archive-status of a date with nothing answers 200 with no record and no job", async () => {
    const res = await call(`${srv.url}/admin/archive-status?date=2030-01-01`, {
      headers: bearer(),
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      date: "2030-01-01",
      record: null,
      parts: [],
      hotRows: 0,
      job: null,
    } satisfies Partial<StatusBody>);
  });

  it("a bad date is a 400 before anything runs", async () => {
    for (const date of ["2025-02-30", "20250520", "", "2025-05-20;"]) {
      const res = await call(`${srv.url}/admin/trigger-archive${qs([["date", date]])}`, {
        method: "POST",
        headers: bearer(),
      });
      expect(res.status, date).toBe(400);
      expect(res.body, date).toMatchObject({ error: "bad_input" });
    }
  });
});

describe("GET /metrics", () => {
  /** The value of one sample in Prometheus text, e.g. `name{kind="archive",outcome="ok"}`. */
  function sample(text: string, series: string): number | undefined {
    const line = text.split("\n").find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  }

  it("counts what this server ingested, archived and cleaned, and the hot rows by date", async () => {
    const res = await call(`${srv.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = res.text;
    expect(sample(text, "sluice_ingested_events_total")).toBe(ingested);
    expect(sample(text, 'sluice_jobs_total{kind="archive",outcome="ok"}')).toBe(3);
    expect(sample(text, 'sluice_jobs_total{kind="cleanup",outcome="ok"}')).toBe(1);
    expect(sample(text, 'sluice_jobs_total{kind="archive",outcome="failed"}')).toBe(1);
    // A cleanup refused before it started is no job.
    expect(sample(text, 'sluice_jobs_total{kind="cleanup",outcome="failed"}')).toBeUndefined();
    expect(sample(text, "sluice_archived_rows_total")).toBe(D_ROWS + BIG_ROWS);
    expect(sample(text, "sluice_deleted_rows_total")).toBe(D_ROWS);
    expect(sample(text, `sluice_hot_rows{date="${STATS_DAYS[1]}"}`)).toBe(STATS_PER_DAY);
    expect(sample(text, `sluice_hot_rows{date="${BIG}"}`)).toBe(BIG_ROWS);
    expect(sample(text, `sluice_hot_rows{date="${D}"}`)).toBeUndefined();
  });
});

describe("a server without ADMIN_TOKEN", () => {
  let bare: TestServer;
  beforeAll(async () => {
    bare = await startServer({ seed: [{ date: D, count: 100 }], env: { ADMIN_TOKEN: undefined } });
  });
  afterAll(async () => {
    await bare?.stop();
  });

  it("answers every /admin route 403 admin_disabled, token or not, and runs nothing", async () => {
    const health = await call(`${bare.url}/healthz`);
    expect(health.status).toBe(200);
    for (const [path, init] of [
      ["/admin/partitions", {}],
      ["/admin/partitions", { headers: bearer() }],
      [`/admin/trigger-archive?date=${D}`, { method: "POST", headers: bearer() }],
      [`/admin/trigger-cleanup?date=${D}`, { headers: bearer() }],
      [`/admin/archive-status?date=${D}`, { headers: bearer() }],
    ] as [string, RequestInit][]) {
      const res = await call(`${bare.url}${path}`, init);
      expect(res.status, path).toBe(403);
      expect(res.body, path).toMatchObject({ error: "admin_disabled" });
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(filesUnder(bare.store)).toEqual([]);
    const db = bare.sql();
    expect(db.prepare("SELECT COUNT(*) AS n FROM archive_metadata").get()).toEqual({ n: 0 });
  });
});

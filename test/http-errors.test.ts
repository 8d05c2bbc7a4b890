import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type TestServer,
  bearer,
  call,
  event,
  postJson,
  postRaw,
  qs,
  startServer,
} from "./http-helpers.js";
import { type TestDb, postgresDb } from "./servers.js";

/**
 * What the service tells a client when something breaks: a 5xx says nothing of the database
 * (the detail is logged under the request id), /healthz only ok or not, and a NUL in any
 * string input is a 400 naming the field. On SQLite and on the machine's PostgreSQL, whose
 * driver errors are the ones that leaked (`invalid byte sequence for encoding "UTF8": 0x00`).
 */
const pgdb = await postgresDb();
afterAll(async () => {
  await pgdb?.close();
});

const DAY = "2025-06-02";
const TS = Date.UTC(2025, 5, 2, 12);

const targets: { name: string; db: TestDb | null; env: Record<string, string> }[] = [
  { name: "SQLite", db: null, env: {} },
  ...(pgdb ? [{ name: "PostgreSQL", db: pgdb, env: { SLUICE_DB: pgdb.url } }] : []),
];
if (!pgdb) describe.skip("errors on PostgreSQL (no server)", () => {});

for (const t of targets) {
  describe(`errors and NUL on ${t.name}`, () => {
    let srv: TestServer;
    const logged: Record<string, unknown>[] = [];

    beforeAll(async () => {
      const sink = new Writable({
        write(chunk: Buffer, _enc, done) {
          for (const line of chunk.toString().split("\n")) {
            if (line.trim() !== "") logged.push(JSON.parse(line) as Record<string, unknown>);
          }
          done();
        },
      });
      srv = await startServer({ env: t.env, logger: pino({ level: "info" }, sink) });
      const res = await postJson(srv.url, [event(TS), event(TS + 1, { path: "/docs" })]);
      expect(res.status, res.text).toBe(201);
    });
    afterAll(async () => {
      await srv?.stop();
    });

    it("/healthz answers only that it is ok: no database path, no store, no URL", async () => {
      const res = await call(`${srv.url}/healthz`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ ok: true });
    });

    it("a NUL in any query parameter is a 400 naming the parameter, before any query", async () => {
      const cases: [string, RequestInit, string][] = [
        [`/api/stats/path-daily?path=/%00x&from=${DAY}&to=${DAY}`, {}, "path"],
        [`/api/stats/path-daily${qs([["path", "/a\u0000"]])}`, {}, "path"],
        [`/api/stats/top-paths?from=${DAY}%00&to=${DAY}`, {}, "from"],
        [`/api/stats/top-paths?to=%00${DAY}`, {}, "to"],
        ["/api/stats/top-paths?limit=5%00", {}, "limit"],
        ["/api/stats/top-paths?x%00y=1", {}, "x\u0000y"],
        [`/admin/archive-status?date=${DAY}%00`, { headers: bearer() }, "date"],
        [`/admin/trigger-archive?date=${DAY}%00`, { method: "POST", headers: bearer() }, "date"],
      ];
      for (const [path, init, field] of cases) {
        const res = await call(`${srv.url}${path}`, init);
        expect(res.status, `${path} -> ${res.text}`).toBe(400);
        expect(res.body, path).toMatchObject({
          error: "bad_input",
          message: `query parameter '${field}' must not hold NUL (\\u0000)`,
        });
      }
      expect(logged.filter((l) => l.level === 50)).toEqual([]);
    });

    it("a NUL in an ingest field is a 400 naming the event and the field; nothing written", async () => {
      for (const field of ["path", "referrer", "user_agent", "country", "event_date"]) {
        const value = field === "path" ? "/a\u0000b" : field === "country" ? "D\u0000" : "\u0000";
        const bad = event(TS + 2, { [field]: value });
        for (const [body, type] of [
          [JSON.stringify([event(TS + 3), bad]), "application/json"],
          [`${JSON.stringify(event(TS + 3))}\n${JSON.stringify(bad)}\n`, "application/x-ndjson"],
        ] as const) {
          const res = await postRaw(srv.url, body, type);
          expect(res.status, `${field} ${type} -> ${res.text}`).toBe(400);
          expect(res.body).toMatchObject({ error: "bad_event", index: 1 });
          expect((res.body as { reason: string }).reason, field).toMatch(new RegExp(`^${field}: `));
        }
      }
      const top = await call(`${srv.url}/api/stats/top-paths?from=${DAY}&to=${DAY}`);
      expect(top.status).toBe(200);
      expect(top.body).toMatchObject({ paths: [{ views: 1 }, { views: 1 }] });
    });

    // Last: it drops the table under the running service.
    it("a 5xx says only that it failed, with the request id; the driver's words are in the log", async () => {
      if (t.db) await t.db.run("DROP TABLE traffic_events");
      else srv.sql().exec("DROP TABLE traffic_events");
      const res = await call(`${srv.url}/api/stats/top-paths?from=${DAY}&to=${DAY}`);
      expect(res.status).toBe(500);
      const body = res.body as { requestId: string };
      expect(body).toEqual({
        error: "internal",
        message: "the request failed on the server; its log has the details under this requestId",
        requestId: expect.stringMatching(/^\S{8,}$/),
      });
      expect(res.headers.get("x-request-id")).toBe(body.requestId);
      expect(res.text).not.toMatch(/traffic_events|relation|table|sqlite|postgres/i);

      const line = logged.find((l) => l.reqId === body.requestId && l.msg === "request failed");
      expect(line, JSON.stringify(logged.slice(-5))).toMatchObject({ level: 50, status: 500 });
      expect(String(line?.err)).toMatch(/traffic_events/);
    });
  });
}

describe.runIf(pgdb !== null)("ingest and stats on a table of another shape", () => {
  let srv: TestServer;
  beforeAll(async () => {
    const db = pgdb as TestDb;
    await db.run(
      "CREATE TABLE pv (id BIGINT PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL, url TEXT)",
    );
    await db.run("INSERT INTO pv VALUES (1, '2025-06-02 12:00+00', '/a')");
    srv = await startServer({
      env: { SLUICE_DB: db.url, SLUICE_TABLE: "pv", SLUICE_PARTITION_COLUMN: "created_at" },
    });
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it("answer 404 saying what they need and how to enable them, never a database error", async () => {
    const ingest = await postJson(srv.url, [event(TS)]);
    for (const res of [
      ingest,
      await call(`${srv.url}/api/stats/top-paths?from=${DAY}&to=${DAY}`),
      await call(`${srv.url}/api/stats/path-daily?path=/a&from=${DAY}&to=${DAY}`),
    ]) {
      expect(res.status, res.text).toBe(404);
      const body = JSON.parse(res.text) as { error: string; message: string };
      expect(body.error).toBe("not_found");
      // Ingest needs the page-view columns; the stats only a path column and a date partition.
      expect(body.message).toMatch(
        res === ingest
          ? /'pv' has no event_date, ts, path/
          : /'pv' has no path \(name the column to count by with SLUICE_PATH_COLUMN/,
      );
      expect(body.message).toMatch(/SLUICE_TABLE/);
    }
    expect(await (pgdb as TestDb).query("SELECT COUNT(*)::int AS n FROM pv")).toEqual([{ n: 1 }]);
  });

  it("leave the rest of the service working on that table", async () => {
    const res = await call(`${srv.url}/admin/partitions`, { headers: bearer() });
    expect(res.status, res.text).toBe(200);
    expect((await call(`${srv.url}/healthz`)).status).toBe(200);
  });
});

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
 * (the detail is logged under the request id), and /healthz only ok or not. On SQLite and on the machine's PostgreSQL, whose
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
  describe(`errors on ${t.name}`, () => {
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

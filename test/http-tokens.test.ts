import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/node/config.js";
import { openSource } from "../src/node/open.js";
import { prepareMesData } from "../src/workloads/mes/prepare.js";
import {
  TOKEN as ADMIN,
  type TestServer,
  bearer,
  call,
  event,
  startServer,
  tableCount,
} from "./http-helpers.js";

/**
 * INGEST_TOKEN, STATS_TOKEN and TRACE_TOKEN: each route group asks for its own bearer token
 * when one is set, and only for that one; ADMIN_TOKEN opens none of them. Unset, a group is
 * open (the other HTTP tests run that way).
 */
const INGEST = "ingest-token-0123456789abcdef";
const STATS = "stats-token-0123456789abcdef";
const TRACE = "trace-token-0123456789abcdef";
const DAY = "2025-06-02";

let srv: TestServer;
const mesDir = mkdtempSync(join(tmpdir(), "sluice-tokens-mes-"));

beforeAll(async () => {
  // A small MES database, so that the trace routes are mounted.
  const mes = await openSource(`sqlite:${join(mesDir, "mes.db")}`, { create: true });
  try {
    await prepareMesData(mes, { scale: 0.001 });
  } finally {
    await mes.close();
  }
  srv = await startServer({
    seed: [{ date: DAY, count: 200 }],
    env: {
      INGEST_TOKEN: INGEST,
      STATS_TOKEN: STATS,
      TRACE_TOKEN: TRACE,
      TRACE_DB: `sqlite:${join(mesDir, "mes.db")}`,
    },
  });
});
afterAll(async () => {
  await srv?.stop();
  rmSync(mesDir, { recursive: true, force: true });
});

const json = { "content-type": "application/json" };
const ingest = (headers: Record<string, string>) =>
  call(`${srv.url}/api/events`, {
    method: "POST",
    headers: { ...json, ...headers },
    body: JSON.stringify([event(Date.UTC(2025, 5, 2, 9), { path: "/tokens" })]),
  });
const seedResolve = (headers: Record<string, string>) =>
  call(`${srv.url}/api/trace/seed-resolve`, {
    method: "POST",
    headers: { ...json, ...headers },
    body: JSON.stringify({
      profile: "mid_section_defect",
      filter: { workcenter: "TMTT", from: "2025-01-01", to: "2025-12-31" },
    }),
  });

/** Every way to not hold a group's token: none, a wrong one, and each other token. */
function strangers(own: string): [string, Record<string, string>][] {
  return [
    ["no header", {}],
    ["a wrong token", bearer(`${own.slice(0, -1)}x`)],
    ["the token without 'Bearer'", { authorization: own }],
    ...[INGEST, STATS, TRACE, ADMIN]
      .filter((t) => t !== own)
      .map((t): [string, Record<string, string>] => [`token ${t.slice(0, 6)}`, bearer(t)]),
  ];
}

function expect401(res: { status: number; headers: Headers; body: unknown }, what: string) {
  expect(res.status, what).toBe(401);
  expect(res.headers.get("www-authenticate"), what).toMatch(/^Bearer realm=/);
  expect(res.body, what).toMatchObject({ error: "unauthorized" });
}

describe("route group tokens", () => {
  it("POST /api/events needs INGEST_TOKEN: 401 without it, and nothing is written", async () => {
    const db = srv.sql();
    const before = tableCount(db);
    for (const [what, headers] of strangers(INGEST)) expect401(await ingest(headers), what);
    expect(tableCount(db)).toBe(before);
    const ok = await ingest(bearer(INGEST));
    expect(ok.status, ok.text).toBe(201);
    expect(tableCount(db)).toBe(before + 1);
  });

  it("/api/stats/* needs STATS_TOKEN", async () => {
    for (const route of [
      `/api/stats/top-paths?from=${DAY}&to=${DAY}`,
      `/api/stats/path-daily?path=/&from=${DAY}&to=${DAY}`,
    ]) {
      for (const [what, headers] of strangers(STATS)) {
        expect401(await call(`${srv.url}${route}`, { headers }), `${route} ${what}`);
      }
      const ok = await call(`${srv.url}${route}`, { headers: bearer(STATS) });
      expect(ok.status, ok.text).toBe(200);
    }
  });

  it("/api/trace/* needs TRACE_TOKEN, job results included", async () => {
    for (const [what, headers] of strangers(TRACE)) {
      expect401(await seedResolve(headers), `seed-resolve ${what}`);
      const job = await call(`${srv.url}/api/trace/jobs/some-job/result`, { headers });
      expect401(job, `job result ${what}`);
    }
    const ok = await seedResolve(bearer(TRACE));
    expect(ok.status, ok.text).toBe(200);
    const job = await call(`${srv.url}/api/trace/jobs/some-job/result`, { headers: bearer(TRACE) });
    expect(job.status).not.toBe(401);
  });

  it("the group tokens open nothing under /admin; /healthz stays open", async () => {
    for (const token of [INGEST, STATS, TRACE]) {
      expect401(await call(`${srv.url}/admin/partitions`, { headers: bearer(token) }), token);
    }
    expect((await call(`${srv.url}/admin/partitions`, { headers: bearer(ADMIN) })).status).toBe(
      200,
    );
    expect((await call(`${srv.url}/healthz`)).status).toBe(200);
  });

  it("each token is checked at start-up like ADMIN_TOKEN: at least 16 characters, never printed", () => {
    for (const name of ["INGEST_TOKEN", "STATS_TOKEN", "TRACE_TOKEN"]) {
      expect(() => loadConfig({ [name]: "hunter2" })).toThrow(
        new RegExp(`${name}=\\*\\*\\*: must be at least 16 characters`),
      );
      expect(loadConfig({ [name]: INGEST })).toMatchObject({ [name]: INGEST });
      expect(loadConfig({})[name as "STATS_TOKEN"]).toBeUndefined();
    }
  });
});

describe("CORS_ORIGINS: a dashboard on another origin", () => {
  let cors: TestServer;
  const ORIGIN = "https://dash.example.com";
  beforeAll(async () => {
    cors = await startServer({
      seed: [{ date: DAY, count: 20 }],
      env: { STATS_TOKEN: STATS, CORS_ORIGINS: `${ORIGIN}, https://other.example.com` },
    });
  });
  afterAll(async () => {
    await cors?.stop();
  });
  const stats = `/api/stats/top-paths?from=${DAY}&to=${DAY}`;

  it("answers a preflight from an allowed origin without a token, naming the headers it may send", async () => {
    const res = await call(`${cors.url}${stats}`, {
      method: "OPTIONS",
      headers: {
        Origin: ORIGIN,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    expect(res.headers.get("access-control-allow-headers")?.toLowerCase()).toMatch(/authorization/);
  });

  it("lets an allowed origin read an answer, and still asks it for the token", async () => {
    const ok = await call(`${cors.url}${stats}`, { headers: { Origin: ORIGIN, ...bearer(STATS) } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    expect(ok.headers.get("vary")).toMatch(/origin/i);
    const none = await call(`${cors.url}${stats}`, { headers: { Origin: ORIGIN } });
    expect(none.status).toBe(401);
    expect(none.headers.get("access-control-allow-origin")).toBe(ORIGIN);
  });

  it("gives no CORS header to an origin not listed, nor to any when CORS_ORIGINS is unset", async () => {
    const other = await call(`${cors.url}${stats}`, {
      headers: { Origin: "https://evil.example.com", ...bearer(STATS) },
    });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    const off = await call(`${srv.url}${stats}`, { headers: { Origin: ORIGIN, ...bearer(STATS) } });
    expect(off.status).toBe(200);
    expect(off.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("checks CORS_ORIGINS at start-up: each an origin (scheme://host[:port]), or *", () => {
    expect(() => loadConfig({ CORS_ORIGINS: "dash.example.com" })).toThrow(/CORS_ORIGINS/);
    expect(() => loadConfig({ CORS_ORIGINS: "https://a.example/path" })).toThrow(/CORS_ORIGINS/);
    expect(loadConfig({ CORS_ORIGINS: "https://a.example, http://b:8080" }).CORS_ORIGINS).toEqual([
      "https://a.example",
      "http://b:8080",
    ]);
    expect(loadConfig({}).CORS_ORIGINS).toEqual([]);
  });
});

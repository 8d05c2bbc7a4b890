import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobContext } from "../src/core/archive.js";
import { prepareMesData } from "../src/core/mes/prepare.js";
import type { JobRunner } from "../src/core/runner.js";
import { Semaphore } from "../src/core/semaphore.js";
import type { Row, SqlSource } from "../src/core/source.js";
import { domainEvents } from "../src/core/trace/events.js";
import { traceLineage } from "../src/core/trace/lineage.js";
import { MsdPareto } from "../src/core/trace/msd.js";
import { createApp } from "../src/http/app.js";
import { openSource } from "../src/node/open.js";
import { type TestDb, postgresDb } from "./servers.js";

/**
 * The trace routes over real HTTP on the machine's PostgreSQL: each stage and profile, the
 * admission limit, a client that disconnects mid-stream, and the streamed answer against the
 * materialised one. The source is wrapped only to count the statements the routes start.
 */
const pgdb = await postgresDb();
const LIMIT = 40;

describe.runIf(pgdb !== null)("trace routes on PostgreSQL", () => {
  const db = pgdb as TestDb;
  let source: SqlSource;
  let url = "";
  let close: () => Promise<void>;
  const streamed: string[] = [];
  const warnings: Record<string, unknown>[] = [];
  let seeds: string[] = [];
  let slow = false;
  let full: string | null = null;
  const slots = new Semaphore(2);

  beforeAll(async () => {
    const appName = `sluice_trace_${process.pid}`;
    source = openSource(`${db.url}&application_name=${appName}`, { poolSize: 8 });
    await prepareMesData(source, { scale: 0.01 });
    // Counts every streamed statement (the event queries), and otherwise is the source.
    const counting: SqlSource = Object.assign(Object.create(source), {
      stream(sql: string, params?: readonly unknown[], options?: object) {
        streamed.push(sql);
        // Slow: 20 ms a row, so that a statement is still running when the client leaves.
        const run = slow ? sql.replace(/^SELECT /, "SELECT pg_sleep(0.02) AS z, ") : sql;
        return source.stream(run, params, options);
      },
    });
    const log = {
      info: (fields: Record<string, unknown>) => warnings.push(fields),
      error: () => undefined,
    };
    const app = createApp({
      // Only the trace routes are used here; the rest of the app needs a context to build.
      ctx: {
        source,
        spec: { table: "traffic_events", partitionColumn: "event_date", keyColumn: "id" },
      } as unknown as JobContext,
      runner: {} as JobRunner,
      maxBodyBytes: 1 << 20,
      maxEvents: 10,
      trace: {
        source: counting,
        slots,
        memoryGuard: () => full,
        cidLimit: LIMIT,
        workersPerDomain: 2,
        fetchSize: 100,
        maxBodyBytes: 8 << 20,
        log,
      },
    });
    const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
    await new Promise((r) => server.once("listening", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => new Promise((r) => server.close(() => r()));
    const res = await post("/api/trace/seed-resolve", {
      profile: "query_tool",
      filter: { workcenter: "TMTT", from: "2000-01-01", to: "2100-01-01" },
    });
    seeds = ((await res.json()) as { containers: string[] }).containers;
  }, 120_000);
  afterAll(async () => {
    await close?.();
    await source?.close();
    await db.close();
  });

  function post(
    path: string,
    body: unknown,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
  ) {
    return fetch(`${url}${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: JSON.stringify(body),
      signal,
    });
  }

  it("seed-resolve answers the lots and containers for a station and date range", async () => {
    expect(seeds.length).toBeGreaterThan(LIMIT);
    const bad = await post("/api/trace/seed-resolve", {
      profile: "query_tool",
      filter: { workcenter: "TMTT", from: "2025-02-30", to: "2025-03-01" },
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: "bad_input" });
  });

  for (const [profile, direction] of [
    ["query_tool", "forward"],
    ["query_tool_reverse", "backward"],
    ["mid_section_defect", "backward"],
  ] as const) {
    it(`lineage for ${profile} walks ${direction}, as the library does`, async () => {
      const some = direction === "forward" ? seeds.slice(0, 10) : seeds;
      const res = await post("/api/trace/lineage", { profile, containers: some });
      expect(res.status).toBe(200);
      const body = await res.json();
      const expected = await traceLineage(source, some, direction);
      expect(expected.edges.length).toBeGreaterThan(0);
      // Streamed (edges as found, then the containers): the library's whole answer.
      expect(body).toEqual({
        profile,
        direction,
        edges: expected.edges,
        containers: expected.containers,
        count: expected.containers.length,
        depth: expected.depth,
      });
    });
  }

  it("events for query_tool: the streamed JSON parses and equals the materialised answer", async () => {
    const cids = seeds.slice(0, LIMIT);
    const res = await post("/api/trace/events", { profile: "query_tool", containers: cids });
    expect(res.status).toBe(200);
    const got = (await res.json()) as { results: Record<string, { data: Row[]; count: number }> };
    const expected: Record<string, { data: Row[]; count: number }> = {};
    for (const domain of ["upstream_history", "defect_records"] as const) {
      const data: Row[] = [];
      for await (const b of domainEvents(source, domain, cids)) for (const r of b) data.push(r);
      expected[domain] = { data: JSON.parse(JSON.stringify(data)), count: data.length };
    }
    expect(got).toEqual({ results: expected });
    expect(got.results.upstream_history?.count).toBeGreaterThan(0);
  });

  it("events as NDJSON: one row per line, and an end line per domain", async () => {
    const cids = seeds.slice(0, 5);
    const res = await post(
      "/api/trace/events",
      { profile: "query_tool", containers: cids, domains: ["defect_records"] },
      { Accept: "application/x-ndjson" },
    );
    expect(res.headers.get("content-type")).toMatch(/application\/x-ndjson/);
    const lines = (await res.text())
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    const end = lines.at(-1);
    expect(end).toMatchObject({ domain: "defect_records", end: true });
    expect(lines.length - 1).toBe(end.count);
  });

  it("query_tool over TRACE_EVENTS_CID_LIMIT: 413 with the limit and the count, and no event query ran", async () => {
    const before = streamed.length;
    for (const profile of ["query_tool", "query_tool_reverse"]) {
      const res = await post("/api/trace/events", {
        profile,
        containers: seeds.slice(0, LIMIT + 1),
      });
      expect(res.status).toBe(413);
      expect(await res.json()).toMatchObject({
        error: "too_many_containers",
        limit: LIMIT,
        count: LIMIT + 1,
      });
    }
    expect(streamed.length).toBe(before);
  });

  it("mid_section_defect over the limit: a warning with the count, then 200 with the pareto", async () => {
    const cids = (await traceLineage(source, seeds, "backward")).containers;
    expect(cids.length).toBeGreaterThan(LIMIT);
    const res = await post("/api/trace/events", {
      profile: "mid_section_defect",
      containers: cids,
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      results: Record<string, { count: number }>;
      msd: { pareto: { workcenter: string; defectQty: number }[] };
    };
    expect(warnings).toContainEqual(
      expect.objectContaining({
        profile: "mid_section_defect",
        containers: cids.length,
        limit: LIMIT,
      }),
    );
    const p = new MsdPareto(cids);
    p.addLineage((await traceLineage(source, cids, "backward")).edges);
    for await (const b of domainEvents(source, "defect_records", cids)) p.addDefects(b);
    for await (const b of domainEvents(source, "upstream_history", cids)) p.addUpstream(b);
    expect(body.msd).toEqual(JSON.parse(JSON.stringify(p.result())));
    expect(body.msd.pareto.length).toBeGreaterThan(0);
    // The defects come first in MSD's response: the pareto is built from them.
    expect(Object.keys(body.results)).toEqual(["defect_records", "upstream_history"]);
  });

  it("the MSD pareto alone: the events route's trailer, with the rows counted and none sent", async () => {
    const cids = (await traceLineage(source, seeds, "backward")).containers;
    const events = await post("/api/trace/events", {
      profile: "mid_section_defect",
      containers: cids,
    });
    const full = (await events.json()) as {
      results: Record<string, { count: number }>;
      msd: unknown;
    };
    const before = streamed.length;
    const res = await post("/api/trace/pareto", { containers: cids });
    expect(res.status).toBe(200);
    const text = await res.text();
    const body = JSON.parse(text);
    expect(body).toEqual({
      profile: "mid_section_defect",
      containers: cids.length,
      rows: {
        defect_records: full.results.defect_records?.count,
        upstream_history: full.results.upstream_history?.count,
      },
      msd: full.msd,
    });
    expect(body.rows.upstream_history).toBeGreaterThan(0);
    // Over the limit it warns and goes on, as MSD does; the rows were read, none sent.
    expect(cids.length).toBeGreaterThan(LIMIT);
    expect(streamed.length).toBeGreaterThan(before);
    expect(text).not.toContain("SPEC");
    for (const bad of [
      { profile: "query_tool", containers: cids },
      { containers: [] },
      { containers: ["C1; DROP TABLE lot_moves"] },
    ]) {
      const r = await post("/api/trace/pareto", bad);
      expect(r.status).toBe(400);
      expect(await r.json()).toMatchObject({ error: "bad_input" });
    }
  });

  it("a client that disconnects mid-stream: its statements are cancelled, and the server keeps serving", async () => {
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    // 'active': a statement running; anything but 'idle': one still open (a cursor waiting).
    const count = async (states: string) =>
      (
        await admin.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND ${states}`,
          [`sluice_trace_${process.pid}`],
        )
      ).rows[0].n as number;
    const running = () => count("state = 'active'");
    const open = () => count("state <> 'idle'");
    slow = true;
    try {
      const leave = new AbortController();
      const res = post(
        "/api/trace/events",
        { profile: "query_tool", containers: seeds.slice(0, LIMIT) },
        {},
        leave.signal,
      ).catch(() => null);
      // Each statement now needs seconds; the client leaves while one runs.
      let seen = 0;
      for (let i = 0; i < 30 && seen === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        seen = await running();
      }
      expect(seen).toBeGreaterThan(0);
      leave.abort();
      await res;
      // Cancelled within a cursor read (100 rows: 2 s), not after the statement's ~7 s.
      let left = -1;
      for (let i = 0; i < 40 && left !== 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        left = await open();
      }
      expect(left).toBe(0);
      expect(slots.inUse).toBe(0);
    } finally {
      slow = false;
      await admin.end();
    }
    const again = await post("/api/trace/lineage", {
      profile: "query_tool",
      containers: seeds.slice(0, 3),
    });
    expect(again.status).toBe(200);
  });

  it("over the memory guard: 503 with Retry-After and nothing read, then served again", async () => {
    const before = streamed.length;
    full = "resident memory 5000 MB is over TRACE_MEMORY_LIMIT_MB=4096";
    try {
      const res = await post("/api/trace/events", {
        profile: "query_tool",
        containers: seeds.slice(0, 5),
      });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("30");
      expect(await res.json()).toMatchObject({ error: "busy" });
      expect(streamed.length).toBe(before);
    } finally {
      full = null;
    }
    const ok = await post("/api/trace/events", {
      profile: "query_tool",
      containers: seeds.slice(0, 5),
    });
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
  });

  it("bad requests are 4xx JSON: unknown profile, bad ids, unknown domain, not JSON", async () => {
    const cases: [unknown, number][] = [
      [{ profile: "everything", containers: ["C1"] }, 400],
      [{ profile: "query_tool", containers: ["C1'; DROP TABLE lot_moves; --"] }, 400],
      [{ profile: "query_tool", containers: [] }, 400],
      [{ profile: "query_tool", containers: ["C1"], domains: ["lot_moves"] }, 400],
    ];
    for (const [body, status] of cases) {
      const res = await post("/api/trace/events", body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(await res.json()).toHaveProperty("error");
    }
    const broken = await fetch(`${url}/api/trace/lineage`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{not json",
    });
    expect(broken.status).toBe(400);
  });
});

import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { type IncomingHttpHeaders, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import zlib, { gunzipSync } from "node:zlib";
import { serve } from "@hono/node-server";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FsStore } from "../src/adapters/fs/store.js";
import type { JobContext } from "../src/core/archive/context.js";
import type { JobRunner } from "../src/core/archive/runner.js";
import { BusyError } from "../src/core/errors.js";
import { rowsOf } from "../src/core/json/json-rows.js";
import { traceJsonStream, traceNdjsonStream } from "../src/core/json/trace-stream.js";
import { Semaphore } from "../src/core/semaphore.js";
import type { Row, SqlSource } from "../src/core/sql/source.js";
import { EVENT_DOMAINS, domainEvents } from "../src/core/trace/events.js";
import { traceLineage } from "../src/core/trace/lineage.js";
import { MsdPareto } from "../src/core/trace/msd.js";
import { TraceJobs } from "../src/core/trace/trace-jobs.js";
import { createApp } from "../src/http/app.js";
import { zlibCodec } from "../src/node/codec.js";
import { GcPacer } from "../src/node/gc-pacer.js";
import { openSource } from "../src/node/open.js";
import { prepareMesData } from "../src/workloads/mes/prepare.js";
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
  const slots = new Semaphore(2, {
    maxQueued: 1,
    refuse: () => new BusyError("trace slots busy: try again shortly", 5),
  });
  let collections = 0;
  const GC_EVERY = 500;
  const jobsDir = mkdtempSync(join(tmpdir(), "sluice-trace-jobs-"));
  const MAX_JOBS = 3;
  const jobs = new TraceJobs(new FsStore(jobsDir), zlibCodec, {
    heartbeatMs: 200,
    maxJobs: MAX_JOBS,
  });

  beforeAll(async () => {
    const appName = `sluice_trace_${process.pid}`;
    source = await openSource(`${db.url}&application_name=${appName}`, { poolSize: 8 });
    await prepareMesData(source, { scale: 0.01 });
    // Counts every streamed statement (the event queries), and otherwise is the source.
    const counting: SqlSource = Object.assign(Object.create(source), {
      stream(sql: string, params?: readonly unknown[], options?: object) {
        streamed.push(sql);
        // Slow: 20 ms a row, so that a statement is still running when the client leaves.
        const run = slow ? sql.replace(/^SELECT /, "SELECT pg_sleep(0.02) AS z, ") : sql;
        return source.stream(run, params, options);
      },
      // The same for the event statements read through COPY (a column added would be one too
      // many in its rows: the pause goes in the WHERE clause instead).
      copyText(sql: string, params?: readonly unknown[], options?: { signal?: AbortSignal }) {
        streamed.push(sql);
        const run = slow ? sql.replace(" WHERE ", " WHERE pg_sleep(0.02)::text = '' AND ") : sql;
        return (source.copyText as NonNullable<SqlSource["copyText"]>).call(
          source,
          run,
          params,
          options,
        );
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
        jobs,
        codec: zlibCodec,
        gc: new GcPacer(() => collections++, GC_EVERY),
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
    await jobs.stop();
    rmSync(jobsDir, { recursive: true, force: true });
    await close?.();
    await source?.close();
    await db.close();
  });

  /** What the first bytes of a gzip stream decompress to, without its end. */
  function partialGunzip(bytes: Buffer): string {
    return zlib.gunzipSync(bytes, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString("utf8");
  }

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

  it("seed-resolve over the whole range of dates (1000-01-01 to 9999-12-31) finds every seed", async () => {
    const res = await post("/api/trace/seed-resolve", {
      profile: "query_tool",
      filter: { workcenter: "TMTT", from: "1000-01-01", to: "9999-12-31" },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { count: number; containers: string[] };
    expect(body.count).toBe(seeds.length);
    expect([...body.containers].sort()).toEqual([...seeds].sort());
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
    const text = await res.text();
    const got = JSON.parse(text) as { results: Record<string, { data: Row[]; count: number }> };
    const expected: Record<string, { data: Row[]; count: number }> = {};
    const values: [string, Row[][]][] = [];
    for (const domain of ["upstream_history", "defect_records"] as const) {
      // Read as values by the driver, apart from the route's path (which reads through COPY).
      const q = source.dialect.quote;
      const data = await source.query(
        `SELECT ${EVENT_DOMAINS[domain].map(q).join(", ")} FROM ${q(domain)}
         WHERE ${q("CONTAINERID")} IN (${cids.map(() => "?").join(", ")}) ORDER BY ${q("CONTAINERID")}, ${q("ID")}`,
        cids,
      );
      expected[domain] = { data: JSON.parse(JSON.stringify(data)), count: data.length };
      values.push([domain, [data]]);
    }
    expect(got).toEqual({ results: expected });
    expect(got.results.upstream_history?.count).toBeGreaterThan(0);
    // Byte for byte what the writer makes of the rows read as values, in both formats.
    expect(text).toBe(await new Response(traceJsonStream(values)).text());
    const ndjson = await post(
      "/api/trace/events",
      { profile: "query_tool", containers: cids },
      { Accept: "application/x-ndjson" },
    );
    expect(await ndjson.text()).toBe(await new Response(traceNdjsonStream(values)).text());
  });

  it("events gzipped for a client that takes gzip: the same answer, compressed as it streams", async () => {
    const request = { profile: "query_tool", containers: seeds.slice(0, LIMIT) };
    const plain = await (
      await post("/api/trace/events", request, { "Accept-Encoding": "identity" })
    ).text();
    // Raw bytes, as the client receives them (fetch would decompress them unseen).
    const raw = await new Promise<{ headers: IncomingHttpHeaders; chunks: Buffer[] }>(
      (resolve, reject) => {
        const req = httpRequest(
          `${url}/api/trace/events`,
          {
            method: "POST",
            headers: { "Content-Type": "application/json", "Accept-Encoding": "gzip, br" },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (d: Buffer) => chunks.push(d));
            res.on("end", () => resolve({ headers: res.headers, chunks }));
            res.on("error", reject);
          },
        );
        req.on("error", reject);
        req.end(JSON.stringify(request));
      },
    );
    expect(raw.headers["content-encoding"]).toBe("gzip");
    expect(raw.headers.vary).toMatch(/accept-encoding/i);
    const whole = Buffer.concat(raw.chunks);
    expect(gunzipSync(whole).toString("utf8")).toBe(plain);
    expect(whole.length).toBeLessThan(Buffer.byteLength(plain) / 2);
    // Flushed as it goes: the first bytes alone already decompress to the answer's start.
    const head = partialGunzip(raw.chunks[0] as Buffer);
    expect(plain.startsWith(head)).toBe(true);
    expect(head.length).toBeGreaterThan(0);
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
    for await (const b of domainEvents(source, "defect_records", cids)) p.addDefects(rowsOf(b));
    for await (const b of domainEvents(source, "upstream_history", cids)) p.addUpstream(rowsOf(b));
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

  /** Poll a count of open statements until it is zero (or 4 s); the last count. */
  async function drained(count: () => Promise<number>): Promise<number> {
    let left = -1;
    for (let i = 0; i < 40 && left !== 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await count();
    }
    return left;
  }

  /** Poll a job's status until `done` says so (or 30 s). */
  async function waitJob(id: string, done: (s: Row) => boolean): Promise<Row> {
    for (let i = 0; i < 300; i++) {
      const res = await fetch(`${url}/api/trace/jobs/${id}`);
      expect(res.status).toBe(200);
      const st = (await res.json()) as Row;
      if (done(st)) return st;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`job ${id} did not get there`);
  }

  it("a background job (MSD over the limit): 202, its status, then its stored result is the streamed answer", async () => {
    const cids = (await traceLineage(source, seeds, "backward")).containers;
    const request = { profile: "mid_section_defect", containers: cids };
    const live = await (await post("/api/trace/events", request)).text();
    const res = await post("/api/trace/jobs", request);
    expect(res.status).toBe(202);
    const job = (await res.json()) as Row;
    expect(job).toMatchObject({ profile: "mid_section_defect", containers: cids.length });
    expect(["queued", "running"]).toContain(job.state);
    const done = await waitJob(
      String(job.id),
      (st) => st.state !== "queued" && st.state !== "running",
    );
    const expected = JSON.parse(live);
    expect(done).toMatchObject({
      state: "succeeded",
      error: null,
      rows: {
        defect_records: expected.results.defect_records.count,
        upstream_history: expected.results.upstream_history.count,
      },
      msd: expected.msd,
    });
    expect(done.bytes).toBeGreaterThan(0);
    // Stored gzipped: sent as is to a client that takes gzip, decompressed for one that does not.
    const gz = await fetch(`${url}${job.result}`, { headers: { "accept-encoding": "gzip" } });
    expect(gz.headers.get("content-encoding")).toBe("gzip");
    expect(await gz.text()).toBe(live);
    const plain = await fetch(`${url}${job.result}`, {
      headers: { "accept-encoding": "identity" },
    });
    expect(plain.headers.get("content-encoding")).toBeNull();
    expect(await plain.text()).toBe(live);
    // Deleted: gone, status and result.
    expect((await fetch(`${url}/api/trace/jobs/${job.id}`, { method: "DELETE" })).status).toBe(204);
    expect((await fetch(`${url}/api/trace/jobs/${job.id}`)).status).toBe(404);
    expect((await fetch(`${url}${job.result}`)).status).toBe(404);
  });

  it("GET /api/trace/jobs lists the jobs newest first, with state and age; a deleted one is gone", async () => {
    const request = { profile: "query_tool", containers: seeds.slice(0, 3) };
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await post("/api/trace/jobs", request);
      expect(res.status).toBe(202);
      ids.push(String(((await res.json()) as Row).id));
      await new Promise((r) => setTimeout(r, 5)); // distinct creation times
    }
    for (const id of ids) await waitJob(id, (st) => st.state === "succeeded");
    expect((await fetch(`${url}/api/trace/jobs/${ids[1]}`, { method: "DELETE" })).status).toBe(204);
    const res = await fetch(`${url}/api/trace/jobs`);
    expect(res.status).toBe(200);
    const { jobs } = (await res.json()) as { jobs: Row[] };
    const mine = jobs.filter((j) => ids.includes(String(j.id)));
    expect(mine.map((j) => j.id)).toEqual([ids[2], ids[0]]);
    for (const j of mine) {
      expect(j).toMatchObject({ state: "succeeded", profile: "query_tool", containers: 3 });
      expect(j.ageSeconds).toBeGreaterThanOrEqual(0);
      expect(j.status).toBe(`/api/trace/jobs/${j.id}`);
    }
    const created = jobs.map((j) => String(j.createdAt));
    expect(created).toEqual([...created].sort().reverse());
    const one = (await (await fetch(`${url}/api/trace/jobs?limit=1`)).json()) as { jobs: Row[] };
    expect(one.jobs).toHaveLength(1);
    expect((await fetch(`${url}/api/trace/jobs?limit=0`)).status).toBe(400);
  });

  it("a job over query_tool's limit (what the 413 offers) runs, and stores what /events streams under the limit's own rows", async () => {
    const request = { profile: "query_tool", containers: seeds.slice(0, LIMIT + 1) };
    expect((await post("/api/trace/events", request)).status).toBe(413);
    const res = await post("/api/trace/jobs", request);
    expect(res.status).toBe(202);
    const job = (await res.json()) as Row;
    const done = await waitJob(String(job.id), (st) => st.finishedAt !== null);
    expect(done).toMatchObject({ state: "succeeded", containers: LIMIT + 1 });
    const stored = (await (await fetch(`${url}${job.result}`)).json()) as {
      results: Record<string, { data: Row[]; count: number }>;
    };
    // The same rows the library reads for those containers, every domain.
    for (const domain of ["upstream_history", "defect_records"] as const) {
      let n = 0;
      for await (const b of domainEvents(source, domain, request.containers)) n += b.length;
      expect(stored.results[domain]?.count, domain).toBe(n);
      expect((done.rows as Record<string, number>)[domain], domain).toBe(n);
    }
    expect((await fetch(`${url}/api/trace/jobs/${job.id}`, { method: "DELETE" })).status).toBe(204);
  });

  it("unknown or malformed job ids are 404", async () => {
    for (const id of ["00000000-0000-4000-8000-000000000000", "../../etc/passwd", "x"]) {
      const r = await fetch(`${url}/api/trace/jobs/${encodeURIComponent(id)}`);
      expect(r.status, id).toBe(404);
      expect(await r.json()).toMatchObject({ error: "not_found" });
    }
  });

  it("a job or a pareto with a bad body is a 400 naming what to fix, and no job is recorded", async () => {
    const recorded = () => {
      try {
        return readdirSync(join(jobsDir, "trace-jobs")).length;
      } catch {
        return 0;
      }
    };
    const before = recorded();
    const bodies = [
      "{not json",
      JSON.stringify([1, 2]),
      JSON.stringify({ profile: "everything", containers: ["C1"] }),
      JSON.stringify({ profile: "mid_section_defect", containers: "C1" }),
      JSON.stringify({ profile: "mid_section_defect", containers: ["C1"], domains: ["lot_moves"] }),
      JSON.stringify({ profile: "mid_section_defect", containers: ["x'; DROP TABLE lot_moves"] }),
    ];
    for (const path of ["/api/trace/jobs", "/api/trace/pareto"]) {
      for (const body of bodies) {
        if (path.endsWith("pareto") && body.includes("domains")) continue;
        const res = await fetch(`${url}${path}`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body,
        });
        expect(res.status, `${path} ${body}`).toBe(400);
        expect(((await res.json()) as { message: string }).message.length).toBeGreaterThan(0);
      }
    }
    expect(recorded()).toBe(before);
  });

  it("requests beyond the slots and TRACE_MAX_QUEUED waiting are a 503 with Retry-After at once", async () => {
    const held = [await slots.acquire(), await slots.acquire()];
    const request = { profile: "query_tool", containers: seeds.slice(0, 5) };
    try {
      const waiting = post("/api/trace/events", request);
      for (let i = 0; i < 100 && slots.queued === 0; i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(slots.queued).toBe(1);
      const refused = await post("/api/trace/events", request);
      expect(refused.status).toBe(503);
      expect(refused.headers.get("retry-after")).toBe("5");
      expect(await refused.json()).toMatchObject({ error: "busy" });
      for (const release of held.splice(0)) release();
      expect((await waiting).status).toBe(200);
      await (await waiting).text();
    } finally {
      for (const release of held) release();
    }
  });

  it("jobs beyond TRACE_JOBS_MAX (queued + running) are a 429 with Retry-After, and none is recorded", async () => {
    // Both slots held: the jobs accepted stay queued.
    const held = [await slots.acquire(), await slots.acquire()];
    const accepted: string[] = [];
    try {
      const request = { profile: "query_tool", containers: seeds.slice(0, 5) };
      for (let i = 0; i < MAX_JOBS; i++) {
        const res = await post("/api/trace/jobs", request);
        expect(res.status).toBe(202);
        accepted.push(String(((await res.json()) as Row).id));
      }
      const files = readdirSync(join(jobsDir, "trace-jobs")).length;
      const refused = await post("/api/trace/jobs", request);
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
      const body = (await refused.json()) as Row;
      expect(body).toMatchObject({ error: "too_many_jobs", limit: MAX_JOBS });
      expect(String(body.message)).toContain(String(MAX_JOBS));
      expect(readdirSync(join(jobsDir, "trace-jobs")).length).toBe(files);
    } finally {
      for (const id of accepted) await fetch(`${url}/api/trace/jobs/${id}`, { method: "DELETE" });
      for (const release of held) release();
    }
    const ok = await post("/api/trace/jobs", {
      profile: "query_tool",
      containers: seeds.slice(0, 5),
    });
    expect(ok.status).toBe(202);
    const id = String(((await ok.json()) as Row).id);
    await waitJob(id, (st) => st.state === "succeeded");
  });

  it("a running job: its result is a 409 until done; DELETE stops it and its statements", async () => {
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    const active = async () =>
      (
        await admin.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'",
          [`sluice_trace_${process.pid}`],
        )
      ).rows[0].n as number;
    slow = true;
    const before = streamed.length;
    try {
      const res = await post("/api/trace/jobs", {
        profile: "query_tool",
        containers: seeds.slice(0, LIMIT),
      });
      expect(res.status).toBe(202);
      const job = (await res.json()) as Row;
      await waitJob(String(job.id), (st) => st.state === "running");
      const early = await fetch(`${url}${job.result}`);
      expect(early.status).toBe(409);
      expect(await early.json()).toMatchObject({ error: "not_ready", state: "running" });
      expect(await active()).toBeGreaterThan(0);
      expect((await fetch(`${url}/api/trace/jobs/${job.id}`, { method: "DELETE" })).status).toBe(
        204,
      );
      expect((await fetch(`${url}/api/trace/jobs/${job.id}`)).status).toBe(404);
      expect(await drained(active)).toBe(0);
      expect(slots.inUse).toBe(0);
      // Stopped mid-way: upstream_history's statement was cut, defect_records' never began.
      const ran = streamed.slice(before);
      expect(ran.some((sql) => sql.includes('"upstream_history"'))).toBe(true);
      expect(ran.some((sql) => sql.includes('"defect_records"'))).toBe(false);
    } finally {
      slow = false;
      await admin.end();
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
      expect(await drained(open)).toBe(0);
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

  it("a long events stream runs a full collection every TRACE_GC_EVERY_ROWS rows", async () => {
    const before = collections;
    const res = await post("/api/trace/events", {
      profile: "mid_section_defect",
      containers: seeds,
    });
    const body = (await res.json()) as { results: Record<string, { count: number }> };
    const rows = Object.values(body.results).reduce((n, d) => n + d.count, 0);
    expect(rows).toBeGreaterThan(GC_EVERY * 4);
    expect(collections - before).toBeGreaterThanOrEqual(Math.floor(rows / GC_EVERY));
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

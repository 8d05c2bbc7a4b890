import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { type Socket, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSource } from "../src/node/open.js";
import { prepareMesData } from "../src/workloads/mes/prepare.js";
import { type TestDb, postgresDb } from "./servers.js";

/**
 * Invariant 10 on the trace routes, against `sluice serve` as a real process on the machine's
 * PostgreSQL: what the database or a client does to a trace request must not take the process
 * down or hold its slots. Statements are held where the test wants them by a table lock taken
 * from another connection, and found in pg_stat_activity by the server's application_name.
 */
const CLI = join(import.meta.dirname, "..", "dist", "cli", "main.js");
const pgdb = await postgresDb();

interface Served {
  url: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  /** What the process wrote to stderr so far. */
  stderr: () => string;
}

describe.runIf(pgdb !== null)("trace routes when the database or a client misbehaves", () => {
  const db = pgdb as TestDb;
  const root = mkdtempSync(join(tmpdir(), "sluice-outages-"));
  const children: ChildProcess[] = [];
  let admin: pg.Client;
  let seeds: string[] = [];
  let app = 0;

  /** `sluice serve` (one process) with the trace routes on the test's schema. */
  function serve(env: Record<string, string> = {}): Promise<Served & { app: string }> {
    const name = `sluice_outage_${process.pid}_${++app}`;
    const dir = mkdtempSync(join(root, "s-"));
    const child = spawn(process.execPath, [CLI, "serve"], {
      env: {
        ...process.env,
        SLUICE_DB: `sqlite:${join(dir, "hot.db")}`,
        SLUICE_STORE: `file:${join(dir, "store")}`,
        TRACE_DB: `${db.url}&application_name=${name}`,
        PORT: "0",
        WEB_CONCURRENCY: "1",
        ARCHIVE_CRON: "off",
        LOG_LEVEL: "warn",
        TRACE_FETCHMANY_SIZE: "100",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let err = "";
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    return new Promise((resolve, reject) => {
      let out = "";
      child.stdout?.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m) resolve({ url: m[1] as string, child, exited, stderr: () => err, app: name });
      });
      child.once("exit", (code) => reject(new Error(`serve exited ${code}: ${err}`)));
    });
  }

  /** The server's backends (pid, state, what waits) in pg_stat_activity. */
  async function backends(name: string) {
    return (
      await admin.query(
        "SELECT pid, state, wait_event_type, query FROM pg_stat_activity WHERE application_name = $1",
        [name],
      )
    ).rows as { pid: number; state: string; wait_event_type: string | null; query: string }[];
  }

  /** Poll until `check` holds (or 10 s); the last value. */
  async function until<T>(value: () => Promise<T>, check: (v: T) => boolean): Promise<T> {
    let v = await value();
    for (let i = 0; i < 100 && !check(v); i++) {
      await new Promise((r) => setTimeout(r, 100));
      v = await value();
    }
    return v;
  }

  const post = (url: string, path: string, body: unknown) =>
    fetch(`${url}${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });

  /** The body as far as it came before the connection was cut (or whole). */
  async function received(res: Response): Promise<string> {
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = "";
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return text;
        text += decoder.decode(value, { stream: true });
      }
    } catch {
      return text;
    }
  }

  /**
   * A client that sends a request and never reads the answer: a raw socket, paused. `drain`
   * then reads what it can until the connection ends, and says how many bytes came.
   */
  function stuckClient(url: string, path: string, body: unknown) {
    const u = new URL(url);
    const socket: Socket = connect(Number(u.port), u.hostname);
    const payload = JSON.stringify(body);
    socket.write(
      `POST ${path} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`,
    );
    socket.pause();
    return {
      socket,
      drain: () =>
        new Promise<{ bytes: number; ended: string }>((resolve) => {
          let bytes = 0;
          let tail = "";
          socket.on("data", (d: Buffer) => {
            bytes += d.length;
            tail = (tail + d.toString("latin1")).slice(-16);
          });
          socket.on("error", () => undefined);
          socket.once("close", () => resolve({ bytes, ended: tail }));
          socket.resume();
        }),
    };
  }

  /** Hold every statement on `table` (an ACCESS EXCLUSIVE lock in an open transaction). */
  async function lock(table: string): Promise<pg.Client> {
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    await holder.query("BEGIN");
    await holder.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
    return holder;
  }

  beforeAll(async () => {
    const source = await openSource(db.url);
    await prepareMesData(source, { scale: 0.01 });
    // Rows of ~1 KB: a response of ~10 MB, more than the sockets' buffers hold, so that a
    // client that does not read stops the server's writes.
    await source.execute(`ALTER TABLE upstream_history ALTER COLUMN "SPEC" TYPE text`);
    await source.execute(`UPDATE upstream_history SET "SPEC" = repeat('S', 1000)`);
    seeds = (
      await source.query<{ c: string }>(
        `SELECT DISTINCT "CONTAINERID" AS c FROM lot_moves ORDER BY 1 LIMIT 2000`,
      )
    ).map((r) => r.c);
    await source.close();
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
  }, 120_000);

  afterAll(async () => {
    for (const c of children) c.kill("SIGKILL");
    await admin?.end();
    await db.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("pg_terminate_backend on a streaming trace statement: the process lives, /healthz answers, the next request works", async () => {
    const s = await serve();
    const request = { profile: "query_tool", containers: seeds, domains: ["upstream_history"] };
    const holder = await lock("upstream_history");
    let res: Response;
    try {
      res = await post(s.url, "/api/trace/events", request);
      expect(res.status).toBe(200);
      const blocked = await until(
        () => backends(s.app),
        (b) => b.some((x) => x.wait_event_type === "Lock"),
      );
      const victims = blocked.filter((x) => x.wait_event_type === "Lock").map((x) => x.pid);
      expect(victims.length).toBeGreaterThan(0);
      await admin.query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", [
        victims,
      ]);
    } finally {
      await holder.query("ROLLBACK");
      await holder.end();
    }
    // The response was cut: its JSON never closes, and no database text leaks into it.
    const text = await received(res);
    expect(() => JSON.parse(text)).toThrow();
    expect(text).not.toMatch(/terminat|administrator/i);
    await new Promise((r) => setTimeout(r, 300));
    expect(s.child.exitCode, s.stderr()).toBeNull();
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    const again = await post(s.url, "/api/trace/events", request);
    expect(again.status).toBe(200);
    const body = (await again.json()) as { results: { upstream_history: { count: number } } };
    expect(body.results.upstream_history.count).toBeGreaterThan(0);
    expect(s.child.exitCode).toBeNull();
  });

  it("a trace request whose statement is terminated before it answers gets 503 unavailable, no database text", async () => {
    const s = await serve();
    const holder = await lock("defect_records");
    let res: Promise<Response>;
    try {
      res = post(s.url, "/api/trace/pareto", { containers: seeds });
      const blocked = await until(
        () => backends(s.app),
        (b) => b.some((x) => x.wait_event_type === "Lock"),
      );
      await admin.query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", [
        blocked.filter((x) => x.wait_event_type === "Lock").map((x) => x.pid),
      ]);
    } finally {
      await holder.query("ROLLBACK");
      await holder.end();
    }
    const answer = await res;
    expect(answer.status).toBe(503);
    const body = (await answer.json()) as { error: string; message: string };
    expect(body.error).toBe("unavailable");
    expect(body.message).not.toMatch(/administrator|terminating/i);
    expect(s.child.exitCode, s.stderr()).toBeNull();
    const again = await post(s.url, "/api/trace/pareto", { containers: seeds });
    expect(again.status).toBe(200);
  });

  it("clients that stop reading lose their slots after TRACE_IDLE_TIMEOUT_MS: a third request runs, no statement is left", async () => {
    const s = await serve({ TRACE_IDLE_TIMEOUT_MS: "1000", DB_SLOW_MAX_CONCURRENT: "2" });
    const request = { profile: "query_tool", containers: seeds, domains: ["upstream_history"] };
    const stuck = [
      stuckClient(s.url, "/api/trace/events", request),
      stuckClient(s.url, "/api/trace/events", request),
    ];
    // Both slots taken: their statements are open.
    const open = await until(
      () => backends(s.app),
      (b) => b.filter((x) => x.state !== "idle").length >= 2,
    );
    expect(open.filter((x) => x.state !== "idle").length).toBeGreaterThanOrEqual(2);
    // The third waits for a slot; it gets one once the idle timeout has stopped a stuck one
    // (a deadline, not a measurement: 30x the timeout).
    const third = await fetch(`${s.url}/api/trace/events`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
      signal: AbortSignal.timeout(30_000),
    });
    expect(third.status).toBe(200);
    const full = await third.text();
    const body = JSON.parse(full) as { results: { upstream_history: { count: number } } };
    expect(body.results.upstream_history.count).toBeGreaterThan(5000);
    // Nothing of the stuck requests runs on in the database.
    const left = await until(
      () => backends(s.app),
      (b) => b.every((x) => x.state === "idle"),
    );
    expect(left.filter((x) => x.state !== "idle")).toEqual([]);
    // The server cut both stuck connections: what they got ends short of the response.
    for (const c of stuck) {
      const got = await c.drain();
      expect(got.bytes).toBeLessThan(full.length);
      expect(got.ended.endsWith("0\r\n\r\n")).toBe(false);
    }
    expect(s.child.exitCode, s.stderr()).toBeNull();
  });

  it("SIGTERM does not wait for a client that stopped reading", async () => {
    const IDLE = 60_000;
    const s = await serve({ TRACE_IDLE_TIMEOUT_MS: String(IDLE) });
    const request = { profile: "query_tool", containers: seeds, domains: ["upstream_history"] };
    const stuck = stuckClient(s.url, "/api/trace/events", request);
    await until(
      () => backends(s.app),
      (b) => b.some((x) => x.state !== "idle"),
    );
    // Its writes have stopped by now (10 MB do not fit in the sockets' buffers).
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = performance.now();
    s.child.kill("SIGTERM");
    const code = await Promise.race([
      s.exited,
      new Promise<"still running">((r) => setTimeout(() => r("still running"), IDLE / 3)),
    ]);
    const took = performance.now() - t0;
    expect(code).toBe(0);
    // Relative to the idle timeout it would otherwise have waited for: a small part of it.
    expect(took).toBeLessThan(IDLE / 4);
    expect(await backends(s.app)).toEqual([]);
    stuck.socket.destroy();
  });
});

import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { Logger } from "pino";
import { loadConfig } from "../src/node/config.js";
import { openSource } from "../src/node/open.js";
import { type Service, startService } from "../src/node/serve.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";

/** A token long enough for loadConfig (16+), and one that differs from it by the last byte. */
export const TOKEN = "test-admin-token-0123456789abcdef";
export const WRONG_TOKEN = `${TOKEN.slice(0, -1)}0`;
export const MAX_BYTES = 65_536;
export const MAX_EVENTS = 500;

/** A real `sluice serve` on a free port, on a SQLite file and a folder in a temp dir. */
export interface TestServer {
  url: string;
  dir: string;
  /** The SQLite file. */
  db: string;
  /** The archive folder (the object store). */
  store: string;
  /** A direct connection to the SQLite file, outside sluice (closed by stop()). */
  sql(): Database.Database;
  stop(): Promise<void>;
}

export interface ServerOptions {
  /** Days generated with prepareTrafficData before the server starts. */
  seed?: { date: string; count: number; days?: number }[];
  /** Extra or overriding env vars; `ADMIN_TOKEN: undefined` turns the admin routes off. */
  env?: Record<string, string | undefined>;
  /** Where the service logs (pino); by default nowhere. */
  logger?: Logger;
  /** false: a cluster worker that runs no schedule (its jobs thread starts with a job). */
  scheduler?: boolean;
}

export async function startServer(o: ServerOptions = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "sluice-http-"));
  const db = join(dir, "hot.db");
  const store = join(dir, "archive");
  if (o.seed?.length) {
    const source = await openSource(`sqlite:${db}`, { create: true });
    try {
      for (const s of o.seed) await prepareTrafficData(source, s);
    } finally {
      await source.close();
    }
  }
  const abort = new AbortController();
  let svc: Service;
  try {
    svc = await startService(
      loadConfig({
        SLUICE_DB: `sqlite:${db}`,
        SLUICE_STORE: `file:${store}`,
        PORT: "0",
        ADMIN_TOKEN: TOKEN,
        INGEST_MAX_BYTES: String(MAX_BYTES),
        INGEST_MAX_EVENTS: String(MAX_EVENTS),
        // No schedule: nothing but the tests may start a job. No request log on stdout.
        ARCHIVE_CRON: "off",
        LOG_LEVEL: "silent",
        ...o.env,
      }),
      abort.signal,
      { logger: o.logger, scheduler: o.scheduler },
    );
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const handles: Database.Database[] = [];
  return {
    url: svc.url,
    dir,
    db,
    store,
    sql() {
      const h = new Database(db, { fileMustExist: true });
      h.pragma("busy_timeout = 10000");
      handles.push(h);
      return h;
    },
    async stop() {
      abort.abort();
      await svc.closed;
      for (const h of handles) h.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  body: unknown;
}

/** One real HTTP request; the body is read whole and parsed as JSON when it is. */
export async function call(url: string, init: RequestInit = {}): Promise<JsonResponse> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, text, body };
}

export const bearer = (token: string = TOKEN): Record<string, string> => ({
  authorization: `Bearer ${token}`,
});

/** POST a JSON array of events. */
export function postJson(url: string, events: unknown): Promise<JsonResponse> {
  return call(`${url}/api/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(events),
  });
}

/** POST raw text with a content type. */
export function postRaw(url: string, body: string, type: string): Promise<JsonResponse> {
  return call(`${url}/api/events`, { method: "POST", headers: { "content-type": type }, body });
}

/** A query string from pairs, every value through encodeURIComponent; repeated keys allowed. */
export function qs(pairs: readonly (readonly [string, string])[]): string {
  if (pairs.length === 0) return "";
  return `?${pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&")}`;
}

/** A valid event for ingest: a page view at `ts` (ms since the epoch). */
export function event(ts: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ts,
    path: "/blog/hello",
    referrer: "https://example.com/",
    country: "DE",
    user_agent: "vitest",
    status: 200,
    duration_ms: 12,
    ...extra,
  };
}

export function tableCount(sql: Database.Database): number {
  return (sql.prepare("SELECT COUNT(*) AS n FROM traffic_events").get() as { n: number }).n;
}

/** Files (recursively) under `dir`; none when it does not exist. */
export function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

export interface JobView {
  id: string;
  kind: string;
  date: string;
  state: "running" | "succeeded" | "failed";
  error: string | null;
  result: unknown;
}

export interface StatusBody {
  date: string;
  record: { state: string; cleaned: boolean; eventCount: number; partCount: number } | null;
  parts: unknown[];
  hotRows: number;
  lateRows: number;
  job: JobView | null;
}

/** Poll archive-status until the date's job has finished, or fail at the deadline. */
export async function waitForJob(url: string, date: string, deadlineMs = 60_000) {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const res = await call(`${url}/admin/archive-status?date=${date}`, { headers: bearer() });
    if (res.status !== 200) throw new Error(`archive-status ${res.status}: ${res.text}`);
    const body = res.body as StatusBody;
    if (body.job && body.job.state !== "running") return body;
    if (Date.now() > until) {
      throw new Error(`job of ${date} still running after ${deadlineMs} ms: ${res.text}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

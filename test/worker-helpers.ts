import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { gunzipSync } from "node:zlib";
import Database from "better-sqlite3";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { bytesAsyncBuffer, decodeParquetLines } from "../src/core/archive/parquet/index.js";
import type { Row } from "../src/core/sql/source.js";

export const TOKEN = "worker-admin-token-0123456789";

let bundle: Promise<string> | null = null;

/** src/worker bundled as wrangler would (esbuild, ESM, no Node built-ins), once per file. */
export function workerBundle(): Promise<string> {
  bundle ??= build({
    entryPoints: [join(import.meta.dirname, "..", "src", "worker", "index.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    // Node's built-ins are the runtime's own under nodejs_compat (wrangler.toml).
    external: ["node:*"],
    write: false,
    logLevel: "warning",
  }).then((r) => r.outputFiles[0]?.text ?? "");
  return bundle;
}

/** The Worker in real workerd (Miniflare), with local D1 and R2 persisted in a temp dir. */
export interface TestWorker {
  mf: Miniflare;
  dir: string;
  /** A request to the Worker; `admin` adds the bearer token. */
  fetch(path: string, init?: RequestInit & { admin?: boolean }): Promise<Response>;
  /** One run of the `scheduled` handler, as the Cron Trigger would start it at `at`. */
  scheduled(at: Date): Promise<void>;
  /** SQL on the Worker's D1 database, from outside the Worker. */
  sql<T = Row>(sql: string, ...params: unknown[]): Promise<T[]>;
  /** The stored archive object, decompressed (or decoded, for Parquet) into rows. */
  archivedRows(key: string): Promise<Row[]>;
  /** The stored object's bytes. */
  objectBytes(key: string): Promise<Uint8Array>;
  head(key: string): Promise<{ size: number; etag: string } | null>;
  /** SIGKILL the workerd process (Miniflare's dispose), keeping D1 and R2 on disk. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Start the Worker; with `dir`, on the D1 and R2 state an earlier (killed) one left there.
 */
export async function startWorker(
  vars: Record<string, string> = {},
  dir = mkdtempSync(join(tmpdir(), "sluice-worker-")),
): Promise<TestWorker> {
  const logs: string[] = [];
  const mf = new Miniflare({
    modules: true,
    script: await workerBundle(),
    compatibilityDate: "2026-04-01",
    compatibilityFlags: ["nodejs_compat"],
    d1Databases: { DB: "sluice-hot" },
    r2Buckets: { ARCHIVE: "sluice-archive" },
    d1Persist: join(dir, "d1"),
    r2Persist: join(dir, "r2"),
    bindings: { ADMIN_TOKEN: TOKEN, ...vars },
    // /cdn-cgi/handler/scheduled: the cron handler over HTTP, as `wrangler dev` offers it.
    unsafeTriggerHandlers: true,
    handleRuntimeStdio(stdout: Readable, stderr: Readable) {
      // Keep the Worker's log lines out of the test output, but at hand when one fails.
      stdout.on("data", (d: Buffer) => logs.push(d.toString()));
      stderr.on("data", (d: Buffer) => logs.push(d.toString()));
    },
  });
  const base = "http://sluice.test";
  const objectBytes = async (key: string) => {
    const bucket = await mf.getR2Bucket("ARCHIVE");
    const obj = await bucket.get(key);
    if (!obj) throw new Error(`no object ${key}`);
    return new Uint8Array(await obj.arrayBuffer());
  };
  return {
    mf,
    dir,
    fetch: async (path, init = {}) => {
      const { admin, ...rest } = init;
      const headers = new Headers(rest.headers as Record<string, string> | undefined);
      if (admin) headers.set("authorization", `Bearer ${TOKEN}`);
      return (await mf.dispatchFetch(`${base}${path}`, {
        ...rest,
        headers,
      } as never)) as unknown as Response;
    },
    scheduled: async (at) => {
      // Over HTTP rather than Miniflare's Node proxy, which serves one call at a time: checks
      // made while a run goes on must not wait for it.
      const res = await mf.dispatchFetch(
        `${base}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent("30 3 * * *")}&time=${at.getTime()}`,
      );
      const outcome = await res.text();
      if (res.status !== 200) {
        throw new Error(`scheduled run ended '${outcome}'\n${logs.slice(-20).join("")}`);
      }
    },
    sql: async <T = Row>(sql: string, ...params: unknown[]) => {
      const db = await mf.getD1Database("DB");
      const res = await db
        .prepare(sql)
        .bind(...params)
        .all<T>();
      return res.results as T[];
    },
    archivedRows: async (key) => {
      const bytes = await objectBytes(key);
      const lines: string[] = [];
      if (key.endsWith(".parquet")) {
        for await (const batch of decodeParquetLines(bytesAsyncBuffer(bytes))) lines.push(...batch);
      } else lines.push(...gunzipSync(bytes).toString("utf8").split("\n"));
      return lines.filter((l) => l !== "").map((l) => JSON.parse(l) as Row);
    },
    objectBytes,
    head: async (key) => {
      const bucket = await mf.getR2Bucket("ARCHIVE");
      const obj = await bucket.head(key);
      return obj ? { size: obj.size, etag: obj.etag } : null;
    },
    kill: () => mf.dispose(),
    stop: async () => {
      await mf.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** POST events to the Worker's ingest route as NDJSON; returns how many went in. */
export async function ingest(w: TestWorker, events: readonly Row[]): Promise<number> {
  const res = await w.fetch("/api/events", {
    method: "POST",
    headers: { "content-type": "application/x-ndjson" },
    body: events.map((e) => JSON.stringify(e)).join("\n"),
  });
  const body = (await res.json()) as { inserted?: number; message?: string };
  if (res.status !== 201) throw new Error(`ingest: ${res.status} ${body.message}`);
  return body.inserted ?? 0;
}

/** A generated row as the ingest route takes it (no id, no event_date: the Worker derives it). */
export function asEvent(row: Row): Row {
  const { event_date: _date, id: _id, ...event } = row;
  return event;
}

/**
 * The ledger row of `date` read straight from the D1 database file Miniflare keeps in `dir`
 * (SQLite in WAL mode: a reader sees each commit), so a test can watch a run in progress,
 * which workerd does not let it ask the Worker about while the cron handler runs.
 */
export function ledgerOnDisk(
  dir: string,
  date: string,
): { state: string; cleaned_count: number; event_count: number } | null {
  const base = join(dir, "d1", "miniflare-D1DatabaseObject");
  let file: string | undefined;
  try {
    file = readdirSync(base).find((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite");
  } catch {
    return null;
  }
  if (!file) return null;
  const db = new Database(join(base, file), { readonly: true, fileMustExist: true });
  try {
    return (
      (db
        .prepare(
          "SELECT state, cleaned_count, event_count FROM archive_metadata WHERE date = ? LIMIT 1",
        )
        .get(date) as { state: string; cleaned_count: number; event_count: number } | undefined) ??
      null
    );
  } catch {
    return null; // no ledger table yet
  } finally {
    db.close();
  }
}

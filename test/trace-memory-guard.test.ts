import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSource } from "../src/node/open.js";
import { prepareMesData } from "../src/workloads/mes/prepare.js";

/**
 * The trace routes' memory guard as deployed: `sluice serve` a real process on a SQLite MES
 * database, refusing trace requests while its own resident memory (process.memoryUsage.rss)
 * is over TRACE_MEMORY_LIMIT_MB. trace-http.test.ts covers the route's answer with a
 * stand-in guard; this proves the guard the service wires in reads the real RSS.
 */
const CLI = join(import.meta.dirname, "..", "dist", "cli", "main.js");
const root = mkdtempSync(join(tmpdir(), "sluice-memory-guard-"));
const mes = join(root, "mes.db");
const children: ChildProcess[] = [];
let seeds: string[] = [];

interface Served {
  url: string;
  child: ChildProcess;
  /** What the process printed so far, stdout and stderr. */
  output: () => string;
}

function serve(limitMb: number): Promise<Served> {
  const dir = mkdtempSync(join(root, "s-"));
  const child = spawn(process.execPath, [CLI, "serve"], {
    env: {
      ...process.env,
      SLUICE_DB: `sqlite:${join(dir, "hot.db")}`,
      SLUICE_STORE: `file:${join(dir, "store")}`,
      TRACE_DB: `sqlite:${mes}`,
      TRACE_MEMORY_LIMIT_MB: String(limitMb),
      PORT: "0",
      WEB_CONCURRENCY: "1",
      ARCHIVE_CRON: "off",
      LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve({ url: m[1] as string, child, output: () => out });
    });
    child.once("exit", (code) => reject(new Error(`serve exited ${code}: ${out}`)));
  });
}

const post = (url: string, path: string, body: unknown) =>
  fetch(`${url}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });

/** One request of each trace stage, with the seed containers. */
const requests = (): [string, unknown][] => [
  [
    "/api/trace/seed-resolve",
    {
      profile: "query_tool",
      filter: { workcenter: "TMTT", from: "2000-01-01", to: "2100-01-01" },
    },
  ],
  ["/api/trace/lineage", { profile: "query_tool", containers: seeds }],
  [
    "/api/trace/events",
    { profile: "query_tool", containers: seeds, domains: ["upstream_history"] },
  ],
  ["/api/trace/pareto", { containers: seeds }],
];

beforeAll(async () => {
  if (!existsSync(CLI))
    throw new Error(`${CLI} is missing: run 'npm run build' (npm test does it)`);
  const source = await openSource(`sqlite:${mes}`, { create: true });
  try {
    await prepareMesData(source, { scale: 0.01 });
    seeds = (
      await source.query<{ c: string }>(
        `SELECT DISTINCT "CONTAINERID" AS c FROM lot_moves ORDER BY 1 LIMIT 20`,
      )
    ).map((r) => r.c);
  } finally {
    await source.close();
  }
}, 120_000);

afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(root, { recursive: true, force: true });
});

describe("the trace memory guard in a real `sluice serve`", () => {
  it("over TRACE_MEMORY_LIMIT_MB (1 MB, below any Node process's RSS): every trace route is a 503 with Retry-After and a JSON body; the rest of the service answers", async () => {
    const s = await serve(1);
    expect(s.output()).toMatch(
      /trace requests refused above 1 MB of resident memory \(TRACE_MEMORY_LIMIT_MB\)/,
    );
    for (const [path, body] of requests()) {
      const res = await post(s.url, path, body);
      expect(res.status, path).toBe(503);
      expect(Number(res.headers.get("retry-after")), path).toBeGreaterThan(0);
      expect(res.headers.get("content-type"), path).toMatch(/^application\/json/);
      const answer = (await res.json()) as { error: string; message: string };
      expect(answer.error, path).toBe("busy");
      // The figure comes from the process itself: its resident memory, in MB, over 1.
      const rss = Number(
        /resident memory (\d+) MB is over TRACE_MEMORY_LIMIT_MB=1\b/.exec(answer.message)?.[1],
      );
      expect(rss, answer.message).toBeGreaterThan(1);
    }
    // Only the trace routes refuse: the process is up and the others answer.
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${s.url}/api/stats/top-paths`)).status).toBe(200);
    expect(s.child.exitCode).toBeNull();
  });

  it("under the limit (1 TB): the same requests are answered", async () => {
    const s = await serve(1 << 20);
    expect(s.output()).toMatch(/trace requests refused above 1048576 MB of resident memory/);
    for (const [path, body] of requests()) {
      const res = await post(s.url, path, body);
      expect(res.status, `${path}: ${await res.clone().text()}`).toBe(200);
      expect(res.headers.get("retry-after"), path).toBeNull();
      const text = await res.text();
      if (path.endsWith("seed-resolve")) {
        expect((JSON.parse(text) as { containers: string[] }).containers.length).toBeGreaterThan(0);
      }
    }
  });
});

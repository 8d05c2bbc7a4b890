import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { openSource } from "../src/node/open.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";

/**
 * `sluice serve` with a config file of two tables: the schedule archives and cleans both, each
 * by its own settings, from the one process.
 */
const CLI = join(import.meta.dirname, "..", "dist", "cli", "main.js");
const dir = mkdtempSync(join(tmpdir(), "sluice-service-tables-"));
const children: ChildProcess[] = [];
const TOKEN = "a-token-of-at-least-16-chars";
afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** `sluice serve` with `env`, one worker on a free port; resolves once it listens. */
async function serve(
  env: Record<string, string>,
): Promise<{ url: string; child: ChildProcess; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, "serve"], {
    env: { ...process.env, PORT: "0", WEB_CONCURRENCY: "1", LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let err = "";
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1] as string);
    });
    child.once("exit", (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
  return { url, child, stderr: () => err };
}

it("schedules every table of the config file: both are archived and cleaned; the admin routes take ?table=", async () => {
  const db = `sqlite:${join(dir, "hot.db")}`;
  const source = await openSource(db, { create: true });
  await prepareTrafficData(source, { table: "pv_a", date: "2025-10-13", days: 2, count: 300 });
  await prepareTrafficData(source, { table: "pv_b", date: "2025-10-13", count: 200 });
  await source.close();
  const config = join(dir, "sluice.config.json");
  writeFileSync(
    config,
    JSON.stringify({ tables: { pv_a: { retentionDays: 3 }, pv_b: { deleteBatch: 7 } } }),
  );
  const { url, child, stderr } = await serve({
    SLUICE_DB: db,
    SLUICE_STORE: `file:${join(dir, "archive")}`,
    SLUICE_CONFIG: config,
    ARCHIVE_CRON: "*/1 * * * * *",
    ADMIN_TOKEN: TOKEN,
  });
  const count = async (table: string) => {
    const s = await openSource(db);
    try {
      return Number((await s.query(`SELECT COUNT(*) AS n FROM ${table}`))[0]?.n);
    } finally {
      await s.close();
    }
  };
  // A deadline, not a measurement: the schedule fires every second.
  for (let i = 0; i < 300 && ((await count("pv_a")) > 0 || (await count("pv_b")) > 0); i++) {
    expect(child.exitCode, stderr()).toBeNull();
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(await count("pv_a")).toBe(0);
  expect(await count("pv_b")).toBe(0);
  const s = await openSource(db);
  try {
    const ledger = await s.query(
      "SELECT source_table AS t, date AS d, state FROM archive_metadata ORDER BY 1, 2",
    );
    expect(ledger).toEqual([
      { t: "pv_a", d: "2025-10-12", state: "cleaned" },
      { t: "pv_a", d: "2025-10-13", state: "cleaned" },
      { t: "pv_b", d: "2025-10-13", state: "cleaned" },
    ]);
  } finally {
    await s.close();
  }
  // The admin routes answer for either table by ?table=, and name the ones there are.
  const admin = (path: string) =>
    fetch(`${url}/admin/${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const own = (await (await admin("partitions")).json()) as { table: string; tables: string[] };
  expect(own).toMatchObject({ table: "pv_a", tables: ["pv_a", "pv_b"] });
  const b = await admin("partitions?table=pv_b");
  expect(b.status).toBe(200);
  expect(await b.json()).toMatchObject({
    table: "pv_b",
    partitions: [{ date: "2025-10-13", state: "cleaned", rows: 200, hotRows: 0 }],
  });
  const status = await admin("archive-status?date=2025-10-13&table=pv_b");
  expect(await status.json()).toMatchObject({ table: "pv_b", record: { state: "cleaned" } });
  const none = await admin("partitions?table=pv_c");
  expect(none.status).toBe(404);
  expect(((await none.json()) as { message: string }).message).toMatch(
    /no table 'pv_c' here: this service archives pv_a, pv_b/,
  );
  child.kill("SIGTERM");
  expect(await new Promise((r) => child.once("exit", r))).toBe(0);
}, 60_000);

it("serves ingest and the stats routes from the table the config file marks api, grouping by its pathColumn", async () => {
  const db = `sqlite:${join(dir, "api.db")}`;
  const source = await openSource(db, { create: true });
  await prepareTrafficData(source, { table: "pv_a", date: "2025-10-13", count: 50 });
  await source.execute(
    "CREATE TABLE clicks (id INTEGER PRIMARY KEY, event_date TEXT NOT NULL, url TEXT NOT NULL)",
  );
  for (const [id, url] of [
    [1, "/x"],
    [2, "/y"],
    [3, "/x"],
  ] as const) {
    await source.execute("INSERT INTO clicks VALUES (?, '2025-10-13', ?)", [id, url]);
  }
  await source.close();
  const config = join(dir, "api.config.json");
  writeFileSync(
    config,
    JSON.stringify({ tables: { pv_a: {}, clicks: { api: true, pathColumn: "url" } } }),
  );
  const { url, child } = await serve({
    SLUICE_DB: db,
    SLUICE_STORE: `file:${join(dir, "api-archive")}`,
    SLUICE_CONFIG: config,
    ARCHIVE_CRON: "off",
    ADMIN_TOKEN: TOKEN,
  });
  const top = await fetch(`${url}/api/stats/top-paths?from=2025-10-13&to=2025-10-13`);
  expect(top.status).toBe(200);
  expect(await top.json()).toMatchObject({
    paths: [
      { path: "/x", views: 2 },
      { path: "/y", views: 1 },
    ],
  });
  const daily = await fetch(`${url}/api/stats/path-daily?path=/y&from=2025-10-13&to=2025-10-13`);
  expect(await daily.json()).toMatchObject({ days: [{ date: "2025-10-13", views: 1 }] });
  // Ingest writes page views: clicks has not their columns, and the answer says so.
  const ingest = await fetch(`${url}/api/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify([{ ts: "2025-10-13T10:00:00Z", path: "/z", status: 200, duration_ms: 1 }]),
  });
  expect(ingest.status).toBe(404);
  expect(((await ingest.json()) as { message: string }).message).toMatch(
    /'clicks' has no ts, path.*"api": true/,
  );
  const own = await fetch(`${url}/admin/partitions`, {
    headers: { Authorization: `Bearer ${TOKEN}` },
  });
  expect(await own.json()).toMatchObject({ table: "clicks", tables: ["clicks", "pv_a"] });
  child.kill("SIGTERM");
  expect(await new Promise((r) => child.once("exit", r))).toBe(0);
}, 60_000);

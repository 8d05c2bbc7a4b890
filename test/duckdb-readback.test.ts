import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import Database from "better-sqlite3";
import { afterAll, expect, it } from "vitest";

/**
 * The archive read by another program: DuckDB, over exactly the parts the ledger lists as
 * verified (the README's "Query your archive" recipe), finds every row the hot table held,
 * with the same values, before and after cleanup.
 */
const CLI = join(import.meta.dirname, "..", "dist", "cli", "main.js");
const dir = mkdtempSync(join(tmpdir(), "sluice-duckdb-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("DuckDB reads the verified parts back: the same rows per day, the same sums, after cleanup too", async () => {
  const env = {
    ...process.env,
    SLUICE_DB: `sqlite:${join(dir, "hot.db")}`,
    SLUICE_STORE: `file:${join(dir, "archive")}`,
  };
  const sluice = (...args: string[]) => execFileSync(process.execPath, [CLI, ...args], { env });
  sluice("prepare-data", "--date=2025-10-14", "--days=2", "--count=3000");
  const hot = new Database(join(dir, "hot.db"));
  const before = hot
    .prepare(
      "SELECT event_date AS date, COUNT(*) AS n, SUM(id) AS ids, SUM(duration_ms) AS ms, COUNT(DISTINCT path) AS paths FROM traffic_events GROUP BY event_date ORDER BY event_date",
    )
    .all();
  for (const date of ["2025-10-13", "2025-10-14"]) {
    sluice("archive", `--date=${date}`);
    sluice("cleanup", `--date=${date}`);
  }
  expect((hot.prepare("SELECT COUNT(*) AS n FROM traffic_events").get() as { n: number }).n).toBe(
    0,
  );
  // The recipe: the verified parts' keys from the ledger, read as JSON lines with the date
  // from the folder name.
  const keys = hot
    .prepare("SELECT object_key AS k FROM archive_parts WHERE verified_at IS NOT NULL ORDER BY 1")
    .all()
    .map((r) => join(dir, "archive", (r as { k: string }).k));
  hot.close();
  expect(keys).toHaveLength(2);
  const duck = await (await DuckDBInstance.create(":memory:")).connect();
  const files = keys.map((k) => `'${k.replaceAll("'", "''")}'`).join(", ");
  const read = await duck.runAndReadAll(
    `SELECT CAST(date AS VARCHAR) AS date, COUNT(*)::INTEGER AS n, SUM(id)::BIGINT AS ids,
            SUM(duration_ms)::BIGINT AS ms, COUNT(DISTINCT path)::INTEGER AS paths
       FROM read_json([${files}], format = 'newline_delimited', hive_partitioning = true)
      GROUP BY date ORDER BY date`,
  );
  const got = read.getRowObjects().map((r) => ({
    date: r.date,
    n: r.n,
    ids: Number(r.ids),
    ms: Number(r.ms),
    paths: r.paths,
  }));
  expect(got).toEqual(before);
  expect(got.map((r) => r.n)).toEqual([3000, 3000]);
});

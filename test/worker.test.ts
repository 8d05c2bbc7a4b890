import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { afterEach, describe, expect, it } from "vitest";
import { daysBefore } from "../src/core/dates.js";
import type { Row } from "../src/core/sql/source.js";
import { CONSOLE_CSP } from "../src/http/routes/console.js";
import { mulberry32 } from "../src/workloads/random.js";
import { generateTrafficDay } from "../src/workloads/traffic/generate.js";
import {
  TOKEN,
  type TestWorker,
  asEvent,
  ingest,
  ledgerOnDisk,
  startWorker,
} from "./worker-helpers.js";

// The Worker in real workerd (Miniflare) with local D1 and R2: the seed's deployment target.

let worker: TestWorker | null = null;
afterEach(async () => {
  await worker?.stop();
  worker = null;
});

async function open(vars: Record<string, string> = {}): Promise<TestWorker> {
  worker = await startWorker(vars);
  return worker;
}

async function ingestDay(w: TestWorker, date: string, count: number): Promise<void> {
  for (const batch of generateTrafficDay(date, count, 2000)) {
    expect(await ingest(w, batch.map(asEvent))).toBe(batch.length);
  }
}

interface Status {
  record: Row | null;
  parts: Row[];
  hotRows: number;
  job: { state: string; error: string | null; result: Row | null } | null;
}

async function status(w: TestWorker, date: string): Promise<Status> {
  const res = await w.fetch(`/admin/archive-status?date=${date}`, { admin: true });
  expect(res.status).toBe(200);
  return (await res.json()) as Status;
}

/** Trigger a job through the admin route and wait for the job it started to finish. */
async function runJob(w: TestWorker, kind: "archive" | "cleanup", date: string): Promise<Status> {
  const res = await w.fetch(`/admin/trigger-${kind}?date=${date}`, { method: "POST", admin: true });
  expect(res.status).toBe(202);
  for (let i = 0; i < 600; i++) {
    const s = await status(w, date);
    if (s.job && s.job.state !== "running") return s;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${kind} of ${date} did not finish`);
}

/** The object key the ledger records for a part of a date. */
const partKey = async (w: TestWorker, date: string, part = 0): Promise<string> =>
  String(
    (
      await w.sql<Row>(
        "SELECT object_key FROM archive_parts WHERE date = ? AND part = ?",
        date,
        part,
      )
    )[0]?.object_key,
  );
const count = async (w: TestWorker, date: string) =>
  (
    await w.sql<{ n: number }>(
      "SELECT COUNT(*) AS n FROM traffic_events WHERE event_date = ?",
      date,
    )
  )[0]?.n;

/** The archive's rows equal the rows D1 held before cleanup, field for field, in key order. */
function expectSameRows(archived: Row[], hot: Row[]): void {
  expect(archived.length).toBe(hot.length);
  for (let i = 0; i < hot.length; i++) expect(archived[i]).toEqual(hot[i]);
}

describe("the Worker on workerd with local D1 and R2", () => {
  it("serves the console at / and its files, with the CSP that forbids inline scripts", async () => {
    const w = await open();
    const page = await w.fetch("/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    const csp = page.headers.get("content-security-policy") ?? "";
    expect(csp).toBe(CONSOLE_CSP);
    expect(csp).toContain("script-src 'self'");
    const html = await page.text();
    // The same page `npm run build` wrote to dist/console, bundled into the Worker.
    expect(html).toBe(
      readFileSync(join(import.meta.dirname, "..", "dist", "console", "index.html"), "utf8"),
    );
    for (const [file, type] of [
      ["console.js", "text/javascript"],
      ["console.css", "text/css"],
    ] as const) {
      const res = await w.fetch(`/console/${file}`);
      expect(res.status, file).toBe(200);
      expect(res.headers.get("content-type")).toContain(type);
      expect(res.headers.get("content-security-policy")).toBe(CONSOLE_CSP);
      expect((await res.text()).length, file).toBeGreaterThan(100);
    }
    expect((await w.fetch("/console/secrets.txt")).status).toBe(404);
  });

  it("ingest -> archive -> verify -> cleanup through its own routes; the archive round-trips", async () => {
    const w = await open();
    const day = "2026-10-01";
    const other = "2026-10-02";
    await ingestDay(w, day, 3000);
    await ingestDay(w, other, 250);
    const hot = await w.sql("SELECT * FROM traffic_events WHERE event_date = ? ORDER BY id", day);
    expect(hot).toHaveLength(3000);

    const archived = await runJob(w, "archive", day);
    expect(archived.job?.error).toBeNull();
    expect(archived.record?.state).toBe("verified");
    expect(archived.record?.eventCount).toBe(3000);
    expect(archived.parts).toHaveLength(1);
    const key = archived.parts[0]?.objectKey as string;
    expect(key).toMatch(
      new RegExp(`^traffic_events/date=${day}/part-0000-[0-9a-f]{8}\\.jsonl\\.gz$`),
    );
    expectSameRows(await w.archivedRows(key), hot);
    expect((await w.head(key))?.size).toBe(archived.parts[0]?.fileSize);

    const cleaned = await runJob(w, "cleanup", day);
    expect(cleaned.job?.error).toBeNull();
    expect(cleaned.record).toMatchObject({ state: "cleaned", cleaned: true, cleanedCount: 3000 });
    expect(await count(w, day)).toBe(0);
    expect(await count(w, other)).toBe(250);
    // The archive outlives the rows: still there, still the same rows.
    expectSameRows(await w.archivedRows(key), hot);
  });

  it("SLUICE_FORMAT=parquet: Parquet parts to R2 in row groups, read back by DuckDB, cleaned from D1", async () => {
    const w = await open({ SLUICE_FORMAT: "parquet", SLUICE_ROW_GROUP_ROWS: "1000" });
    const day = "2026-10-03";
    await ingestDay(w, day, 3000);
    const hot = await w.sql("SELECT * FROM traffic_events WHERE event_date = ? ORDER BY id", day);
    const archived = await runJob(w, "archive", day);
    expect(archived.job?.error).toBeNull();
    expect(archived.record?.state).toBe("verified");
    const key = archived.parts[0]?.objectKey as string;
    expect(key).toMatch(new RegExp(`^traffic_events/date=${day}/part-0000-[0-9a-f]{8}\\.parquet$`));
    expectSameRows(await w.archivedRows(key), hot);
    // Another reader: DuckDB sees the row groups and the same rows.
    const file = join(w.dir, "part.parquet");
    writeFileSync(file, await w.objectBytes(key));
    const duck = await (await DuckDBInstance.create(":memory:")).connect();
    const read = await duck.runAndReadAll(
      `SELECT COUNT(*)::INTEGER AS n, SUM(id)::BIGINT AS ids, SUM(duration_ms)::BIGINT AS ms,
              (SELECT COUNT(DISTINCT row_group_id) FROM parquet_metadata('${file}'))::INTEGER AS groups
         FROM read_parquet('${file}')`,
    );
    const sum = (k: string) => hot.reduce((s, r) => s + Number(r[k]), 0);
    expect(read.getRowObjects()[0]).toEqual({
      n: 3000,
      ids: BigInt(sum("id")),
      ms: BigInt(sum("duration_ms")),
      groups: 3,
    });
    const cleaned = await runJob(w, "cleanup", day);
    expect(cleaned.record).toMatchObject({ state: "cleaned", cleaned: true, cleanedCount: 3000 });
    expect(await count(w, day)).toBe(0);
  });

  it("the scheduled handler archives and cleans every date older than the retention, only those", async () => {
    const w = await open({ HOT_RETENTION_DAYS: "3" });
    const now = new Date("2026-11-20T03:30:00Z");
    const old1 = daysBefore(now, 9);
    const old2 = daysBefore(now, 4);
    const recent = daysBefore(now, 2);
    await ingestDay(w, old1, 1800);
    await ingestDay(w, old2, 1200);
    await ingestDay(w, recent, 300);
    const hot1 = await w.sql("SELECT * FROM traffic_events WHERE event_date = ? ORDER BY id", old1);

    await w.scheduled(now);

    const ledger = await w.sql<Row>(
      "SELECT date, state, event_count, cleaned_count, d1_cleaned FROM archive_metadata ORDER BY date",
    );
    expect(ledger).toEqual([
      { date: old1, state: "cleaned", event_count: 1800, cleaned_count: 1800, d1_cleaned: 1 },
      { date: old2, state: "cleaned", event_count: 1200, cleaned_count: 1200, d1_cleaned: 1 },
    ]);
    expect(await count(w, old1)).toBe(0);
    expect(await count(w, old2)).toBe(0);
    expect(await count(w, recent)).toBe(300);
    expectSameRows(await w.archivedRows(await partKey(w, old1)), hot1);

    // A second run finds nothing left to do and changes nothing.
    await w.scheduled(now);
    expect(await count(w, recent)).toBe(300);
    expect(await w.sql("SELECT COUNT(*) AS n FROM archive_parts")).toEqual([{ n: 2 }]);
  });

  it("an archive over 20 MB compressed goes up to R2 in 5 MiB parts, and verifies", async () => {
    const w = await open({ INGEST_MAX_BYTES: String(16 << 20) });
    const day = "2026-09-15";
    // User agents of random text, so that gzip cannot shrink the day below several parts.
    const rows = 72_000;
    let sent = 0;
    for (const batch of generateTrafficDay(day, rows, 8000)) {
      const events = batch.map((r) => ({
        ...asEvent(r),
        user_agent: randomBytes(300).toString("base64"),
      }));
      sent += await ingest(w, events);
    }
    expect(sent).toBe(rows);

    const s = await runJob(w, "archive", day);
    expect(s.job?.error).toBeNull();
    expect(s.record?.state).toBe("verified");
    const part = s.parts[0] as Row;
    const key = part.objectKey as string;
    const head = await w.head(key);
    expect(head?.size).toBe(part.fileSize);
    expect(head?.size).toBeGreaterThan(20 << 20);
    // R2 (and Miniflare's R2) gives a multipart object the etag "<md5 of part md5s>-<parts>".
    const parts = Number(/-(\d+)$/.exec(head?.etag ?? "")?.[1]);
    expect(parts).toBe(Math.ceil((head?.size ?? 0) / (5 << 20)));
    expect(parts).toBeGreaterThanOrEqual(5);

    const archived = await w.archivedRows(key);
    expect(archived).toHaveLength(rows);
    const hot = await w.sql<{ id: number; user_agent: string }>(
      "SELECT id, user_agent FROM traffic_events WHERE event_date = ? ORDER BY id",
      day,
    );
    for (let i = 0; i < rows; i += 997) {
      expect(archived[i]?.id).toBe(hot[i]?.id);
      expect(archived[i]?.user_agent).toBe(hot[i]?.user_agent);
    }
  });

  it("a cleanup that needs several invocations resumes each time and is marked cleaned only at zero", async () => {
    const w = await open({ SLUICE_CLEANUP_BUDGET_MS: "1", SLUICE_DELETE_BATCH: "100" });
    const now = new Date("2026-11-20T03:30:00Z");
    const day = daysBefore(now, 6);
    await ingestDay(w, day, 4000);

    const seen: { state: string; cleaned: number; hot: number }[] = [];
    for (let run = 0; run < 400; run++) {
      // Every fifth run comes from the admin route instead of the cron: both resume.
      if (run % 5 === 4) await runJob(w, "cleanup", day);
      else await w.scheduled(now);
      const [rec] = await w.sql<{ state: string; d1_cleaned: number; cleaned_count: number }>(
        "SELECT state, d1_cleaned, cleaned_count FROM archive_metadata WHERE date = ?",
        day,
      );
      const hot = (await count(w, day)) as number;
      seen.push({ state: rec?.state as string, cleaned: rec?.d1_cleaned as number, hot });
      if (rec?.state === "cleaned") break;
      // Not done yet: never marked cleaned, and the ledger's count is what D1 lost.
      expect(rec).toMatchObject({ state: "cleaning", d1_cleaned: 0 });
      expect(hot).toBeGreaterThan(0);
      expect(rec?.cleaned_count).toBe(4000 - hot);
    }
    expect(seen.length).toBeGreaterThan(3);
    expect(seen.at(-1)).toEqual({ state: "cleaned", cleaned: 1, hot: 0 });
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i]?.hot).toBeLessThan(seen[i - 1]?.hot as number);
    }
    expect(
      await w.sql("SELECT cleaned_count, d1_cleaned FROM archive_metadata WHERE date = ?", day),
    ).toEqual([{ cleaned_count: 4000, d1_cleaned: 1 }]);
  });

  it("stats answer across D1 and the archive's rollups: every step gives the answer kept aside", async () => {
    const w = await open({ SLUICE_CLEANUP_MAX_BATCHES: "2", SLUICE_DELETE_BATCH: "300" });
    const now = new Date("2026-11-20T03:30:00Z");
    const days = [daysBefore(now, 8), daysBefore(now, 7), daysBefore(now, 6)];
    const [from, mid, to] = days as [string, string, string];
    for (const d of days) await ingestDay(w, d, 1500);
    const keptRows = await w.sql<{ d: string; path: string; n: number }>(
      "SELECT event_date AS d, path, COUNT(*) AS n FROM traffic_events GROUP BY event_date, path",
    );
    const kept = new Map<string, number>();
    for (const r of keptRows) kept.set(r.path, (kept.get(r.path) ?? 0) + r.n);
    const popular = [...kept].sort((a, b) => b[1] - a[1])[0]?.[0] as string;
    const daily = keptRows
      .filter((r) => r.path === popular)
      .map((r) => ({ date: r.d, views: r.n }))
      .sort((a, b) => a.date.localeCompare(b.date));

    const expectAnswer = async (step: string) => {
      const res = await w.fetch(`/api/stats/top-paths?from=${from}&to=${to}&limit=1000`);
      expect(res.status, step).toBe(200);
      const body = (await res.json()) as {
        paths: { path: string; views: number }[];
        coverage: Record<string, string[]>;
      };
      expect(new Map(body.paths.map((p) => [p.path, p.views])), step).toEqual(kept);
      const one = await w.fetch(`/api/stats/path-daily?path=${popular}&from=${from}&to=${to}`);
      const got = (await one.json()) as { days: { date: string; views: number; tier: string }[] };
      expect(
        got.days.map(({ date, views }) => ({ date, views })),
        step,
      ).toEqual(daily);
      return { coverage: body.coverage, tiers: got.days.map((d) => d.tier) };
    };

    await expectAnswer("hot");
    expect((await runJob(w, "archive", mid)).record?.state).toBe("verified");
    // The rollup D1 recorded (a JSON batch) counts the part's rows per path exactly.
    const rolled = await w.sql<{ path: string; views: number }>(
      "SELECT path, views FROM archive_rollups WHERE date = ? ORDER BY path",
      mid,
    );
    const midRows = keptRows.filter((r) => r.d === mid);
    expect(new Map(rolled.map((r) => [r.path, r.views]))).toEqual(
      new Map(midRows.map((r) => [r.path, r.n])),
    );
    expect((await expectAnswer("archived")).coverage.hot).toEqual(days);
    // SLUICE_CLEANUP_MAX_BATCHES: the first run stops after 600 of the 1500 rows.
    await runJob(w, "cleanup", mid);
    expect(await count(w, mid)).toBe(900);
    expect((await expectAnswer("cleanup half-way")).coverage.both).toEqual([mid]);
    for (let run = 0; run < 5 && (await count(w, mid)) !== 0; run++) {
      await runJob(w, "cleanup", mid);
    }
    expect(await count(w, mid)).toBe(0);
    const cleaned = await expectAnswer("cleaned");
    expect(cleaned.coverage).toMatchObject({ hot: [from, to], archive: [mid], missing: [] });
    expect(cleaned.tiers).toEqual(["hot", "archive", "hot"]);
    // D1 counted the deleted rows in each DELETE's own batch: per path, the day's rows.
    const deleted = await w.sql<{ path: string; views: number }>(
      "SELECT path, SUM(views) AS views FROM archive_deleted_rollups WHERE date = ? GROUP BY path",
      mid,
    );
    expect(new Map(deleted.map((r) => [r.path, r.views]))).toEqual(
      new Map(midRows.map((r) => [r.path, r.n])),
    );
  });

  it("a cleanup stops at SLUICE_CLEANUP_MAX_BATCHES (D1's queries per invocation) and resumes", async () => {
    const w = await open({ SLUICE_CLEANUP_MAX_BATCHES: "3", SLUICE_DELETE_BATCH: "100" });
    const now = new Date("2026-11-20T03:30:00Z");
    const day = daysBefore(now, 6);
    await ingestDay(w, day, 1000);
    const left: number[] = [];
    for (let run = 0; run < 10; run++) {
      await w.scheduled(now);
      left.push((await count(w, day)) as number);
      if (left.at(-1) === 0) break;
    }
    // 300 rows per invocation: 700, 400, 100, then the last 100 and the mark.
    expect(left).toEqual([700, 400, 100, 0]);
    expect(
      await w.sql(
        "SELECT state, d1_cleaned, cleaned_count FROM archive_metadata WHERE date = ?",
        day,
      ),
    ).toEqual([{ state: "cleaned", d1_cleaned: 1, cleaned_count: 1000 }]);
  });

  it("workerd SIGKILLed during archive or cleanup: the next runs finish with one archive and every row", async () => {
    // A killed invocation keeps its lease until it expires (a Worker cannot tell that its
    // holder is gone), so the lease is short here.
    const vars = { SLUICE_DELETE_BATCH: "100", SLUICE_LEASE_MS: "1000" };
    const now = new Date("2026-11-20T03:30:00Z");
    const day = daysBefore(now, 6);
    const rand = mulberry32(6);
    type OnDisk = { state: string; cleaned_count: number };
    /**
     * Where a kill is aimed, given the rows deleted before this run: `at` says when to strike
     * (read from the D1 file on disk, since workerd answers no other request while the cron
     * handler runs) and, read again through the restarted Worker, whether the kill left the
     * date there. From a state not in `reach`, the date can no longer get there.
     */
    interface Aim {
      name: string;
      at: (r: OnDisk, left: number) => boolean;
      reach: string[];
    }
    const midCleanup: Aim = {
      // Rows deleted by this run, beyond what the last one left; not all of them.
      name: "mid-cleanup",
      at: (r, left) => r.state === "cleaning" && r.cleaned_count > left,
      reach: ["none", "archiving", "archived", "verified", "cleaning", "failed"],
    };
    const plan: (Aim | null)[] = [
      { name: "mid-archive", at: (r) => r.state === "archiving", reach: ["none", "archiving"] },
      {
        // Verified, and cleanup not yet deleting (in one invocation it follows at once).
        name: "verified",
        at: (r, left) =>
          r.state === "verified" || (r.state === "cleaning" && r.cleaned_count === left),
        reach: ["none", "archiving", "archived", "verified"],
      },
      midCleanup,
      midCleanup,
      null, // a random moment
    ];
    const ATTEMPTS = 3;
    const ROUNDS = 2;
    let w = await open(vars);
    let hot: Row[] = [];
    let hits: string[] = [];
    const log: string[] = [];
    const state = async () =>
      (await status(w, day)).record as { state: string; cleanedCount: number } | null;

    // Each aimed kill must land where it is aimed: retried on the same date while the date
    // can still get there, else the whole series again on a fresh Worker (new D1 and R2).
    for (let round = 0; round < ROUNDS; round++) {
      if (round > 0) {
        await w.stop();
        w = await open(vars);
      }
      await ingestDay(w, day, 30_000);
      hot = await w.sql("SELECT * FROM traffic_events WHERE event_date = ? ORDER BY id", day);
      hits = [];
      let left = 0;
      let lost = false;
      for (const [index, aim] of plan.entries()) {
        for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
          let settled = false;
          const run = w.scheduled(now).then(
            () => {
              settled = true;
            },
            () => {
              settled = true;
            },
          );
          if (aim) {
            for (let i = 0; i < 20_000 && !settled; i++) {
              const r = ledgerOnDisk(w.dir, day);
              if (r && aim.at(r, left)) break;
              await new Promise((r) => setTimeout(r, 2));
            }
          } else {
            await new Promise((r) => setTimeout(r, 30 + Math.floor(rand() * 650)));
          }
          await w.kill();
          await run;
          w = await startWorker(vars, w.dir);
          worker = w;
          const rec = await state();
          const landed = { state: rec?.state ?? "none", cleaned_count: rec?.cleanedCount ?? 0 };
          const hit = aim ? aim.at(landed, left) : true;
          log.push(
            `${aim?.name ?? "random"}${hit ? "" : " (missed)"}: ${landed.state}/${landed.cleaned_count}`,
          );
          left = landed.cleaned_count;
          await new Promise((r) => setTimeout(r, 1100));
          if (hit) {
            hits.push(aim?.name ?? "random");
            break;
          }
          if (!aim?.reach.includes(landed.state)) break;
        }
        if (hits.length < index + 1) {
          lost = true;
          break;
        }
      }
      if (!lost) break;
      log.push(`round ${round + 1} abandoned: a new Worker and date`);
    }
    console.log(`worker kills: ${log.join("; ")}`);
    // Every kill landed where it was aimed, in order.
    expect(hits).toEqual(["mid-archive", "verified", "mid-cleanup", "mid-cleanup", "random"]);

    for (let run = 0; run < 10 && (await state())?.state !== "cleaned"; run++) {
      await w.scheduled(now);
      if ((await state())?.state !== "cleaned") await new Promise((r) => setTimeout(r, 1100));
    }
    expect(
      await w.sql(
        "SELECT state, d1_cleaned, part_count, event_count, cleaned_count FROM archive_metadata WHERE date = ?",
        day,
      ),
    ).toEqual([
      {
        state: "cleaned",
        d1_cleaned: 1,
        part_count: 1,
        event_count: 30_000,
        cleaned_count: 30_000,
      },
    ]);
    expect(await count(w, day)).toBe(0);
    expectSameRows(await w.archivedRows(await partKey(w, day)), hot);
  });

  it("D1 deletes only rows equal to an archived line: a key reused in a gap and an updated row stay", async () => {
    const w = await open();
    const now = new Date("2026-11-20T03:30:00Z");
    const day = daysBefore(now, 5);
    await ingestDay(w, day, 1000);
    const ids = (await w.sql<Row>("SELECT id FROM traffic_events ORDER BY id")).map((r) => r.id);
    const [gap, changed] = [ids[500], ids[700]] as number[];
    await w.sql("DELETE FROM traffic_events WHERE id = ?", gap);
    const res = await w.fetch(`/admin/trigger-archive?date=${day}`, {
      method: "POST",
      admin: true,
    });
    expect(res.status).toBe(202);
    for (let i = 0; i < 300 && (await status(w, day)).job?.state === "running"; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await status(w, day)).record?.state).toBe("verified");
    // A writer that chooses its keys fills the gap; an archived row is updated.
    await w.sql(
      "INSERT INTO traffic_events (id, event_date, ts, path, status, duration_ms) VALUES (?, ?, 1, '/late', 200, 1)",
      gap,
      day,
    );
    await w.sql("UPDATE traffic_events SET path = '/changed' WHERE id = ?", changed);

    await w.scheduled(now);
    const [rec] = await w.sql<Row>(
      "SELECT state, d1_cleaned, last_error FROM archive_metadata WHERE date = ?",
      day,
    );
    expect(rec).toMatchObject({ state: "failed", d1_cleaned: 0 });
    expect(String(rec?.last_error)).toMatch(
      new RegExp(`changed since it was archived \\(keys ${changed}\\)`),
    );
    expect(
      await w.sql("SELECT id, path FROM traffic_events WHERE event_date = ? ORDER BY id", day),
    ).toEqual([
      { id: gap, path: "/late" },
      { id: changed, path: "/changed" },
    ]);

    // The next run archives both as a new part and cleans the date.
    await w.scheduled(now);
    expect(await count(w, day)).toBe(0);
    const [done] = await w.sql<Row>(
      "SELECT state, d1_cleaned, part_count, event_count FROM archive_metadata WHERE date = ?",
      day,
    );
    expect(done).toMatchObject({
      state: "cleaned",
      d1_cleaned: 1,
      part_count: 2,
      event_count: 1001,
    });
    const late = await w.archivedRows(await partKey(w, day, 1));
    expect(late.map((r) => [r.id, r.path])).toEqual([
      [gap, "/late"],
      [changed, "/changed"],
    ]);
  });

  it("rows D1 refuses to delete fail the cleanup loudly, never 'cleaned'; the next run finishes", async () => {
    const w = await open();
    const now = new Date("2026-11-20T03:30:00Z");
    const day = daysBefore(now, 5);
    await ingestDay(w, day, 2000);
    // The seed's bug from the other side: deletes that report success but leave rows.
    await w.sql(
      "CREATE TRIGGER keep_some BEFORE DELETE ON traffic_events WHEN old.id % 40 = 0 BEGIN SELECT RAISE(IGNORE); END",
    );
    await w.scheduled(now);
    const [rec] = await w.sql<Row>(
      "SELECT state, d1_cleaned, cleaned_count, last_error FROM archive_metadata WHERE date = ?",
      day,
    );
    expect(rec).toMatchObject({ state: "failed", d1_cleaned: 0, cleaned_count: 1950 });
    expect(rec?.last_error).toMatch(/deleted 1950 rows, 50 archived rows remain/);
    expect(await count(w, day)).toBe(50);
    // /metrics, as on Node: the failed partition counted from the ledger, for an alert.
    const gauge = async (name: string) => {
      const res = await w.fetch("/metrics");
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      const m = new RegExp(`^${name}\\{table="traffic_events"\\} (\\S+)$`, "m").exec(
        await res.text(),
      );
      return m ? Number(m[1]) : null;
    };
    expect(await gauge("sluice_failed_partitions")).toBe(1);
    expect(await gauge("sluice_last_cleanup_timestamp_seconds")).toBeNull();

    await w.sql("DROP TRIGGER keep_some");
    await w.scheduled(now);
    expect(
      await w.sql(
        "SELECT state, d1_cleaned, cleaned_count FROM archive_metadata WHERE date = ?",
        day,
      ),
    ).toEqual([{ state: "cleaned", d1_cleaned: 1, cleaned_count: 2000 }]);
    expect(await count(w, day)).toBe(0);
    expect(await gauge("sluice_failed_partitions")).toBe(0);
    expect(await gauge("sluice_last_archive_timestamp_seconds")).toBeGreaterThan(1.7e9);
    expect(await gauge("sluice_last_cleanup_timestamp_seconds")).toBeGreaterThan(1.7e9);
  });

  it("an ingest batch is all or nothing on D1 (one batch), and bad input is a 4xx", async () => {
    const w = await open();
    const day = "2026-10-05";
    await ingestDay(w, day, 10);
    await w.sql(
      "CREATE TRIGGER boom BEFORE INSERT ON traffic_events WHEN new.path = '/boom' BEGIN SELECT RAISE(ABORT, 'boom'); END",
    );
    const [batch] = [...generateTrafficDay(day, 1000, 1000)];
    const events = (batch as Row[]).map(asEvent);
    (events[900] as Row).path = "/boom";
    const res = await w.fetch("/api/events", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(events),
    });
    expect(res.status).toBe(500);
    // The 81 statements before the failing one were rolled back with it.
    expect(await count(w, day)).toBe(10);

    const bad = await w.fetch("/api/events", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([{ ts: 1, path: "x", status: 200, duration_ms: 1 }]),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as Row).error).toBe("bad_event");
    const noToken = await w.fetch(`/admin/trigger-archive?date=${day}`, { method: "POST" });
    expect(noToken.status).toBe(401);
    expect(await w.sql("SELECT COUNT(*) AS n FROM archive_metadata")).toEqual([{ n: 0 }]);
  });

  it("INGEST_TOKEN and STATS_TOKEN (secrets or [vars]) guard ingest and stats as on Node", async () => {
    const ingestToken = "worker-ingest-token-0123456789";
    const statsToken = "worker-stats-token-0123456789";
    const w = await open({ INGEST_TOKEN: ingestToken, STATS_TOKEN: statsToken });
    const day = "2026-10-06";
    const [batch] = [...generateTrafficDay(day, 5, 5)];
    const post = (token?: string) =>
      w.fetch("/api/events", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify((batch as Row[]).map(asEvent)),
      });
    for (const token of [undefined, statsToken, TOKEN]) {
      const res = await post(token);
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer /);
    }
    expect(await count(w, day)).toBe(0);
    expect((await post(ingestToken)).status).toBe(201);
    expect(await count(w, day)).toBe(5);

    const stats = `/api/stats/top-paths?from=${day}&to=${day}`;
    for (const token of [undefined, ingestToken, TOKEN]) {
      const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
      expect((await w.fetch(stats, { headers })).status).toBe(401);
    }
    const ok = await w.fetch(stats, { headers: { authorization: `Bearer ${statsToken}` } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { paths: unknown[] }).paths.length).toBeGreaterThan(0);
  });

  it("a bad setting makes every request a 503 that names it; no ADMIN_TOKEN turns admin off", async () => {
    const w = await open({ R2_PART_SIZE_MIB: "2" });
    const res = await w.fetch("/healthz");
    expect(res.status).toBe(503);
    expect(((await res.json()) as Row).message).toMatch(/R2_PART_SIZE_MIB="2"/);
    await w.stop();
    worker = null;

    const off = await open({ ADMIN_TOKEN: "" });
    const admin = await off.fetch("/admin/partitions", { admin: true });
    expect(admin.status).toBe(403);
    expect(((await admin.json()) as Row).error).toBe("admin_disabled");
  });
});

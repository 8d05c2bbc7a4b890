import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import type Database from "better-sqlite3";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FsStore } from "../src/adapters/fs/store.js";
import type { JobContext } from "../src/core/archive/context.js";
import type { JobRunner } from "../src/core/archive/runner.js";
import { BusyError } from "../src/core/errors.js";
import { Semaphore } from "../src/core/semaphore.js";
import type { Row, SqlSource } from "../src/core/sql/source.js";
import { TraceJobs } from "../src/core/trace/trace-jobs.js";
import { createApp } from "../src/http/app.js";
import { CONSOLE_CSP } from "../src/http/routes/console.js";
import { zlibCodec } from "../src/node/codec.js";
import { consoleFiles, consoleFolder } from "../src/node/console-files.js";
import { openSource } from "../src/node/open.js";
import { prepareMesData } from "../src/workloads/mes/prepare.js";
import { type WatchedPage, browserAvailable, launch, openPage, screenshots } from "./browser.js";
import {
  TOKEN,
  type TestServer,
  WRONG_TOKEN,
  bearer,
  call,
  startServer,
  waitForJob,
} from "./http-helpers.js";
import { type TestDb, postgresDb } from "./servers.js";

/**
 * The console in real headless Chromium: the archive and stats pages on a real `sluice serve`
 * (SQLite + folder store), the trace page on the machine's PostgreSQL with a generated
 * factory. What the page shows is compared with what the API answers for the same request.
 */
const RUN = browserAvailable("test/console.test.ts");

/** What the tests read of an element in the page (the tests compile without the DOM's types). */
interface El {
  dataset: Record<string, string | undefined>;
  textContent: string | null;
  classList: { contains(name: string): boolean };
  querySelectorAll(selector: string): ArrayLike<El>;
}

/** Chrome's own console line for a response it was given with an error status. */
const refusedLine = (status: number) =>
  new RegExp(`^Failed to load resource: the server responded with a status of ${status}`);

/** Nothing went wrong on the page except the refusals the test asked for. */
function expectClean(w: WatchedPage, expected: number[] = []): void {
  const errors = w.errors.filter((e) => !expected.some((s) => refusedLine(s).test(e)));
  expect(errors, "console errors").toEqual([]);
  const failed = w.failed.filter((f) => !expected.some((s) => f.startsWith(`${s} `)));
  expect(failed, "failed requests").toEqual([]);
}

async function enterToken(page: Page, token: string): Promise<void> {
  await page.fill("#token-admin", token);
  await page.click("form.token button[type=submit]");
}

describe.runIf(RUN)("console: archive and stats pages on sluice serve (SQLite)", () => {
  /** Archived and cleaned through the API before the page opens. */
  const CLEANED = "2025-05-20";
  /** Archived and cleaned from the page. */
  const FROM_PAGE = "2025-05-21";
  /** Archived through the API, then marked failed in the ledger (a re-verification's find). */
  const FAILED = "2025-05-22";
  /** Never archived: what the page without a token is asked to archive. */
  const UNTOUCHED = "2025-05-23";
  /** Archived, then its lease taken by another process (written into the ledger). */
  const LOCKED = "2025-05-24";
  const STATS_DAYS = ["2025-06-01", "2025-06-02", "2025-06-03"];
  let srv: TestServer;
  let sql: Database.Database;
  let browser: Browser;

  const api = async <T>(path: string, init: RequestInit = {}): Promise<T> => {
    const res = await call(`${srv.url}${path}`, { ...init, headers: bearer() });
    expect(res.status, `${path}: ${res.text}`).toBeLessThan(300);
    return res.body as T;
  };
  const runJob = async (kind: "archive" | "cleanup", date: string) => {
    await api(`/admin/trigger-${kind}?date=${date}`, { method: "POST" });
    const s = await waitForJob(srv.url, date);
    expect(s.job?.state, s.job?.error ?? "").toBe("succeeded");
  };

  beforeAll(async () => {
    srv = await startServer({
      seed: [
        { date: CLEANED, count: 3_000 },
        { date: FROM_PAGE, count: 30_000 },
        { date: FAILED, count: 1_000 },
        { date: UNTOUCHED, count: 500 },
        { date: LOCKED, count: 500 },
        { date: STATS_DAYS[2] as string, count: 2_000, days: 3 },
      ],
    });
    sql = srv.sql();
    await runJob("archive", CLEANED);
    await runJob("cleanup", CLEANED);
    await runJob("archive", FAILED);
    sql
      .prepare("UPDATE archive_metadata SET state = 'failed', last_error = ? WHERE date = ?")
      .run("re-verification: part 0 is missing from the store", FAILED);
    browser = await launch();
  });

  afterAll(async () => {
    await browser?.close();
    await srv?.stop();
  });

  /** The partitions table as the page shows it, by the raw values its cells carry. */
  async function pageTable(page: Page): Promise<Row[]> {
    return page.$$eval("table[data-testid=partitions] tbody tr", (trs) =>
      (trs as unknown as El[]).map((tr) => {
        const row: Record<string, string> = { date: tr.dataset.date ?? "" };
        for (const td of Array.from(tr.querySelectorAll("td[data-field]"))) {
          const field = td.dataset.field as string;
          row[field] = td.dataset.value ?? td.textContent?.trim() ?? "";
        }
        row.failedClass = tr.classList.contains("failed") ? "yes" : "no";
        return row;
      }),
    );
  }

  it("serves / with a CSP that forbids inline scripts; the page has none, and one injected does not run", async () => {
    const res = await fetch(`${srv.url}/`);
    expect(res.status).toBe(200);
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toBe(CONSOLE_CSP);
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    const html = await res.text();
    expect(html.match(/<script\b[^>]*>/g)).toEqual([
      '<script type="module" src="/console/console.js">',
    ]);
    expect(html).not.toMatch(/\sstyle=|\son[a-z]+=/);
    for (const f of ["console.js", "console.css"]) {
      const r = await fetch(`${srv.url}/console/${f}`);
      expect(r.status, f).toBe(200);
      expect(r.headers.get("content-security-policy")).toBe(CONSOLE_CSP);
    }
    expect((await fetch(`${srv.url}/console/..%2Fpackage.json`)).status).toBe(404);

    const w = await openPage(browser, srv.url);
    await w.page.goto("/");
    await w.page.waitForSelector("h2#archive-h");
    await w.page.evaluate(
      'const s = document.createElement("script"); s.textContent = "window.injected = true"; document.body.append(s)',
    );
    expect(await w.page.evaluate("window.injected")).toBe(undefined);
    expect(w.errors.some((e) => /Content Security Policy/.test(e))).toBe(true);
    await w.close();
  });

  it("without a token the page says so, and pressing Archive starts nothing and sends nothing", async () => {
    const w = await openPage(browser, srv.url);
    const admin: string[] = [];
    w.page.on("request", (r) => {
      if (new URL(r.url()).pathname.startsWith("/admin")) admin.push(r.url());
    });
    await w.page.goto("/#archive");
    await expect
      .poll(() => w.page.textContent("output.notice"), { timeout: 30_000 })
      .toContain("enter the admin token");
    await w.page.fill("#job-date", UNTOUCHED);
    await w.page.click("form.row button[type=submit]");
    expect(await w.page.textContent("[data-testid=archive-message]")).toMatch(
      /admin token is needed.*nothing was started/,
    );
    expect(admin).toEqual([]);
    const status = await api<{ record: unknown; job: unknown }>(
      `/admin/archive-status?date=${UNTOUCHED}`,
    );
    expect(status).toMatchObject({ record: null, job: null });
    expectClean(w);
    await w.close();
  });

  it("a wrong token is shown as refused (401) and forgotten; the right one shows the table", async () => {
    const w = await openPage(browser, srv.url);
    await w.page.goto("/#archive");
    await enterToken(w.page, WRONG_TOKEN);
    await expect
      .poll(() => w.page.textContent("[data-testid=archive-message]"), { timeout: 30_000 })
      .toMatch(/token was refused \(401\)/);
    // Asked again: the refused token is no longer kept, nor anywhere in the URL.
    expect(await w.page.evaluate('sessionStorage.getItem("sluice.token.admin")')).toBeNull();
    expect(w.page.url()).not.toContain(WRONG_TOKEN);
    await enterToken(w.page, TOKEN);
    await w.page.waitForSelector(`tr[data-date="${CLEANED}"]`);
    expectClean(w, [401]);
    await w.close();
  });

  it("the partitions table equals /admin/partitions; the failed day stands out; the chart's cleaned rows are the ledger's", async () => {
    const w = await openPage(browser, srv.url);
    await w.page.goto("/#archive");
    await enterToken(w.page, TOKEN);
    await w.page.waitForSelector(`tr[data-date="${FAILED}"]`);
    const { partitions } = await api<{ partitions: Row[] }>("/admin/partitions");
    expect(partitions.map((p) => p.date).sort()).toEqual([CLEANED, FAILED]);
    const expected = [...partitions]
      .sort((a, b) => String(b.date).localeCompare(String(a.date)))
      .map((p) => ({
        date: p.date,
        state: p.state,
        rows: String(p.rows),
        parts: String(p.parts),
        bytes: String(p.bytes ?? ""),
        verifiedAt: String(p.verifiedAt ?? ""),
        cleaned: p.cleaned ? "true" : "false",
        lateRows: String(p.lateRows),
        lastError: String(p.lastError ?? ""),
        failedClass: p.state === "failed" ? "yes" : "no",
      }));
    expect(await pageTable(w.page)).toEqual(expected);
    expect(await w.page.textContent(".failed-note")).toContain(FAILED);
    const cleaned = partitions.find((p) => p.date === CLEANED) as Row;
    expect(cleaned).toMatchObject({ state: "cleaned", cleanedCount: 3_000 });
    expect(
      await w.page.getAttribute(
        `g.day[data-date="${CLEANED}"] rect[data-tier=cleaned]`,
        "data-value",
      ),
    ).toBe("3000");
    expectClean(w);
    await w.close();
  });

  it("a day another process holds is a 409 shown as who holds it and until when, and nothing runs", async () => {
    await runJob("archive", LOCKED);
    const until = Date.now() + 600_000;
    sql
      .prepare("UPDATE archive_metadata SET lease_owner = ?, lease_expires_at = ? WHERE date = ?")
      .run("host-b:4242:job7", until, LOCKED);
    const w = await openPage(browser, srv.url);
    await w.page.goto("/#archive");
    await enterToken(w.page, TOKEN);
    await w.page.waitForSelector(`tr[data-date="${LOCKED}"]`);
    await w.page.fill("#job-date", LOCKED);
    await w.page.click("form.row button[type=button]");
    await expect
      .poll(() => w.page.textContent("[data-testid=archive-message]"), { timeout: 30_000 })
      .toBe(
        `Another process (host-b:4242:job7) holds ${LOCKED} until ${new Date(until).toISOString()}: try again then (409).`,
      );
    expect(await w.page.$("[data-testid=job-progress]")).toBeNull();
    const status = await api<{ record: { state: string; cleaned: boolean } }>(
      `/admin/archive-status?date=${LOCKED}`,
    );
    expect(status.record).toMatchObject({ state: "verified", cleaned: false });
    expectClean(w, [409]);
    await w.close();
  });

  it("Archive then Clean up from the page, with the token: progress shows, and the day ends cleaned on the page and in the store", async () => {
    const w = await openPage(browser, srv.url);
    await w.page.goto("/#archive");
    await enterToken(w.page, TOKEN);
    await w.page.waitForSelector(`tr[data-date="${CLEANED}"]`);
    await w.page.fill("#job-date", FROM_PAGE);
    await w.page.click("form.row button[type=submit]");
    await w.page.waitForSelector("[data-testid=job-progress]", { timeout: 10_000 });
    await expect
      .poll(() => w.page.textContent(`tr[data-date="${FROM_PAGE}"] td[data-field=state]`), {
        timeout: 60_000,
      })
      .toBe("verified");
    await w.page.click("form.row button[type=button]");
    await expect
      .poll(() => w.page.textContent(`tr[data-date="${FROM_PAGE}"] td[data-field=state]`), {
        timeout: 60_000,
      })
      .toBe("cleaned");
    expect(await w.page.textContent("[data-testid=archive-message]")).toContain(
      `cleanup of ${FROM_PAGE}: succeeded`,
    );
    const { partitions } = await api<{ partitions: Row[] }>("/admin/partitions");
    expect(partitions.find((p) => p.date === FROM_PAGE)).toMatchObject({
      state: "cleaned",
      rows: 30_000,
      cleanedCount: 30_000,
      hotRows: 0,
    });
    const left = sql
      .prepare("SELECT COUNT(*) AS n FROM traffic_events WHERE event_date = ?")
      .get(FROM_PAGE) as { n: number };
    expect(left.n).toBe(0);
    // The token stays in the tab's sessionStorage only: never in the URL.
    expect(w.page.url()).not.toContain(TOKEN);
    expect(await w.page.evaluate('sessionStorage.getItem("sluice.token.admin")')).toBe(TOKEN);
    await screenshots(w.page, "archive");
    expectClean(w);
    await w.close();
  });

  it("the stats page's top paths and one path's days equal the stats routes, with each day's tier", async () => {
    const [from, , to] = STATS_DAYS as [string, string, string];
    const w = await openPage(browser, srv.url);
    await w.page.goto("/#stats");
    await w.page.fill("#stats-from", from);
    await w.page.fill("#stats-to", to);
    await w.page.click("form.row button[type=submit]");
    await w.page.waitForSelector(`text=Top paths, ${from} to ${to}`);
    const top = await api<{
      paths: { path: string; views: number }[];
      coverage: { hot: string[] };
    }>(`/api/stats/top-paths?from=${from}&to=${to}&limit=20`);
    expect(top.paths.length).toBeGreaterThan(1);
    const bars = await w.page.$$eval("svg[data-chart=bars] g.bar", (gs) =>
      (gs as unknown as El[]).map((g) => ({
        path: g.dataset.label,
        views: Number(g.dataset.value),
      })),
    );
    expect(bars).toEqual(top.paths);
    const rows = await w.page.$$eval("table[data-testid=top-paths] tbody tr", (trs) =>
      (trs as unknown as El[]).map((tr) =>
        Array.from(tr.querySelectorAll("td")).map((td) => td.textContent?.trim()),
      ),
    );
    expect(rows).toEqual(top.paths.map((p) => [p.path, p.views.toLocaleString("en")]));
    expect(await w.page.textContent("[data-testid=coverage]")).toContain(
      "3 days from the hot table",
    );
    const path = top.paths[0]?.path as string;
    await w.page.click(`table[data-testid=top-paths] button >> text="${path}"`);
    await w.page.waitForSelector("table[data-testid=path-daily]");
    const daily = await api<{ days: { date: string; views: number; tier: string }[] }>(
      `/api/stats/path-daily?${new URLSearchParams({ path, from, to })}`,
    );
    const points = await w.page.$$eval("g.point", (gs) =>
      (gs as unknown as El[]).map((g) => ({
        date: g.dataset.date,
        views: Number(g.dataset.value),
        tier: g.dataset.tier,
      })),
    );
    expect(points).toEqual(daily.days);
    expect(daily.days.map((d) => d.tier)).toEqual(["hot", "hot", "hot"]);
    await screenshots(w.page, "stats");
    expectClean(w);
    await w.close();
  });

  it("every control of the archive page is reached with the keyboard", async () => {
    const w = await openPage(browser, srv.url);
    await w.page.goto("/#archive");
    await w.page.waitForSelector("#token-admin");
    const reached: string[] = [];
    for (let i = 0; i < 12; i++) {
      await w.page.keyboard.press("Tab");
      reached.push(
        String(
          await w.page.evaluate(
            "(() => { const el = document.activeElement; return `${el?.tagName.toLowerCase()}:${el?.id || el?.textContent?.trim() || ''}` })()",
          ),
        ),
      );
    }
    for (const want of ["a:Archive", "a:Stats", "input:token-admin", "input:job-date"]) {
      expect(reached).toContain(want);
    }
    expect(reached.some((r) => r === "button:Archive")).toBe(true);
    expect(reached.some((r) => r === "button:Clean up")).toBe(true);
    expectClean(w);
    await w.close();
  });
});

const pgdb = RUN ? await postgresDb() : null;
// Here rather than in the suite: a run filtered to other tests (-t) drops the schema too.
afterAll(async () => {
  await pgdb?.close();
});

describe.runIf(RUN && pgdb !== null)(
  "console: trace page on PostgreSQL (generated factory)",
  () => {
    const db = pgdb as TestDb;
    /** TRACE_EVENTS_CID_LIMIT here: the station's query_tool trace is over it. */
    const LIMIT = 40;
    let source: SqlSource;
    let url = "";
    let close: () => Promise<void>;
    let browser: Browser;
    /** While set, each event statement stops after its first batch until it resolves. */
    let hold: Promise<void> | null = null;
    const jobsDir = mkdtempSync(join(tmpdir(), "sluice-console-jobs-"));
    const jobs = new TraceJobs(new FsStore(jobsDir), zlibCodec, { heartbeatMs: 200 });
    const FILTER = { workcenter: "TMTT", from: "2000-01-01", to: "2100-01-01" };

    beforeAll(async () => {
      source = await openSource(db.url, { poolSize: 8 });
      await prepareMesData(source, { scale: 0.01 });
      // The source, except that event statements can be held after their first batch: the
      // response has begun and cannot end until the test lets them go on.
      const holding: SqlSource = Object.assign(Object.create(source), {
        stream(sql: string, params?: readonly unknown[], options?: object) {
          const inner = source.stream(sql, params, options);
          if (!/upstream_history|defect_records/.test(sql)) return inner;
          return (async function* () {
            let first = true;
            for await (const batch of inner) {
              yield batch;
              if (first && hold) await hold;
              first = false;
            }
          })();
        },
      });
      const folder = consoleFolder();
      if (!folder) throw new Error("the console is not built: npm run build");
      const app = createApp({
        ctx: {
          source,
          spec: { table: "traffic_events", partitionColumn: "event_date", keyColumn: "id" },
        } as unknown as JobContext,
        runner: {} as JobRunner,
        maxBodyBytes: 1 << 20,
        maxEvents: 10,
        console: consoleFiles(folder),
        trace: {
          source: holding,
          slots: new Semaphore(4, {
            maxQueued: 8,
            refuse: () => new BusyError("trace slots busy: try again shortly", 5),
          }),
          cidLimit: LIMIT,
          workersPerDomain: 2,
          fetchSize: 100,
          maxBodyBytes: 8 << 20,
          jobs,
          codec: zlibCodec,
        },
      });
      const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
      await new Promise((r) => server.once("listening", r));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      close = () => new Promise((r) => server.close(() => r()));
      browser = await launch();
    }, 300_000);

    afterAll(async () => {
      await browser?.close();
      await jobs.stop();
      rmSync(jobsDir, { recursive: true, force: true });
      await close?.();
      await source?.close();
    });

    const post = async <T>(path: string, body: unknown): Promise<T> => {
      const res = await fetch(`${url}${path}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(res.status, path).toBe(200);
      return (await res.json()) as T;
    };

    /** The containers the page traces for a profile: the station's seeds, then their lineage. */
    async function lineageOf(profile: string): Promise<string[]> {
      const seeds = await post<{ containers: string[] }>("/api/trace/seed-resolve", {
        profile,
        filter: FILTER,
      });
      return (
        await post<{ containers: string[] }>("/api/trace/lineage", {
          profile,
          containers: seeds.containers,
        })
      ).containers;
    }

    async function fillForm(page: Page, profile: string): Promise<void> {
      await page.goto("/#trace");
      await page.check(`input[name=profile][value=${profile}]`);
      await page.fill("#trace-wc", FILTER.workcenter);
      await page.fill("#trace-from", FILTER.from);
      await page.fill("#trace-to", FILTER.to);
    }

    const eventsState = (page: Page) =>
      page.getAttribute("[data-testid=events-state]", "data-state").catch(() => null);

    it("mid_section_defect: rows are on the page before the response ends, then the pareto drawn equals POST /api/trace/pareto", async () => {
      const containers = await lineageOf("mid_section_defect");
      expect(containers.length).toBeGreaterThan(LIMIT);
      const expected = await post<{
        rows: Record<string, number>;
        msd: { pareto: Row[] };
      }>("/api/trace/pareto", {
        profile: "mid_section_defect",
        containers,
      });
      expect(expected.msd.pareto.length).toBeGreaterThan(1);

      const w = await openPage(browser, url);
      await fillForm(w.page, "mid_section_defect");
      let release: () => void = () => undefined;
      hold = new Promise<void>((r) => {
        release = r;
      });
      try {
        await w.page.click(".trace-form button[type=submit]");
        // Held: the events response has begun and cannot end, yet rows are drawn.
        await w.page.waitForSelector("tr.event-row", { timeout: 60_000 });
        expect(await eventsState(w.page)).toBe("streaming");
        expect(await w.page.$("[data-chart=pareto]")).toBeNull();
        expect(await w.page.textContent("[data-testid=lineage]")).toContain(
          `${containers.length.toLocaleString("en")} containers`,
        );
      } finally {
        hold = null;
        release();
      }
      await expect.poll(() => eventsState(w.page), { timeout: 60_000 }).toBe("complete");
      // Every row counted (past the kept window rows are counted, not parsed), per domain.
      expect(await w.page.textContent("[data-testid=events-state]")).toBe(
        `defect_records: ${expected.rows.defect_records?.toLocaleString("en")}, upstream_history: ${expected.rows.upstream_history?.toLocaleString("en")} (complete)`,
      );
      expect(expected.rows.upstream_history).toBeGreaterThan(2000);
      const bars = await w.page.$$eval("[data-chart=pareto] g.pareto-bar", (gs) =>
        (gs as unknown as El[]).map((g) => ({
          workcenter: g.dataset.workcenter,
          equipment: g.dataset.equipment,
          defectQty: Number(g.dataset.defectQty),
          cumulativePercent: Number(g.dataset.cumulativePercent),
          defectShare: Number(g.dataset.defectShare),
        })),
      );
      expect(bars).toEqual(
        expected.msd.pareto.map((b) => ({
          workcenter: b.workcenter,
          equipment: b.equipment,
          defectQty: b.defectQty,
          cumulativePercent: b.cumulativePercent,
          defectShare: b.defectShare,
        })),
      );
      const table = await w.page.$$eval("table[data-testid=pareto-table] tbody tr", (trs) =>
        (trs as unknown as El[]).map((tr) =>
          Array.from(tr.querySelectorAll("td")).map((td) => td.textContent),
        ),
      );
      expect(table).toEqual(
        expected.msd.pareto.map((b) => [
          b.workcenter,
          b.equipment,
          Number(b.defectQty).toLocaleString("en"),
          Number(b.containers).toLocaleString("en"),
          String(b.percent),
          String(b.cumulativePercent),
          String(b.defectShare),
        ]),
      );
      // The cumulative-percent line ends at 100%.
      expect(await w.page.$("[data-chart=pareto] path.cumulative")).not.toBeNull();
      expect(Number(bars.at(-1)?.cumulativePercent)).toBeCloseTo(100, 0);
      await screenshots(w.page, "trace-msd");
      expectClean(w);
      await w.close();
    });

    it("query_tool from lot ids under the limit: the events' counts equal /events, the table draws only the rows in view", async () => {
      const lots = (
        await source.query(`SELECT DISTINCT "LOTID" AS l FROM lot_moves ORDER BY "LOTID" LIMIT 3`)
      ).map((r) => String(r.l));
      const seeds = await post<{ containers: string[] }>("/api/trace/seed-resolve", {
        profile: "query_tool",
        filter: { lotIds: lots },
      });
      const { containers } = await post<{ containers: string[] }>("/api/trace/lineage", {
        profile: "query_tool",
        containers: seeds.containers,
      });
      expect(containers.length).toBeLessThanOrEqual(LIMIT);
      const expected = await post<{ results: Record<string, { count: number }> }>(
        "/api/trace/events",
        { profile: "query_tool", containers },
      );
      const upstream = expected.results.upstream_history?.count ?? 0;
      expect(upstream).toBeGreaterThan(20);

      const w = await openPage(browser, url);
      await w.page.goto("/#trace");
      await w.page.check("input[name=profile][value=query_tool]");
      await w.page.check("input[name=by] >> nth=1");
      await w.page.fill("#trace-lots", lots.join("\n"));
      await w.page.click(".trace-form button[type=submit]");
      await expect.poll(() => eventsState(w.page), { timeout: 60_000 }).toBe("complete");
      const counts = Object.entries(expected.results)
        .filter(([, r]) => r.count > 0)
        .map(([d, r]) => `${d}: ${r.count.toLocaleString("en")}`)
        .join(", ");
      expect(await w.page.textContent("[data-testid=events-state]")).toBe(`${counts} (complete)`);
      await w.page.click("button[role=tab] >> text=upstream_history");
      expect(await w.page.textContent("[data-testid=window-note]")).toContain(
        `${upstream.toLocaleString("en")} rows`,
      );
      // Virtualised: the rows in view are in the page, not all of them.
      const drawn = await w.page.$$eval("tr.event-row", (trs) => trs.length);
      expect(drawn).toBeGreaterThan(0);
      expect(drawn).toBeLessThan(Math.min(upstream, 20));
      await screenshots(w.page, "trace-query-tool");
      expectClean(w);
      await w.close();
    });

    it("query_tool over the limit: the 413 with limit and count, then a background job runs to a download of the whole result", async () => {
      const containers = await lineageOf("query_tool");
      expect(containers.length).toBeGreaterThan(LIMIT);
      const w = await openPage(browser, url);
      await fillForm(w.page, "query_tool");
      await w.page.click(".trace-form button[type=submit]");
      await w.page.waitForSelector("[data-testid=refused]", { timeout: 60_000 });
      const refused = (await w.page.textContent("[data-testid=refused]")) ?? "";
      expect(refused).toContain(`${containers.length.toLocaleString("en")} containers`);
      expect(refused).toContain(`limit of ${LIMIT}`);
      expect(refused).toContain("(413)");
      await w.page.click("[data-testid=refused] button");
      await w.page.waitForSelector("[data-testid=trace-job][data-state=succeeded]", {
        timeout: 60_000,
      });
      const [download] = await Promise.all([
        w.page.waitForEvent("download"),
        w.page.click("[data-testid=job-download]"),
      ]);
      const file = await download.path();
      const result = JSON.parse(readFileSync(file, "utf8")) as {
        results: Record<string, { data: Row[]; count: number }>;
      };
      // The whole result: every container's events, as /events would stream them under a
      // limit that let them through (the job's own status counts the same rows).
      const status = (await (await fetch(`${url}/api/trace/jobs`)).json()) as {
        jobs: { id: string; containers: number }[];
      };
      expect(status.jobs[0]?.containers).toBe(containers.length);
      const job = (await (await fetch(`${url}/api/trace/jobs/${status.jobs[0]?.id}`)).json()) as {
        rows: Record<string, number>;
      };
      expect(result.results.upstream_history?.count).toBeGreaterThan(0);
      const ids = new Set(containers);
      for (const [domain, r] of Object.entries(result.results)) {
        expect(r.data.length, domain).toBe(r.count);
        expect(job.rows[domain], domain).toBe(r.count);
        expect(
          r.data.filter((row) => !ids.has(String(row.CONTAINERID))),
          domain,
        ).toEqual([]);
      }
      await screenshots(w.page, "trace-413-job");
      expectClean(w, [413]);
      await w.close();
    });
  },
);

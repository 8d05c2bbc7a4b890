import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { archiveDate, cleanupDate } from "../src/core/archive/jobs.js";
import { putBytes } from "../src/core/store.js";
import { loadConfig } from "../src/node/config.js";
import { openContext } from "../src/node/context.js";
import { createMetrics } from "../src/node/metrics.js";
import { openSource } from "../src/node/open.js";
import { checkCron, startVerifySchedule } from "../src/node/scheduler.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";

/**
 * The periodic re-verification (VERIFY_CRON): a corrupted archive and a deleted one are each
 * recorded in the ledger and counted in /metrics, where an alert rule can see them; nothing
 * else changes.
 */
const dir = mkdtempSync(join(tmpdir(), "sluice-verify-schedule-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("finds a corrupted and a deleted archive, records both, counts them, and changes nothing else", async () => {
  const db = join(dir, "hot.db");
  const source = await openSource(`sqlite:${db}`, { create: true });
  await prepareTrafficData(source, { date: "2025-10-13", days: 3, count: 2_000 });
  await source.close();
  const c = await openContext(
    loadConfig({ SLUICE_DB: `sqlite:${db}`, SLUICE_STORE: `file:${join(dir, "archive")}` }),
  );
  try {
    const days = ["2025-10-11", "2025-10-12", "2025-10-13"];
    for (const d of days) await archiveDate(c.ctx, c.owner, d);
    await cleanupDate(c.ctx, c.owner, "2025-10-11");
    const table = c.ctx.spec.table;
    const [corrupt] = await c.ctx.ledger.parts(table, "2025-10-11");
    const [gone] = await c.ctx.ledger.parts(table, "2025-10-12");
    const body = await c.ctx.store.get(corrupt?.objectKey as string);
    const bytes = new Uint8Array(await new Response(body).arrayBuffer());
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] ?? 0) ^ 0xff;
    await putBytes(c.ctx.store, corrupt?.objectKey as string, bytes);
    await c.ctx.store.delete(gone?.objectKey as string);

    const metrics = createMetrics(c.ctx);
    const logged: string[] = [];
    const schedule = startVerifySchedule({
      pattern: "0 0 1 1 *",
      ctx: c.ctx,
      owner: c.owner,
      verified: metrics.verified,
      log: (fields) => logged.push(String(fields.date)),
    });
    try {
      expect(schedule.next()).not.toBeNull();
      const results = await schedule.runOnce();
      expect(results.map((r) => [r.date, r.ok])).toEqual([
        ["2025-10-11", false],
        ["2025-10-12", false],
        ["2025-10-13", true],
      ]);
      expect(logged).toEqual(["2025-10-11", "2025-10-12"]);
    } finally {
      schedule.stop();
    }
    const state = async (d: string) => c.ctx.ledger.get(table, d);
    expect(await state("2025-10-11")).toMatchObject({ state: "failed", cleaned: true });
    expect((await state("2025-10-11"))?.lastError).toMatch(/differs from its recorded sha256/);
    expect(await state("2025-10-12")).toMatchObject({ state: "failed", cleaned: false });
    expect((await state("2025-10-12"))?.lastError).toMatch(/is missing from/);
    expect(await state("2025-10-13")).toMatchObject({ state: "verified" });
    // Nothing else changed: the hot rows are where they were.
    const hot = await openSource(`sqlite:${db}`);
    try {
      const rows = await hot.query(
        `SELECT event_date AS d, COUNT(*) AS n FROM ${table} GROUP BY event_date ORDER BY 1`,
      );
      expect(rows).toEqual([
        { d: "2025-10-12", n: 2_000 },
        { d: "2025-10-13", n: 2_000 },
      ]);
    } finally {
      await hot.close();
    }

    const text = (await metrics.render()).body;
    expect(text).toMatch(/^sluice_verify_failures_total 2$/m);
    expect(text).toMatch(/^sluice_verified_partitions_total\{outcome="ok"\} 1$/m);
    expect(text).toMatch(/^sluice_verified_partitions_total\{outcome="failed"\} 2$/m);
    expect(text).toMatch(/^sluice_failed_partitions\{table="traffic_events"\} 2$/m);
    // When the table was last archived and cleaned, from the ledger, for an alert on age.
    const [cleanedPart] = await c.ctx.ledger.parts(table, "2025-10-11");
    const [lastPart] = await c.ctx.ledger.parts(table, "2025-10-13");
    const stamp = (name: string) =>
      Number(new RegExp(`^${name}\\{table="traffic_events"\\} (\\S+)$`, "m").exec(text)?.[1]);
    expect(stamp("sluice_last_archive_timestamp_seconds")).toBe(
      Date.parse(lastPart?.archivedAt as string) / 1000,
    );
    expect(stamp("sluice_last_cleanup_timestamp_seconds")).toBe(
      Date.parse(cleanedPart?.cleanedAt as string) / 1000,
    );
    // Rows the verified parts' rollups count, as the ledger has them.
    const [rolled] = await c.ctx.source.query(
      "SELECT SUM(rollup_rows) AS n FROM archive_parts WHERE source_table = ?",
      [table],
    );
    expect(Number(rolled?.n)).toBeGreaterThan(0);
    expect(stamp("sluice_rollup_rows")).toBe(Number(rolled?.n));
  } finally {
    await c.close();
  }
});

it("a VERIFY_CRON that is not a cron pattern stops start-up with a message naming it", () => {
  expect(() => checkCron("every sunday", "VERIFY_CRON")).toThrow(/^VERIFY_CRON 'every sunday': /);
});

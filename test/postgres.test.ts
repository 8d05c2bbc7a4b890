import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresSource } from "../src/adapters/postgres.js";
import { CleanupIncompleteError } from "../src/core/errors.js";
import { archiveDate, cleanupDate, partitionStatus } from "../src/core/jobs.js";
import { prepareTrafficData } from "../src/core/traffic/prepare.js";
import { loadConfig } from "../src/node/config.js";
import { openContext } from "../src/node/context.js";

/**
 * The archive/verify/cleanup flow on the machine's real PostgreSQL, in a schema of its own.
 * Outside CI a missing server skips with a loud line; in CI (CI=true) it fails.
 */
const BASE = process.env.SLUICE_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const DAY = "2025-10-13";
const schema = `sluice_t_${process.pid}_${Date.now().toString(36)}`;
const url = `${BASE}${BASE.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
let admin: pg.Client | null = null;
let dir = "";

const available = await (async () => {
  const c = new pg.Client({ connectionString: BASE, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    await c.query(`CREATE SCHEMA ${schema}`);
    admin = c;
    return true;
  } catch (err) {
    await c.end().catch(() => undefined);
    if (process.env.CI === "true")
      throw new Error(`PostgreSQL at ${BASE} is required in CI: ${(err as Error).message}`);
    console.warn(
      `\n*** SKIPPING PostgreSQL tests: no server at ${BASE} (${(err as Error).message}); set SLUICE_TEST_PG_URL ***\n`,
    );
    return false;
  }
})();

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "sluice-pg-"));
});
afterAll(async () => {
  await admin?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin?.end();
  rmSync(dir, { recursive: true, force: true });
});

async function fresh(table: string, count: number) {
  const source = new PostgresSource(url);
  await prepareTrafficData(source, { count, date: DAY, table });
  await source.close();
  const store = join(dir, table);
  const c = await openContext(
    loadConfig({ SLUICE_DB: url, SLUICE_STORE: `file:${store}`, SLUICE_TABLE: table }),
  );
  return { c, store };
}

const rowsOf = async (table: string) =>
  (
    await admin?.query(`SELECT * FROM ${schema}.${table} WHERE event_date = $1 ORDER BY id`, [DAY])
  )?.rows.map((r: Record<string, unknown>) => ({ ...r, id: Number(r.id), ts: Number(r.ts) })) ?? [];

describe.runIf(available)("archive, verify, cleanup on PostgreSQL", () => {
  it("round-trips 60K rows field for field, in more than 50 batches, and empties the date", async () => {
    const { c, store } = await fresh("te_round", 60_000);
    try {
      const before = await rowsOf("te_round");
      const reltuples = async () =>
        Number(
          (
            await admin?.query(
              `SELECT reltuples FROM pg_class WHERE oid = '${schema}.te_round'::regclass`,
            )
          )?.rows[0]?.reltuples,
        );
      // Freshly loaded, never analyzed: key-paginated pages would each sort the rest of the day.
      expect(await reltuples()).toBe(-1);
      const out = await archiveDate(c.ctx, c.owner, DAY);
      expect(await reltuples()).toBeGreaterThan(50_000);
      expect(out.written?.eventCount).toBe(60_000);
      const file = join(store, "te_round", `date=${DAY}`, "part-0000.jsonl.gz");
      const lines = gunzipSync(readFileSync(file)).toString("utf8").trimEnd().split("\n");
      expect(lines.map((l) => JSON.parse(l))).toEqual(before);
      const cleaned = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 1000 });
      expect(cleaned).toMatchObject({ complete: true, deleted: 60_000, remaining: 0 });
      expect(await rowsOf("te_round")).toEqual([]);
      expect(await c.ctx.ledger.get("te_round", DAY)).toMatchObject({
        state: "cleaned",
        d1Cleaned: 1,
        cleanedCount: 60_000,
      });
    } finally {
      await c.close();
    }
  });

  it("keeps late rows, and fails loudly when an archived row survives its delete", async () => {
    const { c } = await fresh("te_late", 3_000);
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      await admin?.query(
        `INSERT INTO ${schema}.te_late (event_date, ts, path, status, duration_ms) VALUES ($1, 1, '/late', 200, 1)`,
        [DAY],
      );
      // The database quietly refuses to delete one archived row.
      await admin?.query(`CREATE FUNCTION ${schema}.keep_one() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN IF OLD.id = 7 THEN RETURN NULL; END IF; RETURN OLD; END $$`);
      await admin?.query(
        `CREATE TRIGGER keep_one BEFORE DELETE ON ${schema}.te_late FOR EACH ROW EXECUTE FUNCTION ${schema}.keep_one()`,
      );
      const err = await cleanupDate(c.ctx, c.owner, DAY).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CleanupIncompleteError);
      expect(err).toMatchObject({ deleted: 2_999, remaining: 1 });
      expect(await c.ctx.ledger.get("te_late", DAY)).toMatchObject({
        state: "failed",
        d1Cleaned: 0,
      });

      await admin?.query(`DROP TRIGGER keep_one ON ${schema}.te_late`);
      expect((await cleanupDate(c.ctx, c.owner, DAY)).complete).toBe(true);
      const status = await partitionStatus(c.ctx, DAY);
      expect(status).toMatchObject({ hotRows: 1, lateRows: 1 });
      const more = await archiveDate(c.ctx, c.owner, DAY);
      expect(more.written).toMatchObject({ part: 1, eventCount: 1 });
      await cleanupDate(c.ctx, c.owner, DAY);
      expect(await rowsOf("te_late")).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it("streams a large result in batches through a server-side cursor", async () => {
    const source = new PostgresSource(url);
    try {
      const sizes: number[] = [];
      for await (const batch of source.stream(
        "SELECT g FROM generate_series(1, 12345) g WHERE g > ?",
        [0],
        {
          batchSize: 5000,
        },
      )) {
        sizes.push(batch.length);
      }
      expect(sizes).toEqual([5000, 5000, 2345]);
    } finally {
      await source.close();
    }
  });
});

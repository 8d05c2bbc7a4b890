import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import mysql from "mysql2/promise";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { CleanupIncompleteError } from "../src/core/errors.js";
import { archiveDate, cleanupDate, partitionStatus } from "../src/core/jobs.js";
import type { Row } from "../src/core/source.js";
import { prepareTrafficData } from "../src/core/traffic/prepare.js";
import { loadConfig } from "../src/node/config.js";
import { openContext } from "../src/node/context.js";
import { openSource } from "../src/node/open.js";

/**
 * The archive/verify/cleanup flow on the machine's real PostgreSQL and MariaDB, each in a
 * schema/database of its own. Outside CI a missing server skips with a loud line; in CI
 * (CI=true) it fails.
 */
const DAY = "2025-10-13";
const isolated = `sluice_t_${process.pid}_${Date.now().toString(36)}`;

interface Server {
  name: string;
  /** Where sluice connects: the isolated schema/database. */
  url: string;
  rows(table: string): Promise<Row[]>;
  run(sql: string, params?: unknown[]): Promise<void>;
  /** Make the database refuse to delete one row; `silent`: it skips it, else it errors. */
  blockDelete(table: string, id: number): Promise<"silent" | "error">;
  unblock(table: string): Promise<void>;
  close(): Promise<void>;
}

async function unavailable(name: string, base: string, env: string, err: unknown): Promise<null> {
  const why = `${name} at ${base}: ${(err as Error).message}`;
  if (process.env.CI === "true") throw new Error(`${why} (required in CI)`);
  console.warn(`\n*** SKIPPING ${name} tests: no server (${why}); set ${env} ***\n`);
  return null;
}

async function postgres(): Promise<Server | null> {
  const base = process.env.SLUICE_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
  const admin = new pg.Client({ connectionString: base, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${isolated}`);
  } catch (err) {
    await admin.end().catch(() => undefined);
    return unavailable("PostgreSQL", base, "SLUICE_TEST_PG_URL", err);
  }
  await admin.query(`SET search_path = ${isolated}`);
  return {
    name: "PostgreSQL",
    url: `${base}${base.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${isolated}`)}`,
    rows: async (t) =>
      (await admin.query(`SELECT * FROM ${t} WHERE event_date = $1 ORDER BY id`, [DAY])).rows.map(
        (r: Row) => ({
          ...r,
          id: Number(r.id),
          ts: Number(r.ts),
        }),
      ),
    run: async (sql, params) => {
      await admin.query(sql, params);
    },
    async blockDelete(t, id) {
      await admin.query(`CREATE FUNCTION keep_one() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN IF OLD.id = ${id} THEN RETURN NULL; END IF; RETURN OLD; END $$`);
      await admin.query(
        `CREATE TRIGGER keep_one BEFORE DELETE ON ${t} FOR EACH ROW EXECUTE FUNCTION keep_one()`,
      );
      return "silent";
    },
    unblock: async (t) => {
      await admin.query(`DROP TRIGGER keep_one ON ${t}`);
    },
    async close() {
      await admin.query(`DROP SCHEMA IF EXISTS ${isolated} CASCADE`);
      await admin.end();
    },
  };
}

async function mariadb(): Promise<Server | null> {
  const base = process.env.SLUICE_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test";
  let admin: mysql.Connection;
  try {
    admin = await mysql.createConnection({
      uri: base,
      connectTimeout: 3000,
      supportBigNumbers: true,
    });
    await admin.query(`CREATE DATABASE ${isolated}`);
    await admin.query(`USE ${isolated}`);
  } catch (err) {
    return unavailable("MariaDB", base, "SLUICE_TEST_MYSQL_URL", err);
  }
  const u = new URL(base);
  u.pathname = `/${isolated}`;
  return {
    name: "MariaDB",
    url: u.toString(),
    rows: async (t) =>
      (await admin.query(`SELECT * FROM ${t} WHERE event_date = ? ORDER BY id`, [DAY]))[0] as Row[],
    run: async (sql, params) => {
      await admin.query(sql, params);
    },
    async blockDelete(t, id) {
      // MariaDB cannot skip a row from a trigger; it can only fail the whole DELETE.
      await admin.query(
        `CREATE TRIGGER keep_one BEFORE DELETE ON ${t} FOR EACH ROW BEGIN IF OLD.id = ${id} THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'row ${id} is kept'; END IF; END`,
      );
      return "error";
    },
    unblock: async () => {
      await admin.query("DROP TRIGGER keep_one");
    },
    async close() {
      await admin.query(`DROP DATABASE IF EXISTS ${isolated}`);
      await admin.end();
    },
  };
}

const servers = [await postgres(), await mariadb()];
const dir = mkdtempSync(join(tmpdir(), "sluice-servers-"));
afterAll(async () => {
  for (const s of servers) await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

for (const server of servers) {
  describe.runIf(server !== null)(
    `archive, verify, cleanup on ${server?.name ?? "a missing server"}`,
    () => {
      const s = server as Server;
      async function fresh(table: string, count: number) {
        const source = openSource(s.url);
        await prepareTrafficData(source, { count, date: DAY, table });
        await source.close();
        const store = join(dir, `${s.name}-${table}`);
        const c = await openContext(
          loadConfig({ SLUICE_DB: s.url, SLUICE_STORE: `file:${store}`, SLUICE_TABLE: table }),
        );
        return { c, store };
      }

      it("round-trips 60K rows field for field, in more than 50 batches, and empties the date", async () => {
        const { c, store } = await fresh("te_round", 60_000);
        try {
          const before = await s.rows("te_round");
          const out = await archiveDate(c.ctx, c.owner, DAY);
          expect(out.written?.eventCount).toBe(60_000);
          const file = join(store, "te_round", `date=${DAY}`, "part-0000.jsonl.gz");
          const lines = gunzipSync(readFileSync(file)).toString("utf8").trimEnd().split("\n");
          expect(lines.map((l) => JSON.parse(l))).toEqual(before);
          const cleaned = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 1000 });
          expect(cleaned).toMatchObject({ complete: true, deleted: 60_000, remaining: 0 });
          expect(await s.rows("te_round")).toEqual([]);
          expect(await c.ctx.ledger.get("te_round", DAY)).toMatchObject({
            state: "cleaned",
            d1Cleaned: 1,
            cleanedCount: 60_000,
          });
        } finally {
          await c.close();
        }
      });

      it("fails loudly when an archived row will not go, finishes on retry, and keeps late rows", async () => {
        const { c } = await fresh("te_late", 3_000);
        try {
          await archiveDate(c.ctx, c.owner, DAY);
          await s.run(
            `INSERT INTO te_late (event_date, ts, path, status, duration_ms) VALUES ('${DAY}', 1, '/late', 200, 1)`,
          );
          const mode = await s.blockDelete("te_late", 7);
          const err = await cleanupDate(c.ctx, c.owner, DAY).catch((e: unknown) => e);
          if (mode === "silent") {
            expect(err).toBeInstanceOf(CleanupIncompleteError);
            expect(err).toMatchObject({ deleted: 2_999, remaining: 1 });
          } else {
            expect(String(err)).toMatch(/row 7 is kept/);
          }
          expect(await c.ctx.ledger.get("te_late", DAY)).toMatchObject({
            state: "failed",
            d1Cleaned: 0,
          });

          await s.unblock("te_late");
          expect((await cleanupDate(c.ctx, c.owner, DAY)).complete).toBe(true);
          expect(await partitionStatus(c.ctx, DAY)).toMatchObject({ hotRows: 1, lateRows: 1 });
          const more = await archiveDate(c.ctx, c.owner, DAY);
          expect(more.written).toMatchObject({ part: 1, eventCount: 1 });
          await cleanupDate(c.ctx, c.owner, DAY);
          expect(await s.rows("te_late")).toEqual([]);
          expect(await c.ctx.ledger.get("te_late", DAY)).toMatchObject({
            state: "cleaned",
            eventCount: 3_001,
            cleanedCount: 3_001,
          });
        } finally {
          await c.close();
        }
      });

      it("lets one of two sluice processes archive a date; the other exits 75 and nothing doubles", async () => {
        const { c, store } = await fresh("te_race", 150_000);
        await c.close();
        const env = {
          ...process.env,
          SLUICE_DB: s.url,
          SLUICE_STORE: `file:${store}`,
          SLUICE_TABLE: "te_race",
        };
        const cli = join(import.meta.dirname, "..", "dist", "cli", "main.js");
        const runOne = () =>
          new Promise<{ code: number | null; stderr: string }>((resolve) => {
            const child = spawn(process.execPath, [cli, "archive", `--date=${DAY}`], { env });
            let stderr = "";
            child.stderr.on("data", (d: Buffer) => {
              stderr += d.toString();
            });
            child.on("exit", (code) => resolve({ code, stderr }));
          });
        const results = await Promise.all([runOne(), runOne()]);
        const codes = results.map((r) => r.code).sort();
        expect(codes, results.map((r) => r.stderr).join("\n")).toEqual([0, 75]);
        expect(results.find((r) => r.code === 75)?.stderr).toMatch(
          /is being worked on by .*try again later/,
        );
        expect(readdirSync(join(store, "te_race", `date=${DAY}`)).sort()).toEqual([
          "part-0000.jsonl.gz",
          "part-0000.manifest.json",
        ]);
        const after = await openContext(loadConfig({ ...env, SLUICE_DB: s.url }));
        try {
          expect(await after.ctx.ledger.parts("te_race", DAY)).toHaveLength(1);
          expect(await after.ctx.ledger.get("te_race", DAY)).toMatchObject({
            state: "verified",
            eventCount: 150_000,
          });
        } finally {
          await after.close();
        }
      });

      it("streams a large result in batches", async () => {
        const source = openSource(s.url);
        try {
          const seq =
            s.name === "PostgreSQL"
              ? "SELECT g FROM generate_series(1, 12345) g WHERE g > ?"
              : "SELECT seq AS g FROM seq_1_to_12345 WHERE seq > ?";
          const sizes: number[] = [];
          for await (const batch of source.stream(seq, [0], { batchSize: 5000 }))
            sizes.push(batch.length);
          expect(sizes).toEqual([5000, 5000, 2345]);
        } finally {
          await source.close();
        }
      });
    },
  );
}

describe.runIf(servers[0] !== null)("PostgreSQL planner statistics", () => {
  it("analyzes a freshly loaded table before paging through it", async () => {
    const url = (servers[0] as Server).url;
    const source = openSource(url);
    await prepareTrafficData(source, { count: 20_000, date: DAY, table: "te_stats" });
    await source.close();
    const c = await openContext(
      loadConfig({
        SLUICE_DB: url,
        SLUICE_STORE: `file:${join(dir, "stats")}`,
        SLUICE_TABLE: "te_stats",
      }),
    );
    try {
      const reltuples = async () =>
        Number(
          (
            await c.ctx.source.query(
              "SELECT reltuples FROM pg_class WHERE oid = 'te_stats'::regclass",
            )
          )[0]?.reltuples,
        );
      // Never analyzed: key-paginated pages would each sort the rest of the day (quadratic).
      expect(await reltuples()).toBe(-1);
      await archiveDate(c.ctx, c.owner, DAY);
      expect(await reltuples()).toBeGreaterThan(15_000);
    } finally {
      await c.close();
    }
  });
});

import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { archiveDate, cleanupDate } from "../src/core/archive/jobs.js";
import { partitionStatus } from "../src/core/archive/partition-status.js";
import type { DayPartitions } from "../src/core/sql/source.js";
import { loadConfig } from "../src/node/config.js";
import { openContext } from "../src/node/context.js";
import { openSource } from "../src/node/open.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";
import { dateFolder, partNames } from "./helpers.js";
import { type TestDb, mariaDb, postgresDb } from "./servers.js";

/**
 * The archive/verify/cleanup flow on the machine's real PostgreSQL and MariaDB, each in a
 * schema/database of its own. Outside CI a missing server skips with a loud line; in CI
 * (CI=true) it fails.
 */
const DAY = "2025-10-13";

const servers = [await postgresDb(), await mariaDb()];
const dir = mkdtempSync(join(tmpdir(), "sluice-servers-"));
afterAll(async () => {
  for (const s of servers) await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

for (const server of servers) {
  describe.runIf(server !== null)(
    `archive, verify, cleanup on ${server?.name ?? "a missing server"}`,
    () => {
      const s = server as TestDb;
      async function fresh(table: string, count: number) {
        const source = await openSource(s.url);
        await prepareTrafficData(source, { count, date: DAY, table });
        await source.close();
        const store = join(dir, `${s.name}-${table}`);
        const c = await openContext(
          loadConfig({ SLUICE_DB: s.url, SLUICE_STORE: `file:${store}`, SLUICE_TABLE: table }),
        );
        return { c, store };
      }

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
        expect(partNames(dateFolder(store, DAY, "te_race"))).toEqual([
          "part-0000-*.jsonl.gz",
          "part-0000-*.manifest.json",
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

      // MariaDB and MySQL tell such tables apart; their default collation would not.
      it.runIf(s.name === "MariaDB")(
        "keeps the ledgers of tables whose names differ only in case apart",
        async () => {
          const a = await fresh("te_Case", 300);
          const b = await fresh("te_case", 200);
          try {
            await archiveDate(a.c.ctx, a.c.owner, DAY);
            await archiveDate(b.c.ctx, b.c.owner, DAY);
            expect(await a.c.ctx.ledger.get("te_Case", DAY)).toMatchObject({ eventCount: 300 });
            expect(await b.c.ctx.ledger.get("te_case", DAY)).toMatchObject({ eventCount: 200 });
            await cleanupDate(b.c.ctx, b.c.owner, DAY);
            expect(await s.count("te_Case", DAY)).toBe(300);
            expect(await s.count("te_case", DAY)).toBe(0);
          } finally {
            await a.c.close();
            await b.c.close();
          }
        },
      );

      it("stops a statement that runs past its timeout (SLUICE_STATEMENT_TIMEOUT_MS)", async () => {
        const source = await openSource(s.url, { statementTimeoutMs: 500 });
        try {
          const sleep = s.name === "PostgreSQL" ? "SELECT pg_sleep(5)" : "SELECT SLEEP(5)";
          await expect(source.query(sleep)).rejects.toThrow(
            /statement timeout|max_statement_time exceeded/,
          );
          expect(await source.query("SELECT 1 AS one")).toEqual([{ one: 1 }]);
        } finally {
          await source.close();
        }
      });

      it("streams a large result in batches", async () => {
        const source = await openSource(s.url);
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

      it("a stream stopped before its first fetch gives back a connection the next statement can use", async () => {
        // One connection, fresh: the stream's statement is the first thing it runs. Stopped
        // before it reads, the statement must not stay queued on the connection it returns.
        const source = await openSource(s.url, { poolSize: 1 });
        try {
          const stop = new AbortController();
          stop.abort(new Error("the client went away"));
          const read = async () => {
            for await (const _ of source.stream("SELECT 1 AS one", [], { signal: stop.signal })) {
              // nothing: it must stop before the first batch
            }
          };
          await expect(read()).rejects.toThrow(/went away/);
          // A deadline, not a measurement: the next statement answers, or the test says why.
          const next = await Promise.race([
            source.query("SELECT 2 AS two"),
            new Promise((r) => setTimeout(() => r("the next statement never answered"), 10_000)),
          ]);
          expect(next).toEqual([{ two: 2 }]);
        } finally {
          await Promise.race([source.close(), new Promise((r) => setTimeout(r, 1000))]);
        }
      });
    },
  );
}

describe.runIf(servers[0] !== null)("PostgreSQL planner statistics", () => {
  it("analyzes a freshly loaded table before paging through it", async () => {
    const url = (servers[0] as TestDb).url;
    const source = await openSource(url);
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

describe.runIf(servers[0] !== null)("PostgreSQL declarative partitions", () => {
  const OTHER = "2025-10-14";
  const db = () => servers[0] as TestDb;
  const exists = async (rel: string) =>
    (
      await (async () => {
        const source = await openSource(db().url);
        try {
          return await source.query("SELECT to_regclass(?) IS NOT NULL AS e", [rel]);
        } finally {
          await source.close();
        }
      })()
    )[0]?.e;
  async function partitioned(table: string, by: string, partitions: string[]) {
    await db().run(`CREATE TABLE ${table} (
      id BIGINT GENERATED ALWAYS AS IDENTITY, event_date VARCHAR(10) NOT NULL,
      ts BIGINT NOT NULL, path VARCHAR(512) NOT NULL, referrer VARCHAR(512),
      country VARCHAR(2), user_agent VARCHAR(512), status INTEGER NOT NULL,
      duration_ms INTEGER NOT NULL, PRIMARY KEY (event_date, id)) PARTITION BY ${by}`);
    for (const p of partitions) await db().run(`CREATE TABLE ${p}`);
    const source = await openSource(db().url);
    await prepareTrafficData(source, { count: 20_000, date: DAY, table });
    await prepareTrafficData(source, { count: 1_000, date: OTHER, table });
    await source.close();
    return openContext(
      loadConfig({
        SLUICE_DB: db().url,
        SLUICE_STORE: `file:${join(dir, table)}`,
        SLUICE_TABLE: table,
      }),
    );
  }

  it("drops the date's LIST partition instead of deleting its rows, unless told not to", async () => {
    const c = await partitioned("tp_list", "LIST (event_date)", [
      `tp_list_a PARTITION OF tp_list FOR VALUES IN ('${DAY}')`,
      `tp_list_b PARTITION OF tp_list FOR VALUES IN ('${OTHER}')`,
    ]);
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      const out = await cleanupDate(c.ctx, c.owner, DAY);
      expect(out).toMatchObject({ method: "drop-partition", deleted: 20_000, complete: true });
      expect(await exists("tp_list_a")).toBe(false);
      expect(await c.ctx.ledger.get("tp_list", DAY)).toMatchObject({
        state: "cleaned",
        cleaned: true,
        cleanedCount: 20_000,
      });
      expect((await c.ctx.ledger.parts("tp_list", DAY))[0]?.cleanedAt).not.toBeNull();
      // Done is done: a second run finds nothing to do.
      expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({ deleted: 0, complete: true });

      await archiveDate(c.ctx, c.owner, OTHER);
      const rows = await cleanupDate(c.ctx, c.owner, OTHER, { dropPartitions: false });
      expect(rows).toMatchObject({ method: "delete", deleted: 1_000 });
      expect(await exists("tp_list_b")).toBe(true);
      expect(await db().count("tp_list", OTHER)).toBe(0);
    } finally {
      await c.close();
    }
  });

  it("deletes row by row while late rows share the partition, and drops it once they are archived", async () => {
    const c = await partitioned("tp_late", "LIST (event_date)", [
      `tp_late_a PARTITION OF tp_late FOR VALUES IN ('${DAY}')`,
      "tp_late_rest PARTITION OF tp_late DEFAULT",
    ]);
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      await db().run(
        `INSERT INTO tp_late (event_date, ts, path, status, duration_ms) VALUES ('${DAY}', 1, '/late', 200, 1)`,
      );
      const first = await cleanupDate(c.ctx, c.owner, DAY);
      expect(first).toMatchObject({ method: "delete", deleted: 20_000 });
      expect(await partitionStatus(c.ctx, DAY)).toMatchObject({ hotRows: 1, lateRows: 1 });

      await archiveDate(c.ctx, c.owner, DAY);
      const second = await cleanupDate(c.ctx, c.owner, DAY);
      expect(second).toMatchObject({ method: "drop-partition", deleted: 1 });
      expect(await exists("tp_late_a")).toBe(false);
      expect(await c.ctx.ledger.get("tp_late", DAY)).toMatchObject({
        state: "cleaned",
        eventCount: 20_001,
        cleanedCount: 20_001,
      });
      // The DEFAULT partition holds OTHER among anything else: never dropped, rows deleted.
      await archiveDate(c.ctx, c.owner, OTHER);
      expect(await cleanupDate(c.ctx, c.owner, OTHER)).toMatchObject({ method: "delete" });
      expect(await exists("tp_late_rest")).toBe(true);
    } finally {
      await c.close();
    }
  });

  it("never drops a partition holding a row no part holds as it is: a late low key, an updated row", async () => {
    // Keys the user's application chooses; a transaction that took key 5 commits late.
    await db().run(`CREATE TABLE tp_keys (id BIGINT NOT NULL, event_date VARCHAR(10) NOT NULL,
      path VARCHAR(100) NOT NULL, PRIMARY KEY (event_date, id)) PARTITION BY LIST (event_date)`);
    await db().run(`CREATE TABLE tp_keys_a PARTITION OF tp_keys FOR VALUES IN ('${DAY}')`);
    for (const id of [1, 2, 3, 4, 6, 7, 8, 9, 10]) {
      await db().run(`INSERT INTO tp_keys VALUES (${id}, '${DAY}', '/p${id}')`);
    }
    const c = await openContext(
      loadConfig({
        SLUICE_DB: db().url,
        SLUICE_STORE: `file:${join(dir, "tp_keys")}`,
        SLUICE_TABLE: "tp_keys",
      }),
    );
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      await db().run(`INSERT INTO tp_keys VALUES (5, '${DAY}', '/late5')`);
      expect((await partitionStatus(c.ctx, DAY)).lateRows).toBe(1);
      const out = await cleanupDate(c.ctx, c.owner, DAY);
      expect(out).toMatchObject({ method: "delete", deleted: 9, complete: true });
      expect(await exists("tp_keys_a")).toBe(true);
      expect((await db().rows("tp_keys", DAY)).map((r) => r.path)).toEqual(["/late5"]);

      // Archived as a new part, the late row is all the partition holds: now it may go whole.
      await archiveDate(c.ctx, c.owner, DAY);
      await db().run(`INSERT INTO tp_keys VALUES (11, '${DAY}', '/p11')`);
      await archiveDate(c.ctx, c.owner, DAY);
      // Changed after its part was written: the partition is no longer exactly the archive.
      await db().run("UPDATE tp_keys SET path = '/changed11' WHERE id = 11");
      const err = await cleanupDate(c.ctx, c.owner, DAY).catch((e: unknown) => e);
      expect(String(err)).toMatch(/changed since it was archived \(keys 11\)/);
      expect(await exists("tp_keys_a")).toBe(true);
      expect((await db().rows("tp_keys", DAY)).map((r) => r.path)).toEqual(["/changed11"]);

      await archiveDate(c.ctx, c.owner, DAY);
      expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({
        method: "drop-partition",
        deleted: 1,
      });
      expect(await exists("tp_keys_a")).toBe(false);
    } finally {
      await c.close();
    }
  });

  // The partition is read beside the archive 5,000 rows a page: these rows sit on later pages.
  const keyAt = async (table: string, nth: number) =>
    (
      await db()
        .rows(table, DAY)
        .then((rows) => rows.map((r) => Number(r.id)).sort((a, b) => a - b))
    )[nth - 1] as number;

  it("drops a partition whose archived rows were partly deleted already, on any page and at its end", async () => {
    const c = await partitioned("tp_gaps", "LIST (event_date)", [
      `tp_gaps_a PARTITION OF tp_gaps FOR VALUES IN ('${DAY}')`,
      `tp_gaps_b PARTITION OF tp_gaps FOR VALUES IN ('${OTHER}')`,
    ]);
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      // The last archived row too: the comparison reads past the partition's last page.
      const gone = [5_000, 12_000, 20_000];
      for (const [i, nth] of gone.entries()) gone[i] = await keyAt("tp_gaps", nth);
      await db().run(`DELETE FROM tp_gaps WHERE id IN (${gone.join(", ")})`);
      expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({
        method: "drop-partition",
        deleted: 19_997,
        deletedTotal: 19_997,
        complete: true,
      });
      expect(await exists("tp_gaps_a")).toBe(false);
    } finally {
      await c.close();
    }
  });

  it("never drops a partition with a row changed on a later page; deletes the rest row by row", async () => {
    const c = await partitioned("tp_late_page", "LIST (event_date)", [
      `tp_late_page_a PARTITION OF tp_late_page FOR VALUES IN ('${DAY}')`,
      `tp_late_page_b PARTITION OF tp_late_page FOR VALUES IN ('${OTHER}')`,
    ]);
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      const gone = await keyAt("tp_late_page", 5_000);
      const changed = await keyAt("tp_late_page", 15_000);
      await db().run(`DELETE FROM tp_late_page WHERE id = ${gone}`);
      await db().run(`UPDATE tp_late_page SET path = '/changed' WHERE id = ${changed}`);
      const err = await cleanupDate(c.ctx, c.owner, DAY).catch((e: unknown) => e);
      expect(String(err)).toMatch(
        new RegExp(`changed since it was archived \\(keys ${changed}\\)`),
      );
      expect(await exists("tp_late_page_a")).toBe(true);
      expect((await db().rows("tp_late_page", DAY)).map((r) => r.path)).toEqual(["/changed"]);
    } finally {
      await c.close();
    }
  });

  it("compares and drops the partition it finds under the lock, not one found before it", async () => {
    await db().run(`CREATE TABLE tp_swap (id BIGINT NOT NULL, event_date VARCHAR(10) NOT NULL,
      path VARCHAR(100) NOT NULL, PRIMARY KEY (event_date, id)) PARTITION BY LIST (event_date)`);
    await db().run(`CREATE TABLE tp_swap_a PARTITION OF tp_swap FOR VALUES IN ('${DAY}')`);
    for (let id = 1; id <= 10; id++) {
      await db().run(`INSERT INTO tp_swap VALUES (${id}, '${DAY}', '/p${id}')`);
    }
    const c = await openContext(
      loadConfig({
        SLUICE_DB: db().url,
        SLUICE_STORE: `file:${join(dir, "tp_swap")}`,
        SLUICE_TABLE: "tp_swap",
      }),
    );
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      // Between cleanup's lookup and its lock, the day's partition is moved aside (kept, with
      // its archived rows) and a new one takes the day, holding a row no part holds.
      const source = c.ctx.source as { dayPartitions: DayPartitions };
      const real = source.dayPartitions;
      source.dayPartitions = {
        ...real,
        async find(...args) {
          const found = await real.find(...args);
          if (found?.endsWith(".tp_swap_a")) {
            await db().run("ALTER TABLE tp_swap DETACH PARTITION tp_swap_a");
            await db().run("ALTER TABLE tp_swap_a RENAME TO tp_swap_kept");
            await db().run(
              `CREATE TABLE tp_swap_new PARTITION OF tp_swap FOR VALUES IN ('${DAY}')`,
            );
            await db().run(`INSERT INTO tp_swap VALUES (5, '${DAY}', '/new5')`);
          }
          return found;
        },
      };
      // Row by row instead, which finds key 5 holding what no part holds, and says so.
      const err = await cleanupDate(c.ctx, c.owner, DAY).catch((e: unknown) => e);
      expect(String(err)).toMatch(/changed since it was archived \(keys 5\)/);
      expect(await exists("tp_swap_new")).toBe(true);
      expect((await db().rows("tp_swap", DAY)).map((r) => r.path)).toEqual(["/new5"]);
      expect(await db().count("tp_swap_kept", DAY)).toBe(10);
    } finally {
      await c.close();
    }
  });

  it("drops a RANGE partition of exactly the day, and deletes rows from one that spans more", async () => {
    const c = await partitioned("tp_range", "RANGE (event_date)", [
      `tp_range_a PARTITION OF tp_range FOR VALUES FROM ('${DAY}') TO ('${OTHER}')`,
      `tp_range_b PARTITION OF tp_range FOR VALUES FROM ('${OTHER}') TO ('2025-10-16')`,
    ]);
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({
        method: "drop-partition",
        deleted: 20_000,
      });
      await archiveDate(c.ctx, c.owner, OTHER);
      expect(await cleanupDate(c.ctx, c.owner, OTHER)).toMatchObject({
        method: "delete",
        deleted: 1_000,
      });
      expect(await exists("tp_range_a")).toBe(false);
      expect(await exists("tp_range_b")).toBe(true);
    } finally {
      await c.close();
    }
  });
});

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { archiveDate, cleanupDate, verifyDate } from "../src/core/archive/jobs.js";
import { partitionStatus } from "../src/core/archive/partition-status.js";
import { JobRunner } from "../src/core/archive/runner.js";
import { LeaseHeldError, LeaseLostError, RowsChangedError } from "../src/core/errors.js";
import type { Row } from "../src/core/sql/source.js";
import type { ObjectInfo, ObjectStore } from "../src/core/store.js";
import { loadConfig } from "../src/node/config.js";
import { type NodeContext, openContext } from "../src/node/context.js";
import { type TestDb, mariaDb, postgresDb, sqliteDb } from "./servers.js";

/**
 * Invariant 7: a row is deleted only if a verified part holds it with the content it has now.
 * Each test is a way the hot table can change under an archive (a late commit with a low key,
 * an explicit or reused key, an update of an archived row, a writer whose lease ran out), run
 * on every database; each ends with every row either in the hot table or in a verified part,
 * with the content it last had.
 */
const DAY = "2025-10-13";
const dir = mkdtempSync(join(tmpdir(), "sluice-row-safety-"));
const dbs = [sqliteDb(dir), await postgresDb(), await mariaDb()];
afterAll(async () => {
  for (const db of dbs) await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Every archived line of a date, part by part, read back through the ledger. */
async function archived(c: NodeContext, table: string): Promise<{ part: number; row: Row }[]> {
  const out: { part: number; row: Row }[] = [];
  for (const p of await c.ctx.ledger.parts(table, DAY)) {
    expect(p.verifiedAt).not.toBeNull();
    const body = await c.ctx.store.get(p.objectKey);
    if (!body) throw new Error(`no object ${p.objectKey}`);
    const text = gunzipSync(new Uint8Array(await new Response(body).arrayBuffer())).toString();
    for (const line of text.split("\n").filter(Boolean)) {
      out.push({ part: p.part, row: JSON.parse(line) as Row });
    }
  }
  return out;
}

/**
 * The check of invariant 7: every row the test ever wrote, with its latest content, is in
 * the hot table or (when it is not) the latest part holding its key has that content.
 */
async function expectNoRowLost(
  c: NodeContext,
  db: TestDb,
  table: string,
  latest: Map<number, string>,
): Promise<void> {
  const hot = new Map((await db.rows(table, DAY)).map((r) => [Number(r.id), String(r.path)]));
  const cold = new Map<number, string>();
  for (const { row } of await archived(c, table)) cold.set(Number(row.id), String(row.path));
  for (const [id, path] of latest) {
    if (hot.has(id)) expect({ id, path: hot.get(id) }).toEqual({ id, path });
    else expect({ id, path: cold.get(id) }).toEqual({ id, path });
  }
}

for (const maybe of dbs) {
  describe.runIf(maybe !== null)(
    `rows are never lost on ${maybe?.name ?? "a missing server"}`,
    () => {
      const db = maybe as TestDb;
      let n = 0;
      async function table(): Promise<{ name: string; c: NodeContext }> {
        const name = `rs_${++n}`;
        // An explicit key, as a user's own table has: not AUTOINCREMENT, any value may come.
        await db.run(
          `CREATE TABLE ${name} (id BIGINT PRIMARY KEY, event_date VARCHAR(10) NOT NULL, path VARCHAR(100) NOT NULL)`,
        );
        const c = await openContext(
          loadConfig({
            SLUICE_DB: db.url,
            SLUICE_STORE: `file:${join(dir, db.name, name)}`,
            SLUICE_TABLE: name,
          }),
        );
        return { name, c };
      }
      /** A fresh table, its context and the model of its rows, for one test. */
      async function withTable(
        fn: (t: { name: string; c: NodeContext; latest: Map<number, string> }) => Promise<void>,
      ): Promise<void> {
        const { name, c } = await table();
        try {
          await fn({ name, c, latest: new Map() });
        } finally {
          await c.close();
        }
      }
      async function insert(t: string, latest: Map<number, string>, id: number, path: string) {
        await db.run(`INSERT INTO ${t} (id, event_date, path) VALUES (${id}, '${DAY}', '${path}')`);
        latest.set(id, path);
      }

      it("leaves a late row with a low key and an updated row in the hot table, says so, and archives them next", async () => {
        await withTable(async ({ name, c, latest }) => {
          for (const id of [1, 2, 3, 4, 6, 7, 8, 9, 10]) await insert(name, latest, id, `/p${id}`);
          await archiveDate(c.ctx, c.owner, DAY);
          // A transaction that had taken key 5 commits now; an archived row is updated.
          await insert(name, latest, 5, "/late5");
          await db.run(`UPDATE ${name} SET path = '/changed7' WHERE id = 7`);
          latest.set(7, "/changed7");
          expect((await partitionStatus(c.ctx, DAY)).lateRows).toBe(1);

          const err = await cleanupDate(c.ctx, c.owner, DAY).catch((e: unknown) => e);
          expect(String(err)).toMatch(/changed since it was archived.*\b7\b/);
          expect(await db.ledgerState(name, DAY)).toBe("failed");
          const hot = (await db.rows(name, DAY)).map((r) => [Number(r.id), r.path]);
          expect(hot).toEqual([
            [5, "/late5"],
            [7, "/changed7"],
          ]);
          await expectNoRowLost(c, db, name, latest);

          // The next run archives both as a new part, and then cleans the date.
          const next = await archiveDate(c.ctx, c.owner, DAY);
          expect(next.written).toMatchObject({ part: 1, eventCount: 2 });
          expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({ complete: true });
          expect(await db.count(name, DAY)).toBe(0);
          expect(await db.ledgerState(name, DAY)).toBe("cleaned");
          await expectNoRowLost(c, db, name, latest);
        });
      });

      it("a batch whose every row changed deletes none of them, and the next batch goes on", async () => {
        await withTable(async ({ name, c, latest }) => {
          for (let id = 1; id <= 12; id++) await insert(name, latest, id, `/p${id}`);
          await archiveDate(c.ctx, c.owner, DAY);
          await db.run(`UPDATE ${name} SET path = '/changed' WHERE id <= 4`);
          for (let id = 1; id <= 4; id++) latest.set(id, "/changed");
          const err = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 4 }).catch(
            (e: unknown) => e,
          );
          expect(err).toBeInstanceOf(RowsChangedError);
          expect(err).toMatchObject({ changed: 4, deleted: 8 });
          expect((await db.rows(name, DAY)).map((r) => Number(r.id))).toEqual([1, 2, 3, 4]);
          await expectNoRowLost(c, db, name, latest);
        });
      });

      it("never deletes a row re-inserted under a key that was archived and deleted", async () => {
        await withTable(async ({ name, c, latest }) => {
          for (let id = 1; id <= 20; id++) await insert(name, latest, id, `/p${id}`);
          await archiveDate(c.ctx, c.owner, DAY);
          // Cleanup stops after one batch; a key it deleted comes back with other content.
          const first = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 5, maxBatches: 1 });
          expect(first.complete).toBe(false);
          await insert(name, latest, 2, "/reused2");
          await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 5 });
          await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 5 });
          expect((await db.rows(name, DAY)).map((r) => [Number(r.id), r.path])).toEqual([
            [2, "/reused2"],
          ]);
          await expectNoRowLost(c, db, name, latest);
        });
      });

      it("does not count a late row below the archived keys as an archived row that remains", async () => {
        await withTable(async ({ name, c, latest }) => {
          for (const id of [1, 2, 3, 4, 6, 7, 8, 9, 10]) await insert(name, latest, id, `/p${id}`);
          await archiveDate(c.ctx, c.owner, DAY);
          await insert(name, latest, 5, "/late5");
          // Not stuck: cleanup finishes the archived rows, the late one is archived next.
          expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({
            complete: true,
            deleted: 9,
          });
          expect(await partitionStatus(c.ctx, DAY)).toMatchObject({ hotRows: 1, lateRows: 1 });
          expect((await archiveDate(c.ctx, c.owner, DAY)).written).toMatchObject({ eventCount: 1 });
          await cleanupDate(c.ctx, c.owner, DAY);
          expect(await db.count(name, DAY)).toBe(0);
          await expectNoRowLost(c, db, name, latest);
        });
      });

      it("keeps a recorded part's object when a writer whose lease ran out finishes its upload", async () => {
        const { name, c } = await table();
        const latest = new Map<number, string>();
        // A store where one upload stalls until released, as a slow S3 multipart upload does;
        // the last completed upload of a key wins, as on S3 and R2.
        let stall: (() => void) | null = null;
        let stalled: () => void = () => undefined;
        const stalling = new Promise<void>((r) => {
          stalled = r;
        });
        const inner = c.ctx.store;
        const store: ObjectStore = {
          ...inner,
          get: (k) => inner.get(k),
          getRange: (k, start, end) => inner.getRange(k, start, end),
          head: (k) => inner.head(k),
          delete: (k) => inner.delete(k),
          describe: () => inner.describe(),
          async put(key, body): Promise<ObjectInfo> {
            if (key.endsWith(".jsonl.gz") && stall === null) {
              const bytes = new Uint8Array(await new Response(body).arrayBuffer());
              await new Promise<void>((r) => {
                stall = r;
                stalled();
              });
              return inner.put(key, new Response(bytes).body as ReadableStream<Uint8Array>);
            }
            return inner.put(key, body);
          },
        };
        const b = await openContext(
          loadConfig({
            SLUICE_DB: db.url,
            SLUICE_STORE: `file:${join(dir, db.name, name)}`,
            SLUICE_TABLE: name,
          }),
        );
        try {
          for (let id = 1; id <= 10; id++) await insert(name, latest, id, `/p${id}`);
          const slowLedger = c.ctx.ledger;
          Object.defineProperty(slowLedger, "leaseMs", { value: 300 });
          const a = archiveDate({ ...c.ctx, store }, c.owner, DAY).catch((e: unknown) => e);
          await stalling;
          await new Promise((r) => setTimeout(r, 400));
          for (let id = 11; id <= 12; id++) await insert(name, latest, id, `/p${id}`);
          // B takes over the expired lease, archives all 12 rows and cleans them.
          await archiveDate(b.ctx, b.owner, DAY);
          expect(await cleanupDate(b.ctx, b.owner, DAY)).toMatchObject({ deleted: 12 });
          (stall as unknown as () => void)();
          expect(await a).toBeInstanceOf(LeaseLostError);

          const [part] = await b.ctx.ledger.parts(name, DAY);
          expect(part?.eventCount).toBe(12);
          expect((await archived(b, name)).length).toBe(12);
          await verifyDate(b.ctx, b.owner, DAY);
          await expectNoRowLost(b, db, name, latest);
        } finally {
          await b.close();
          await c.close();
        }
      });

      it("runs one job per date in a process, however many ask at once, each under its own owner", async () => {
        await withTable(async ({ name, c, latest }) => {
          for (let id = 1; id <= 10; id++) await insert(name, latest, id, `/p${id}`);
          const runner = new JobRunner(c.ctx, c.owner);
          const started = await Promise.allSettled([
            runner.start("archive-and-cleanup", DAY),
            runner.start("archive-and-cleanup", DAY),
            runner.start("archive-and-cleanup", DAY),
          ]);
          expect(started.filter((s) => s.status === "fulfilled")).toHaveLength(1);
          for (const s of started.filter((s) => s.status === "rejected")) {
            expect((s as PromiseRejectedResult).reason).toBeInstanceOf(LeaseHeldError);
          }
          await runner.drain();
          expect(runner.get(DAY)?.state).toBe("succeeded");
          expect(await db.count(name, DAY)).toBe(0);
          await expectNoRowLost(c, db, name, latest);
        });
      });
    },
  );
}

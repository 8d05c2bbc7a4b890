import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { afterAll, describe, expect, it } from "vitest";
import { archiveDate, cleanupDate, convertDate, restoreDate } from "../src/core/archive/jobs.js";
import type { PartRecord } from "../src/core/archive/ledger/records.js";
import { VerificationError } from "../src/core/errors.js";
import type { ObjectStore } from "../src/core/store.js";
import type { NodeContext } from "../src/node/context.js";
import { preparedTable } from "./helpers.js";
import { type TestDb, mariaDb, postgresDb, sqliteDb } from "./servers.js";

/**
 * `sluice convert`: a day's parts rewritten in another format, each verified line for line
 * before the ledger points at it; the old object goes only then. Whatever cleanup had done
 * (a pass half-way, its counts, its rollups) stays true of the new part.
 */
const DAY = "2025-10-13";
const ROWS = 4000;
const dir = mkdtempSync(join(tmpdir(), "sluice-convert-"));
const dbs = [sqliteDb(dir), await postgresDb(), await mariaDb()].filter(
  (d): d is TestDb => d !== null,
);
afterAll(async () => {
  for (const d of dbs) await d.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The names in the day's folder of a folder store. */
const stored = (root: string, table: string) =>
  readdirSync(join(root, table, `date=${DAY}`))
    .map((n) => n.replace(/-[0-9a-f]{8}\./, "-*."))
    .sort();

/** Sums DuckDB reads from the day's one part file. */
async function sums(root: string, table: string) {
  const [file] = readdirSync(join(root, table, `date=${DAY}`)).filter(
    (n) => !n.endsWith(".manifest.json"),
  );
  const path = join(root, table, `date=${DAY}`, file as string);
  const read = path.endsWith(".parquet")
    ? `read_parquet('${path}')`
    : `read_json('${path}', format = 'newline_delimited')`;
  const duck = await (await DuckDBInstance.create(":memory:")).connect();
  const r = await duck.runAndReadAll(
    `SELECT COUNT(*)::INTEGER AS n, SUM(id)::BIGINT AS ids, SUM(duration_ms)::BIGINT AS ms, COUNT(DISTINCT path)::INTEGER AS paths FROM ${read}`,
  );
  return r.getRowObjects()[0];
}

for (const db of dbs) {
  describe(`convert on ${db.name}`, () => {
    it("JSONL -> Parquet mid-cleanup: same rows, the cleanup resumes on the Parquet part, restore and the way back give the same rows", async () => {
      const table = "cv_pv";
      const root = join(dir, db.name, "archive");
      const c = await preparedTable(db.url, root, table, DAY, ROWS);
      try {
        await archiveDate(c.ctx, c.owner, DAY);
        const before = await sums(root, table);
        const cut = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 1000, maxBatches: 1 });
        expect(cut.deleted).toBe(1000);
        const [old] = await c.ctx.ledger.parts(table, DAY);

        const out = await convertDate(c.ctx, c.owner, DAY, "parquet");
        expect(out).toMatchObject({ converted: 1, already: 0, kept: 0 });
        expect(out.bytesBefore).toBe(old?.fileSize);
        expect(stored(root, table)).toEqual(["part-0000-*.manifest.json", "part-0000-*.parquet"]);
        const [now] = await c.ctx.ledger.parts(table, DAY);
        // Everything but the object's own facts is as it was: the lines are the same text.
        const same = (p: PartRecord | undefined) => {
          const { objectKey, manifestKey, fileSize, sha256, chunkSha256, ...rest } =
            p as PartRecord;
          return rest;
        };
        expect(same(now)).toEqual(same(old));
        expect(now?.sha256).not.toBe(old?.sha256);
        expect(await sums(root, table)).toEqual(before);
        const meta = await c.ctx.ledger.get(table, DAY);
        expect(meta?.fileSize).toBe(now?.fileSize);

        // The cleanup goes on from where it stopped, reading the Parquet part.
        expect(await cleanupDate(c.ctx, c.owner, DAY)).toMatchObject({
          deleted: ROWS - 1000,
          deletedTotal: ROWS,
          complete: true,
        });
        expect(await restoreDate(c.ctx, c.owner, DAY)).toMatchObject({ inserted: ROWS });
        expect(await db.count(table, DAY)).toBe(ROWS);

        expect(await convertDate(c.ctx, c.owner, DAY, "jsonl")).toMatchObject({ converted: 1 });
        expect(stored(root, table)).toEqual(["part-0000-*.jsonl.gz", "part-0000-*.manifest.json"]);
        expect(await sums(root, table)).toEqual(before);
        expect(await convertDate(c.ctx, c.owner, DAY, "jsonl")).toMatchObject({
          converted: 0,
          already: 1,
        });
      } finally {
        await c.close();
      }
    });
  });
}

/** A store that damages, or fails, the uploads of `.parquet` objects. */
function faultyStore(inner: ObjectStore, fault: "flip" | "fail"): ObjectStore {
  return Object.assign(Object.create(inner) as ObjectStore, {
    put: async (key: string, body: ReadableStream<Uint8Array>) => {
      if (!key.endsWith(".parquet")) return inner.put(key, body);
      let seen = 0;
      const damaged = body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, ctl) {
            seen += chunk.byteLength;
            if (fault === "fail" && seen > 1000) throw new Error("the disk is full");
            const copy = chunk.slice();
            if (fault === "flip" && copy.byteLength > 100) copy[100] = (copy[100] as number) ^ 1;
            ctl.enqueue(copy);
          },
        }),
      );
      return inner.put(key, damaged);
    },
  });
}

describe("convert refuses what it cannot prove", () => {
  const db = dbs[0] as TestDb;
  const root = join(dir, "faults");

  async function archived(table: string): Promise<NodeContext> {
    const c = await preparedTable(db.url, root, table, DAY, ROWS);
    await archiveDate(c.ctx, c.owner, DAY);
    await cleanupDate(c.ctx, c.owner, DAY);
    return c;
  }

  for (const fault of ["flip", "fail"] as const) {
    it(`a new object the store ${fault === "flip" ? "damaged" : "failed to write"}: the ledger keeps the JSONL part, nothing else is left, and a rerun converts`, async () => {
      const table = `cv_${fault}`;
      const c = await archived(table);
      try {
        const [old] = await c.ctx.ledger.parts(table, DAY);
        const before = await sums(root, table);
        const bad = { ...c.ctx, store: faultyStore(c.ctx.store, fault) };
        const err = await convertDate(bad, c.owner, DAY, "parquet").catch((e: unknown) => e);
        if (fault === "flip") {
          expect(err).toBeInstanceOf(VerificationError);
          expect(String(err)).toMatch(/sha256/);
        } else expect(String(err)).toMatch(/the disk is full/);
        expect((await c.ctx.ledger.parts(table, DAY))[0]).toEqual(old);
        expect(stored(root, table)).toEqual(["part-0000-*.jsonl.gz", "part-0000-*.manifest.json"]);
        expect(await sums(root, table)).toEqual(before);
        // The day is cleaned: the archive is the only copy, and it is whole.
        expect(await db.count(table, DAY)).toBe(0);
        expect(await convertDate(c.ctx, c.owner, DAY, "parquet")).toMatchObject({ converted: 1 });
        expect(stored(root, table)).toEqual(["part-0000-*.manifest.json", "part-0000-*.parquet"]);
        expect(await sums(root, table)).toEqual(before);
      } finally {
        await c.close();
      }
    });
  }

  it("an upload a killed conversion left is removed by the next one", async () => {
    const table = "cv_killed";
    const c = await archived(table);
    try {
      const folder = join(root, table, `date=${DAY}`);
      // What a kill mid-upload leaves: the pending object named in the ledger, and its bytes.
      const orphan = `${table}/date=${DAY}/part-0000-0badf00d.parquet`;
      await c.ctx.ledger.acquire(table, DAY, c.owner).then(async (lease) => {
        await c.ctx.ledger.setPendingObject(lease, orphan);
        await lease.release();
      });
      writeFileSync(join(root, orphan), "PAR1 half");
      expect(await convertDate(c.ctx, c.owner, DAY, "parquet")).toMatchObject({ converted: 1 });
      expect(existsSync(join(root, orphan))).toBe(false);
      expect(readdirSync(folder)).toHaveLength(2);
    } finally {
      await c.close();
    }
  });
});

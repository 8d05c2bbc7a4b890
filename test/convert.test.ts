import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { afterAll, describe, expect, it } from "vitest";
import { archivePartition } from "../src/core/archive/archive.js";
import {
  archiveDate,
  cleanupDate,
  convertDate,
  restoreDate,
  withLease,
} from "../src/core/archive/jobs.js";
import type { PartRecord } from "../src/core/archive/ledger/records.js";
import { LeaseLostError, VerificationError } from "../src/core/errors.js";
import type { ObjectStore } from "../src/core/store.js";
import type { NodeContext } from "../src/node/context.js";
import { preparedTable, tableContext } from "./helpers.js";
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

        const seen: number[] = [];
        c.ctx.onProgress = (p) => {
          if (p.phase === "convert") seen.push(p.done);
        };
        const out = await convertDate(c.ctx, c.owner, DAY, "parquet");
        c.ctx.onProgress = undefined;
        expect(out).toMatchObject({ converted: 1, already: 0, kept: 0 });
        expect(out.bytesBefore).toBe(old?.fileSize);
        // Progress as the old part's lines are read, to its last.
        expect(seen.at(-1)).toBe(ROWS);
        expect(seen).toEqual([...seen].sort((a, b) => a - b));
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
        expect(out.bytesAfter).toBe(now?.fileSize);
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

  it("refuses a date with no part, or with a part not verified, and changes nothing", async () => {
    const c = await preparedTable(db.url, root, "cv_refuse", DAY, 500);
    try {
      await expect(convertDate(c.ctx, c.owner, DAY, "parquet")).rejects.toThrow(
        /cv_refuse 2025-10-13 has no archived part/,
      );
      // Written, not verified: what verify has not proven is not rewritten.
      await withLease(c.ctx, c.owner, DAY, (lease) => archivePartition(c.ctx, lease, DAY));
      const before = await c.ctx.ledger.parts("cv_refuse", DAY);
      await expect(convertDate(c.ctx, c.owner, DAY, "parquet")).rejects.toThrow(
        /part 0 is not verified: run archive/,
      );
      expect(await c.ctx.ledger.parts("cv_refuse", DAY)).toEqual(before);
    } finally {
      await c.close();
    }
  });

  it("a damaged old object or a missing manifest stops the conversion naming it; the ledger is untouched", async () => {
    const table = "cv_damaged";
    const c = await archived(table);
    try {
      const [old] = await c.ctx.ledger.parts(table, DAY);
      const path = join(root, old?.objectKey as string);
      const bytes = readFileSync(path);
      writeFileSync(
        path,
        bytes.map((b, i) => (i === 40 ? b ^ 1 : b)),
      );
      const err = await convertDate(c.ctx, c.owner, DAY, "parquet").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VerificationError);
      expect(String(err)).toContain(`${old?.objectKey} failed verification: chunk 0`);
      expect((await c.ctx.ledger.parts(table, DAY))[0]).toEqual(old);
      expect(stored(root, table)).toEqual(["part-0000-*.jsonl.gz", "part-0000-*.manifest.json"]);
      writeFileSync(path, bytes);
      rmSync(join(root, old?.manifestKey as string));
      await expect(convertDate(c.ctx, c.owner, DAY, "parquet")).rejects.toThrow(
        /manifest .*\.manifest\.json is missing/,
      );
      expect((await c.ctx.ledger.parts(table, DAY))[0]).toEqual(old);
    } finally {
      await c.close();
    }
  });

  it("a pending upload that is one of the parts' own objects is never taken for a leftover", async () => {
    const table = "cv_pending_own";
    const c = await archived(table);
    try {
      // Late rows, cleaned too: a second part.
      for (let i = 0; i < 20; i++) {
        await db.run(
          `INSERT INTO ${table} (event_date, ts, path, status, duration_ms) VALUES (?, 0, '/late', 200, 1)`,
          [DAY],
        );
      }
      await archiveDate(c.ctx, c.owner, DAY);
      await cleanupDate(c.ctx, c.owner, DAY);
      const parts = await c.ctx.ledger.parts(table, DAY);
      expect(parts).toHaveLength(2);
      await c.ctx.ledger.acquire(table, DAY, c.owner).then(async (lease) => {
        await c.ctx.ledger.setPendingObject(lease, parts[0]?.objectKey as string);
        await lease.release();
      });
      expect(await convertDate(c.ctx, c.owner, DAY, "parquet")).toMatchObject({ converted: 2 });
    } finally {
      await c.close();
    }
  });

  it("the ledger's swap is fenced: another object than the one read, or a lease gone, changes nothing", async () => {
    const table = "cv_fence";
    const c = await archived(table);
    try {
      const [old] = await c.ctx.ledger.parts(table, DAY);
      const to = {
        objectKey: "x.parquet",
        manifestKey: "x.manifest.json",
        fileSize: 1,
        sha256: "0".repeat(64),
        chunkBytes: 1 << 20,
        chunkSha256: "0".repeat(64),
      };
      const lease = await c.ctx.ledger.acquire(table, DAY, c.owner);
      await expect(c.ctx.ledger.swapPartObject(lease, 0, "not-its-object", to)).rejects.toThrow(
        /could not swap part 0's object/,
      );
      await lease.release();
      await expect(
        c.ctx.ledger.swapPartObject(lease, 0, old?.objectKey as string, to),
      ).rejects.toBeInstanceOf(LeaseLostError);
      expect((await c.ctx.ledger.parts(table, DAY))[0]).toEqual(old);
    } finally {
      await c.close();
    }
  });
});

describe("convert keeps what a part says of itself", () => {
  const db = dbs[0] as TestDb;
  const root = join(dir, "kept");

  it("a part Parquet cannot hold exactly stays JSONL, told why; the manifest's column encodings carry over", async () => {
    const file = join(dir, "kept.db");
    const { default: Database } = await import("better-sqlite3");
    const sqlite = new Database(file);
    sqlite.exec(`CREATE TABLE real_pv (id INTEGER PRIMARY KEY, event_date TEXT NOT NULL, f REAL);
      CREATE TABLE blob_pv (id INTEGER PRIMARY KEY, event_date TEXT NOT NULL, bl BLOB)`);
    const add = sqlite.prepare("INSERT INTO real_pv VALUES (?, ?, ?)");
    const addBlob = sqlite.prepare("INSERT INTO blob_pv VALUES (?, ?, ?)");
    for (let i = 1; i <= 300; i++) {
      add.run(i, DAY, i === 150 ? 1e308 : i + 0.5);
      addBlob.run(i, DAY, Buffer.from([i % 256, 0, 255]));
    }
    sqlite.close();
    for (const table of ["real_pv", "blob_pv"]) {
      const c = await tableContext(`sqlite:${file}`, root, table);
      const warnings: string[] = [];
      c.ctx.onWarning = (m) => warnings.push(m);
      try {
        await archiveDate(c.ctx, c.owner, DAY);
        const [old] = await c.ctx.ledger.parts(table, DAY);
        const oldManifest = JSON.parse(
          readFileSync(join(root, old?.manifestKey as string), "utf8"),
        );
        const out = await convertDate(c.ctx, c.owner, DAY, "parquet");
        const [now] = await c.ctx.ledger.parts(table, DAY);
        if (table === "real_pv") {
          expect(out).toMatchObject({ converted: 0, kept: 1 });
          expect(warnings).toEqual([
            expect.stringMatching(
              /^real_pv 2025-10-13 part 0 stays jsonl: parquet would not give its lines back exactly \(line 150/,
            ),
          ]);
          expect(now).toEqual(old);
        } else {
          expect(out).toMatchObject({ converted: 1, kept: 0 });
          const manifest = JSON.parse(readFileSync(join(root, now?.manifestKey as string), "utf8"));
          expect(manifest.format).toBe("sluice-parquet/1");
          expect(manifest.columns).toEqual(oldManifest.columns);
          expect(manifest.columns.find((x: { name: string }) => x.name === "bl")?.encoding).toBe(
            "hex",
          );
        }
      } finally {
        await c.close();
      }
    }
  });

  it("a manifest whose column list names one twice: no plan, the part stays, told why", async () => {
    const c = await preparedTable(db.url, root, "cv_dup", DAY, 200);
    const warnings: string[] = [];
    c.ctx.onWarning = (m) => warnings.push(m);
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      const [old] = await c.ctx.ledger.parts("cv_dup", DAY);
      const path = join(root, old?.manifestKey as string);
      const manifest = JSON.parse(readFileSync(path, "utf8"));
      manifest.columns.push(manifest.columns[1]);
      writeFileSync(path, JSON.stringify(manifest));
      expect(await convertDate(c.ctx, c.owner, DAY, "parquet")).toMatchObject({ kept: 1 });
      expect(warnings).toEqual([expect.stringMatching(/stays jsonl: .*appears twice/)]);
      expect((await c.ctx.ledger.parts("cv_dup", DAY))[0]).toEqual(old);
      // A manifest from before columns were listed: no plan fits its lines.
      manifest.columns = undefined;
      writeFileSync(path, JSON.stringify(manifest));
      expect(await convertDate(c.ctx, c.owner, DAY, "parquet")).toMatchObject({ kept: 1 });
      expect(warnings[1]).toMatch(
        /stays jsonl: parquet would not give its lines back exactly \(line 1: /,
      );
      expect((await c.ctx.ledger.parts("cv_dup", DAY))[0]).toEqual(old);
    } finally {
      await c.close();
    }
  });
});

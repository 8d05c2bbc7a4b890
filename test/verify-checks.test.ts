import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { archiveDate, cleanupDate, verifyDate } from "../src/core/archive/jobs.js";
import type { PartRecord } from "../src/core/archive/ledger/records.js";
import type { ManifestFile } from "../src/core/archive/manifest.js";
import { ROLLUP_MAX_VALUES, RollupTooLargeError } from "../src/core/archive/rollup.js";
import { NotVerifiedError, VerificationError } from "../src/core/errors.js";
import { type ObjectStore, getText, putBytes } from "../src/core/store.js";
import { loadConfig } from "../src/node/config.js";
import { type NodeContext, openContext } from "../src/node/context.js";
import { openSource } from "../src/node/open.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";
import { dateFolder } from "./helpers.js";
import { type TestDb, postgresDb, sqliteDb } from "./servers.js";

/**
 * Issue 21: every comparison verification makes is proven by a test that fails without it.
 * Each case damages one thing a verified archive depends on (its manifest, its bytes, the
 * source beside it) and expects `verify` to name that one problem, take the part's verified
 * mark away (nothing was deleted on its strength) and cleanup to delete nothing. Then a part
 * that already had rows deleted is damaged: it must never be rewritten or removed.
 */
const DAY = "2025-10-13";
const ROWS = 3_000;
const dir = mkdtempSync(join(tmpdir(), "sluice-verify-checks-"));
const dbs = [sqliteDb(dir), await postgresDb()];
afterAll(async () => {
  for (const db of dbs) await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function objectBytes(store: ObjectStore, key: string): Promise<Uint8Array> {
  const body = await store.get(key);
  if (!body) throw new Error(`no object ${key}`);
  return new Uint8Array(await new Response(body).arrayBuffer());
}

/** The object with the byte at `at` inverted (its sha256 and every digest of it change). */
async function flipByte(store: ObjectStore, key: string, at: (length: number) => number) {
  const bytes = await objectBytes(store, key);
  const i = at(bytes.length);
  bytes[i] = (bytes[i] ?? 0) ^ 0xff;
  await putBytes(store, key, bytes);
  return bytes;
}

async function rewriteManifest(
  store: ObjectStore,
  part: PartRecord,
  change: (m: ManifestFile) => void,
) {
  const m = JSON.parse((await getText(store, part.manifestKey)) as string) as ManifestFile;
  change(m);
  await putBytes(store, part.manifestKey, new TextEncoder().encode(JSON.stringify(m, null, 2)));
}

/**
 * The part's object rewritten with its lines changed by `change`, its chunk digests taken out
 * of the ledger (as for a part archived before them): what the line checks alone must catch.
 */
async function rewriteLines(db: TestDb, a: Archived, change: (lines: string[]) => string[]) {
  const store = a.c.ctx.store;
  const lines = gunzipSync(await objectBytes(store, a.part.objectKey))
    .toString("utf8")
    .split("\n");
  const text = change(lines).join("\n");
  await putBytes(store, a.part.objectKey, new Uint8Array(gzipSync(text)));
  await db.run(
    `UPDATE archive_parts SET chunk_sha256 = NULL, chunk_bytes = NULL WHERE source_table = '${a.table}'`,
  );
}

/** A hex digest with its first digit changed. */
const otherHex = (hex: string) => `${hex[0] === "0" ? "1" : "0"}${hex.slice(1)}`;

interface Archived {
  table: string;
  c: NodeContext;
  part: PartRecord;
  /** Where the table's archive lives (a folder store). */
  folder: string;
}

interface Damage {
  name: string;
  /** Called before the archive is written. */
  before?: (db: TestDb, table: string) => Promise<void>;
  damage: (db: TestDb, a: Archived) => Promise<void>;
  /** The problem verification must report (the problems, in order, where one damage is several). */
  problem: (a: Archived) => RegExp | RegExp[];
}

/** A key inside the archived range that the source has no row for at archive time. */
let gapKey = 0;

const damages: Damage[] = [
  {
    name: "a missing manifest",
    damage: async (_db, a) => a.c.ctx.store.delete(a.part.manifestKey),
    problem: (a) => new RegExp(`^manifest ${a.part.manifestKey} is missing$`),
  },
  {
    name: "a manifest that is not JSON",
    damage: async (_db, a) => {
      await putBytes(a.c.ctx.store, a.part.manifestKey, new TextEncoder().encode('{"rows": 3'));
    },
    problem: (a) => new RegExp(`^manifest ${a.part.manifestKey} is not JSON$`),
  },
  {
    name: "a missing object",
    damage: async (_db, a) => a.c.ctx.store.delete(a.part.objectKey),
    problem: (a) => new RegExp(`^object ${a.part.objectKey} is missing from `),
  },
  {
    name: "an object cut short",
    damage: async (db, a) => {
      const bytes = await objectBytes(a.c.ctx.store, a.part.objectKey);
      await putBytes(a.c.ctx.store, a.part.objectKey, bytes.slice(0, bytes.length - 100));
      await db.run(
        `UPDATE archive_parts SET chunk_sha256 = NULL, chunk_bytes = NULL WHERE source_table = '${a.table}'`,
      );
    },
    problem: () => /^gzip stream is corrupt or truncated \(/,
  },
  {
    name: "a line that is not JSON",
    damage: (db, a) => rewriteLines(db, a, (l) => l.map((x, i) => (i === 1 ? x.slice(0, -1) : x))),
    problem: () => /^line 2 is not JSON$/,
  },
  {
    name: "two lines out of key order",
    damage: (db, a) => rewriteLines(db, a, ([x, y, ...rest]) => [y, x, ...rest] as string[]),
    problem: (a) => new RegExp(`^line 2: key ${a.part.minId} out of order$`),
  },
  {
    name: "a line of another day",
    damage: (db, a) =>
      rewriteLines(db, a, (l) =>
        l.map((x, i) => (i === 2 ? x.replace(`"${DAY}"`, '"2025-10-14"') : x)),
      ),
    problem: () => /^line 3 belongs to another partition$/,
  },
  {
    name: "an object that decompresses to one more line than it held",
    damage: (db, a) =>
      rewriteLines(db, a, (l) => {
        const last = JSON.parse(l[l.length - 2] as string) as { id: number };
        const extra = JSON.stringify({ ...last, id: last.id + 1 });
        return [...l.slice(0, -1), extra, ""];
      }),
    problem: (a) => [
      new RegExp(`^rows: expected ${ROWS}, found ${ROWS + 1}$`),
      /^uncompressed bytes: expected \d+, found \d+$/,
      /^bytes: expected \d+, found \d+$/,
      new RegExp(`^sha256: expected ${a.part.sha256}, found [0-9a-f]{64}$`),
      new RegExp(`^max key: expected ${a.part.maxId}, found ${a.part.maxId + 1}$`),
    ],
  },
  {
    name: "a manifest whose sha256 is wrong",
    damage: async (_db, a) =>
      rewriteManifest(a.c.ctx.store, a.part, (m) => {
        m.sha256 = otherHex(m.sha256);
      }),
    problem: (a) =>
      new RegExp(`^manifest sha256: expected ${a.part.sha256}, found ${otherHex(a.part.sha256)}$`),
  },
  {
    name: "a manifest whose row count is one too many",
    damage: async (_db, a) =>
      rewriteManifest(a.c.ctx.store, a.part, (m) => {
        m.rows += 1;
      }),
    problem: () => new RegExp(`^manifest rows: expected ${ROWS}, found ${ROWS + 1}$`),
  },
  {
    name: "a manifest whose row count is one too few",
    damage: async (_db, a) =>
      rewriteManifest(a.c.ctx.store, a.part, (m) => {
        m.rows -= 1;
      }),
    problem: () => new RegExp(`^manifest rows: expected ${ROWS}, found ${ROWS - 1}$`),
  },
  {
    name: "a manifest whose min key is off by one",
    damage: async (_db, a) =>
      rewriteManifest(a.c.ctx.store, a.part, (m) => {
        m.minKey -= 1;
      }),
    problem: (a) =>
      new RegExp(`^manifest min key: expected ${a.part.minId}, found ${a.part.minId - 1}$`),
  },
  {
    name: "a manifest whose max key is off by one",
    damage: async (_db, a) =>
      rewriteManifest(a.c.ctx.store, a.part, (m) => {
        m.maxKey += 1;
      }),
    problem: (a) =>
      new RegExp(`^manifest max key: expected ${a.part.maxId}, found ${a.part.maxId + 1}$`),
  },
  {
    name: "a manifest whose byte count is off by one",
    damage: async (_db, a) =>
      rewriteManifest(a.c.ctx.store, a.part, (m) => {
        m.bytes += 1;
      }),
    problem: (a) =>
      new RegExp(`^manifest bytes: expected ${a.part.fileSize}, found ${a.part.fileSize + 1}$`),
  },
  {
    name: "a manifest whose uncompressed byte count is off by one",
    damage: async (_db, a) =>
      rewriteManifest(a.c.ctx.store, a.part, (m) => {
        m.rawBytes += 1;
      }),
    problem: (a) =>
      new RegExp(
        `^manifest uncompressed bytes: expected ${a.part.rawSize}, found ${a.part.rawSize + 1}$`,
      ),
  },
  {
    name: "a manifest whose chunk digest is wrong",
    damage: async (_db, a) =>
      rewriteManifest(a.c.ctx.store, a.part, (m) => {
        m.chunkSha256 = m.chunkSha256.map(otherHex);
      }),
    problem: () => /^manifest chunk sha256: expected [0-9a-f]{64}, found [0-9a-f]{64}$/,
  },
  {
    name: "a source that gained a row inside the archived key range after the archive",
    // A gap in the keys at archive time; afterwards a writer that chooses its keys fills it.
    before: async (db, table) => {
      const rows = await db.rows(table, DAY);
      gapKey = Number(rows[Math.floor(rows.length / 2)]?.id);
      await db.run(`DELETE FROM ${table} WHERE id = ${gapKey}`);
    },
    damage: async (db, a) => {
      await db.run(
        `INSERT INTO ${a.table} (id, event_date, ts, path, status, duration_ms) ${db.name === "PostgreSQL" ? "OVERRIDING SYSTEM VALUE " : ""}VALUES (${gapKey}, '${DAY}', 1, '/late', 200, 1)`,
      );
    },
    problem: (a) =>
      new RegExp(
        `^rows in the source for the archived key range: expected ${a.part.eventCount}, found ${a.part.eventCount + 1}$`,
      ),
  },
  {
    name: "a stored object with one byte flipped in its compressed data",
    damage: async (_db, a) => {
      await flipByte(a.c.ctx.store, a.part.objectKey, (n) => Math.floor(n / 2));
    },
    problem: () => /^chunk 0 \(bytes 0\.\.\) differs from its recorded sha256$/,
  },
  {
    // Parts archived before chunk digests were kept have none in the ledger; the whole
    // object's sha256 is then all that tells. A flipped byte in the gzip header's MTIME
    // decompresses to the very same rows: only the digest can catch it.
    name: "a part without chunk digests whose gzip header has one byte flipped (same rows)",
    damage: async (db, a) => {
      await db.run(
        `UPDATE archive_parts SET chunk_sha256 = NULL, chunk_bytes = NULL WHERE source_table = '${a.table}'`,
      );
      await flipByte(a.c.ctx.store, a.part.objectKey, () => 4);
    },
    problem: (a) => new RegExp(`^sha256: expected ${a.part.sha256}, found [0-9a-f]{64}$`),
  },
];

for (const maybe of dbs) {
  const name = maybe?.name ?? "a missing server";
  describe.runIf(maybe !== null)(`each verification check, on ${name} and a folder`, () => {
    const db = maybe as TestDb;
    let tables = 0;

    async function archived(
      before?: Damage["before"],
      format: "jsonl" | "parquet" = "jsonl",
    ): Promise<Archived> {
      const table = `vc_${++tables}`;
      const source = await openSource(db.url, { create: true });
      try {
        await prepareTrafficData(source, { table, date: DAY, count: ROWS });
      } finally {
        await source.close();
      }
      await before?.(db, table);
      const store = join(dir, name, table);
      const c = await openContext(
        loadConfig({
          SLUICE_DB: db.url,
          SLUICE_STORE: `file:${store}`,
          SLUICE_TABLE: table,
          SLUICE_FORMAT: format,
        }),
      );
      const out = await archiveDate(c.ctx, c.owner, DAY);
      expect(out.written).toMatchObject({ part: 0, eventCount: await db.count(table, DAY) });
      expect(out.written?.verifiedAt).toBeNull(); // the record as written; verified after
      const [part] = out.parts;
      expect(part?.verifiedAt).not.toBeNull();
      return { table, c, part: part as PartRecord, folder: dateFolder(store, DAY, table) };
    }

    for (const d of damages) {
      it(`${d.name}: verify names it, the part loses its mark, not one row is deleted`, async () => {
        const a = await archived(d.before);
        try {
          await d.damage(db, a);
          const hot = await db.count(a.table, DAY);
          const err = await verifyDate(a.c.ctx, a.c.owner, DAY).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(VerificationError);
          expect((err as VerificationError).problems).toEqual(
            [d.problem(a)].flat().map((p) => expect.stringMatching(p)),
          );
          const [part] = await a.c.ctx.ledger.parts(a.table, DAY);
          expect(part).toMatchObject({ objectKey: a.part.objectKey, verifiedAt: null });
          const rec = await a.c.ctx.ledger.get(a.table, DAY);
          expect(rec).toMatchObject({ state: "failed", cleaned: false, cleanedCount: 0 });
          expect(rec?.lastError).toContain((err as VerificationError).problems[0]);

          await expect(cleanupDate(a.c.ctx, a.c.owner, DAY)).rejects.toBeInstanceOf(
            NotVerifiedError,
          );
          expect(await db.count(a.table, DAY)).toBe(hot);

          // Nothing was deleted on its strength: the next archive writes the part again
          // from the source, and then the date can be cleaned.
          const again = await archiveDate(a.c.ctx, a.c.owner, DAY);
          expect(again.written).toMatchObject({ part: 0, eventCount: hot });
          expect((await cleanupDate(a.c.ctx, a.c.owner, DAY)).complete).toBe(true);
          expect(await db.count(a.table, DAY)).toBe(0);
        } finally {
          await a.c.close();
        }
      });
    }

    it("a cleaned part verifies again from its bytes alone: the source, emptied on its strength, is not counted", async () => {
      const a = await archived();
      try {
        expect((await cleanupDate(a.c.ctx, a.c.owner, DAY)).complete).toBe(true);
        expect(await db.count(a.table, DAY)).toBe(0);
        const parts = await verifyDate(a.c.ctx, a.c.owner, DAY);
        expect(parts).toHaveLength(1);
        expect(parts[0]).toMatchObject({ eventCount: ROWS, cleanedCount: ROWS });
        expect(parts[0]?.verifiedAt).not.toBeNull();
        expect(await a.c.ctx.ledger.get(a.table, DAY)).toMatchObject({
          state: "cleaned",
          cleaned: true,
          lastError: null,
        });
      } finally {
        await a.c.close();
      }
    });

    it("a part half cleaned verifies again from its bytes alone: the rows deleted on its strength are not missed", async () => {
      const a = await archived();
      try {
        const first = await cleanupDate(a.c.ctx, a.c.owner, DAY, { batchSize: 500, maxBatches: 1 });
        expect(first).toMatchObject({ complete: false, deleted: 500 });
        const [half] = await verifyDate(a.c.ctx, a.c.owner, DAY);
        expect(half).toMatchObject({ cleanedCount: 500, cleanedAt: null });
        expect(half?.verifiedAt).not.toBeNull();
      } finally {
        await a.c.close();
      }
    });

    it("a part whose rows left the source by another hand (cleaned with none deleted) verifies from its bytes", async () => {
      const a = await archived();
      try {
        await db.run(`DELETE FROM ${a.table} WHERE event_date = '${DAY}'`);
        expect(await cleanupDate(a.c.ctx, a.c.owner, DAY)).toMatchObject({
          complete: true,
          deleted: 0,
        });
        const [gone] = await a.c.ctx.ledger.parts(a.table, DAY);
        expect(gone).toMatchObject({ cleanedCount: 0 });
        expect(gone?.cleanedAt).not.toBeNull();
        const [again] = await verifyDate(a.c.ctx, a.c.owner, DAY);
        expect(again?.verifiedAt).not.toBeNull();
        // Damaged now: verify fails, and the part keeps its mark (its rows are gone: it is the
        // only copy, never to be rewritten from a source that no longer has them).
        await flipByte(a.c.ctx.store, a.part.objectKey, (n) => Math.floor(n / 2));
        await expect(verifyDate(a.c.ctx, a.c.owner, DAY)).rejects.toBeInstanceOf(VerificationError);
        const [kept] = await a.c.ctx.ledger.parts(a.table, DAY);
        expect(kept?.verifiedAt).not.toBeNull();
      } finally {
        await a.c.close();
      }
    });

    it("a Parquet part with bytes appended is refused, though its recorded bytes alone would decode", async () => {
      const a = await archived(undefined, "parquet");
      try {
        expect(a.part.objectKey).toMatch(/\.parquet$/);
        const bytes = await objectBytes(a.c.ctx.store, a.part.objectKey);
        const longer = new Uint8Array(bytes.length + 10);
        longer.set(bytes);
        await putBytes(a.c.ctx.store, a.part.objectKey, longer);
        const err = await verifyDate(a.c.ctx, a.c.owner, DAY).catch((e: unknown) => e);
        // Its last chunk read whole holds the extra bytes (a read by the recorded ranges would not).
        expect((err as VerificationError).problems).toEqual([
          "chunk 0 (bytes 0..) differs from its recorded sha256",
        ]);
        expect((await a.c.ctx.ledger.parts(a.table, DAY))[0]?.verifiedAt).toBeNull();
        expect(await db.count(a.table, DAY)).toBe(ROWS);
      } finally {
        await a.c.close();
      }
    });

    it("a Parquet part whose read breaks mid-way (no digest refused it): the read's failure is named", async () => {
      const a = await archived(undefined, "parquet");
      try {
        const store = a.c.ctx.store;
        a.c.ctx.store = Object.assign(Object.create(store) as ObjectStore, {
          async get(key: string) {
            const body = await store.get(key);
            if (!body || key !== a.part.objectKey) return body;
            const reader = body.getReader();
            return new ReadableStream<Uint8Array>({
              async pull(controller) {
                const { done, value } = await reader.read();
                if (done) controller.error(new Error("connection reset by peer"));
                else controller.enqueue(value);
              },
            });
          },
        });
        const err = await verifyDate(a.c.ctx, a.c.owner, DAY).catch((e: unknown) => e);
        expect((err as VerificationError).problems).toEqual([
          "read failed (connection reset by peer)",
        ]);
      } finally {
        await a.c.close();
      }
    });

    it("a Parquet part recorded without chunk digests is not read (its ranges could not be checked): named, nothing deleted", async () => {
      const a = await archived(undefined, "parquet");
      try {
        await db.run(
          `UPDATE archive_parts SET chunk_sha256 = NULL, chunk_bytes = NULL WHERE source_table = '${a.table}'`,
        );
        const err = await verifyDate(a.c.ctx, a.c.owner, DAY).catch((e: unknown) => e);
        expect((err as VerificationError).problems).toEqual([
          `Parquet part ${a.part.objectKey} has no chunk digests to read it by`,
        ]);
        expect((await a.c.ctx.ledger.parts(a.table, DAY))[0]?.verifiedAt).toBeNull();
        await expect(cleanupDate(a.c.ctx, a.c.owner, DAY)).rejects.toBeInstanceOf(NotVerifiedError);
        expect(await db.count(a.table, DAY)).toBe(ROWS);
      } finally {
        await a.c.close();
      }
    });

    it("a Parquet part that does not decode, though every digest of it matches (written broken): named as corrupt", async () => {
      const a = await archived(undefined, "parquet");
      try {
        const store = a.c.ctx.store;
        const bytes = await objectBytes(store, a.part.objectKey);
        // Its trailing magic ("PAR1") broken, and every digest recorded again over the result.
        bytes[bytes.length - 1] = 0x30;
        await putBytes(store, a.part.objectKey, bytes);
        const { createHash } = await import("node:crypto");
        const sha = createHash("sha256").update(bytes).digest("hex");
        expect(bytes.length).toBeLessThan(a.part.chunkBytes ?? 0);
        await db.run(
          `UPDATE archive_parts SET sha256 = '${sha}', chunk_sha256 = '${sha}' WHERE source_table = '${a.table}'`,
        );
        await rewriteManifest(store, a.part, (m) => {
          m.sha256 = sha;
          m.chunkSha256 = [sha];
        });
        const err = await verifyDate(a.c.ctx, a.c.owner, DAY).catch((e: unknown) => e);
        expect((err as VerificationError).problems).toEqual([
          expect.stringMatching(/^Parquet part is corrupt \(.+\)$/),
        ]);
        expect((await a.c.ctx.ledger.parts(a.table, DAY))[0]?.verifiedAt).toBeNull();
        expect(await db.count(a.table, DAY)).toBe(ROWS);
      } finally {
        await a.c.close();
      }
    });

    it("a failed partition becomes verified again only by a verify that reads its parts, with its error cleared", async () => {
      const a = await archived();
      try {
        const manifest = await objectBytes(a.c.ctx.store, a.part.manifestKey);
        await flipByte(a.c.ctx.store, a.part.manifestKey, () => 0);
        await expect(verifyDate(a.c.ctx, a.c.owner, DAY)).rejects.toBeInstanceOf(VerificationError);
        expect(await a.c.ctx.ledger.get(a.table, DAY)).toMatchObject({ state: "failed" });
        // The manifest put back (a person restored it): verify reads the part again, and the
        // partition is verified, its error gone.
        await putBytes(a.c.ctx.store, a.part.manifestKey, manifest);
        const [part] = await verifyDate(a.c.ctx, a.c.owner, DAY);
        expect(part?.verifiedAt).not.toBeNull();
        const rec = await a.c.ctx.ledger.get(a.table, DAY);
        expect(rec).toMatchObject({ state: "verified", lastError: null });
        expect(rec?.verifiedAt).not.toBeNull();
      } finally {
        await a.c.close();
      }
    });

    it("a part recorded without chunk digests gets them from the read whose sha256 matched", async () => {
      const a = await archived();
      try {
        await db.run(
          `UPDATE archive_parts SET chunk_sha256 = NULL, chunk_bytes = NULL, verified_at = NULL WHERE source_table = '${a.table}'`,
        );
        const [part] = await verifyDate(a.c.ctx, a.c.owner, DAY);
        expect(part).toMatchObject({
          chunkSha256: a.part.chunkSha256,
          chunkBytes: a.part.chunkBytes,
        });
        expect(part?.verifiedAt).not.toBeNull();
      } finally {
        await a.c.close();
      }
    });

    it("a codec that reports its own error for a refused chunk: the chunk's problem is still the one named", async () => {
      const a = await archived();
      try {
        const base = a.c.ctx.codec as NonNullable<typeof a.c.ctx.codec>;
        a.c.ctx.codec = {
          ...base,
          gunzip() {
            const inner = base.gunzip();
            const reader = inner.readable.getReader();
            const readable = new ReadableStream<Uint8Array>({
              async pull(controller) {
                try {
                  const { done, value } = await reader.read();
                  if (done) controller.close();
                  else controller.enqueue(value);
                } catch {
                  controller.error(new Error("inflate failed"));
                }
              },
            });
            return { writable: inner.writable, readable };
          },
        };
        await flipByte(a.c.ctx.store, a.part.objectKey, (n) => n >> 1);
        const err = await verifyDate(a.c.ctx, a.c.owner, DAY).catch((e: unknown) => e);
        expect((err as VerificationError).problems).toEqual([
          expect.stringMatching(/^chunk 0 \(bytes 0\.\.\) differs from its recorded sha256$/),
        ]);
      } finally {
        await a.c.close();
      }
    });

    it("a line repeated (the same key twice) is named as out of order, and verify reports its progress", async () => {
      const a = await archived();
      try {
        await rewriteLines(db, a, (lines) => [
          ...lines.slice(0, 10),
          lines[9] as string,
          ...lines.slice(10),
        ]);
        const err = await verifyDate(a.c.ctx, a.c.owner, DAY).catch((e: unknown) => e);
        expect(String(err)).toMatch(/line 11: key \d+ out of order/);
      } finally {
        await a.c.close();
      }
      const b = await archived();
      try {
        const seen: { phase: string; done: number; total: number | null }[] = [];
        b.c.ctx.onProgress = (p) => seen.push(p);
        await verifyDate(b.c.ctx, b.c.owner, DAY);
        const verify = seen.filter((p) => p.phase === "verify");
        expect(verify.length).toBeGreaterThan(0);
        expect(verify.at(-1)).toMatchObject({ done: ROWS, total: ROWS });
        expect(verify.map((p) => p.done)).toEqual(
          [...verify.map((p) => p.done)].sort((x, y) => x - y),
        );
      } finally {
        await b.c.close();
      }
    });

    it("a part damaged after rows were deleted on its strength is never rewritten nor removed; no further row goes", async () => {
      const a = await archived();
      try {
        const first = await cleanupDate(a.c.ctx, a.c.owner, DAY, { batchSize: 500, maxBatches: 1 });
        expect(first).toMatchObject({ complete: false, deleted: 500 });
        const hot = await db.count(a.table, DAY);
        expect(hot).toBe(ROWS - 500);
        const [cleaning] = await a.c.ctx.ledger.parts(a.table, DAY);
        expect(cleaning).toMatchObject({ cleanedCount: 500, cleanedAt: null });
        expect(cleaning?.cleanupCursor).not.toBeNull();
        const files = readdirSync(a.folder).sort();
        expect(files).toHaveLength(2); // the object and its manifest

        // Bytes after the cleanup cursor's lines, so that a reader that did not check them
        // before use would have lines to act on ahead of the damage.
        const damaged = await flipByte(a.c.ctx.store, a.part.objectKey, (n) => Math.floor(n * 0.6));
        /** The part as it was: same ledger row, same object (damaged as it is), no row gone. */
        const unchanged = async (what: string, verified = true) => {
          const parts = await a.c.ctx.ledger.parts(a.table, DAY);
          expect(parts, what).toHaveLength(1);
          expect(parts[0], what).toMatchObject({
            part: 0,
            objectKey: a.part.objectKey,
            manifestKey: a.part.manifestKey,
            sha256: a.part.sha256,
            chunkSha256: a.part.chunkSha256,
            cleanedCount: 500,
          });
          // The verified mark stays: rows were deleted on its strength.
          if (verified) expect(parts[0]?.verifiedAt, what).not.toBeNull();
          expect(readdirSync(a.folder).sort(), what).toEqual(files);
          expect(await objectBytes(a.c.ctx.store, a.part.objectKey), what).toEqual(damaged);
          expect(await db.count(a.table, DAY), what).toBe(hot);
          expect((await a.c.ctx.ledger.get(a.table, DAY))?.cleanedCount, what).toBe(500);
        };
        const problem = /chunk 0 \(bytes 0\.\.\) differs from its recorded sha256/;

        // archive while the partition is 'cleaning': nothing to do, cleanup must finish first.
        const busy = await archiveDate(a.c.ctx, a.c.owner, DAY);
        expect(busy.written).toBeNull();
        expect(busy.note).toMatch(/cleanup is in progress/);
        await unchanged("archive while cleaning");

        // verify: loud, names the damage.
        const verified = await verifyDate(a.c.ctx, a.c.owner, DAY).catch((e: unknown) => e);
        expect(verified).toBeInstanceOf(VerificationError);
        expect(String(verified)).toMatch(problem);
        await unchanged("verify");
        const failed = { state: "failed", cleaned: false, cleanedCount: 500 };
        expect(await a.c.ctx.ledger.get(a.table, DAY)).toMatchObject(failed);
        expect((await a.c.ctx.ledger.get(a.table, DAY))?.lastError).toMatch(problem);

        // archive once verify failed: it proves the failed partition's parts again and fails
        // loudly with the damage; nothing is rewritten or removed.
        const after = await archiveDate(a.c.ctx, a.c.owner, DAY).catch((e: unknown) => e);
        expect(after).toBeInstanceOf(VerificationError);
        expect(String(after)).toMatch(problem);
        await unchanged("archive after verify failed");
        expect(await a.c.ctx.ledger.get(a.table, DAY)).toMatchObject(failed);
        expect((await a.c.ctx.ledger.get(a.table, DAY))?.lastError).toMatch(problem);

        // cleanup checks the bytes before it trusts a line of them: loud, and no row goes.
        const cleanup = await cleanupDate(a.c.ctx, a.c.owner, DAY).catch((e: unknown) => e);
        await unchanged("cleanup");
        expect(cleanup).toBeInstanceOf(VerificationError);
        expect(String(cleanup)).toMatch(problem);

        // Even a part that lost its verified mark (a ledger edited by hand, an older version)
        // is not written again once rows were deleted on its strength: archive verifies it,
        // fails loudly, and leaves the object and the ledger row as they are.
        await db.run(
          `UPDATE archive_parts SET verified_at = NULL WHERE source_table = '${a.table}'`,
        );
        const rewrite = await archiveDate(a.c.ctx, a.c.owner, DAY).catch((e: unknown) => e);
        expect(rewrite).toBeInstanceOf(VerificationError);
        expect(String(rewrite)).toMatch(problem);
        await unchanged("archive of the unmarked part", false);
        expect(await a.c.ctx.ledger.get(a.table, DAY)).toMatchObject(failed);
      } finally {
        await a.c.close();
      }
    });
  });
}

describe("a part with more stats values than a rollup holds", () => {
  it("fails verify for its rollup, and keeps its verified mark: the archive itself is sound", async () => {
    const db = dbs[0] as TestDb;
    const rows = ROLLUP_MAX_VALUES + 1;
    await db.run(
      "CREATE TABLE vc_wide (id INTEGER PRIMARY KEY, event_date TEXT NOT NULL, path TEXT)",
    );
    await db.run(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows})
       INSERT INTO vc_wide SELECT i, '${DAY}', '/p' || i FROM n`,
    );
    const open = (rollups: "on" | "off") =>
      openContext(
        loadConfig({
          SLUICE_DB: db.url,
          SLUICE_STORE: `file:${join(dir, "wide")}`,
          SLUICE_TABLE: "vc_wide",
          SLUICE_ROLLUPS: rollups,
        }),
      );
    const plain = await open("off");
    try {
      const out = await archiveDate(plain.ctx, plain.owner, DAY);
      expect(out.parts[0]?.verifiedAt).not.toBeNull();
    } finally {
      await plain.close();
    }
    const counted = await open("on");
    try {
      await expect(verifyDate(counted.ctx, counted.owner, DAY)).rejects.toBeInstanceOf(
        RollupTooLargeError,
      );
      const [part] = await counted.ctx.ledger.parts("vc_wide", DAY);
      expect(part?.verifiedAt).not.toBeNull();
      expect(part?.rollupRows).toBeNull();
    } finally {
      await counted.close();
    }
  });
});

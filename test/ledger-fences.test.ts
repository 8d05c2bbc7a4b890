import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { D1Source } from "../src/adapters/d1/source.js";
import { SqliteSource } from "../src/adapters/sqlite/source.js";
import type { Lease } from "../src/core/archive/ledger/lease.js";
import { Ledger } from "../src/core/archive/ledger/ledger.js";
import type { PartRecord } from "../src/core/archive/ledger/records.js";
import { LeaseHeldError, LeaseLostError, SluiceError } from "../src/core/errors.js";
import type { SqlSource } from "../src/core/sql/source.js";
import { d1Shim } from "./d1-shim.js";

/**
 * Every ledger write made under a lease does nothing for a holder whose lease was taken over
 * (it stalled past its expiry): it throws LeaseLostError, or changes nothing where that is its
 * contract, and every table reads as before. The same write by the holder takes effect, so
 * that the fence, not some other failure, is what stops the first. On a SQLite file (writes in
 * transactions) and on D1's interface (writes as atomic batches).
 */
const T = "events";
const D = "2025-10-13";
const dir = mkdtempSync(join(tmpdir(), "sluice-fences-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

function part(n: number): PartRecord {
  return {
    sourceTable: T,
    date: D,
    part: n,
    objectKey: `${T}/date=${D}/part-000${n}-0000000${n}.jsonl.gz`,
    manifestKey: `${T}/date=${D}/part-000${n}-0000000${n}.manifest.json`,
    eventCount: 10,
    rawSize: 1000,
    fileSize: 300,
    sha256: "a".repeat(64),
    minId: n * 10 + 1,
    maxId: n * 10 + 10,
    archivedAt: "2025-10-14T03:30:00.000Z",
    verifiedAt: null,
    cleanedCount: 0,
    cleanupCursor: null,
    cleanedAt: null,
    chunkBytes: 1 << 20,
    chunkSha256: "b".repeat(64),
    changedCount: 0,
    changedKeys: null,
    rollupRows: null,
    deletedRollupRows: 0,
    passedKey: null,
    skipsKnown: true,
  };
}

/** A part's rows counted by path: what verification writes beside its mark. */
const ROLLUP = {
  counts: new Map<string | null, number>([
    ["/a", 6],
    ["/b", 3],
    [null, 1],
  ]),
  total: 10,
};

interface World {
  source: SqlSource;
  ledger: Ledger;
  /** The holder whose lease ran out and was taken. */
  stale: Lease;
  /** The holder now. */
  holder: Lease;
  tables(): Promise<unknown>;
}

async function world(kind: "sqlite" | "d1", state = "archiving"): Promise<World> {
  const file = join(dir, `${kind}-${++files}.db`);
  const source =
    kind === "sqlite"
      ? new SqliteSource(file, { create: true })
      : new D1Source(d1Shim(file).binding);
  await source.execute("CREATE TABLE hot (id INTEGER PRIMARY KEY, event_date TEXT)");
  for (let id = 1; id <= 10; id++) {
    await source.execute("INSERT INTO hot VALUES (?, ?)", [id, D]);
  }
  const ledger = new Ledger(source, { leaseMs: 60_000 });
  await ledger.migrate();
  const stale = await ledger.acquire(T, D, "host:1:stale");
  await ledger.move(stale, "archiving");
  await ledger.recordPart(stale, part(0));
  await source.execute("UPDATE archive_metadata SET lease_expires_at = 0");
  const holder = await ledger.acquire(T, D, "host:2:holder");
  // Where the holder's own write may happen, and a cleanup in progress to resume.
  await source.execute("UPDATE archive_metadata SET state = ?", [state]);
  await source.execute("UPDATE archive_parts SET cleanup_cursor = 3");
  // Rows of a path cleanup deleted and counted before.
  await source.execute(
    "INSERT INTO archive_deleted_rollups (source_table, date, part, path, path_key, views) VALUES (?, ?, 0, '/a', 's:/a', 5)",
    [T, D],
  );
  return {
    source,
    ledger,
    stale,
    holder,
    tables: async () => ({
      metadata: (await source.query("SELECT * FROM archive_metadata")).map((r) => ({
        ...r,
        updated_at: null,
        lease_expires_at: null,
      })),
      parts: await source.query("SELECT * FROM archive_parts ORDER BY part"),
      rollups: await source.query("SELECT * FROM archive_rollups ORDER BY part, path"),
      deleted: await source.query("SELECT * FROM archive_deleted_rollups ORDER BY part, path"),
      skipped: await source.query("SELECT * FROM archive_cleanup_skipped ORDER BY part, row_key"),
      hot: await source.query("SELECT * FROM hot ORDER BY id"),
    }),
  };
}

/** Each write, as the stale holder and as the holder would make it (from that state). */
const writes: [string, (w: World, l: Lease) => Promise<unknown>, string?][] = [
  ["move", (w, l) => w.ledger.move(l, "archiving", { lastError: "x" })],
  ["setPendingObject", (w, l) => w.ledger.setPendingObject(l, `${T}/x.jsonl.gz`)],
  ["recordPart", (w, l) => w.ledger.recordPart(l, part(1))],
  ["markPartVerified", (w, l) => w.ledger.markPartVerified(l, 0)],
  ["markPartVerified with its rollup", (w, l) => w.ledger.markPartVerified(l, 0, ROLLUP)],
  ["recordRollup", (w, l) => w.ledger.recordRollup(l, 0, ROLLUP)],
  ["recordChunkDigests", (w, l) => w.ledger.recordChunkDigests(l, 0, 1024, "c".repeat(64))],
  [
    "addCleaned",
    (w, l) =>
      w.source.transaction((tx) =>
        w.ledger.addCleaned(
          l,
          0,
          {
            deleted: 3,
            cursor: 3,
            changed: 1,
            changedKeys: "2",
            passed: 4,
            skip: { add: [2, 4], remove: [] },
          },
          tx,
        ),
      ),
    "verified",
  ],
  [
    "addCleaned with the deleted rows counted",
    (w, l) =>
      w.source.transaction((tx) =>
        w.ledger.addCleaned(
          l,
          0,
          {
            deleted: 3,
            cursor: 3,
            changed: 0,
            changedKeys: null,
            passed: 3,
            counted: {
              counts: new Map([
                ["/a", 2],
                [null, 1],
              ]),
              total: 3,
            },
          },
          tx,
        ),
      ),
    "verified",
  ],
  [
    "subtractDeletedCounts",
    (w, l) =>
      w.source.transaction((tx) =>
        w.ledger.subtractDeletedCounts(l, 0, { counts: new Map([["/a", 2]]), total: 2 }, tx),
      ),
  ],
  ["skipRestored", (w, l) => w.source.transaction((tx) => w.ledger.skipRestored(l, 0, [3, 4], tx))],
  ["addChanged", (w, l) => w.ledger.addChanged(l, 0, 1, "7", 5)],
  ["resetCleanupCursor", (w, l) => w.ledger.resetCleanupCursor(l, 0)],
  ["markPartCleaned", (w, l) => w.ledger.markPartCleaned(l, 0)],
  ["removeUnverifiedPart", (w, l) => w.ledger.removeUnverifiedPart(l, 0)],
  ["noteError", (w, l) => w.ledger.noteError(l, "interrupted")],
  ["recordRestore", (w, l) => w.ledger.recordRestore(l, 3, T)],
  ["recordJob", (w, l) => w.ledger.recordJob(l, '{"id":"j","state":"running"}')],
];

for (const kind of ["sqlite", "d1"] as const) {
  describe(`ledger writes under a lease that was taken (${kind})`, () => {
    for (const [name, write, state] of writes) {
      it(`${name}: refused to the stale holder, changing nothing; done for the holder`, async () => {
        const w = await world(kind, state);
        const before = await w.tables();
        await expect(write(w, w.stale)).rejects.toBeInstanceOf(LeaseLostError);
        expect(await w.tables()).toEqual(before);
        await write(w, w.holder);
        expect(await w.tables()).not.toEqual(before);
      });
    }

    it("markPartUnverified: changes nothing for the stale holder; unmarks for the holder", async () => {
      const w = await world(kind);
      await w.ledger.markPartVerified(w.holder, 0);
      const before = await w.tables();
      await w.ledger.markPartUnverified(w.stale, 0);
      expect(await w.tables()).toEqual(before);
      await w.ledger.markPartUnverified(w.holder, 0);
      expect((await w.ledger.parts(T, D))[0]?.verifiedAt).toBeNull();
    });

    it("renew and release: the stale holder can neither extend nor drop the holder's lease", async () => {
      const w = await world(kind);
      expect(await w.ledger.renew(T, D, w.stale.owner)).toBe(false);
      await w.stale.release();
      expect((await w.ledger.get(T, D))?.leaseOwner).toBe(w.holder.owner);
      await expect(w.stale.keepAlive()).resolves.toBeUndefined(); // renewed a third of a lease ago
      await expect(w.stale.check()).rejects.toBeInstanceOf(LeaseLostError);
      expect(await w.ledger.renew(T, D, w.holder.owner)).toBe(true);
    });
  });
}

describe("the D1 cleanup batch", () => {
  it("deletes nothing and records nothing for a stale holder; deletes and counts for the holder", async () => {
    const w = await world("d1");
    const del = { sql: "DELETE FROM hot WHERE event_date = ? AND id <= ?", params: [D, 5] };
    const before = await w.tables();
    await expect(w.ledger.deleteAndRecord(w.stale, 0, 5, 5, del)).rejects.toBeInstanceOf(
      LeaseLostError,
    );
    expect(await w.tables()).toEqual(before);
    // The holder's batch goes through, from a state that may move to cleaning.
    await w.source.execute("UPDATE archive_metadata SET state = 'verified'");
    expect(await w.ledger.deleteAndRecord(w.holder, 0, 5, 5, del)).toBe(5);
    expect(await w.source.query("SELECT id FROM hot ORDER BY id")).toHaveLength(5);
    expect(await w.ledger.parts(T, D)).toMatchObject([
      { cleanedCount: 5, cleanupCursor: 5, passedKey: 5 },
    ]);
    // changes() carried the DELETE's count into the part: a batch deleting nothing adds 0.
    expect(await w.ledger.deleteAndRecord(w.holder, 0, 6, 4, del)).toBe(0);
    // passed_key never goes back.
    expect(await w.ledger.parts(T, D)).toMatchObject([
      { cleanedCount: 5, cleanupCursor: 6, passedKey: 5 },
    ]);
    expect(await w.ledger.get(T, D)).toMatchObject({ state: "cleaning", cleanedCount: 5 });
  });
});

describe("a part's rollup, on SQLite and on D1", () => {
  for (const kind of ["sqlite", "d1"] as const) {
    it(`${kind}: written with the verified mark, replacing the part's old counts`, async () => {
      const w = await world(kind);
      await w.ledger.markPartVerified(w.holder, 0, ROLLUP);
      await w.ledger.markPartVerified(w.holder, 0, ROLLUP);
      expect(await w.ledger.rollupTotals(T, D)).toEqual(new Map([[0, 10]]));
      const rows = await w.source.query("SELECT path, views FROM archive_rollups ORDER BY views");
      expect(rows).toEqual([
        { path: null, views: 1 },
        { path: "/b", views: 3 },
        { path: "/a", views: 6 },
      ]);
      expect((await w.ledger.parts(T, D))[0]).toMatchObject({ rollupRows: 10 });
    });

    it(`${kind}: all or nothing: counts the database refuses leave the part unverified, with none`, async () => {
      const w = await world(kind);
      await w.source.execute(
        "CREATE TRIGGER no_counts BEFORE INSERT ON archive_rollups WHEN NEW.path = '/b' BEGIN SELECT RAISE(ABORT, 'no counts today'); END",
      );
      const before = await w.tables();
      await expect(w.ledger.markPartVerified(w.holder, 0, ROLLUP)).rejects.toThrow(
        /no counts today/,
      );
      expect(await w.tables()).toEqual(before);
      expect((await w.ledger.parts(T, D))[0]).toMatchObject({ verifiedAt: null, rollupRows: null });
    });
  }
});

describe("recording a part, on SQLite and on D1", () => {
  for (const kind of ["sqlite", "d1"] as const) {
    it(`${kind}: refused to the holder outside 'archiving', writing no part row, as a state error`, async () => {
      const w = await world(kind, "verified");
      const before = await w.tables();
      const err = await w.ledger.recordPart(w.holder, part(1)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SluiceError);
      expect(err).not.toBeInstanceOf(LeaseLostError);
      expect(String(err)).toMatch(/could not record the part/);
      expect(await w.tables()).toEqual(before);
    });

    it(`${kind}: all or nothing: a part row the database refuses leaves the partition as it was`, async () => {
      const w = await world(kind);
      await w.source.execute(
        "CREATE TRIGGER no_parts BEFORE INSERT ON archive_parts BEGIN SELECT RAISE(ABORT, 'no parts today'); END",
      );
      const before = await w.tables();
      await expect(w.ledger.recordPart(w.holder, part(1))).rejects.toThrow(/no parts today/);
      expect(await w.tables()).toEqual(before);
    });
  }
});

describe("lease expiry", () => {
  it("a lease taken over from a dead holder, and one renewed, run a full lease from now", async () => {
    const source = new SqliteSource(join(dir, `expiry-${++files}.db`), { create: true });
    const ledger = new Ledger(source, {
      leaseMs: 60_000,
      isHolderGone: (h) => h === "host:1:dead",
    });
    await ledger.migrate();
    await ledger.acquire(T, D, "host:1:dead");
    const taken = await ledger.acquire(T, D, "host:3:next");
    const at = (await ledger.get(T, D))?.leaseExpiresAt as number;
    expect(at).toBeGreaterThan(Date.now() + 50_000);
    await source.execute("UPDATE archive_metadata SET lease_expires_at = ?", [Date.now() + 1000]);
    expect(await ledger.renew(T, D, taken.owner)).toBe(true);
    expect((await ledger.get(T, D))?.leaseExpiresAt).toBeGreaterThan(Date.now() + 50_000);
    await source.close();
  });

  it("a dead holder's lease that someone else takes first is not taken twice", async () => {
    const source = new SqliteSource(join(dir, `race-${++files}.db`), { create: true });
    // The other process takes the dead holder's lease between our read and our update.
    const ledger = new Ledger(source, {
      isHolderGone: (h) => {
        if (h !== "host:1:dead") return false;
        source.exec("UPDATE archive_metadata SET lease_owner = 'host:4:first'");
        return true;
      },
    });
    await ledger.migrate();
    await ledger.acquire(T, D, "host:1:dead");
    await expect(ledger.acquire(T, D, "host:3:late")).rejects.toBeInstanceOf(LeaseHeldError);
    expect((await ledger.get(T, D))?.leaseOwner).toBe("host:4:first");
    await source.close();
  });
});

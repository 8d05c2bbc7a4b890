import { readFileSync, readdirSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { archivePartition } from "../src/core/archive/archive.js";
import { archiveDate, cleanupDate, verifyDate, withLease } from "../src/core/archive/jobs.js";
import { partitionStatus } from "../src/core/archive/partition-status.js";
import {
  CleanupIncompleteError,
  LeaseHeldError,
  NotFoundError,
  NotVerifiedError,
  VerificationError,
} from "../src/core/errors.js";
import {
  type EventRow,
  type Workspace,
  countOf,
  dateFolder,
  partNames,
  partPath,
  rowsOf,
  workspace,
} from "./helpers.js";

const DAY = "2025-10-13";
const OTHER = "2025-10-14";
let ws: Workspace | undefined;
afterEach(() => {
  ws?.remove();
  ws = undefined;
});

function partFile(w: Workspace, part = 0): string {
  return partPath(dateFolder(w.store, DAY), part);
}

function archivedRows(w: Workspace, part = 0): EventRow[] {
  const text = gunzipSync(readFileSync(partFile(w, part))).toString("utf8");
  return text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as EventRow);
}

describe("archive, verify, cleanup on SQLite and a folder", () => {
  it("round-trips 100K rows: every field archived, the date emptied, the other date untouched", async () => {
    ws = await workspace([
      { date: DAY, count: 100_000 },
      { date: OTHER, count: 1_000 },
    ]);
    const sql = ws.sql();
    const before = rowsOf(sql, DAY);
    const c = await ws.open();
    try {
      const out = await archiveDate(c.ctx, c.owner, DAY);
      expect(out.written?.eventCount).toBe(100_000);
      expect(out.parts.every((p) => p.verifiedAt !== null)).toBe(true);
      // Order of keys in a JSON object is not data; compare values field by field.
      expect(archivedRows(ws)).toEqual(before);

      const cleaned = await cleanupDate(c.ctx, c.owner, DAY);
      expect(cleaned).toMatchObject({ complete: true, deleted: 100_000, remaining: 0 });
      expect(countOf(sql, DAY)).toBe(0);
      expect(countOf(sql, OTHER)).toBe(1_000);
      const rec = sql.prepare("SELECT * FROM archive_metadata WHERE date = ?").get(DAY) as Record<
        string,
        unknown
      >;
      expect(rec).toMatchObject({
        state: "cleaned",
        d1_cleaned: 1,
        event_count: 100_000,
        cleaned_count: 100_000,
      });
      expect(rec.lease_owner).toBeNull();
      const manifest = JSON.parse(
        readFileSync(partFile(ws).replace(".jsonl.gz", ".manifest.json"), "utf8"),
      );
      expect(manifest).toMatchObject({
        rows: 100_000,
        minKey: before[0]?.id,
        maxKey: before.at(-1)?.id,
        sha256: rec.sha256,
      });
    } finally {
      await c.close();
    }
  });

  it("cleans a partition far larger than the seed's 50 batches of 1000", async () => {
    ws = await workspace([{ date: DAY, count: 75_000 }]);
    const c = await ws.open();
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      const out = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 1000 });
      expect(out).toMatchObject({ complete: true, deleted: 75_000, remaining: 0 });
      expect(countOf(ws.sql(), DAY)).toBe(0);
      expect((await c.ctx.ledger.get("traffic_events", DAY))?.cleaned).toBe(true);
    } finally {
      await c.close();
    }
  });

  it("fails loudly, without marking cleaned, when archived rows survive the deletes", async () => {
    ws = await workspace([{ date: DAY, count: 5_000 }]);
    const sql = ws.sql();
    const survivor = (
      sql.prepare("SELECT MIN(id) + 10 AS id FROM traffic_events").get() as { id: number }
    ).id;
    // A row the database silently refuses to delete: the remaining-count check must catch it.
    sql.exec(
      `CREATE TRIGGER keep_one BEFORE DELETE ON traffic_events WHEN old.id = ${survivor} BEGIN SELECT RAISE(IGNORE); END`,
    );
    const c = await ws.open();
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      const err = await cleanupDate(c.ctx, c.owner, DAY).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CleanupIncompleteError);
      expect(err).toMatchObject({ deleted: 4_999, remaining: 1 });
      const rec = await c.ctx.ledger.get("traffic_events", DAY);
      expect(rec).toMatchObject({ state: "failed", cleaned: false, cleanedCount: 4_999 });
      expect(rec?.lastError).toMatch(/deleted 4999 rows, 1 archived rows remain/);
      // Once the database lets go, a rerun finds the row it skipped and finishes.
      sql.exec("DROP TRIGGER keep_one");
      const retry = await cleanupDate(c.ctx, c.owner, DAY);
      expect(retry).toMatchObject({ complete: true, deleted: 1, deletedTotal: 5_000 });
      expect(countOf(sql, DAY)).toBe(0);
    } finally {
      await c.close();
    }
  });

  it("refuses to clean a partition that is archived but not verified; deletes nothing", async () => {
    ws = await workspace([{ date: DAY, count: 2_000 }]);
    const c = await ws.open();
    try {
      await withLease(c.ctx, c.owner, DAY, (lease) => archivePartition(c.ctx, lease, DAY));
      await expect(cleanupDate(c.ctx, c.owner, DAY)).rejects.toBeInstanceOf(NotVerifiedError);
      expect(countOf(ws.sql(), DAY)).toBe(2_000);
      await expect(cleanupDate(c.ctx, c.owner, OTHER)).rejects.toBeInstanceOf(NotFoundError);
    } finally {
      await c.close();
    }
  });

  for (const damage of ["flipped byte", "truncated", "deleted"] as const) {
    it(`a ${damage} archive fails verification, nothing is deleted, and a rerun repairs it`, async () => {
      ws = await workspace([{ date: DAY, count: 20_000 }]);
      const sql = ws.sql();
      const before = rowsOf(sql, DAY);
      const c = await ws.open();
      try {
        await archiveDate(c.ctx, c.owner, DAY);
        const file = partFile(ws);
        if (damage === "flipped byte") {
          const bytes = readFileSync(file);
          const at = Math.floor(bytes.length / 2);
          bytes[at] = (bytes[at] ?? 0) ^ 0xff;
          writeFileSync(file, bytes);
        } else if (damage === "truncated") {
          truncateSync(file, Math.floor(readFileSync(file).length * 0.7));
        } else {
          writeFileSync(file, "");
        }
        // Cleanup re-checks the bytes it is about to trust, even though they were verified.
        await expect(cleanupDate(c.ctx, c.owner, DAY)).rejects.toBeInstanceOf(VerificationError);
        expect(countOf(sql, DAY)).toBe(20_000);
        expect((await c.ctx.ledger.get("traffic_events", DAY))?.state).toBe("failed");

        const err = await verifyDate(c.ctx, c.owner, DAY).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(VerificationError);
        await expect(cleanupDate(c.ctx, c.owner, DAY)).rejects.toBeInstanceOf(NotVerifiedError);
        expect(countOf(sql, DAY)).toBe(20_000);

        // Nothing was deleted, so the archive can be written again from the source; the
        // damaged object goes with the part it was.
        const again = await archiveDate(c.ctx, c.owner, DAY);
        expect(again.written?.part).toBe(0);
        expect(partNames(dateFolder(ws.store, DAY))).toEqual([
          "part-0000-*.jsonl.gz",
          "part-0000-*.manifest.json",
        ]);
        expect(archivedRows(ws)).toEqual(before);
        await cleanupDate(c.ctx, c.owner, DAY);
        expect(countOf(sql, DAY)).toBe(0);
      } finally {
        await c.close();
      }
    });
  }

  it("deletes by archived key range on SQLite, never touching another date's rows between its keys", async () => {
    ws = await workspace([]);
    const sql = ws.sql();
    sql.exec(
      "CREATE TABLE traffic_events (id INTEGER PRIMARY KEY AUTOINCREMENT, event_date TEXT NOT NULL, ts INTEGER, path TEXT, referrer TEXT, country TEXT, user_agent TEXT, status INTEGER, duration_ms INTEGER)",
    );
    const insert = sql.prepare(
      "INSERT INTO traffic_events (event_date, ts, path, status, duration_ms) VALUES (?, ?, ?, 200, 7)",
    );
    // Two dates whose keys interleave irregularly, as ingest of late events makes them.
    sql.transaction(() => {
      for (let i = 0; i < 5000; i++)
        insert.run(i % 3 === 0 || i % 7 === 0 ? OTHER : DAY, i, `/${i}`);
    })();
    const other = rowsOf(sql, OTHER);
    const day = countOf(sql, DAY);
    const c = await ws.open();
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      for (let i = 0; i < 5; i++) insert.run(DAY, 9_000 + i, `/late/${i}`);
      const cleaned = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 37 });
      expect(cleaned.deleted).toBe(day);
      expect(rowsOf(sql, OTHER)).toEqual(other);
      expect(rowsOf(sql, DAY).map((r) => r.path)).toEqual([0, 1, 2, 3, 4].map((i) => `/late/${i}`));
      expect((await c.ctx.ledger.get("traffic_events", DAY))?.cleanedCount).toBe(day);
    } finally {
      await c.close();
    }
  });

  it("leaves rows that arrive after the archive, reports them late, and archives them as a new part", async () => {
    ws = await workspace([{ date: DAY, count: 10_000 }]);
    const sql = ws.sql();
    const c = await ws.open();
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      const insert = sql.prepare(
        "INSERT INTO traffic_events (event_date, ts, path, status, duration_ms) VALUES (?, ?, ?, 200, 7)",
      );
      for (let i = 0; i < 3; i++) insert.run(DAY, 1_760_400_000_000 + i, `/late/${i}`);
      const cleaned = await cleanupDate(c.ctx, c.owner, DAY);
      expect(cleaned.deleted).toBe(10_000);
      expect(rowsOf(sql, DAY).map((r) => r.path)).toEqual(["/late/0", "/late/1", "/late/2"]);
      const status = await partitionStatus(c.ctx, DAY);
      expect(status).toMatchObject({ hotRows: 3, lateRows: 3 });
      expect(status.record?.state).toBe("cleaned");

      const more = await archiveDate(c.ctx, c.owner, DAY);
      expect(more.written).toMatchObject({ part: 1, eventCount: 3 });
      expect(archivedRows(ws, 1).map((r) => r.path)).toEqual(["/late/0", "/late/1", "/late/2"]);
      await cleanupDate(c.ctx, c.owner, DAY);
      expect(countOf(sql, DAY)).toBe(0);
      const rec = await c.ctx.ledger.get("traffic_events", DAY);
      expect(rec).toMatchObject({
        state: "cleaned",
        partCount: 2,
        eventCount: 10_003,
        cleanedCount: 10_003,
        cleaned: true,
      });
      // Nothing new: archive writes no third part.
      expect((await archiveDate(c.ctx, c.owner, DAY)).written).toBeNull();
      expect(partNames(dateFolder(ws.store, DAY))).toEqual([
        "part-0000-*.jsonl.gz",
        "part-0000-*.manifest.json",
        "part-0001-*.jsonl.gz",
        "part-0001-*.manifest.json",
      ]);
    } finally {
      await c.close();
    }
  });

  it("stops at a time budget with progress saved, and the next run finishes exactly", async () => {
    ws = await workspace([{ date: DAY, count: 30_000 }]);
    const c = await ws.open();
    try {
      await archiveDate(c.ctx, c.owner, DAY);
      const first = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 100, budgetMs: 1 });
      expect(first.complete).toBe(false);
      expect(first.deleted).toBeGreaterThan(0);
      expect(first.deleted).toBeLessThan(30_000);
      expect(first.remaining).toBe(30_000 - first.deleted);
      const mid = await c.ctx.ledger.get("traffic_events", DAY);
      expect(mid).toMatchObject({ state: "cleaning", cleaned: false, cleanedCount: first.deleted });

      const second = await cleanupDate(c.ctx, c.owner, DAY, { batchSize: 100 });
      expect(second).toMatchObject({ complete: true, deletedTotal: 30_000, remaining: 0 });
      expect(second.deleted).toBe(30_000 - first.deleted);
      expect(countOf(ws.sql(), DAY)).toBe(0);
    } finally {
      await c.close();
    }
  });

  it("lets one process at a time work on a partition; an expired lease is taken over", async () => {
    ws = await workspace([{ date: DAY, count: 1_000 }], { SLUICE_LEASE_MS: "1000" });
    const c = await ws.open();
    try {
      // A holder on another host is never presumed dead: only its lease expiry frees it.
      const held = await c.ctx.ledger.acquire("traffic_events", DAY, "other-host:123:abc");
      const err = await archiveDate(c.ctx, c.owner, DAY).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LeaseHeldError);
      expect((err as LeaseHeldError).holder).toBe("other-host:123:abc");
      expect((await c.ctx.ledger.parts("traffic_events", DAY)).length).toBe(0);
      await new Promise((r) => setTimeout(r, 1_100));
      expect((await archiveDate(c.ctx, c.owner, DAY)).written?.eventCount).toBe(1_000);
      // The old holder's writes are fenced off now.
      await expect(c.ctx.ledger.move(held, "failed")).rejects.toThrow(/lost the lease/);
    } finally {
      await c.close();
    }
  });
});

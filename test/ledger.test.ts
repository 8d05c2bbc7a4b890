import { spawnSync } from "node:child_process";
import { hostname } from "node:os";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteSource } from "../src/adapters/sqlite/source.js";
import { Ledger } from "../src/core/archive/ledger/ledger.js";
import { pathKey } from "../src/core/archive/ledger/path-key.js";
import { type PartitionState, TRANSITIONS, canMove } from "../src/core/archive/ledger/states.js";
import { isHolderGone, ownerId } from "../src/node/owner.js";

let source: SqliteSource | undefined;
afterEach(async () => {
  await source?.close();
  source = undefined;
});

describe("the archive_metadata state machine", () => {
  it("only moves forward through verification before anything can be cleaned", () => {
    const toCleaning = (Object.keys(TRANSITIONS) as PartitionState[]).filter((s) =>
      canMove(s, "cleaning"),
    );
    expect(toCleaning.sort()).toEqual(["cleaning", "failed", "verified"]);
    expect(canMove("archived", "cleaning")).toBe(false);
    expect(canMove("pending", "cleaned")).toBe(false);
    expect(canMove("verified", "cleaned")).toBe(false);
    expect(canMove("cleaning", "cleaned")).toBe(true);
    // Late rows reopen a cleaned partition for a new part, and a re-verification that finds
    // its archive damaged marks it failed: never deletion directly.
    expect(TRANSITIONS.cleaned).toEqual(["archiving", "failed"]);
  });

  it("refuses an illegal move, and any move by a process that does not hold the lease", async () => {
    source = new SqliteSource(":memory:", { create: true });
    const ledger = new Ledger(source);
    await ledger.migrate();
    await ledger.migrate(); // twice is harmless
    const lease = await ledger.acquire("t", "2025-10-13", "me:1:a");
    await expect(ledger.move(lease, "cleaned")).rejects.toThrow(
      /cannot move from 'pending' to 'cleaned'/,
    );
    await ledger.move(lease, "archiving");
    await lease.release();
    await expect(ledger.move(lease, "archived")).rejects.toThrow(/lost the lease/);
    const rec = await ledger.get("t", "2025-10-13");
    expect(rec).toMatchObject({ state: "archiving", attempts: 1, leaseOwner: null });
  });

  it("hands a live holder's lease to no one, and a dead holder's to the next caller", async () => {
    source = new SqliteSource(":memory:", { create: true });
    const dead = new Set(["host:1:dead"]);
    const ledger = new Ledger(source, { isHolderGone: (h) => dead.has(h) });
    await ledger.migrate();
    await ledger.acquire("t", "d", "host:2:alive");
    await expect(ledger.acquire("t", "d", "host:3:other")).rejects.toThrow(
      /being worked on by host:2:alive/,
    );
    await ledger.acquire("t", "e", "host:1:dead");
    const taken = await ledger.acquire("t", "e", "host:3:other");
    expect(taken.owner).toBe("host:3:other");
    expect((await ledger.get("t", "e"))?.attempts).toBe(2);
  });
});

describe("lease owners", () => {
  it("never lets an owner take a lease it already holds: a second job of it is refused", async () => {
    source = new SqliteSource(":memory:", { create: true });
    const ledger = new Ledger(source);
    await ledger.migrate();
    await ledger.acquire("t", "d", "host:2:alive");
    await expect(ledger.acquire("t", "d", "host:2:alive")).rejects.toThrow(/being worked on/);
  });

  it("never lets an owner take its own lease, even where every other holder would count as dead", async () => {
    source = new SqliteSource(":memory:", { create: true });
    const ledger = new Ledger(source, { isHolderGone: () => true });
    await ledger.migrate();
    await ledger.acquire("t", "d", "host:2:alive");
    await expect(ledger.acquire("t", "d", "host:2:alive")).rejects.toThrow(
      /being worked on by host:2:alive/,
    );
    // Another owner takes it: the holder counts as dead.
    expect((await ledger.acquire("t", "d", "host:3:next")).owner).toBe("host:3:next");
  });

  it("a ledger told nothing of dead holders (the Worker) hands a live lease to no one", async () => {
    source = new SqliteSource(":memory:", { create: true });
    const ledger = new Ledger(source);
    await ledger.migrate();
    await ledger.acquire("t", "d", "worker:a");
    await expect(ledger.acquire("t", "d", "worker:b")).rejects.toThrow(
      /being worked on by worker:a/,
    );
  });

  it("takes a holder for dead only on this host and pid namespace, never by hostname alone", () => {
    const child = spawnSync(process.execPath, ["-e", "0"]);
    const gone = child.pid as number;
    const mine = ownerId();
    const [here, pid] = mine.split(":");
    expect(here).toMatch(new RegExp(`^${hostname()}@[0-9a-f]{8}$`));
    expect(Number(pid)).toBe(process.pid);
    // The same hostname from another machine or container: its pid means nothing here.
    expect(isHolderGone(`${hostname()}:${gone}:abc`)).toBe(false);
    expect(isHolderGone(`${hostname()}@00000000:${gone}:abc`)).toBe(false);
    expect(isHolderGone(`${here}:${gone}:abc:job1`)).toBe(true);
    expect(isHolderGone(`${here}:${process.pid}:abc:job1`)).toBe(false);
  });
});

describe("SqliteSource.stream", () => {
  it("yields a large result in batches of the fetch size, on its own connection", async () => {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "sluice-stream-"));
    source = new SqliteSource(join(dir, "s.db"), { create: true });
    // A reader and a writer at once need WAL (prepare-data turns it on for its files).
    await source.execute("PRAGMA journal_mode = WAL");
    await source.execute("CREATE TABLE n (v INTEGER)");
    await source.execute(
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 12345) INSERT INTO n SELECT x FROM c",
    );
    const sizes: number[] = [];
    let sum = 0;
    for await (const batch of source.stream("SELECT v FROM n ORDER BY v", [], {
      batchSize: 5000,
    })) {
      sizes.push(batch.length);
      for (const r of batch) sum += r.v as number;
      // The main connection stays usable while a stream is open.
      await source.execute("UPDATE n SET v = v WHERE v = 1");
    }
    expect(sizes).toEqual([5000, 5000, 2345]);
    expect(sum).toBe((12345 * 12346) / 2);
    await source.close();
    source = undefined;
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("the ledger's reads and the lease race", () => {
  it("list() of every table in table and date order; lastDone() the newest archive and cleanup, or null", async () => {
    source = new SqliteSource(":memory:", { create: true });
    const ledger = new Ledger(source);
    await ledger.migrate();
    for (const [t, d] of [
      ["b", "2025-10-14"],
      ["a", "2025-10-15"],
      ["b", "2025-10-13"],
    ]) {
      const lease = await ledger.acquire(t as string, d as string, `host:1:${t}${d}`);
      await ledger.move(lease, "archiving");
      await lease.release();
    }
    expect((await ledger.list()).map((r) => `${r.sourceTable} ${r.date}`)).toEqual([
      "a 2025-10-15",
      "b 2025-10-13",
      "b 2025-10-14",
    ]);
    expect(await ledger.lastDone("b")).toEqual({
      archivedAt: null,
      cleanedAt: null,
      rollupRows: 0,
    });
    await source.execute(
      `INSERT INTO archive_parts (source_table, date, part, object_key, manifest_key, event_count, raw_size, file_size, sha256, min_id, max_id, archived_at, cleaned_at)
       VALUES ('b', '2025-10-13', 0, 'k0', 'm0', 1, 1, 1, 's', 1, 1, '2025-10-14T03:30:00.000Z', '2025-10-14T03:31:00.000Z'),
              ('b', '2025-10-14', 0, 'k1', 'm1', 1, 1, 1, 's', 2, 2, '2025-10-15T03:30:00.000Z', NULL),
              ('a', '2025-10-15', 0, 'k2', 'm2', 1, 1, 1, 's', 3, 3, '2025-10-16T03:30:00.000Z', '2025-10-16T03:31:00.000Z')`,
    );
    await source.execute(
      `UPDATE archive_parts SET rollup_rows = part + 1 + (CASE WHEN source_table = 'a' THEN 100 ELSE 0 END)`,
    );
    expect(await ledger.lastDone("b")).toEqual({
      archivedAt: "2025-10-15T03:30:00.000Z",
      cleanedAt: "2025-10-14T03:31:00.000Z",
      rollupRows: 2,
    });
  });

  it("a lease let go between the refused update and the read of its holder is taken on the second try", async () => {
    source = new SqliteSource(":memory:", { create: true });
    const db = source;
    let raced = false;
    // The holder lets go right after our update found the lease held.
    class Racing extends Ledger {
      override async get(table: string, date: string) {
        if (!raced) {
          raced = true;
          await db.execute(
            "UPDATE archive_metadata SET lease_owner = NULL, lease_expires_at = NULL",
          );
        }
        return super.get(table, date);
      }
    }
    const ledger = new Racing(source);
    await ledger.migrate();
    await new Ledger(source).acquire("t", "d", "host:2:first");
    const lease = await ledger.acquire("t", "d", "host:3:second");
    expect(lease.owner).toBe("host:3:second");
    expect((await ledger.get("t", "d"))?.leaseOwner).toBe("host:3:second");
  });
});

describe("a lease held by no one the ledger can name", () => {
  it("is refused after one retry, naming an unknown process, never waited on forever", async () => {
    source = new SqliteSource(":memory:", { create: true });
    // The holder's row reads as free each time, though the update finds it held.
    class Blind extends Ledger {
      reads = 0;
      override async get(table: string, date: string) {
        this.reads++;
        const rec = await super.get(table, date);
        return rec ? { ...rec, leaseOwner: null } : rec;
      }
    }
    const ledger = new Blind(source);
    await ledger.migrate();
    await new Ledger(source).acquire("t", "d", "host:2:first");
    await expect(ledger.acquire("t", "d", "host:3:second")).rejects.toThrow(
      /being worked on by an unknown process/,
    );
    expect(ledger.reads).toBe(2);
  });
});

describe("a part's skipped keys", () => {
  it("are read a page at a time in key order, each once, whatever the page size", async () => {
    source = new SqliteSource(":memory:", { create: true });
    const ledger = new Ledger(source);
    await ledger.migrate();
    const lease = await ledger.acquire("t", "d", "host:1:a");
    await ledger.move(lease, "archiving");
    await source.execute(
      `INSERT INTO archive_parts (source_table, date, part, object_key, manifest_key, event_count, raw_size, file_size, sha256, min_id, max_id, archived_at)
       VALUES ('t', 'd', 0, 'k0', 'm0', 9, 1, 1, 's', 1, 9, 'x'), ('t', 'd', 1, 'k1', 'm1', 1, 1, 1, 's', 10, 10, 'x')`,
    );
    await source.transaction((tx) => ledger.skipRestored(lease, 0, [9, 2, 7, 4, 6, 1, 3], tx));
    await source.transaction((tx) => ledger.skipRestored(lease, 1, [10], tx));
    const pages = async (size: number) => {
      const out: number[][] = [];
      for await (const page of ledger.skippedKeys("t", "d", 0, size)) {
        out.push(page.map((k) => k.key));
      }
      return out;
    };
    expect(await pages(3)).toEqual([[1, 2, 3], [4, 6, 7], [9]]);
    expect(await pages(7)).toEqual([[1, 2, 3, 4, 6, 7, 9]]);
    expect(await pages(100)).toEqual([[1, 2, 3, 4, 6, 7, 9]]);
    expect(await ledger.skippedCount("t")).toBe(8);
    expect(await ledger.hasSkipped("t", "d", 1)).toBe(true);
    expect(await ledger.hasSkipped("t", "d", 2)).toBe(false);
  });
});

describe("the key of a stats value in the deleted rows' counts", () => {
  it("is the value itself up to 200 characters, its sha256 beyond, and one key for null", () => {
    expect(pathKey(null)).toBe("n");
    expect(pathKey("")).toBe("s:");
    expect(pathKey("a".repeat(200))).toBe(`s:${"a".repeat(200)}`);
    const long = pathKey("a".repeat(201));
    expect(long).toMatch(/^h:[0-9a-f]{64}$/);
    expect(pathKey("b".repeat(201))).not.toBe(long);
  });
});

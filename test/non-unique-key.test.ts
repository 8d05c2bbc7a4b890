import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { archiveDate, cleanupDate } from "../src/core/archive/jobs.js";
import { loadConfig } from "../src/node/config.js";
import { openContext } from "../src/node/context.js";
import { sqliteDb } from "./servers.js";

/**
 * A key the table does not keep unique: a row written after the archive under an archived key,
 * with the archived row's content. The delete of that key would take both; cleanup rolls the
 * batch back and says why instead of removing a row no archive holds twice.
 */
const dir = mkdtempSync(join(tmpdir(), "sluice-dupkey-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a key that is not unique", () => {
  it("cleanup rolls back a delete that would remove more rows than it compared", async () => {
    const db = sqliteDb(dir);
    try {
      await db.run("CREATE TABLE ev (id INTEGER NOT NULL, event_date TEXT NOT NULL, v TEXT)");
      await db.run("CREATE INDEX ev_day ON ev (event_date, id)");
      for (const id of [1, 2, 3]) {
        await db.run("INSERT INTO ev VALUES (?, '2025-10-13', ?)", [id, `v${id}`]);
      }
      const c = await openContext(
        loadConfig({
          SLUICE_DB: db.url,
          SLUICE_STORE: `file:${join(dir, "store")}`,
          SLUICE_TABLE: "ev",
        }),
      );
      try {
        await archiveDate(c.ctx, c.owner, "2025-10-13");
        await db.run("INSERT INTO ev VALUES (2, '2025-10-13', 'v2')");
        await expect(cleanupDate(c.ctx, c.owner, "2025-10-13")).rejects.toThrow(
          /removed 4.*rolled back \(is 'id' unique\?\)/,
        );
        expect(await db.query("SELECT id FROM ev ORDER BY id")).toEqual([
          { id: 1 },
          { id: 2 },
          { id: 2 },
          { id: 3 },
        ]);
      } finally {
        await c.close();
      }
    } finally {
      await db.close();
    }
  });
});

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { type Page, pagesByKey, tableLines } from "../src/core/archive/pages.js";
import type { PageReads } from "../src/core/sql/source.js";
import { loadConfig } from "../src/node/config.js";
import { openContext } from "../src/node/context.js";
import { openSource } from "../src/node/open.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";

const DAY = "2025-10-13";
const dir = mkdtempSync(join(tmpdir(), "sluice-pages-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let dbs = 0;
/** A database of its own with 250 rows of DAY, read in pages of 100. */
async function opened() {
  const url = `sqlite:${join(dir, `hot-${++dbs}.db`)}`;
  const source = await openSource(url, { create: true });
  await prepareTrafficData(source, { date: DAY, count: 250 });
  await source.close();
  const c = await openContext(
    loadConfig({ SLUICE_DB: url, SLUICE_STORE: `file:${join(dir, "a")}` }),
  );
  c.ctx.fetchSize = 100;
  return c;
}

/** Make the source read pages as objects (`read`) or as value arrays (`readValues`) only. */
function only(pages: PageReads, method: "read" | "readValues"): "read" | "readValues" {
  if (method === "read") pages.readValues = undefined;
  expect(pages[method]).toBeTypeOf("function");
  return method;
}

async function allPages(c: Awaited<ReturnType<typeof opened>>) {
  const out: Page[] = [];
  for await (const page of pagesByKey(c.ctx, await tableLines(c.ctx), DAY, null)) out.push(page);
  return out;
}

it("SQLite's raw value rows give the same pages as its row objects", async () => {
  const c = await opened();
  try {
    const viaValues = await allPages(c);
    only(c.ctx.source.pages, "read");
    const viaObjects = await allPages(c);
    expect(viaValues.map((p) => p.lines.length)).toEqual([100, 100, 50]);
    expect(viaValues).toEqual(viaObjects);
  } finally {
    await c.close();
  }
});

for (const method of ["read", "readValues"] as const) {
  it(`reads every page once, in key order, each asked for before the one before it is handed on (${method})`, async () => {
    const c = await opened();
    try {
      const pages = c.ctx.source.pages;
      const read = pages[only(pages, method)] as PageReads["read"];
      const asked: number[] = [];
      let handedOn = 0;
      pages[method] = ((sql: string, params: readonly unknown[]) => {
        asked.push(handedOn);
        return read.call(pages, sql, params);
      }) as never;
      const keys: number[] = [];
      for await (const page of pagesByKey(c.ctx, await tableLines(c.ctx), DAY, null)) {
        handedOn++;
        keys.push(...page.lines.map((l) => (JSON.parse(l) as { id: number }).id));
        expect([page.firstKey, page.lastKey]).toEqual([keys.at(-page.lines.length), keys.at(-1)]);
      }
      expect(keys).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
      // Three pages (100, 100, 50): the second asked for before the first was handed on, the
      // third before the second; the short third page ends it without another read.
      expect(asked).toEqual([0, 0, 1]);
    } finally {
      await c.close();
    }
  });

  it(`a caller that stops early leaves the page read ahead for it unreported, even when that read fails (${method})`, async () => {
    const c = await opened();
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on("unhandledRejection", onUnhandled);
    try {
      const pages = c.ctx.source.pages;
      const read = pages[only(pages, method)] as PageReads["read"];
      let reads = 0;
      pages[method] = (async (sql: string, params: readonly unknown[]) => {
        if (++reads === 2) throw new Error("connection lost");
        return read.call(pages, sql, params);
      }) as never;
      for await (const page of pagesByKey(c.ctx, await tableLines(c.ctx), DAY, null)) {
        expect(page.lines).toHaveLength(100);
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
      expect(reads).toBe(2);
      expect(unhandled).toEqual([]);
      // Taken to the end, the same failure is the caller's.
      reads = 0;
      await expect(allPages(c)).rejects.toThrow("connection lost");
    } finally {
      process.off("unhandledRejection", onUnhandled);
      await c.close();
    }
  });
}

for (const method of ["read", "readValues"] as const) {
  it(`a key column that holds no integers, and a missing table, are refused by name (${method})`, async () => {
    const c = await opened();
    try {
      only(c.ctx.source.pages, method);
      const source = await openSource(`sqlite:${join(dir, `hot-${dbs}.db`)}`);
      await source.execute("CREATE TABLE text_keys (id TEXT, event_date TEXT)");
      await source.execute("INSERT INTO text_keys VALUES ('a1', ?)", [DAY]);
      await source.close();
      c.ctx.spec = { ...c.ctx.spec, table: "text_keys" };
      const read = async () => {
        for await (const _ of pagesByKey(c.ctx, await tableLines(c.ctx), DAY, null));
      };
      await expect(read()).rejects.toThrow(
        `key column 'id' of 'text_keys' must hold integers; found "a1"`,
      );
      c.ctx.spec = { ...c.ctx.spec, table: "no_such_table" };
      await expect(tableLines(c.ctx)).rejects.toThrow("table 'no_such_table' does not exist");
    } finally {
      await c.close();
    }
  });
}

import { describe, expect, it } from "vitest";
import { toDollarParams } from "../src/adapters/postgres/placeholders.js";
import { type TestDb, postgresDb } from "./servers.js";

describe("PostgreSQL placeholders", () => {
  it("number every ? parameter in order", () => {
    expect(toDollarParams("SELECT * FROM t WHERE a = ? AND b IN (?, ?)")).toBe(
      "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)",
    );
  });

  it("leave a ? in a literal, a quoted name, a dollar-quoted string or a comment alone", () => {
    expect(toDollarParams("SELECT '?', 'it''s ?' FROM t WHERE a = ?")).toBe(
      "SELECT '?', 'it''s ?' FROM t WHERE a = $1",
    );
    expect(toDollarParams('SELECT "col?" FROM "t""?" WHERE a = ?')).toBe(
      'SELECT "col?" FROM "t""?" WHERE a = $1',
    );
    expect(toDollarParams("SELECT $$ ? $$, $tag$ ?'$ $tag$, ? -- ?\n, ? /* ? */")).toBe(
      "SELECT $$ ? $$, $tag$ ?'$ $tag$, $1 -- ?\n, $2 /* ? */",
    );
  });

  it("write ?? as PostgreSQL's own ? operator", () => {
    expect(toDollarParams("SELECT doc ?? ? FROM t WHERE doc ??| ?")).toBe(
      "SELECT doc ? $1 FROM t WHERE doc ?| $2",
    );
  });
});

const pg = await postgresDb();
describe.runIf(pg !== null)("PostgreSQL placeholders, run by the server", () => {
  it("a ? in a literal stays text, and jsonb's ? operator works beside parameters", async () => {
    const db = pg as TestDb;
    const { openSource } = await import("../src/node/open.js");
    const source = await openSource(db.url);
    try {
      const [row] = await source.query(
        `SELECT 'what?' AS q, ?::int + 1 AS n, '{"a":1}'::jsonb ?? ? AS has`,
        [41, "a"],
      );
      expect(row).toEqual({ q: "what?", n: 42, has: true });
    } finally {
      await source.close();
      await db.close();
    }
  });
});

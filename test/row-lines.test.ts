import { expect, it } from "vitest";
import { mysqlDialect } from "../src/adapters/mysql/dialect.js";
import { postgresDialect } from "../src/adapters/postgres/dialect.js";
import { renderJson, rowLines } from "../src/core/archive/rows.js";

/**
 * Where the database cannot render a row as JSON (MySQL), the archive line is rendered here:
 * the key first, then the columns in table order, binary as base64, 64-bit integers exact.
 * Archive and cleanup compare through this one renderer, and restore reads its values back.
 */
const columns = [
  { name: "payload", type: "blob" },
  { name: "id", type: "bigint" },
  { name: "2", type: "int" },
  { name: "at", type: "datetime" },
  { name: "note", type: "text" },
];

it("renders the key first, then the table's order, every kind of value as restore reads it", () => {
  const lines = rowLines(mysqlDialect, columns, "id");
  expect(lines.columns.map((c) => c.name)).toEqual(["id", "payload", "2", "at", "note"]);
  expect(lines.selectList).toBe("`id`, `payload`, `2`, `at`, `note`");
  const row = {
    id: 9007199254740993n,
    payload: new Uint8Array([0, 255, 16]),
    2: 7,
    at: new Date("2025-10-13T01:02:03.004Z"),
    note: undefined,
  };
  // Insertion order here is not the line's: a name like "2" would come first in a JS object.
  expect(lines.line(row)).toBe(
    '{"id":9007199254740993,"payload":"AP8Q","2":7,"at":"2025-10-13T01:02:03.004Z","note":null}',
  );
  // The same with nothing to convert: a JS object would still put "2" (or "10") before "id".
  for (const name of ["2", "10"]) {
    const plain = rowLines(
      mysqlDialect,
      [
        { name: "id", type: "int" },
        { name, type: "int" },
      ],
      "id",
    );
    expect(plain.line({ id: 1, [name]: 7 })).toBe(`{"id":1,"${name}":7}`);
  }
  expect(lines.key({ id: 5 })).toBe(5);
  expect(lines.select("SELECT 1", true)).toBe("SELECT 1");
});

it("keeps plain rows as they come, and converts any value JSON.stringify would get wrong", () => {
  const names = ["id", "path", "n"];
  expect(renderJson({ id: 1, path: "/a", n: null }, names, true)).toBe(
    '{"id":1,"path":"/a","n":null}',
  );
  expect(renderJson({ id: 2n, path: "/b", n: 3 }, names, true)).toBe('{"id":2,"path":"/b","n":3}');
  expect(renderJson({ id: 3, path: new Uint8Array([104, 105]), n: 1 }, names, true)).toBe(
    '{"id":3,"path":"aGk=","n":1}',
  );
  expect(renderJson({ id: 4, path: "/c", n: undefined }, names, true)).toBe(
    '{"id":4,"path":"/c","n":null}',
  );
  // Not in order: rendered column by column, whatever the object's own order.
  expect(renderJson({ n: 1, path: "/d", id: 5 }, names)).toBe('{"id":5,"path":"/d","n":1}');
});

it("a database that renders JSON itself reads the line and key from its own columns, in key order", () => {
  const lines = rowLines(postgresDialect, [{ name: "id", type: "bigint" }], "id");
  expect(lines.select("SELECT id FROM t", true)).toBe(
    'SELECT r."id" AS sluice_key, row_to_json(r)::text AS sluice_json FROM (SELECT id FROM t) r ORDER BY r."id"',
  );
  expect(lines.select("SELECT id FROM t", false)).not.toMatch(/ORDER BY/);
  expect(lines.line({ sluice_json: '{"id":1}', sluice_key: 1 })).toBe('{"id":1}');
  expect(lines.key({ sluice_json: '{"id":1}', sluice_key: 1 })).toBe(1);
});

import { afterEach, expect, it, vi } from "vitest";
import { RollupCounter, RollupTooLargeError } from "../src/core/archive/rollup.js";

/** What a line's stats value is, read as the counter reads it, against JSON.parse's answer. */
const where = { table: "t", date: "2025-10-13" };

it("counts each line by its own member's value, whatever the line's shape, as JSON.parse reads it", () => {
  const lines = [
    '{"id":1,"path":"/a","n":2}', // PostgreSQL, SQLite: no spaces
    '{"id": 2, "path": "/a", "n": 2}', // MySQL's JSON_OBJECT
    '{"path":"/b","id":3}', // the member first
    '{"id":4,"note":"\\"path\\":\\"/x\\"","path":"/b"}', // the member's text inside a string first
    '{"id":5,"path":"/c\\"q\\""}', // an escape in the value: parsed
    '{"id":6,"meta":{"path":"/nested"},"path":"/d"}', // a nested object with the same member
    '{"id":7,"path":null}',
    '{"id":8,"path":42}',
    '{"id":9,"path":"/\\u00e9"}',
    '{"id":10,"path":"/é"}',
    '{"id":11,"path":42,"ref":"r"}', // a number before another string member
    '{"id":12,"a\\"path":"/x","path":"/y"}', // a member whose name ends in the member's text
    '{"id":13,",\\"path":"/x","path":"/z"}', // ... and holds a comma before it
    '{"id":14,"meta":{"a":1},"path":null}', // null, parsed
    '{"id":15}', // no such member: null
  ];
  const c = new RollupCounter("path", where);
  for (const l of lines) c.add(l);
  const expected = new Map<string | null, number>();
  for (const l of lines) {
    const v = (JSON.parse(l) as { path: unknown }).path;
    const k = v === null || v === undefined ? null : typeof v === "string" ? v : JSON.stringify(v);
    expected.set(k, (expected.get(k) ?? 0) + 1);
  }
  expect(c.rollup()).toEqual({ counts: expected, total: lines.length });
  expect(c.counts.get("/é")).toBe(2);
  expect(c.counts.get("42")).toBe(2);
  expect(c.counts.get(null)).toBe(3);
  expect([c.counts.get("/y"), c.counts.get("/z"), c.counts.get("/x")]).toEqual([1, 1, undefined]);
});

it("refuses more distinct values than a rollup keeps, naming the table and the way out", () => {
  const c = new RollupCounter("path", where, 3);
  for (const p of ["/a", "/b", "/c", "/a"]) c.add(`{"id":1,"path":"${p}"}`);
  expect(() => c.add('{"id":2,"path":"/d"}')).toThrow(RollupTooLargeError);
  expect(() => c.add('{"id":2,"path":"/d"}')).toThrow(
    /more than 3 distinct values of 'path'.*SLUICE_ROLLUPS=off/,
  );
});

afterEach(() => vi.restoreAllMocks());

it("reads a string or null member from the line's text, and parses every other line", () => {
  const c = new RollupCounter("path", where);
  const parse = vi.spyOn(JSON, "parse");
  const simple = [
    '{"id":1,"path":"/a","n":2}',
    '{"id": 2, "path": "/a", "n": 2}',
    '{"path":"/b","id":3}',
    '{"id":4,"path":null}',
    '{"id": 5, "path": null}',
    '{"id":6,"path":"/é[1]"}',
    '{"id":12,"xpath":"/no","path":"/a"}', // another member's name ends with the column's
  ];
  for (const l of simple) c.add(l);
  expect(parse).not.toHaveBeenCalled();
  const others = [
    '{"id":7,"path":42}', // a number: as JSON.parse writes it back
    '{"id":8,"path":1.50}',
    '{"id":9,"path":true}',
    '{"id":10,"path":"/q\\"x"}',
    '{"id":11,"m":{"a":1},"path":"/a"}',
    '{"id":13,"path" :"/a"}',
  ];
  for (const l of others) c.add(l);
  expect(parse).toHaveBeenCalledTimes(others.length);
  expect(Object.fromEntries(c.counts)).toEqual({
    "/a": 5,
    "/b": 1,
    null: 2,
    "/é[1]": 1,
    "42": 1,
    "1.5": 1,
    true: 1,
    '/q"x': 1,
  });
  expect(c.total).toBe(simple.length + others.length);
});

it("a line cut inside its value is parsed, and so refused", () => {
  const c = new RollupCounter("path", where);
  expect(() => c.add('{"id":1,"path":"/a}')).toThrow(SyntaxError);
  expect(c.total).toBe(0);
});
